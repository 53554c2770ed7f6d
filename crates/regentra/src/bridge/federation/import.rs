//! Import of the MSP tenant's own Teams external-access settings, pasted or uploaded as the output
//! of `Get-CsTenantFederationConfiguration | ConvertTo-Json`.
//!
//! Graph cannot read these settings (graph-facts §7), so the admin exports them with the
//! MicrosoftTeams module. Real output varies with the module version, the `-Depth` given to
//! `ConvertTo-Json` and the tool in between; the shapes accepted, all seen in public scripts and
//! audit tools that read this cmdlet:
//!
//! * the configuration object itself, a one-element array of it (or several, of which the one
//!   with `Identity` `Global` is taken), or Windows PowerShell's `{"value": [...], "Count": n}`;
//! * keys matched without regard to letter case; unknown keys ignored; booleans as JSON booleans
//!   or the strings `"True"`/`"False"`;
//! * `AllowedDomains` meaning *all known domains*: `{}`, `null`, `[]`, the string
//!   `"AllowAllKnownDomains"`, `{"AllowAllKnownDomains": …}`, or an `Element` holding
//!   `<AllowAllKnownDomains …/>`;
//! * `AllowedDomains` as an allow list: `{"AllowedDomain": [...]}` (also wrapped in a one-element
//!   array), or a bare list; entries as `"contoso.com"`, `"Domain=contoso.com"` (what
//!   `ConvertTo-Json`'s default depth prints) or `{"Domain": "contoso.com"}`. An allow list that is
//!   present but empty (`{"AllowedDomain": []}`) allows nobody;
//! * `BlockedDomains` as a list of the same entry forms (or `{}`/`null` for none).
//!
//! Where the meaning is unclear the reading that blocks nobody wins (`[]` is "all known domains"),
//! so an odd export can at worst hide a block, never invent one.
//!
//! `AllowFederatedUsers` and `AllowedDomains` are required; `BlockedDomains` and
//! `BlockAllSubdomains` (missing from older module versions) default to none / false.
//!
//! This module must never return partial settings: any problem is an [`ImportError`] that says
//! which key or shape was expected, and the caller keeps the previous settings. It stores nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::tickets::Domain;

/// The MSP tenant's Teams external-access settings, as imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MspFederationSettings {
    /// `Identity` of the configuration (normally `Global`), if the export had one.
    pub identity: Option<String>,
    /// `AllowFederatedUsers`: false means "Block all external domains".
    pub allow_federated_users: bool,
    /// `AllowedDomains`: all known domains, or only the listed ones.
    pub allowed: AllowedDomains,
    /// `BlockedDomains`: only applies while `allowed` is [`AllowedDomains::All`].
    pub blocked: Vec<Domain>,
    /// `BlockAllSubdomains`: the blocked list also blocks every subdomain of its entries.
    pub block_all_subdomains: bool,
    /// When the admin imported this export (the settings are a snapshot of that moment).
    #[serde(with = "time::serde::rfc3339")]
    pub imported_at: OffsetDateTime,
}

/// Which external domains the MSP allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", content = "domains", rename_all = "snake_case")]
pub enum AllowedDomains {
    /// `AllowAllKnownDomains`: every domain not on the blocked list.
    All,
    /// An allow list: only these domains (the blocked list is ignored).
    List(Vec<Domain>),
}

/// Why an export could not be imported. Every message ends by saying the previous settings stay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// An uploaded file is neither UTF-8 nor UTF-16 with a byte-order mark.
    #[error(
        "the uploaded file is not text in a known encoding (UTF-8, or UTF-16 with a byte-order \
         mark). {HOW_TO_EXPORT} {KEPT}"
    )]
    NotText,
    /// The text is not JSON.
    #[error("the text is not valid JSON ({detail}). {HOW_TO_EXPORT} {KEPT}")]
    NotJson { detail: String },
    /// The JSON is not a federation configuration (or an array holding one).
    #[error(
        "expected the configuration object that `Get-CsTenantFederationConfiguration | \
         ConvertTo-Json` prints (or an array holding it), but found {found}. {KEPT}"
    )]
    NotAConfiguration { found: String },
    /// Several configurations and none of them is `Global`.
    #[error(
        "the JSON holds {count} configurations and none has the Identity `Global` (found: \
         {identities}); export only the Global configuration. {KEPT}"
    )]
    SeveralConfigurations { count: usize, identities: String },
    /// A required key is missing.
    #[error(
        "the key `{key}` is missing. Every `Get-CsTenantFederationConfiguration` output has it, \
         so the text was probably cut off, edited, or comes from another command. \
         {HOW_TO_EXPORT} {KEPT}"
    )]
    MissingKey { key: &'static str },
    /// A key has a value of the wrong shape.
    #[error("the key `{key}` should be {expected}, but it is {found}. {KEPT}")]
    InvalidValue {
        key: &'static str,
        expected: &'static str,
        found: String,
    },
    /// A domain entry is not a domain name.
    #[error("`{key}` lists \"{value}\", which is not a domain name. {KEPT}")]
    InvalidDomain { key: &'static str, value: String },
    /// The allow list was cut off by `ConvertTo-Json`'s depth limit.
    #[error(
        "`AllowedDomains` is an allow list, but its domains are not in the JSON (ConvertTo-Json \
         stopped at its depth limit): run `Get-CsTenantFederationConfiguration | ConvertTo-Json \
         -Depth 5` and paste that. {KEPT}"
    )]
    AllowListNotExpanded,
}

const KEPT: &str = "The previous settings were kept.";
const HOW_TO_EXPORT: &str = "Paste the complete output of `Get-CsTenantFederationConfiguration | \
                             ConvertTo-Json`, unchanged.";

const ALLOW_FEDERATED_USERS: &str = "AllowFederatedUsers";
const ALLOWED_DOMAINS: &str = "AllowedDomains";
const BLOCKED_DOMAINS: &str = "BlockedDomains";
const BLOCK_ALL_SUBDOMAINS: &str = "BlockAllSubdomains";
const ALLOW_ALL_MARKER: &str = "AllowAllKnownDomains";

const ALLOWED_SHAPES: &str = "\"AllowAllKnownDomains\", {} or an allow list like \
                              {\"AllowedDomain\": [{\"Domain\": \"contoso.com\"}]}";
const DOMAIN_ENTRY_SHAPES: &str =
    "domain entries like \"contoso.com\", \"Domain=contoso.com\" or {\"Domain\": \"contoso.com\"}";

/// Imports the text of `Get-CsTenantFederationConfiguration | ConvertTo-Json`.
pub fn import_federation_configuration(
    text: &str,
    imported_at: OffsetDateTime,
) -> Result<MspFederationSettings, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root: Value = serde_json::from_str(text).map_err(|error| ImportError::NotJson {
        detail: error.to_string(),
    })?;
    let configuration = select_configuration(&root)?;

    let allow_federated_users =
        bool_value(configuration, ALLOW_FEDERATED_USERS)?.ok_or(ImportError::MissingKey {
            key: ALLOW_FEDERATED_USERS,
        })?;
    let allowed = allowed_domains(get(configuration, ALLOWED_DOMAINS).ok_or(
        ImportError::MissingKey {
            key: ALLOWED_DOMAINS,
        },
    )?)?;
    let blocked = match get(configuration, BLOCKED_DOMAINS) {
        None => Vec::new(),
        Some(value) => domain_entries(BLOCKED_DOMAINS, value)?,
    };
    let block_all_subdomains = bool_value(configuration, BLOCK_ALL_SUBDOMAINS)?.unwrap_or(false);
    let identity = match get(configuration, "Identity") {
        Some(Value::String(identity)) => Some(identity.clone()),
        _ => None,
    };

    Ok(MspFederationSettings {
        identity,
        allow_federated_users,
        allowed,
        blocked,
        block_all_subdomains,
        imported_at,
    })
}

/// Imports an uploaded file: UTF-8 (with or without byte-order mark) or UTF-16 with a
/// byte-order mark — what Windows PowerShell 5.1 writes with `> file.json`.
pub fn import_federation_configuration_bytes(
    bytes: &[u8],
    imported_at: OffsetDateTime,
) -> Result<MspFederationSettings, ImportError> {
    let text = decode_text(bytes)?;
    import_federation_configuration(&text, imported_at)
}

fn decode_text(bytes: &[u8]) -> Result<String, ImportError> {
    let utf16 = |body: &[u8], from_bytes: fn([u8; 2]) -> u16| {
        if !body.len().is_multiple_of(2) {
            return Err(ImportError::NotText);
        }
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|pair| from_bytes([pair[0], pair[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| ImportError::NotText)
    };
    match bytes {
        [0xFF, 0xFE, body @ ..] => utf16(body, u16::from_le_bytes),
        [0xFE, 0xFF, body @ ..] => utf16(body, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()).map_err(|_| ImportError::NotText),
    }
}

/// Finds the configuration object: the root object, or the `Global` one of an array.
fn select_configuration(root: &Value) -> Result<&Map<String, Value>, ImportError> {
    match root {
        Value::Object(object) => {
            // Windows PowerShell sometimes wraps arrays as {"value": [...], "Count": n}.
            if get(object, ALLOW_FEDERATED_USERS).is_none()
                && let Some(inner @ Value::Array(_)) = get(object, "value")
            {
                return select_configuration(inner);
            }
            Ok(object)
        }
        Value::Array(items) => {
            let objects: Vec<&Map<String, Value>> =
                items.iter().filter_map(Value::as_object).collect();
            match objects.as_slice() {
                [] => Err(ImportError::NotAConfiguration {
                    found: describe(root),
                }),
                [only] => Ok(only),
                several => {
                    let identity_of = |object: &Map<String, Value>| match get(object, "Identity") {
                        Some(Value::String(identity)) => identity.clone(),
                        _ => "(none)".to_owned(),
                    };
                    several
                        .iter()
                        .find(|object| identity_of(object).eq_ignore_ascii_case("Global"))
                        .copied()
                        .ok_or_else(|| ImportError::SeveralConfigurations {
                            count: several.len(),
                            identities: several
                                .iter()
                                .map(|object| identity_of(object))
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                }
            }
        }
        other => Err(ImportError::NotAConfiguration {
            found: describe(other),
        }),
    }
}

/// `AllowedDomains` in any of the accepted shapes (see the module docs).
fn allowed_domains(value: &Value) -> Result<AllowedDomains, ImportError> {
    let invalid = || ImportError::InvalidValue {
        key: ALLOWED_DOMAINS,
        expected: ALLOWED_SHAPES,
        found: describe(value),
    };
    match value {
        Value::Null => Ok(AllowedDomains::All),
        Value::String(text) if is_allow_all_marker(text) => Ok(AllowedDomains::All),
        Value::String(text) if text.trim().is_empty() => Err(invalid()),
        Value::String(_) => Ok(AllowedDomains::List(domain_entries(
            ALLOWED_DOMAINS,
            value,
        )?)),
        Value::Object(object) => allowed_domains_object(object).ok_or_else(invalid)?,
        Value::Array(items) if items.is_empty() => Ok(AllowedDomains::All),
        Value::Array(items) if items.iter().all(is_allowed_domains_container) => {
            // e.g. [{"AllowedDomain": ["Domain=contoso.com"]}]: combine the containers.
            let mut combined: Option<AllowedDomains> = None;
            for item in items {
                let next = allowed_domains(item)?;
                combined = Some(match (combined, next) {
                    (None, next) => next,
                    (Some(AllowedDomains::All), AllowedDomains::All) => AllowedDomains::All,
                    (Some(AllowedDomains::List(mut first)), AllowedDomains::List(more)) => {
                        first.extend(more);
                        AllowedDomains::List(dedupe(first))
                    }
                    _ => return Err(invalid()),
                });
            }
            combined.ok_or_else(invalid)
        }
        Value::Array(_) => Ok(AllowedDomains::List(domain_entries(
            ALLOWED_DOMAINS,
            value,
        )?)),
        Value::Bool(_) | Value::Number(_) => Err(invalid()),
    }
}

/// `None` when the object is no known form of `AllowedDomains`.
fn allowed_domains_object(
    object: &Map<String, Value>,
) -> Option<Result<AllowedDomains, ImportError>> {
    if object.is_empty() || get(object, ALLOW_ALL_MARKER).is_some() {
        return Some(Ok(AllowedDomains::All));
    }
    if let Some(list) = get(object, "AllowedDomain") {
        return Some(domain_entries(ALLOWED_DOMAINS, list).map(AllowedDomains::List));
    }
    if let Some(Value::String(element)) = get(object, "Element") {
        if element.contains(ALLOW_ALL_MARKER) {
            return Some(Ok(AllowedDomains::All));
        }
        if element.contains("AllowList") {
            return Some(Err(ImportError::AllowListNotExpanded));
        }
    }
    if get(object, "Domain").is_some() {
        // A single allow-list entry that PowerShell did not wrap in an array.
        return Some(
            domain_entries(ALLOWED_DOMAINS, &Value::Object(object.clone()))
                .map(AllowedDomains::List),
        );
    }
    None
}

fn is_allowed_domains_container(value: &Value) -> bool {
    match value {
        Value::Object(object) => {
            object.is_empty()
                || ["AllowedDomain", ALLOW_ALL_MARKER, "Element"]
                    .iter()
                    .any(|key| get(object, key).is_some())
        }
        Value::String(text) => is_allow_all_marker(text),
        _ => false,
    }
}

fn is_allow_all_marker(text: &str) -> bool {
    let text = text.trim();
    text.eq_ignore_ascii_case(ALLOW_ALL_MARKER) || text.contains("<AllowAllKnownDomains")
}

/// A list of domain entries (or a single entry), in any accepted entry form.
fn domain_entries(key: &'static str, value: &Value) -> Result<Vec<Domain>, ImportError> {
    let mut domains = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(object) if object.is_empty() => {}
        Value::Array(items) => {
            for item in items {
                push_domain_entry(key, item, &mut domains)?;
            }
        }
        single => push_domain_entry(key, single, &mut domains)?,
    }
    Ok(dedupe(domains))
}

fn push_domain_entry(
    key: &'static str,
    entry: &Value,
    domains: &mut Vec<Domain>,
) -> Result<(), ImportError> {
    match entry {
        Value::Null => Ok(()),
        // "Domain=contoso.com" is how ConvertTo-Json prints an entry beyond its depth limit;
        // some renderings join several with commas.
        Value::String(text) => {
            for piece in text
                .split(',')
                .map(str::trim)
                .filter(|piece| !piece.is_empty())
            {
                domains.push(parse_domain(key, strip_domain_prefix(piece))?);
            }
            Ok(())
        }
        Value::Object(object) => match get(object, "Domain") {
            Some(Value::String(domain)) => {
                domains.push(parse_domain(key, domain)?);
                Ok(())
            }
            _ => Err(ImportError::InvalidValue {
                key,
                expected: DOMAIN_ENTRY_SHAPES,
                found: describe(entry),
            }),
        },
        Value::Bool(_) | Value::Number(_) | Value::Array(_) => Err(ImportError::InvalidValue {
            key,
            expected: DOMAIN_ENTRY_SHAPES,
            found: describe(entry),
        }),
    }
}

fn strip_domain_prefix(entry: &str) -> &str {
    match entry.split_once('=') {
        Some((name, domain)) if name.trim().eq_ignore_ascii_case("Domain") => domain.trim(),
        _ => entry,
    }
}

fn parse_domain(key: &'static str, text: &str) -> Result<Domain, ImportError> {
    Domain::parse(text).map_err(|_| ImportError::InvalidDomain {
        key,
        value: text.chars().take(100).collect(),
    })
}

fn dedupe(domains: Vec<Domain>) -> Vec<Domain> {
    let mut unique: Vec<Domain> = Vec::with_capacity(domains.len());
    for domain in domains {
        if !unique.contains(&domain) {
            unique.push(domain);
        }
    }
    unique
}

/// A boolean key: JSON `true`/`false` or the strings `"True"`/`"False"`; `None` when absent.
fn bool_value(object: &Map<String, Value>, key: &'static str) -> Result<Option<bool>, ImportError> {
    match get(object, key) {
        None => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(Value::String(text)) if text.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(text)) if text.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(ImportError::InvalidValue {
            key,
            expected: "true or false",
            found: describe(other),
        }),
    }
}

/// Looks a key up without regard to letter case (PowerShell keys are case-insensitive).
fn get<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(value) => value.to_string(),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => {
            let shown: String = text.chars().take(60).collect();
            let ellipsis = if text.chars().count() > 60 { "…" } else { "" };
            format!("the text \"{shown}{ellipsis}\"")
        }
        Value::Array(items) if items.is_empty() => "an empty array".to_owned(),
        Value::Array(items) => format!("an array of {} items", items.len()),
        Value::Object(object) if object.is_empty() => "an empty object".to_owned(),
        Value::Object(object) => {
            let keys: Vec<&str> = object.keys().take(5).map(String::as_str).collect();
            format!("an object with the keys {}", keys.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-02 09:30 UTC);

    fn domains(names: &[&str]) -> Vec<Domain> {
        names
            .iter()
            .map(|name| Domain::parse(name).unwrap())
            .collect()
    }

    fn import(text: &str) -> Result<MspFederationSettings, ImportError> {
        import_federation_configuration(text, NOW)
    }

    /// Modelled on `Get-CsTenantFederationConfiguration | ConvertTo-Json` from Windows PowerShell
    /// 5.1 at the default depth (its spacing, `Element` for AllowAllKnownDomains, `Domain=`
    /// entries), for a tenant that allows all external domains except one. Made-up values.
    const ALLOW_ALL_EXPORT: &str = r#"{
    "Identity":  "Global",
    "AllowedDomains":  {
                           "Element":  "<AllowAllKnownDomains xmlns=\"urn:schema:Microsoft.Rtc.Management.Settings.Edge.2008\" />"
                       },
    "BlockedDomains":  [
                           "Domain=fabrikam.com"
                       ],
    "AllowFederatedUsers":  true,
    "AllowPublicUsers":  false,
    "AllowTeamsConsumer":  true,
    "AllowTeamsConsumerInbound":  true,
    "TreatDiscoveredPartnersAsUnverified":  false,
    "SharedSipAddressSpace":  false,
    "RestrictTeamsConsumerToExternalUserProfiles":  false,
    "BlockAllSubdomains":  false,
    "ExternalAccessWithTrialTenants":  "Blocked",
    "AllowedTrialTenantDomains":  [],
    "CustomizeFederation":  false
}"#;

    #[test]
    fn single_object_with_allow_all_and_a_blocked_domain() {
        let settings = import(ALLOW_ALL_EXPORT).unwrap();
        assert_eq!(
            settings,
            MspFederationSettings {
                identity: Some("Global".into()),
                allow_federated_users: true,
                allowed: AllowedDomains::All,
                blocked: domains(&["fabrikam.com"]),
                block_all_subdomains: false,
                imported_at: NOW,
            }
        );
    }

    #[test]
    fn one_element_array_with_an_allow_list_of_domain_objects() {
        let settings = import(
            r#"[{"Identity": "Global", "AllowFederatedUsers": true,
                 "AllowedDomains": {"AllowedDomain": [{"Domain": "Contoso.com"}, {"Domain": "msp-partner.example"}]},
                 "BlockedDomains": [], "BlockAllSubdomains": true}]"#,
        )
        .unwrap();
        assert_eq!(
            settings.allowed,
            AllowedDomains::List(domains(&["contoso.com", "msp-partner.example"]))
        );
        assert!(settings.blocked.is_empty());
        assert!(settings.block_all_subdomains);
    }

    #[test]
    fn allow_list_as_printed_at_the_default_depth() {
        // The shape CISA ScubaGear records: entries flattened to "Domain=…" strings.
        let settings = import(
            r#"{"Identity": "Global", "AllowFederatedUsers": true,
                "AllowedDomains": [{"AllowedDomain": ["Domain=contoso.com", "domain=fabrikam.com"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            settings.allowed,
            AllowedDomains::List(domains(&["contoso.com", "fabrikam.com"]))
        );
    }

    #[test]
    fn allow_all_in_its_other_spellings() {
        for allowed in [
            r#""AllowAllKnownDomains""#,
            r#"{"AllowAllKnownDomains": {}}"#,
            "{}",
            "null",
            "[]",
        ] {
            let settings = import(&format!(
                r#"{{"AllowFederatedUsers": true, "AllowedDomains": {allowed}}}"#
            ))
            .unwrap();
            assert_eq!(settings.allowed, AllowedDomains::All, "for {allowed}");
        }
    }

    #[test]
    fn present_but_empty_allow_list_allows_nobody() {
        let settings =
            import(r#"{"AllowFederatedUsers": true, "AllowedDomains": {"AllowedDomain": []}}"#)
                .unwrap();
        assert_eq!(settings.allowed, AllowedDomains::List(vec![]));
    }

    #[test]
    fn bare_list_and_single_entry_forms() {
        let list = import(
            r#"{"AllowFederatedUsers": "True", "AllowedDomains": ["contoso.com", {"Domain": "fabrikam.com"}],
                "BlockedDomains": {"Domain": "spam.example"}}"#,
        )
        .unwrap();
        assert!(list.allow_federated_users);
        assert_eq!(
            list.allowed,
            AllowedDomains::List(domains(&["contoso.com", "fabrikam.com"]))
        );
        assert_eq!(list.blocked, domains(&["spam.example"]));
    }

    #[test]
    fn block_all_external_domains() {
        let settings = import(
            r#"{"Identity": "Global", "AllowFederatedUsers": false, "AllowedDomains": {}, "BlockedDomains": []}"#,
        )
        .unwrap();
        assert!(!settings.allow_federated_users);
    }

    #[test]
    fn several_configurations_take_the_global_one() {
        let settings = import(
            r#"[{"Identity": "Tag:Other", "AllowFederatedUsers": false, "AllowedDomains": {}},
                {"Identity": "Global", "AllowFederatedUsers": true, "AllowedDomains": {}}]"#,
        )
        .unwrap();
        assert_eq!(settings.identity.as_deref(), Some("Global"));
        assert!(settings.allow_federated_users);

        let error = import(
            r#"[{"Identity": "A", "AllowFederatedUsers": true, "AllowedDomains": {}},
                {"Identity": "B", "AllowFederatedUsers": true, "AllowedDomains": {}}]"#,
        )
        .unwrap_err();
        assert_eq!(
            error,
            ImportError::SeveralConfigurations {
                count: 2,
                identities: "A, B".into()
            }
        );
    }

    #[test]
    fn windows_powershell_value_wrapper_and_camel_case_keys() {
        let settings = import(
            r#"{"value": [{"identity": "Global", "allowFederatedUsers": true,
                 "allowedDomains": {"allowedDomain": [{"domain": "contoso.com"}]}}], "Count": 1}"#,
        )
        .unwrap();
        assert_eq!(
            settings.allowed,
            AllowedDomains::List(domains(&["contoso.com"]))
        );
    }

    #[test]
    fn utf16_upload_from_windows_powershell() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in ALLOW_ALL_EXPORT.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let settings = import_federation_configuration_bytes(&bytes, NOW).unwrap();
        assert_eq!(settings.blocked, domains(&["fabrikam.com"]));

        let with_utf8_bom = [b"\xEF\xBB\xBF".as_slice(), ALLOW_ALL_EXPORT.as_bytes()].concat();
        assert!(import_federation_configuration_bytes(&with_utf8_bom, NOW).is_ok());

        assert_eq!(
            import_federation_configuration_bytes(&[0x00, 0xC3, 0x28], NOW),
            Err(ImportError::NotText)
        );
    }

    #[test]
    fn malformed_json_says_so_and_that_the_previous_settings_were_kept() {
        let error = import(r#"{"AllowFederatedUsers": true, "AllowedDomains": "#).unwrap_err();
        assert!(matches!(error, ImportError::NotJson { .. }));
        let message = error.to_string();
        assert!(
            message.starts_with("the text is not valid JSON ("),
            "{message}"
        );
        assert!(message.contains("Get-CsTenantFederationConfiguration | ConvertTo-Json"));
        assert!(
            message.ends_with("The previous settings were kept."),
            "{message}"
        );
    }

    #[test]
    fn missing_required_keys_are_named() {
        assert_eq!(
            import(r#"{"Identity": "Global", "AllowedDomains": {}}"#),
            Err(ImportError::MissingKey {
                key: "AllowFederatedUsers"
            })
        );
        let error = import(r#"{"Identity": "Global", "AllowFederatedUsers": true}"#).unwrap_err();
        assert_eq!(
            error,
            ImportError::MissingKey {
                key: "AllowedDomains"
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("the key `AllowedDomains` is missing.")
        );
    }

    #[test]
    fn wrong_shapes_are_explained() {
        assert_eq!(
            import(r#"{"AllowFederatedUsers": "yes", "AllowedDomains": {}}"#),
            Err(ImportError::InvalidValue {
                key: "AllowFederatedUsers",
                expected: "true or false",
                found: "the text \"yes\"".into(),
            })
        );
        let error = import(r#"{"AllowFederatedUsers": true, "AllowedDomains": 3}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the key `AllowedDomains` should be \"AllowAllKnownDomains\", {} or an allow list \
             like {\"AllowedDomain\": [{\"Domain\": \"contoso.com\"}]}, but it is the number 3. \
             The previous settings were kept."
        );
        assert_eq!(
            import("[1, 2]"),
            Err(ImportError::NotAConfiguration {
                found: "an array of 2 items".into()
            })
        );
        assert_eq!(
            import(
                r#"{"AllowFederatedUsers": true, "AllowedDomains": {}, "BlockedDomains": ["not a domain"]}"#
            ),
            Err(ImportError::InvalidDomain {
                key: "BlockedDomains",
                value: "not a domain".into()
            })
        );
    }

    #[test]
    fn an_allow_list_cut_off_by_the_depth_limit_asks_for_a_deeper_export() {
        let error = import(
            r#"{"AllowFederatedUsers": true,
                "AllowedDomains": {"Element": "<AllowList xmlns=\"urn:schema:Microsoft.Rtc.Management.Settings.Edge.2008\"><AllowedDomain Domain=\"contoso.com\" /></AllowList>"}}"#,
        )
        .unwrap_err();
        assert_eq!(error, ImportError::AllowListNotExpanded);
        assert!(error.to_string().contains("ConvertTo-Json -Depth 5"));
    }

    #[test]
    fn settings_survive_a_round_trip_through_their_stored_json() {
        let settings = import(ALLOW_ALL_EXPORT).unwrap();
        let stored = serde_json::to_string(&settings).unwrap();
        assert!(stored.contains(r#""allowed":{"mode":"all"}"#), "{stored}");
        let restored: MspFederationSettings = serde_json::from_str(&stored).unwrap();
        assert_eq!(restored, settings);
    }
}
