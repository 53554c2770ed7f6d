//! The verdict for one client: Connected, Blocked or Unknown, the reasons, the side that must act,
//! and ready-to-copy remediation. Pure: the caller gathers the evidence ([`ClientEvidence`]).
//!
//! # Precedence (ARCHITECTURE §9; the first rule that applies decides)
//!
//! 1. The client's tenant ID is missing or not a GUID → **Unknown**, "set the tenant ID".
//! 2. The identity platform does not know the tenant ([`TenantLookup::NotFound`]) → **Unknown**,
//!    "the tenant ID is wrong".
//! 3. A message from the client arrived after the last federation-type failed send (or there is
//!    none) → **Connected**, with the message's date: a message only gets through when both
//!    tenants allow it. Exception: imported MSP settings that block the client and were imported
//!    *after* that message are newer evidence, so rule 5 decides.
//! 4. The last federation-type failed send is newer than any message from the client and than
//!    any reply Teams accepted (then it is the latest send) → **Blocked**. The side is the MSP when its imported settings block the client, the client
//!    when those settings allow every client domain (then the MSP side is ruled out, as far as
//!    settings go), and unnamed otherwise ("one of the two tenants").
//! 5. The MSP's imported settings block every client domain → **Blocked**, MSP side, naming the
//!    rule: `AllowFederatedUsers` False (blocks everyone, domains or not); an allow list that
//!    lacks the domain; the domain on `BlockedDomains` (only while all known domains are allowed,
//!    as Teams ignores the blocked list otherwise), or a subdomain of a blocked entry while
//!    `BlockAllSubdomains` is True.
//! 6. Otherwise **Unknown**, "no chat with this client yet", with test steps.
//!
//! # Honesty rules
//!
//! * A failed tenant lookup ([`TenantLookup::Failed`]) is no evidence either way. Rules 3–5 do
//!   not depend on it; when nothing decides, the Unknown verdict leads with the lookup failure.
//! * A failed send that is not federation-type says nothing about federation: it is reported,
//!   never decisive. A reply accepted by Teams does not prove delivery to another tenant: it is
//!   reported, never decisive.
//! * Allow lists are matched exactly. A client domain whose parent is on the allow list is not
//!   counted as blocked (Teams does not document that case) and the reasons say so.
//! * When only some client domains are blocked, the reasons name them, but the client is not
//!   called Blocked: people on the other domains can still chat.
//!
//! This module must never report Connected without a received message, name a blocking side it
//! cannot see, or do I/O.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use super::import::{AllowedDomains, MspFederationSettings};
use super::powershell::{self, MspFix};
use crate::tickets::{Domain, TenantId};

/// The federation status of a client, as shown on the card and returned by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FederationStatus {
    /// Evidence shows Teams chat between the two tenants works.
    Connected,
    /// Evidence shows one side blocks Teams chat.
    Blocked,
    /// Not enough evidence either way.
    Unknown,
}

impl FederationStatus {
    /// `connected`, `blocked` or `unknown` (the API and database form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Blocked => "blocked",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FederationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the two tenants of a cross-tenant chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The MSP's own tenant (where the support account lives).
    Msp,
    /// The client's tenant.
    Client,
}

/// Result of asking the identity platform's public OIDC discovery document about the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantLookup {
    /// The tenant exists.
    Exists,
    /// The identity platform answered "tenant not found".
    NotFound,
    /// The lookup itself failed (timeout, network, unexpected answer): the reason, for display.
    Failed(String),
    /// No lookup was made.
    NotChecked,
}

/// The most recent failed send of a reply to this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSend {
    /// When the send failed.
    pub at: OffsetDateTime,
    /// Whether the failure was classified as a federation refusal (as opposed to throttling,
    /// a server error, …).
    pub federation_type: bool,
    /// The error as shown on the ticket.
    pub message: String,
}

/// Everything known about one client, gathered by the caller.
#[derive(Debug, Clone)]
pub struct ClientEvidence<'a> {
    /// The client's display name.
    pub client_name: String,
    /// The tenant ID as stored (may be missing or malformed; checked here).
    pub tenant_id: Option<String>,
    /// The client's domains as stored (invalid ones are ignored and reported).
    pub domains: Vec<String>,
    /// The OIDC discovery lookup for the tenant.
    pub tenant_lookup: TenantLookup,
    /// When the last message from this client's tenant was received.
    pub last_inbound_at: Option<OffsetDateTime>,
    /// When the last reply to this client was accepted by Teams.
    pub last_delivered_reply_at: Option<OffsetDateTime>,
    /// The most recent failed send to this client, of any kind.
    pub last_failed_send: Option<FailedSend>,
    /// The MSP's own external-access settings, if the admin imported them.
    pub msp_settings: Option<&'a MspFederationSettings>,
    /// The MSP's domains (those its users chat from), filled into the client's instructions.
    pub msp_domains: Vec<String>,
    /// The connected support account's address, used in test steps and the client's message.
    pub support_account: Option<String>,
}

/// The verdict for one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationResult {
    /// Connected, Blocked or Unknown.
    pub status: FederationStatus,
    /// Why, in sentences a person can act on; the deciding reason first.
    pub reasons: Vec<String>,
    /// The side that blocks, when the evidence names it.
    pub blocking_side: Option<Side>,
    /// What to do, for Blocked and Unknown verdicts that someone can act on.
    pub remediation: Option<Remediation>,
}

/// What the side(s) that must act should do, and how to test afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// One entry per administrator who must act, the most likely first.
    pub actions: Vec<AdminAction>,
    /// How to confirm the fix.
    pub test_steps: Vec<String>,
    /// A plain-text message for the client's administrator (the "copy instructions" button),
    /// when the client's side may have to act and the MSP's domains are known.
    pub client_admin_message: Option<String>,
}

/// The change one administrator makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAction {
    /// Whose administrator acts.
    pub side: Side,
    /// One sentence: who does what.
    pub summary: String,
    /// The Teams admin center steps.
    pub admin_center: String,
    /// Ready-to-copy PowerShell, when the domains it needs are known.
    pub powershell: Option<String>,
}

/// Decides the verdict for one client (see the module docs for the precedence).
pub fn verdict(input: &ClientEvidence<'_>) -> FederationResult {
    let client = match input.client_name.trim() {
        "" => "this client",
        name => name,
    };

    // Rule 1: a usable tenant ID.
    let Some(raw_tenant) = input
        .tenant_id
        .as_deref()
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    else {
        return FederationResult::unknown(vec![format!(
            "No Entra tenant ID is set for {client}: set the tenant ID (in the client's Microsoft \
             Entra admin center under Overview → Tenant ID) to check federation."
        )]);
    };
    let Ok(tenant) = TenantId::parse(raw_tenant) else {
        let shown: String = raw_tenant.chars().take(80).collect();
        return FederationResult::unknown(vec![format!(
            "\"{shown}\" is not a valid Entra tenant ID (a GUID like \
             72f988bf-86f1-41af-91ab-2d7cd011db47): set the tenant ID of {client} (in the \
             client's Microsoft Entra admin center under Overview → Tenant ID)."
        )]);
    };

    // Rule 2: the tenant exists.
    if input.tenant_lookup == TenantLookup::NotFound {
        return FederationResult::unknown(vec![format!(
            "The tenant ID of {client} is wrong: Microsoft's sign-in service does not know the \
             tenant {tenant}. Check it in the client's Microsoft Entra admin center (Overview → \
             Tenant ID) and correct it."
        )]);
    }

    let mut notes = Vec::new();
    let lookup_failure = match &input.tenant_lookup {
        TenantLookup::Failed(reason) => Some(format!(
            "Could not check that the tenant {tenant} exists ({}); run Verify again later.",
            one_line(reason)
        )),
        _ => None,
    };
    let client_domains = parse_domains(&input.domains, Some((client, &mut notes)));
    let msp_domains = parse_domains(&input.msp_domains, None);
    let context = Context {
        client,
        input,
        msp: input
            .msp_settings
            .map(|settings| MspEvaluation::new(settings, &client_domains)),
        client_domains,
        msp_domains,
    };
    notes.extend(lookup_failure.iter().cloned());

    let federation_failure = input
        .last_failed_send
        .as_ref()
        .filter(|failure| failure.federation_type);

    // Rule 3: a message got through after the last federation refusal.
    if let Some(inbound) = input.last_inbound_at
        && federation_failure.is_none_or(|failure| inbound > failure.at)
    {
        let newer_settings_block = context
            .msp
            .as_ref()
            .is_some_and(|msp| msp.blocks_client() && msp.settings.imported_at > inbound);
        if !newer_settings_block {
            return context.connected(inbound, notes);
        }
    }

    // Rule 4: the last federation refusal is newer than any message from the client, and no
    // reply was accepted since (then the latest send did not fail).
    if let Some(failure) = federation_failure
        && input
            .last_inbound_at
            .is_none_or(|inbound| failure.at >= inbound)
        && input
            .last_delivered_reply_at
            .is_none_or(|accepted| failure.at >= accepted)
    {
        return context.blocked_by_refused_send(failure, notes);
    }

    // Rule 5: the MSP's own settings block the client.
    if let Some(msp) = &context.msp
        && msp.blocks_client()
    {
        return context.blocked_by_msp_settings(msp, notes);
    }

    // Rule 6: nothing decides.
    context.unknown(lookup_failure, notes)
}

impl FederationResult {
    fn unknown(reasons: Vec<String>) -> Self {
        Self {
            status: FederationStatus::Unknown,
            reasons,
            blocking_side: None,
            remediation: None,
        }
    }
}

/// The evidence of one verdict, parsed.
struct Context<'e, 'a> {
    client: &'e str,
    input: &'e ClientEvidence<'a>,
    client_domains: Vec<Domain>,
    msp_domains: Vec<Domain>,
    msp: Option<MspEvaluation<'a>>,
}

impl Context<'_, '_> {
    fn connected(&self, inbound: OffsetDateTime, notes: Vec<String>) -> FederationResult {
        let client = self.client;
        let mut reasons = vec![format!(
            "Last message from {client} received {}, so Teams chat between the two tenants \
             works: a message only gets through when both sides allow it.",
            when(inbound)
        )];
        if let Some(replied) = self.input.last_delivered_reply_at {
            reasons.push(format!(
                "Last reply to {client} accepted by Teams {}.",
                when(replied)
            ));
        }
        if let Some(failure) = &self.input.last_failed_send
            && !failure.federation_type
            && failure.at > inbound
        {
            reasons.push(format!(
                "The last send to {client} failed {} ({}), but not with a federation error.",
                when(failure.at),
                one_line(&failure.message)
            ));
        }
        if let Some(msp) = &self.msp
            && msp.blocks_client()
        {
            reasons.push(format!(
                "The MSP's imported Teams settings (imported {}) would block {client}, but a \
                 message arrived after that import: they are out of date, import them again.",
                when(msp.settings.imported_at)
            ));
        }
        reasons.extend(notes);
        FederationResult {
            status: FederationStatus::Connected,
            reasons,
            blocking_side: None,
            remediation: None,
        }
    }

    fn blocked_by_refused_send(
        &self,
        failure: &FailedSend,
        notes: Vec<String>,
    ) -> FederationResult {
        let client = self.client;
        let mut reasons = vec![format!(
            "Teams refused the last reply to {client} {} with a federation error ({}).",
            when(failure.at),
            one_line(&failure.message)
        )];
        if let Some(inbound) = self.input.last_inbound_at {
            reasons.push(format!(
                "The last message from {client} was received {}, before that refusal.",
                when(inbound)
            ));
        }
        let side = match &self.msp {
            Some(msp) if msp.blocks_client() => Some(Side::Msp),
            Some(msp) if msp.allows_every_client_domain() => Some(Side::Client),
            _ => None,
        };
        let mut actions = Vec::new();
        match (side, &self.msp) {
            (Some(Side::Msp), Some(msp)) => {
                reasons.extend(msp.blocking_reasons(client));
                actions.push(self.msp_fix_action(msp));
            }
            (Some(Side::Client), Some(msp)) => {
                reasons.push(format!(
                    "The MSP's Teams settings (imported {}) allow {}, so the block is most \
                     likely in {client}'s tenant, whose settings cannot be read from here.",
                    when(msp.settings.imported_at),
                    join(&self.client_domains)
                ));
                actions.push(self.client_action());
            }
            (_, None) => {
                reasons.push(
                    "One of the two tenants blocks Teams chat with the other, and Regentra cannot \
                     see which: importing the MSP's own settings \
                     (Get-CsTenantFederationConfiguration) rules the MSP side in or out."
                        .to_owned(),
                );
                actions.push(self.client_action());
                actions.push(self.msp_allow_action());
            }
            (_, Some(msp)) => {
                reasons.extend(msp.blocking_reasons(client));
                reasons.extend(msp.other_reasons(client));
                reasons.push("Regentra cannot tell which side refused the reply.".to_owned());
                actions.push(self.client_action());
                if !msp.fixes().is_empty() {
                    actions.push(self.msp_fix_action(msp));
                }
            }
        }
        reasons.extend(notes);
        FederationResult {
            status: FederationStatus::Blocked,
            reasons,
            blocking_side: side,
            remediation: Some(self.remediation(actions)),
        }
    }

    fn blocked_by_msp_settings(
        &self,
        msp: &MspEvaluation<'_>,
        notes: Vec<String>,
    ) -> FederationResult {
        let client = self.client;
        let mut reasons = msp.blocking_reasons(client);
        if let Some(inbound) = self.input.last_inbound_at {
            reasons.push(format!(
                "The last message from {client} was received {}, before these settings were \
                 imported.",
                when(inbound)
            ));
        }
        reasons.extend(self.non_federation_failure_note());
        reasons.extend(notes);
        FederationResult {
            status: FederationStatus::Blocked,
            reasons,
            blocking_side: Some(Side::Msp),
            remediation: Some(self.remediation(vec![self.msp_fix_action(msp)])),
        }
    }

    fn unknown(&self, lookup_failure: Option<String>, notes: Vec<String>) -> FederationResult {
        let client = self.client;
        let mut reasons = Vec::new();
        // The lookup failure leads: it is the first thing to retry. It is also in `notes`.
        reasons.extend(lookup_failure.iter().cloned());
        if self.input.last_inbound_at.is_none() {
            reasons.push(format!(
                "No chat with {client} yet: ask someone at {client} to send a Teams chat message \
                 to {}, then run Verify again.",
                self.support_account()
            ));
        }
        reasons.extend(self.non_federation_failure_note());
        reasons.extend(self.superseded_refusal_note());
        if let Some(replied) = self.input.last_delivered_reply_at {
            reasons.push(format!(
                "A reply to {client} was accepted by Teams {}, but Teams does not confirm \
                 delivery to another tenant: a message from {client} is what proves federation \
                 works.",
                when(replied)
            ));
        }
        let mut actions = vec![self.client_action()];
        match &self.msp {
            Some(msp) => {
                reasons.extend(msp.blocking_reasons(client));
                reasons.extend(msp.other_reasons(client));
                if !msp.fixes().is_empty() {
                    actions.push(self.msp_fix_action(msp));
                }
            }
            None => {
                reasons.push(
                    "The MSP's own Teams external-access settings have not been imported, so \
                     neither side's settings can be checked from here."
                        .to_owned(),
                );
                actions.push(self.msp_allow_action());
            }
        }
        reasons.extend(
            notes
                .into_iter()
                .filter(|note| Some(note) != lookup_failure.as_ref()),
        );
        FederationResult {
            status: FederationStatus::Unknown,
            reasons,
            blocking_side: None,
            remediation: Some(self.remediation(actions)),
        }
    }

    fn non_federation_failure_note(&self) -> Option<String> {
        let failure = self.input.last_failed_send.as_ref()?;
        (!failure.federation_type).then(|| {
            format!(
                "The last send to {} failed {} ({}); that was not a federation error, so it says \
                 nothing about federation.",
                self.client,
                when(failure.at),
                one_line(&failure.message)
            )
        })
    }

    /// A federation refusal followed by an accepted reply (so rule 4 did not decide).
    fn superseded_refusal_note(&self) -> Option<String> {
        let failure = self.input.last_failed_send.as_ref()?;
        let accepted = self.input.last_delivered_reply_at?;
        (failure.federation_type && accepted > failure.at).then(|| {
            format!(
                "A send to {} was refused {} ({}), but a later reply was accepted {}: the block \
                 may have been lifted since.",
                self.client,
                when(failure.at),
                one_line(&failure.message),
                when(accepted)
            )
        })
    }

    fn support_account(&self) -> &str {
        self.input
            .support_account
            .as_deref()
            .map(str::trim)
            .filter(|account| !account.is_empty())
            .unwrap_or("the support account")
    }

    fn remediation(&self, actions: Vec<AdminAction>) -> Remediation {
        let client = self.client;
        let client_must_maybe_act = actions.iter().any(|action| action.side == Side::Client);
        let client_admin_message =
            (client_must_maybe_act && !self.msp_domains.is_empty()).then(|| {
                powershell::instructions_for_client_admin(
                    client,
                    &self.msp_domains,
                    self.input.support_account.as_deref(),
                )
            });
        Remediation {
            actions,
            test_steps: vec![
                format!(
                    "Ask someone at {client} to start a new Teams chat with {} (search for the \
                     full address) and send a short message.",
                    self.support_account()
                ),
                "When the message shows up in Regentra, run Verify Client Federation again: the \
                 client then shows Connected."
                    .to_owned(),
                "If nothing arrives, apply the steps above on the side named, give the change \
                 some time to take effect, and try again."
                    .to_owned(),
            ],
            client_admin_message,
        }
    }

    /// The client's administrator lets the MSP's domains in.
    fn client_action(&self) -> AdminAction {
        let client = self.client;
        if self.msp_domains.is_empty() {
            return AdminAction {
                side: Side::Client,
                summary: format!(
                    "{client}'s Teams administrator allows Teams chat with the MSP's domain \
                     (Regentra learns it when the Teams account is connected)."
                ),
                admin_center: powershell::allow_domains_admin_center_steps(&["the MSP's domain"]),
                powershell: None,
            };
        }
        AdminAction {
            side: Side::Client,
            summary: format!(
                "{client}'s Teams administrator allows Teams chat with {}.",
                join(&self.msp_domains)
            ),
            admin_center: powershell::allow_domains_admin_center_steps(&self.msp_domains),
            powershell: Some(powershell::allow_domains_script(client, &self.msp_domains)),
        }
    }

    /// The MSP's administrator lets the client's domains in (its settings are not imported).
    fn msp_allow_action(&self) -> AdminAction {
        if self.client_domains.is_empty() {
            return AdminAction {
                side: Side::Msp,
                summary: format!(
                    "The MSP's Teams administrator allows Teams chat with {}'s domains (add them \
                     to the client in Regentra to fill in the PowerShell).",
                    self.client
                ),
                admin_center: powershell::allow_domains_admin_center_steps(&[
                    "the client's domains",
                ]),
                powershell: None,
            };
        }
        AdminAction {
            side: Side::Msp,
            summary: format!(
                "The MSP's Teams administrator allows Teams chat with {}.",
                join(&self.client_domains)
            ),
            admin_center: powershell::allow_domains_admin_center_steps(&self.client_domains),
            powershell: Some(powershell::allow_domains_script(
                "the MSP's tenant",
                &self.client_domains,
            )),
        }
    }

    /// The MSP's administrator changes exactly what its imported settings block.
    fn msp_fix_action(&self, msp: &MspEvaluation<'_>) -> AdminAction {
        let fixes = msp.fixes();
        AdminAction {
            side: Side::Msp,
            summary: format!(
                "The MSP's Teams administrator changes the MSP's external access so that {} is \
                 no longer blocked.",
                self.client
            ),
            admin_center: powershell::msp_fix_admin_center_steps(&fixes),
            powershell: Some(powershell::msp_fix_script(self.client, &fixes)),
        }
    }
}

/// Which rule of the MSP's allowed/blocked lists blocks a client domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListRule {
    NotInAllowList,
    InBlockList,
    SubdomainOfBlocked(Domain),
}

struct DomainCheck {
    domain: Domain,
    blocked_by: Option<ListRule>,
    /// Allow list mode: the domain itself is not listed, but this parent domain is.
    allowed_via_parent: Option<Domain>,
}

/// The MSP's imported settings evaluated against one client's domains.
struct MspEvaluation<'s> {
    settings: &'s MspFederationSettings,
    checks: Vec<DomainCheck>,
}

impl<'s> MspEvaluation<'s> {
    fn new(settings: &'s MspFederationSettings, client_domains: &[Domain]) -> Self {
        let checks = client_domains
            .iter()
            .map(|domain| check_domain(settings, domain))
            .collect();
        Self { settings, checks }
    }

    fn block_all(&self) -> bool {
        !self.settings.allow_federated_users
    }

    /// Nobody at the client can chat with the MSP, according to the MSP's settings.
    fn blocks_client(&self) -> bool {
        self.block_all()
            || (!self.checks.is_empty()
                && self.checks.iter().all(|check| check.blocked_by.is_some()))
    }

    /// Every client domain is plainly allowed, so the MSP's settings are not the problem.
    fn allows_every_client_domain(&self) -> bool {
        !self.block_all()
            && !self.checks.is_empty()
            && self
                .checks
                .iter()
                .all(|check| check.blocked_by.is_none() && check.allowed_via_parent.is_none())
    }

    fn imported(&self) -> String {
        when(self.settings.imported_at)
    }

    /// One sentence per rule that blocks (all of them, so the MSP can fix everything at once).
    fn blocking_reasons(&self, client: &str) -> Vec<String> {
        let imported = self.imported();
        let mut reasons = Vec::new();
        if self.block_all() {
            reasons.push(format!(
                "The MSP's Teams settings (imported {imported}) block all external domains \
                 (AllowFederatedUsers is False), so nobody at {client} can chat with the support \
                 account."
            ));
        }
        for check in &self.checks {
            let domain = &check.domain;
            match &check.blocked_by {
                None => {}
                Some(ListRule::NotInAllowList) => {
                    let allow_list_is_empty = matches!(
                        &self.settings.allowed,
                        AllowedDomains::List(list) if list.is_empty()
                    );
                    reasons.push(if allow_list_is_empty {
                        format!(
                            "{domain} is not in the MSP's AllowedDomains list: the MSP's Teams \
                             settings (imported {imported}) allow only specific external \
                             domains, and that list is empty."
                        )
                    } else {
                        format!(
                            "{domain} is not in the MSP's AllowedDomains list: the MSP's Teams \
                             settings (imported {imported}) allow only specific external domains."
                        )
                    });
                }
                Some(ListRule::InBlockList) => reasons.push(format!(
                    "{domain} is in the MSP's BlockedDomains list (Teams settings imported \
                     {imported})."
                )),
                Some(ListRule::SubdomainOfBlocked(entry)) => reasons.push(format!(
                    "{domain} is blocked by the MSP: {entry} is in its BlockedDomains list and \
                     BlockAllSubdomains is True (Teams settings imported {imported})."
                )),
            }
        }
        reasons
    }

    /// What the settings leave open: allowed domains, uncertain subdomains, missing domains.
    fn other_reasons(&self, client: &str) -> Vec<String> {
        let mut reasons = Vec::new();
        for check in &self.checks {
            if let Some(parent) = &check.allowed_via_parent {
                let domain = &check.domain;
                reasons.push(format!(
                    "{domain} is not itself in the MSP's AllowedDomains list, but {parent} is; \
                     Teams does not document whether an allowed domain covers its subdomains, \
                     so {domain} is not counted as blocked."
                ));
            }
        }
        if self.block_all() {
            return reasons;
        }
        let open: Vec<Domain> = self
            .checks
            .iter()
            .filter(|check| check.blocked_by.is_none())
            .map(|check| check.domain.clone())
            .collect();
        if self.checks.is_empty() {
            reasons.push(format!(
                "No domains are recorded for {client}, so the MSP's imported Teams settings \
                 cannot be checked against them: add the client's domains."
            ));
        } else if open.len() < self.checks.len() {
            reasons.push(format!(
                "People using {} are not blocked by the MSP's settings.",
                join(&open)
            ));
        } else if self.allows_every_client_domain() {
            reasons.push(format!(
                "The MSP's Teams settings (imported {}) allow {}; {client}'s own settings cannot \
                 be read from here.",
                self.imported(),
                join(&open)
            ));
        }
        reasons
    }

    /// The changes that would unblock every client domain.
    fn fixes(&self) -> Vec<MspFix> {
        let mut fixes = Vec::new();
        if self.block_all() {
            fixes.push(MspFix::EnableFederation);
        }
        let add: Vec<String> = self
            .checks
            .iter()
            .filter(|check| check.blocked_by == Some(ListRule::NotInAllowList))
            .map(|check| check.domain.to_string())
            .collect();
        if !add.is_empty() {
            fixes.push(MspFix::AddToAllowList(add));
        }
        let mut remove: Vec<String> = Vec::new();
        for check in &self.checks {
            let entry = match &check.blocked_by {
                Some(ListRule::InBlockList) => check.domain.to_string(),
                Some(ListRule::SubdomainOfBlocked(entry)) => entry.to_string(),
                _ => continue,
            };
            if !remove.contains(&entry) {
                remove.push(entry);
            }
        }
        if !remove.is_empty() {
            fixes.push(MspFix::RemoveFromBlockList(remove));
        }
        fixes
    }
}

fn check_domain(settings: &MspFederationSettings, domain: &Domain) -> DomainCheck {
    let mut check = DomainCheck {
        domain: domain.clone(),
        blocked_by: None,
        allowed_via_parent: None,
    };
    match &settings.allowed {
        AllowedDomains::List(allowed) => {
            if !allowed.contains(domain) {
                match allowed.iter().find(|entry| is_subdomain_of(domain, entry)) {
                    Some(parent) => check.allowed_via_parent = Some(parent.clone()),
                    None => check.blocked_by = Some(ListRule::NotInAllowList),
                }
            }
        }
        // Teams applies the blocked list only while all known domains are allowed.
        AllowedDomains::All => {
            if settings.blocked.contains(domain) {
                check.blocked_by = Some(ListRule::InBlockList);
            } else if settings.block_all_subdomains
                && let Some(entry) = settings
                    .blocked
                    .iter()
                    .find(|entry| is_subdomain_of(domain, entry))
            {
                check.blocked_by = Some(ListRule::SubdomainOfBlocked(entry.clone()));
            }
        }
    }
    check
}

/// `eu.contoso.com` is a subdomain of `contoso.com`; `subcontoso.com` is not.
fn is_subdomain_of(domain: &Domain, parent: &Domain) -> bool {
    domain
        .as_str()
        .strip_suffix(parent.as_str())
        .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
}

/// Parses stored domains, dropping duplicates; invalid ones become notes when `report` is given.
fn parse_domains(raw: &[String], mut report: Option<(&str, &mut Vec<String>)>) -> Vec<Domain> {
    let mut domains: Vec<Domain> = Vec::new();
    for text in raw {
        match Domain::parse(text) {
            Ok(domain) => {
                if !domains.contains(&domain) {
                    domains.push(domain);
                }
            }
            Err(_) => {
                if let Some((client, notes)) = report.as_mut() {
                    let shown: String = one_line(text).chars().take(80).collect();
                    notes.push(format!(
                        "Ignored \"{shown}\" in the domains of {client}: it is not a domain name."
                    ));
                }
            }
        }
    }
    domains
}

/// `on 2026-03-02 09:30 UTC`.
fn when(moment: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let utc = moment.to_offset(time::UtcOffset::UTC);
    match utc.format(format) {
        Ok(text) => format!("on {text}"),
        Err(_) => format!("at {utc}"),
    }
}

fn join(domains: &[Domain]) -> String {
    match domains {
        [] => "no domain".to_owned(),
        [only] => only.to_string(),
        [init @ .., last] => format!(
            "{} and {last}",
            init.iter()
                .map(Domain::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Error texts from elsewhere, on one line and of bounded length.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 300 {
        let cut: String = flat.chars().take(300).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const TENANT: &str = "8f4a6b1e-3c2d-4e5f-9a7b-1c2d3e4f5a6b";

    fn evidence() -> ClientEvidence<'static> {
        ClientEvidence {
            client_name: "Contoso".into(),
            tenant_id: Some(TENANT.into()),
            domains: vec!["contoso.com".into()],
            tenant_lookup: TenantLookup::Exists,
            last_inbound_at: None,
            last_delivered_reply_at: None,
            last_failed_send: None,
            msp_settings: None,
            msp_domains: vec!["msp.example".into()],
            support_account: Some("support@msp.example".into()),
        }
    }

    fn settings(
        allow_federated_users: bool,
        allowed: AllowedDomains,
        blocked: &[&str],
        block_all_subdomains: bool,
    ) -> MspFederationSettings {
        MspFederationSettings {
            identity: Some("Global".into()),
            allow_federated_users,
            allowed,
            blocked: domains(blocked),
            block_all_subdomains,
            imported_at: datetime!(2026-03-01 08:00 UTC),
        }
    }

    fn allow_all() -> MspFederationSettings {
        settings(true, AllowedDomains::All, &[], false)
    }

    fn allow_only(list: &[&str]) -> MspFederationSettings {
        settings(true, AllowedDomains::List(domains(list)), &[], false)
    }

    fn block_all() -> MspFederationSettings {
        settings(false, AllowedDomains::All, &[], false)
    }

    fn domains(names: &[&str]) -> Vec<Domain> {
        names
            .iter()
            .map(|name| Domain::parse(name).unwrap())
            .collect()
    }

    fn federation_refusal(at: OffsetDateTime) -> FailedSend {
        FailedSend {
            at,
            federation_type: true,
            message: "400 Bad Request".into(),
        }
    }

    fn scripts(result: &FederationResult) -> Vec<(Side, String)> {
        result
            .remediation
            .iter()
            .flat_map(|remediation| &remediation.actions)
            .filter_map(|action| Some((action.side, action.powershell.clone()?)))
            .collect()
    }

    // Rule 1 and 2: the tenant ID.

    #[test]
    fn missing_tenant_id_asks_to_set_it() {
        for tenant_id in [None, Some(String::new()), Some("   ".into())] {
            let result = verdict(&ClientEvidence {
                tenant_id,
                ..evidence()
            });
            assert_eq!(result.status, FederationStatus::Unknown);
            assert_eq!(
                result.reasons,
                vec![
                    "No Entra tenant ID is set for Contoso: set the tenant ID (in the client's \
                     Microsoft Entra admin center under Overview → Tenant ID) to check \
                     federation."
                ]
            );
            assert_eq!(result.blocking_side, None);
            assert_eq!(result.remediation, None);
        }
    }

    #[test]
    fn malformed_tenant_id_is_quoted_and_asks_to_set_it() {
        let result = verdict(&ClientEvidence {
            tenant_id: Some("contoso.onmicrosoft.com".into()),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(result.reasons[0].starts_with(
            "\"contoso.onmicrosoft.com\" is not a valid Entra tenant ID (a GUID like"
        ));
        assert!(result.reasons[0].contains("set the tenant ID of Contoso"));
    }

    #[test]
    fn tenant_id_in_braces_and_upper_case_is_accepted() {
        let result = verdict(&ClientEvidence {
            tenant_id: Some(format!("{{{}}}", TENANT.to_uppercase())),
            last_inbound_at: Some(datetime!(2026-02-10 14:05 UTC)),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Connected);
    }

    #[test]
    fn unknown_tenant_says_the_tenant_id_is_wrong_even_with_other_evidence() {
        let block_all = block_all();
        let result = verdict(&ClientEvidence {
            tenant_lookup: TenantLookup::NotFound,
            last_inbound_at: Some(datetime!(2026-02-10 14:05 UTC)),
            msp_settings: Some(&block_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert_eq!(
            result.reasons,
            vec![format!(
                "The tenant ID of Contoso is wrong: Microsoft's sign-in service does not know \
                 the tenant {TENANT}. Check it in the client's Microsoft Entra admin center \
                 (Overview → Tenant ID) and correct it."
            )]
        );
    }

    #[test]
    fn a_client_without_tenant_id_stays_unknown_under_an_msp_block_all() {
        let block_all = block_all();
        let result = verdict(&ClientEvidence {
            tenant_id: None,
            msp_settings: Some(&block_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(result.reasons[0].contains("set the tenant ID"));
    }

    // Rule 3: evidence of a working chat.

    #[test]
    fn a_message_from_the_client_means_connected_with_its_date() {
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-02-10 14:05 UTC)),
            last_delivered_reply_at: Some(datetime!(2026-02-10 14:20 UTC)),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Connected);
        assert_eq!(
            result.reasons,
            vec![
                "Last message from Contoso received on 2026-02-10 14:05 UTC, so Teams chat \
                 between the two tenants works: a message only gets through when both sides \
                 allow it.",
                "Last reply to Contoso accepted by Teams on 2026-02-10 14:20 UTC.",
            ]
        );
        assert_eq!(result.blocking_side, None);
        assert_eq!(result.remediation, None);
    }

    #[test]
    fn dates_are_shown_in_utc() {
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-02-10 16:05 +02:00)),
            ..evidence()
        });
        assert!(result.reasons[0].contains("received on 2026-02-10 14:05 UTC"));
    }

    #[test]
    fn a_message_after_a_federation_refusal_means_connected() {
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-02-11 09:00 UTC)),
            last_failed_send: Some(federation_refusal(datetime!(2026-02-10 09:00 UTC))),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Connected);
    }

    #[test]
    fn a_later_send_failure_that_is_not_about_federation_keeps_connected_and_is_mentioned() {
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-02-10 09:00 UTC)),
            last_failed_send: Some(FailedSend {
                at: datetime!(2026-02-12 09:00 UTC),
                federation_type: false,
                message: "503 Service\nUnavailable".into(),
            }),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Connected);
        assert_eq!(
            result.reasons[1],
            "The last send to Contoso failed on 2026-02-12 09:00 UTC (503 Service Unavailable), \
             but not with a federation error."
        );
    }

    #[test]
    fn a_message_after_the_settings_import_outweighs_settings_that_would_block() {
        let block_all = block_all(); // imported 2026-03-01 08:00
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-03-05 10:00 UTC)),
            msp_settings: Some(&block_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Connected);
        assert_eq!(
            result.reasons[1],
            "The MSP's imported Teams settings (imported on 2026-03-01 08:00 UTC) would block \
             Contoso, but a message arrived after that import: they are out of date, import \
             them again."
        );
    }

    #[test]
    fn settings_imported_after_the_last_message_that_block_mean_blocked() {
        let block_all = block_all(); // imported 2026-03-01 08:00
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-02-10 14:05 UTC)),
            msp_settings: Some(&block_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(result.blocking_side, Some(Side::Msp));
        assert!(result.reasons.contains(
            &"The last message from Contoso was received on 2026-02-10 14:05 UTC, before these \
              settings were imported."
                .to_owned()
        ));
    }

    // Rule 4: a refused send.

    #[test]
    fn a_federation_refusal_after_the_last_message_is_blocked_without_guessing_the_side() {
        let result = verdict(&ClientEvidence {
            last_inbound_at: Some(datetime!(2026-02-10 09:00 UTC)),
            last_failed_send: Some(federation_refusal(datetime!(2026-02-11 09:00 UTC))),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(result.blocking_side, None);
        assert_eq!(
            result.reasons,
            vec![
                "Teams refused the last reply to Contoso on 2026-02-11 09:00 UTC with a \
                 federation error (400 Bad Request).",
                "The last message from Contoso was received on 2026-02-10 09:00 UTC, before \
                 that refusal.",
                "One of the two tenants blocks Teams chat with the other, and Regentra cannot \
                 see which: importing the MSP's own settings (Get-CsTenantFederationConfiguration) \
                 rules the MSP side in or out.",
            ]
        );
        let scripts = scripts(&result);
        assert_eq!(scripts.len(), 2);
        assert_eq!(scripts[0].0, Side::Client);
        assert!(scripts[0].1.contains("$domains.Add('msp.example')"));
        assert_eq!(scripts[1].0, Side::Msp);
        assert!(scripts[1].1.contains("$domains.Add('contoso.com')"));
    }

    #[test]
    fn a_refusal_while_the_msp_allows_the_client_names_the_client_side() {
        let allow_all = allow_all();
        let result = verdict(&ClientEvidence {
            last_failed_send: Some(federation_refusal(datetime!(2026-03-02 09:00 UTC))),
            msp_settings: Some(&allow_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(result.blocking_side, Some(Side::Client));
        assert_eq!(
            result.reasons[1],
            "The MSP's Teams settings (imported on 2026-03-01 08:00 UTC) allow contoso.com, so \
             the block is most likely in Contoso's tenant, whose settings cannot be read from \
             here."
        );
        let remediation = result.remediation.unwrap();
        assert_eq!(remediation.actions.len(), 1);
        assert_eq!(remediation.actions[0].side, Side::Client);
        assert_eq!(
            remediation.actions[0].summary,
            "Contoso's Teams administrator allows Teams chat with msp.example."
        );
        let message = remediation.client_admin_message.unwrap();
        assert!(message.contains("support@msp.example"));
        assert!(message.contains("$domains.Add('msp.example')"));
    }

    #[test]
    fn a_refusal_while_the_msp_blocks_everyone_names_the_msp_side() {
        let block_all = block_all();
        let result = verdict(&ClientEvidence {
            last_failed_send: Some(federation_refusal(datetime!(2026-03-02 09:00 UTC))),
            msp_settings: Some(&block_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(result.blocking_side, Some(Side::Msp));
        let scripts = scripts(&result);
        assert_eq!(scripts.len(), 1);
        assert_eq!(scripts[0].0, Side::Msp);
        assert!(
            scripts[0]
                .1
                .contains("Set-CsTenantFederationConfiguration -AllowFederatedUsers $true\n")
        );
    }

    #[test]
    fn a_refusal_followed_by_an_accepted_reply_is_not_the_latest_send() {
        let result = verdict(&ClientEvidence {
            last_failed_send: Some(federation_refusal(datetime!(2026-03-02 09:00 UTC))),
            last_delivered_reply_at: Some(datetime!(2026-03-02 10:00 UTC)),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(
            result.reasons.contains(
                &"A send to Contoso was refused on 2026-03-02 09:00 UTC (400 Bad Request), but a \
              later reply was accepted on 2026-03-02 10:00 UTC: the block may have been lifted \
              since."
                    .to_owned()
            )
        );

        // A refusal after the accepted reply is still the latest send.
        let result = verdict(&ClientEvidence {
            last_failed_send: Some(federation_refusal(datetime!(2026-03-02 11:00 UTC))),
            last_delivered_reply_at: Some(datetime!(2026-03-02 10:00 UTC)),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
    }

    // Rule 5: the MSP's own settings.

    #[test]
    fn an_imported_block_all_blocks_every_client_with_a_tenant() {
        let block_all = block_all();
        for (name, client_domains) in [
            ("Contoso", vec!["contoso.com".to_owned()]),
            (
                "Fabrikam",
                vec!["fabrikam.com".to_owned(), "fabrikam.de".to_owned()],
            ),
            ("No Domains Ltd", vec![]),
        ] {
            let result = verdict(&ClientEvidence {
                client_name: name.into(),
                domains: client_domains,
                msp_settings: Some(&block_all),
                ..evidence()
            });
            assert_eq!(result.status, FederationStatus::Blocked, "{name}");
            assert_eq!(result.blocking_side, Some(Side::Msp));
            assert_eq!(
                result.reasons[0],
                format!(
                    "The MSP's Teams settings (imported on 2026-03-01 08:00 UTC) block all \
                     external domains (AllowFederatedUsers is False), so nobody at {name} can \
                     chat with the support account."
                )
            );
            let remediation = result.remediation.unwrap();
            assert_eq!(
                remediation.actions[0].admin_center,
                "In the Teams admin center → Users → External access \
                 (https://admin.teams.microsoft.com):\n- 'Block all external domains' is \
                 chosen: choose 'Allow all external domains', or 'Allow only specific external \
                 domains' with every client's domains."
            );
        }
    }

    #[test]
    fn an_allow_list_without_the_client_domain_blocks_naming_the_list() {
        let allow_only = allow_only(&["fabrikam.com"]);
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&allow_only),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(result.blocking_side, Some(Side::Msp));
        assert_eq!(
            result.reasons,
            vec![
                "contoso.com is not in the MSP's AllowedDomains list: the MSP's Teams settings \
                 (imported on 2026-03-01 08:00 UTC) allow only specific external domains."
            ]
        );
        let script = &scripts(&result)[0].1;
        assert!(script.contains(
            "$domains.Add('contoso.com')\nSet-CsTenantFederationConfiguration -AllowedDomainsAsAList @{Add=$domains}\n"
        ));
        assert!(!script.contains("-AllowFederatedUsers $true"));
    }

    #[test]
    fn an_empty_allow_list_blocks_and_says_it_is_empty() {
        let allow_nobody = allow_only(&[]);
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&allow_nobody),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert!(result.reasons[0].ends_with("and that list is empty."));
    }

    #[test]
    fn an_allow_list_with_one_of_two_client_domains_is_not_a_block() {
        let allow_only = allow_only(&["contoso.com"]);
        let result = verdict(&ClientEvidence {
            domains: vec!["contoso.com".into(), "contoso.de".into()],
            msp_settings: Some(&allow_only),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(
            result.reasons.contains(
                &"contoso.de is not in the MSP's AllowedDomains list: the MSP's Teams settings \
              (imported on 2026-03-01 08:00 UTC) allow only specific external domains."
                    .to_owned()
            )
        );
        assert!(result.reasons.contains(
            &"People using contoso.com are not blocked by the MSP's settings.".to_owned()
        ));
        // The MSP is offered the fix for the blocked domain.
        let scripts = scripts(&result);
        assert!(
            scripts.iter().any(|(side, script)| *side == Side::Msp
                && script.contains("$domains.Add('contoso.de')"))
        );
    }

    #[test]
    fn a_blocked_domain_blocks_naming_the_blocked_list() {
        let blocks_contoso = settings(true, AllowedDomains::All, &["contoso.com"], false);
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&blocks_contoso),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(result.blocking_side, Some(Side::Msp));
        assert_eq!(
            result.reasons,
            vec![
                "contoso.com is in the MSP's BlockedDomains list (Teams settings imported on \
                 2026-03-01 08:00 UTC)."
            ]
        );
        assert!(scripts(&result)[0].1.contains(
            "Set-CsTenantFederationConfiguration -BlockedDomains @{Remove=(New-CsEdgeDomainPattern -Domain 'contoso.com')}"
        ));
    }

    #[test]
    fn the_blocked_list_is_ignored_while_an_allow_list_is_in_force() {
        let both = settings(
            true,
            AllowedDomains::List(domains(&["contoso.com"])),
            &["contoso.com"],
            false,
        );
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&both),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
    }

    #[test]
    fn subdomains_of_blocked_domains_are_blocked_only_with_block_all_subdomains() {
        let client = ClientEvidence {
            domains: vec!["eu.contoso.com".into()],
            ..evidence()
        };
        let with = settings(true, AllowedDomains::All, &["contoso.com"], true);
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&with),
            ..client.clone()
        });
        assert_eq!(result.status, FederationStatus::Blocked);
        assert_eq!(
            result.reasons,
            vec![
                "eu.contoso.com is blocked by the MSP: contoso.com is in its BlockedDomains list \
                 and BlockAllSubdomains is True (Teams settings imported on 2026-03-01 08:00 UTC)."
            ]
        );
        assert!(scripts(&result)[0].1.contains("-Domain 'contoso.com')}"));

        let without = settings(true, AllowedDomains::All, &["contoso.com"], false);
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&without),
            ..client
        });
        assert_eq!(result.status, FederationStatus::Unknown);
    }

    #[test]
    fn a_lookalike_domain_is_not_a_subdomain() {
        let with = settings(true, AllowedDomains::All, &["contoso.com"], true);
        let result = verdict(&ClientEvidence {
            domains: vec!["subcontoso.com".into()],
            msp_settings: Some(&with),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
    }

    #[test]
    fn a_subdomain_of_an_allowed_domain_is_not_counted_as_blocked_and_says_why() {
        let allow_only = allow_only(&["contoso.com"]);
        let result = verdict(&ClientEvidence {
            domains: vec!["eu.contoso.com".into()],
            msp_settings: Some(&allow_only),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(result.reasons.contains(
            &"eu.contoso.com is not itself in the MSP's AllowedDomains list, but contoso.com is; \
              Teams does not document whether an allowed domain covers its subdomains, so \
              eu.contoso.com is not counted as blocked."
                .to_owned()
        ));
    }

    // Rule 6: nothing decides.

    #[test]
    fn no_chat_yet_is_unknown_with_test_steps_and_instructions_for_both_sides() {
        let result = verdict(&evidence());
        assert_eq!(result.status, FederationStatus::Unknown);
        assert_eq!(
            result.reasons,
            vec![
                "No chat with Contoso yet: ask someone at Contoso to send a Teams chat message \
                 to support@msp.example, then run Verify again.",
                "The MSP's own Teams external-access settings have not been imported, so \
                 neither side's settings can be checked from here.",
            ]
        );
        let remediation = result.remediation.clone().unwrap();
        assert_eq!(
            remediation.test_steps[0],
            "Ask someone at Contoso to start a new Teams chat with support@msp.example (search \
             for the full address) and send a short message."
        );
        assert!(remediation.client_admin_message.is_some());
        let scripts = scripts(&result);
        assert_eq!(scripts[0].0, Side::Client);
        assert_eq!(
            scripts[0].1,
            powershell::allow_domains_script("Contoso", &["msp.example"])
        );
        assert_eq!(scripts[1].0, Side::Msp);
        assert_eq!(
            scripts[1].1,
            powershell::allow_domains_script("the MSP's tenant", &["contoso.com"])
        );
    }

    #[test]
    fn with_settings_that_allow_the_client_only_the_client_side_is_asked_to_act() {
        let allow_all = allow_all();
        let result = verdict(&ClientEvidence {
            msp_settings: Some(&allow_all),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert_eq!(
            result.reasons[1],
            "The MSP's Teams settings (imported on 2026-03-01 08:00 UTC) allow contoso.com; \
             Contoso's own settings cannot be read from here."
        );
        let sides: Vec<Side> = result
            .remediation
            .unwrap()
            .actions
            .iter()
            .map(|action| action.side)
            .collect();
        assert_eq!(sides, vec![Side::Client]);
    }

    #[test]
    fn a_failed_lookup_leads_an_unknown_verdict_but_does_not_hide_evidence() {
        let failed = TenantLookup::Failed("timed out after 5 s".into());
        let result = verdict(&ClientEvidence {
            tenant_lookup: failed.clone(),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        let lookup_reason = format!(
            "Could not check that the tenant {TENANT} exists (timed out after 5 s); run Verify \
             again later."
        );
        assert_eq!(result.reasons[0], lookup_reason);
        assert_eq!(
            result
                .reasons
                .iter()
                .filter(|reason| **reason == lookup_reason)
                .count(),
            1
        );

        let result = verdict(&ClientEvidence {
            tenant_lookup: failed,
            last_inbound_at: Some(datetime!(2026-02-10 14:05 UTC)),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Connected);
        assert_eq!(result.reasons.last(), Some(&lookup_reason));
    }

    #[test]
    fn a_non_federation_failure_without_messages_stays_unknown() {
        let result = verdict(&ClientEvidence {
            last_failed_send: Some(FailedSend {
                at: datetime!(2026-02-12 09:00 UTC),
                federation_type: false,
                message: "429 Too Many Requests".into(),
            }),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(result.reasons.contains(
            &"The last send to Contoso failed on 2026-02-12 09:00 UTC (429 Too Many Requests); \
              that was not a federation error, so it says nothing about federation."
                .to_owned()
        ));
    }

    #[test]
    fn an_accepted_reply_alone_does_not_prove_connected() {
        let result = verdict(&ClientEvidence {
            last_delivered_reply_at: Some(datetime!(2026-02-12 09:00 UTC)),
            ..evidence()
        });
        assert_eq!(result.status, FederationStatus::Unknown);
        assert!(result.reasons.iter().any(|reason| reason.starts_with(
            "A reply to Contoso was accepted by Teams on 2026-02-12 09:00 UTC, but Teams does \
             not confirm delivery"
        )));
    }

    #[test]
    fn invalid_client_domains_are_ignored_and_reported() {
        let result = verdict(&ClientEvidence {
            domains: vec!["contoso.com".into(), "not a domain".into()],
            ..evidence()
        });
        assert!(
            result.reasons.contains(
                &"Ignored \"not a domain\" in the domains of Contoso: it is not a domain name."
                    .to_owned()
            )
        );
    }

    #[test]
    fn without_known_domains_the_instructions_say_what_is_missing_instead_of_a_script() {
        let result = verdict(&ClientEvidence {
            domains: vec![],
            msp_domains: vec![],
            ..evidence()
        });
        let remediation = result.remediation.unwrap();
        assert!(
            remediation
                .actions
                .iter()
                .all(|action| action.powershell.is_none())
        );
        assert_eq!(remediation.client_admin_message, None);
        assert!(
            remediation.actions[0]
                .admin_center
                .contains("add the MSP's domain")
        );
        assert!(
            remediation.actions[1]
                .admin_center
                .contains("add the client's domains")
        );
    }

    #[test]
    fn status_and_side_serialize_as_the_api_spells_them() {
        let result = verdict(&ClientEvidence {
            last_failed_send: Some(federation_refusal(datetime!(2026-03-02 09:00 UTC))),
            msp_settings: Some(&block_all()),
            ..evidence()
        });
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["status"], "blocked");
        assert_eq!(json["blocking_side"], "msp");
        assert_eq!(FederationStatus::Connected.as_str(), "connected");
        assert_eq!(FederationStatus::Unknown.to_string(), "unknown");
    }
}
