//! Regentra's own row ids: UUID v7 (time-ordered) behind one newtype per entity, so a
//! `TicketId` can never be passed where a `ClientId` is expected. Stored as lower-case hyphenated
//! TEXT; serialised to JSON as the same string.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::ValidationError;

/// Declares one id newtype. A macro because the six ids differ only in name and field label.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses an id from its string form (as found in URLs, JSON and the database).
            pub fn parse(input: &str) -> Result<Self, ValidationError> {
                Uuid::try_parse(input.trim()).map(Self).map_err(|_| {
                    ValidationError::new(
                        $field,
                        concat!($field, " must be an id like 01890a5d-ac96-774b-bcce-b302099a8057"),
                    )
                })
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A client (customer company) of the MSP.
    ClientId,
    "client_id"
);
uuid_id!(
    /// A person at a client, known by Entra object id + tenant id.
    ContactId,
    "contact_id"
);
uuid_id!(
    /// A ticket. (The human-facing number is `Ticket::number`.)
    TicketId,
    "ticket_id"
);
uuid_id!(
    /// One entry of a ticket's timeline (client message, reply, note or event).
    EntryId,
    "entry_id"
);
uuid_id!(
    /// A technician (helpdesk user who logs in).
    TechnicianId,
    "technician_id"
);
uuid_id!(
    /// An API token row (never the token itself).
    TokenId,
    "token_id"
);
uuid_id!(
    /// A file or link attached to an entry.
    AttachmentId,
    "attachment_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = TicketId::new();
        let parsed = TicketId::parse(&id.to_string()).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(id.to_string().len(), 36);
        assert_eq!(id.to_string(), id.to_string().to_lowercase());
    }

    #[test]
    fn malformed_id_names_the_field() {
        let err = ClientId::parse("42").unwrap_err();
        assert_eq!(err.field(), "client_id");
        assert!(err.to_string().starts_with("client_id must be an id like"));
    }

    #[test]
    fn ids_serialise_as_plain_strings() {
        let id = EntryId::parse("01890a5d-ac96-774b-bcce-b302099a8057").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"01890a5d-ac96-774b-bcce-b302099a8057\""
        );
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = EntryId::new();
        let second = EntryId::new();
        assert!(first < second);
    }
}
