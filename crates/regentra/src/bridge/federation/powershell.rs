//! Ready-to-copy remediation for Teams external access: MicrosoftTeams PowerShell, the Teams
//! admin center steps, and a plain-text message the MSP can e-mail to a client's administrator.
//!
//! Cmdlets and parameters are exactly those of graph-facts §7: `Get-`/`Set-CsTenantFederationConfiguration`
//! with `-AllowFederatedUsers`, `-AllowedDomainsAsAList` (a `List[String]`, or `@{Add=$list}`),
//! `-BlockedDomains @{Remove=…}` with a `New-CsEdgeDomainPattern -Domain …` object, and
//! `Get-CsExternalAccessPolicy` (`EnableFederationAccess`) for the per-user layer.
//!
//! Scripts for a tenant whose settings we cannot see ([`allow_domains_script`]) read the current
//! configuration first and change only what blocks the given domains: they never switch a tenant
//! that allows all external domains to an allow list (`-AllowedDomainsAsAList @{Add=…}` would do
//! exactly that, cutting it off from everyone else), and when external access is off they allow
//! only the given domains rather than everybody.
//!
//! This module must never put unquoted text into a script: every value is a single-quoted
//! PowerShell literal ([`quote`]), and text in `#` comments is kept on one line ([`comment`]), so a
//! client name or domain cannot smuggle in a command. It produces text only; it runs nothing.

use std::fmt::Write as _;

/// Where the setting lives in the Teams admin center (graph-facts §7).
pub const TEAMS_ADMIN_CENTER_PATH: &str = "Teams admin center → Users → External access";
/// Address of the Teams admin center.
pub const TEAMS_ADMIN_CENTER_URL: &str = "https://admin.teams.microsoft.com";

/// A single-quoted PowerShell string literal. PowerShell treats the typographic quotes
/// ‘ ’ ‚ ‛ like `'`, so those are doubled as well.
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for character in value.chars() {
        if matches!(
            character,
            '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}'
        ) {
            quoted.push(character);
        }
        quoted.push(character);
    }
    quoted.push('\'');
    quoted
}

/// Text that is safe inside a `#` line comment: line breaks and other control characters become
/// spaces, so nothing after them can turn into a command.
pub fn comment(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() || matches!(character, '\u{2028}' | '\u{2029}' | '\u{85}') {
                ' '
            } else {
                character
            }
        })
        .collect()
}

/// A change the MSP must make in its own tenant, known from its imported settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MspFix {
    /// External access is off (`AllowFederatedUsers` is False): turn it on.
    EnableFederation,
    /// The MSP allows only specific domains: add these client domains to that list.
    AddToAllowList(Vec<String>),
    /// These entries of the MSP's blocked list block the client (an entry may be the parent of
    /// a client domain when `BlockAllSubdomains` is on).
    RemoveFromBlockList(Vec<String>),
}

/// The script the MSP's Teams administrator runs to apply `fixes` for the client `client_name`.
pub fn msp_fix_script(client_name: &str, fixes: &[MspFix]) -> String {
    let mut script = String::new();
    push_line(
        &mut script,
        &format!(
            "# Teams external access: let the MSP's support account chat with {}.",
            comment(client_name)
        ),
    );
    push_header(&mut script, "the MSP's tenant");
    for fix in fixes {
        match fix {
            MspFix::EnableFederation => {
                push_line(
                    &mut script,
                    "# External access is off ('Block all external domains'). This turns it on; the existing allowed and blocked lists then apply.",
                );
                push_line(
                    &mut script,
                    "Set-CsTenantFederationConfiguration -AllowFederatedUsers $true",
                );
            }
            MspFix::AddToAllowList(domains) if !domains.is_empty() => {
                push_line(
                    &mut script,
                    "# Only specific external domains are allowed: add the client's domains to that list.",
                );
                push_domain_list(&mut script, domains);
                push_line(
                    &mut script,
                    "Set-CsTenantFederationConfiguration -AllowedDomainsAsAList @{Add=$domains}",
                );
            }
            MspFix::RemoveFromBlockList(entries) if !entries.is_empty() => {
                push_line(
                    &mut script,
                    "# Remove the blocked entries that match the client (removing a parent domain also unblocks its subdomains).",
                );
                for entry in entries {
                    push_line(
                        &mut script,
                        &format!(
                            "Set-CsTenantFederationConfiguration -BlockedDomains @{{Remove=(New-CsEdgeDomainPattern -Domain {})}}",
                            quote(entry)
                        ),
                    );
                }
            }
            MspFix::AddToAllowList(_) | MspFix::RemoveFromBlockList(_) => {}
        }
    }
    push_check(&mut script);
    script
}

/// Teams admin center steps for the MSP's administrator applying `fixes`.
pub fn msp_fix_admin_center_steps(fixes: &[MspFix]) -> String {
    let mut steps = format!("In the {TEAMS_ADMIN_CENTER_PATH} ({TEAMS_ADMIN_CENTER_URL}):");
    for fix in fixes {
        match fix {
            MspFix::EnableFederation => steps.push_str(
                "\n- 'Block all external domains' is chosen: choose 'Allow all external domains', \
                 or 'Allow only specific external domains' with every client's domains.",
            ),
            MspFix::AddToAllowList(domains) if !domains.is_empty() => {
                let _ = write!(
                    steps,
                    "\n- 'Allow only specific external domains' is chosen: add {}.",
                    join_domains(domains)
                );
            }
            MspFix::RemoveFromBlockList(entries) if !entries.is_empty() => {
                let _ = write!(
                    steps,
                    "\n- Remove {} from the blocked domains.",
                    join_domains(entries)
                );
            }
            MspFix::AddToAllowList(_) | MspFix::RemoveFromBlockList(_) => {}
        }
    }
    steps
}

/// The script for a tenant whose settings we cannot see (`tenant_label`, e.g. the client's
/// name) to let people from `domains` chat with it. Reads the configuration first and changes
/// only what blocks those domains (see the module docs).
pub fn allow_domains_script<S: AsRef<str>>(tenant_label: &str, domains: &[S]) -> String {
    let mut script = String::new();
    push_line(
        &mut script,
        &format!(
            "# Teams external access for {}: allow chat with {}.",
            comment(tenant_label),
            comment(&join_domains(domains))
        ),
    );
    push_header(&mut script, tenant_label);
    push_line(
        &mut script,
        "# Changes only what blocks these domains; it never opens access to other domains.",
    );
    push_domain_list(&mut script, domains);
    push_line(&mut script, "$config = Get-CsTenantFederationConfiguration");
    push_line(&mut script, "if (-not $config.AllowFederatedUsers) {");
    push_line(
        &mut script,
        "    # 'Block all external domains' is on: allow only these domains.",
    );
    push_line(
        &mut script,
        "    Set-CsTenantFederationConfiguration -AllowFederatedUsers $true -AllowedDomainsAsAList $domains",
    );
    push_line(
        &mut script,
        "} elseif ($null -ne $config.AllowedDomains.AllowedDomain) {",
    );
    push_line(
        &mut script,
        "    # 'Allow only specific external domains' is on: add these domains to that list.",
    );
    push_line(
        &mut script,
        "    Set-CsTenantFederationConfiguration -AllowedDomainsAsAList @{Add=$domains}",
    );
    push_line(&mut script, "}");
    push_line(
        &mut script,
        "# Make sure none of these domains is on the blocked list.",
    );
    push_line(&mut script, "foreach ($domain in $domains) {");
    push_line(
        &mut script,
        "    if ($config.BlockedDomains.Domain -contains $domain) {",
    );
    push_line(
        &mut script,
        "        Set-CsTenantFederationConfiguration -BlockedDomains @{Remove=(New-CsEdgeDomainPattern -Domain $domain)}",
    );
    push_line(&mut script, "    }");
    push_line(&mut script, "}");
    push_check(&mut script);
    script
}

/// Teams admin center steps for a tenant whose settings we cannot see, to let `domains` in.
pub fn allow_domains_admin_center_steps<S: AsRef<str>>(domains: &[S]) -> String {
    let domains = join_domains(domains);
    format!(
        "In the {TEAMS_ADMIN_CENTER_PATH} ({TEAMS_ADMIN_CENTER_URL}), look at which option is chosen:\n\
         - 'Block all external domains': choose 'Allow only specific external domains' and add {domains}.\n\
         - 'Allow only specific external domains': add {domains} to the list.\n\
         - 'Block specific domains': remove {domains} from the list if it is there.\n\
         - 'Allow all external domains': nothing to change here.\n\
         Also check that the external access policy assigned to your users allows chatting with \
         people in other organizations (EnableFederationAccess)."
    )
}

/// A plain-text message the MSP can paste into an e-mail to the client's Teams administrator,
/// asking them to allow Teams chat with the MSP's domains (with both the admin center steps and
/// the PowerShell) and to send a test message.
pub fn instructions_for_client_admin<S: AsRef<str>>(
    client_name: &str,
    msp_domains: &[S],
    support_account: Option<&str>,
) -> String {
    let domains = join_domains(msp_domains);
    let contact = support_account.unwrap_or("our support account");
    let mut text = String::new();
    let _ = write!(
        text,
        "Hello,\n\n\
         we answer support requests in Microsoft Teams: your colleagues can simply chat with \
         {contact}. For their messages to reach us, the Microsoft 365 tenant of {client_name} \
         must allow Teams chat with people from {domains} (Teams \"external access\"). At the \
         moment we cannot confirm that it does.\n\n\
         Could your Teams administrator please check this, in either of these two ways?\n\n\
         Option 1, Teams admin center\n{admin_center}\n\n\
         Option 2, PowerShell (MicrosoftTeams module, run as a Teams administrator)\n{script}\n\
         Afterwards, please send a short Teams chat message to {contact} (start a new chat and \
         search for the full address). Changes to external access can take some time to apply; \
         if the message does not reach us, please try again later. We will confirm as soon as \
         it arrives.\n\n\
         Thank you!\n",
        admin_center = allow_domains_admin_center_steps(msp_domains),
        script = allow_domains_script(client_name, msp_domains),
    );
    text
}

fn push_header(script: &mut String, tenant_label: &str) {
    push_line(
        script,
        &format!(
            "# Run in PowerShell as a Teams administrator of {} (module: Install-Module MicrosoftTeams).",
            comment(tenant_label)
        ),
    );
    push_line(script, "Connect-MicrosoftTeams");
}

fn push_domain_list<S: AsRef<str>>(script: &mut String, domains: &[S]) {
    push_line(
        script,
        "$domains = New-Object Collections.Generic.List[String]",
    );
    for domain in domains {
        push_line(script, &format!("$domains.Add({})", quote(domain.as_ref())));
    }
}

fn push_check(script: &mut String) {
    push_line(
        script,
        "# Check the result, and that users may chat with other organizations (EnableFederationAccess).",
    );
    push_line(
        script,
        "Get-CsTenantFederationConfiguration | Format-List AllowFederatedUsers, AllowedDomains, BlockedDomains, BlockAllSubdomains",
    );
    push_line(
        script,
        "Get-CsExternalAccessPolicy | Format-Table Identity, EnableFederationAccess",
    );
}

fn push_line(script: &mut String, line: &str) {
    script.push_str(line);
    script.push('\n');
}

fn join_domains<S: AsRef<str>>(domains: &[S]) -> String {
    match domains {
        [] => "(no domain recorded)".to_owned(),
        [only] => only.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|domain| domain.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_wraps_in_single_quotes_and_doubles_embedded_quotes() {
        assert_eq!(quote("msp.example"), "'msp.example'");
        assert_eq!(quote("o'brien.example"), "'o''brien.example'");
        assert_eq!(quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(quote("$(Remove-Item x)"), "'$(Remove-Item x)'");
    }

    #[test]
    fn comment_text_cannot_start_a_new_line() {
        assert_eq!(
            comment("Contoso\nRemove-Item C:\\ -Recurse\r\u{2028}x"),
            "Contoso Remove-Item C:\\ -Recurse  x"
        );
    }

    #[test]
    fn client_script_allows_the_msp_domains_without_widening_access() {
        let script = allow_domains_script("Contoso", &["msp.example", "msp-support.example"]);
        assert_eq!(
            script,
            "# Teams external access for Contoso: allow chat with msp.example and msp-support.example.\n\
             # Run in PowerShell as a Teams administrator of Contoso (module: Install-Module MicrosoftTeams).\n\
             Connect-MicrosoftTeams\n\
             # Changes only what blocks these domains; it never opens access to other domains.\n\
             $domains = New-Object Collections.Generic.List[String]\n\
             $domains.Add('msp.example')\n\
             $domains.Add('msp-support.example')\n\
             $config = Get-CsTenantFederationConfiguration\n\
             if (-not $config.AllowFederatedUsers) {\n    \
             # 'Block all external domains' is on: allow only these domains.\n    \
             Set-CsTenantFederationConfiguration -AllowFederatedUsers $true -AllowedDomainsAsAList $domains\n\
             } elseif ($null -ne $config.AllowedDomains.AllowedDomain) {\n    \
             # 'Allow only specific external domains' is on: add these domains to that list.\n    \
             Set-CsTenantFederationConfiguration -AllowedDomainsAsAList @{Add=$domains}\n\
             }\n\
             # Make sure none of these domains is on the blocked list.\n\
             foreach ($domain in $domains) {\n    \
             if ($config.BlockedDomains.Domain -contains $domain) {\n        \
             Set-CsTenantFederationConfiguration -BlockedDomains @{Remove=(New-CsEdgeDomainPattern -Domain $domain)}\n    \
             }\n\
             }\n\
             # Check the result, and that users may chat with other organizations (EnableFederationAccess).\n\
             Get-CsTenantFederationConfiguration | Format-List AllowFederatedUsers, AllowedDomains, BlockedDomains, BlockAllSubdomains\n\
             Get-CsExternalAccessPolicy | Format-Table Identity, EnableFederationAccess\n"
        );
    }

    #[test]
    fn a_domain_with_a_quote_is_escaped_and_a_hostile_name_stays_in_its_comment() {
        let script = allow_domains_script("Evil\nStop-Computer", &["o'brien.example"]);
        assert!(script.contains("$domains.Add('o''brien.example')\n"));
        assert!(!script.contains("'o'brien"));
        assert!(script.starts_with("# Teams external access for Evil Stop-Computer: "));
        assert!(
            script
                .lines()
                .all(|line| !line.trim_start().starts_with("Stop-Computer"))
        );
    }

    #[test]
    fn msp_script_applies_exactly_the_fixes_the_settings_call_for() {
        let script = msp_fix_script(
            "Contoso",
            &[
                MspFix::EnableFederation,
                MspFix::AddToAllowList(vec!["contoso.com".into()]),
                MspFix::RemoveFromBlockList(vec!["contoso.com".into(), "o'brien.example".into()]),
            ],
        );
        assert_eq!(
            script,
            "# Teams external access: let the MSP's support account chat with Contoso.\n\
             # Run in PowerShell as a Teams administrator of the MSP's tenant (module: Install-Module MicrosoftTeams).\n\
             Connect-MicrosoftTeams\n\
             # External access is off ('Block all external domains'). This turns it on; the existing allowed and blocked lists then apply.\n\
             Set-CsTenantFederationConfiguration -AllowFederatedUsers $true\n\
             # Only specific external domains are allowed: add the client's domains to that list.\n\
             $domains = New-Object Collections.Generic.List[String]\n\
             $domains.Add('contoso.com')\n\
             Set-CsTenantFederationConfiguration -AllowedDomainsAsAList @{Add=$domains}\n\
             # Remove the blocked entries that match the client (removing a parent domain also unblocks its subdomains).\n\
             Set-CsTenantFederationConfiguration -BlockedDomains @{Remove=(New-CsEdgeDomainPattern -Domain 'contoso.com')}\n\
             Set-CsTenantFederationConfiguration -BlockedDomains @{Remove=(New-CsEdgeDomainPattern -Domain 'o''brien.example')}\n\
             # Check the result, and that users may chat with other organizations (EnableFederationAccess).\n\
             Get-CsTenantFederationConfiguration | Format-List AllowFederatedUsers, AllowedDomains, BlockedDomains, BlockAllSubdomains\n\
             Get-CsExternalAccessPolicy | Format-Table Identity, EnableFederationAccess\n"
        );
    }

    #[test]
    fn msp_admin_center_steps_name_the_path_and_the_domains() {
        let steps = msp_fix_admin_center_steps(&[
            MspFix::AddToAllowList(vec!["contoso.com".into(), "contoso.de".into()]),
            MspFix::RemoveFromBlockList(vec!["fabrikam.com".into()]),
        ]);
        assert_eq!(
            steps,
            "In the Teams admin center → Users → External access (https://admin.teams.microsoft.com):\n\
             - 'Allow only specific external domains' is chosen: add contoso.com and contoso.de.\n\
             - Remove fabrikam.com from the blocked domains."
        );
    }

    #[test]
    fn client_admin_center_steps_cover_every_mode() {
        let steps = allow_domains_admin_center_steps(&["msp.example"]);
        assert!(steps.starts_with(
            "In the Teams admin center → Users → External access (https://admin.teams.microsoft.com)"
        ));
        for mode in [
            "'Block all external domains': choose 'Allow only specific external domains' and add msp.example.",
            "'Allow only specific external domains': add msp.example to the list.",
            "'Block specific domains': remove msp.example from the list",
            "'Allow all external domains': nothing to change here.",
        ] {
            assert!(steps.contains(mode), "missing {mode:?} in {steps}");
        }
    }

    #[test]
    fn client_admin_message_names_the_account_the_domains_and_carries_the_script() {
        let text =
            instructions_for_client_admin("Contoso", &["msp.example"], Some("support@msp.example"));
        assert!(text.starts_with("Hello,\n\n"));
        assert!(text.contains("your colleagues can simply chat with support@msp.example"));
        assert!(text.contains(
            "the Microsoft 365 tenant of Contoso must allow Teams chat with people from msp.example"
        ));
        assert!(text.contains(
            "Option 1, Teams admin center\nIn the Teams admin center → Users → External access"
        ));
        assert!(text.contains(&allow_domains_script("Contoso", &["msp.example"])));
        assert!(text.contains("please send a short Teams chat message to support@msp.example"));
    }

    #[test]
    fn domain_lists_read_naturally() {
        assert_eq!(join_domains::<&str>(&[]), "(no domain recorded)");
        assert_eq!(join_domains(&["a.example"]), "a.example");
        assert_eq!(
            join_domains(&["a.example", "b.example", "c.example"]),
            "a.example, b.example and c.example"
        );
    }
}
