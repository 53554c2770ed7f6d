//! Validated values that come from outside Regentra: Entra tenant and object ids, Teams chat and
//! message ids, domains, client names and technician e-mail addresses.
//!
//! Each type can only be built through `parse`, which normalises (trims, lower-cases where the
//! source is case-insensitive) so that equality in Rust and in SQL is plain string equality.
//! Deserialising goes through `parse` as well, so JSON cannot smuggle in an unchecked value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::ValidationError;

/// Implements `Display`, `FromStr`, `AsRef<str>`, `Serialize` and a `Deserialize` that goes
/// through `parse`, for a newtype over `String` with a `parse` constructor.
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            /// The normalised string form (as stored in the database).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An Entra (Azure AD) tenant id: a GUID, compared case-insensitively, held lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Parses `72f988bf-86f1-41af-91ab-2d7cd011db47` in any letter case, with surrounding
    /// whitespace or braces (as PowerShell and the Entra portal sometimes show it).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        let bare = trimmed
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or(trimmed);
        let invalid = || {
            ValidationError::new(
                "entra_tenant_id",
                "entra_tenant_id must be a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47",
            )
        };
        // Only the hyphenated 36-character form: `Uuid::try_parse` would also accept 32 bare hex
        // digits or a urn, which no Microsoft screen shows for a tenant id.
        if bare.len() != 36 {
            return Err(invalid());
        }
        let uuid = Uuid::try_parse(bare).map_err(|_| invalid())?;
        if uuid.is_nil() {
            return Err(ValidationError::new(
                "entra_tenant_id",
                "entra_tenant_id must be a real tenant GUID, not 00000000-0000-0000-0000-000000000000",
            ));
        }
        Ok(Self(uuid.hyphenated().to_string()))
    }
}
string_value!(TenantId);

/// A Microsoft Teams chat id as Graph returns it (e.g. `19:abc…@unq.gbl.spaces`).
/// Opaque and case-sensitive; only emptiness, whitespace and absurd length are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatId(String);

impl ChatId {
    /// Parses a chat id (kept exactly as given, apart from surrounding whitespace).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        opaque_graph_id(
            input,
            "chat_id",
            "a Teams chat id like 19:abc@unq.gbl.spaces",
        )
        .map(Self)
    }
}
string_value!(ChatId);

/// A Graph chatMessage id (within one chat). Opaque and case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GraphMessageId(String);

impl GraphMessageId {
    /// Parses a message id (kept exactly as given, apart from surrounding whitespace).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        opaque_graph_id(
            input,
            "graph_message_id",
            "a Teams message id like 1700000000000",
        )
        .map(Self)
    }
}
string_value!(GraphMessageId);

/// The Entra object id of a user (Graph `from.user.id`). Real ones are GUIDs; they are held
/// lower-case so that the contact key (object id, tenant id) compares case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntraObjectId(String);

impl EntraObjectId {
    /// Parses a user object id; lower-cases it.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        opaque_graph_id(
            input,
            "entra_object_id",
            "an Entra user object id like 8ea0e38b-efb3-4757-924a-5f94061cf8c2",
        )
        .map(|id| Self(id.to_lowercase()))
    }
}
string_value!(EntraObjectId);

/// Shared rule of the opaque Graph ids: non-empty, no whitespace inside, at most 1024 bytes.
fn opaque_graph_id(
    input: &str,
    field: &'static str,
    example: &str,
) -> Result<String, ValidationError> {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.len() > 1024 || trimmed.chars().any(char::is_whitespace) {
        return Err(ValidationError::new(
            field,
            format!("{field} must be {example}"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An internet domain of a client (e.g. `contoso.com`): lower-case, IDNA-normalised
/// (punycode), at least two labels, no scheme, path or port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses a domain name. `Contoso.COM.` becomes `contoso.com`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "domains",
                format!(
                    "domains must be domain names like contoso.com (got {:?})",
                    truncate_for_message(input)
                ),
            )
        };
        let trimmed = input.trim();
        let without_root_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if without_root_dot.is_empty() {
            return Err(invalid());
        }
        // The WHATWG host parser does IDNA mapping, lower-casing and rejects forbidden code
        // points (spaces, ':', '/', '@' …), so URLs and e-mail addresses fail here.
        match url::Host::parse(without_root_dot) {
            Ok(url::Host::Domain(domain))
                if domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.contains("..")
                    && domain.len() <= 253 =>
            {
                Ok(Self(domain))
            }
            _ => Err(invalid()),
        }
    }
}
string_value!(Domain);

/// A client's display name: trimmed, 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientName(String);

impl ClientName {
    /// Parses a client name.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("name", "name must not be empty"));
        }
        if trimmed.chars().count() > 200 {
            return Err(ValidationError::new(
                "name",
                "name must be at most 200 characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }
}
string_value!(ClientName);

/// A technician's login e-mail address: trimmed and lower-cased. Only the shape
/// `local@domain.tld` is checked; it is a login name, not a mailbox we send to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TechnicianEmail(String);

impl TechnicianEmail {
    /// Parses a login e-mail address.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let invalid =
            || ValidationError::new("email", "email must be an address like alice@example.com");
        let lowered = input.trim().to_lowercase();
        let (local, domain) = lowered.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || lowered.len() > 254
            || lowered.chars().any(char::is_whitespace)
            || Domain::parse(domain).is_err()
        {
            return Err(invalid());
        }
        Ok(Self(lowered))
    }
}
string_value!(TechnicianEmail);

/// Turns plain technician text into minimal safe HTML: every character escaped, line breaks
/// as `<br>`. This is what replies and notes store as `html` (never the technician's raw input).
pub fn text_to_html(text: &str) -> String {
    text.lines()
        .map(|line| {
            askama::filters::escape(line, askama::filters::Html)
                .map(|escaped| escaped.to_string())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Keeps error messages short when the rejected input is huge.
fn truncate_for_message(input: &str) -> String {
    input.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICROSOFT_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn tenant_id_is_lower_cased_and_compares_case_insensitively() {
        let upper = TenantId::parse("72F988BF-86F1-41AF-91AB-2D7CD011DB47").unwrap();
        let lower = TenantId::parse(MICROSOFT_TENANT).unwrap();
        assert_eq!(upper, lower);
        assert_eq!(upper.as_str(), MICROSOFT_TENANT);
    }

    #[test]
    fn tenant_id_accepts_whitespace_and_braces() {
        let parsed = TenantId::parse("  {72f988bf-86f1-41af-91ab-2d7cd011db47} ").unwrap();
        assert_eq!(parsed.as_str(), MICROSOFT_TENANT);
    }

    #[test]
    fn malformed_tenant_id_error_names_the_field_and_shows_an_example() {
        for bad in [
            "",
            "contoso.onmicrosoft.com",
            "72f988bf86f141af91ab2d7cd011db47",
            "72f988bf-86f1-41af-91ab-2d7cd011db4",
            "72f988bf-86f1-41af-91ab-2d7cd011db4g",
        ] {
            let err = TenantId::parse(bad).unwrap_err();
            assert_eq!(err.field(), "entra_tenant_id", "input {bad:?}");
            assert_eq!(
                err.to_string(),
                "entra_tenant_id must be a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47"
            );
        }
    }

    #[test]
    fn nil_tenant_id_is_rejected() {
        let err = TenantId::parse("00000000-0000-0000-0000-000000000000").unwrap_err();
        assert_eq!(err.field(), "entra_tenant_id");
    }

    #[test]
    fn tenant_id_deserialises_through_parse() {
        let ok: TenantId =
            serde_json::from_str("\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\"").unwrap();
        assert_eq!(ok.as_str(), MICROSOFT_TENANT);
        let err = serde_json::from_str::<TenantId>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("entra_tenant_id must be a GUID"));
    }

    #[test]
    fn chat_id_is_kept_verbatim() {
        let id = ChatId::parse(" 19:Abc_Def@unq.gbl.spaces ").unwrap();
        assert_eq!(id.as_str(), "19:Abc_Def@unq.gbl.spaces");
        assert_eq!(ChatId::parse("").unwrap_err().field(), "chat_id");
        assert_eq!(ChatId::parse("19:a b").unwrap_err().field(), "chat_id");
    }

    #[test]
    fn graph_message_id_rejects_empty() {
        assert_eq!(
            GraphMessageId::parse("1700000000000").unwrap().as_str(),
            "1700000000000"
        );
        assert_eq!(
            GraphMessageId::parse("  ").unwrap_err().field(),
            "graph_message_id"
        );
    }

    #[test]
    fn object_id_is_lower_cased() {
        let id = EntraObjectId::parse("8EA0E38B-EFB3-4757-924A-5F94061CF8C2").unwrap();
        assert_eq!(id.as_str(), "8ea0e38b-efb3-4757-924a-5f94061cf8c2");
    }

    #[test]
    fn domain_is_normalised() {
        assert_eq!(
            Domain::parse(" Contoso.COM. ").unwrap().as_str(),
            "contoso.com"
        );
        assert_eq!(
            Domain::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn domain_rejects_urls_addresses_and_single_labels() {
        for bad in [
            "",
            "contoso",
            "https://contoso.com",
            "a b.com",
            "bob@contoso.com",
            "10.0.0.1",
        ] {
            let err = Domain::parse(bad).unwrap_err();
            assert_eq!(err.field(), "domains", "input {bad:?}");
        }
    }

    #[test]
    fn client_name_is_trimmed_and_required() {
        assert_eq!(
            ClientName::parse("  Contoso Ltd ").unwrap().as_str(),
            "Contoso Ltd"
        );
        assert_eq!(
            ClientName::parse("   ").unwrap_err().to_string(),
            "name must not be empty"
        );
        assert!(ClientName::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn technician_email_is_lower_cased() {
        assert_eq!(
            TechnicianEmail::parse(" Alice@Example.COM ")
                .unwrap()
                .as_str(),
            "alice@example.com"
        );
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a lice@example.com",
        ] {
            assert_eq!(
                TechnicianEmail::parse(bad).unwrap_err().field(),
                "email",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_to_html_escapes_everything_and_keeps_line_breaks() {
        assert_eq!(
            text_to_html("Hi <b>Bob</b> & co\nsecond \"line\""),
            "Hi &#60;b&#62;Bob&#60;/b&#62; &#38; co<br>second &#34;line&#34;"
        );
    }
}
