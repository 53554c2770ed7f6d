//! The small closed vocabularies of the domain: ticket status, entry kind, reply delivery state,
//! attachment kind and download state. Each has one lower-case string form used in the database,
//! the JSON API, URLs and templates (`as_str`, `Display`, `FromStr`, serde).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// Declares `as_str`, `ALL`, `Display` and `FromStr` for a fieldless enum whose variants map
/// one-to-one onto lower-case strings.
macro_rules! string_enum {
    ($name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in lifecycle / display order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string form used in the database, JSON and URLs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| {
                        let allowed: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        ValidationError::new(
                            $field,
                            format!("{} must be one of {}", $field, allowed.join(", ")),
                        )
                    })
            }
        }
    };
}

/// Where a ticket is in its life (ARCHITECTURE §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Created, nobody has answered yet.
    New,
    /// A technician is on it.
    Open,
    /// Waiting for the client; a client message moves it back to `Open`.
    Pending,
    /// Solved; a client message within the reopen window reopens it, later ones start a
    /// follow-up ticket.
    Resolved,
    /// Final; any later client message starts a follow-up ticket.
    Closed,
}
string_enum!(TicketStatus, "status", {
    New => "new",
    Open => "open",
    Pending => "pending",
    Resolved => "resolved",
    Closed => "closed",
});

impl TicketStatus {
    /// Human label for the UI ("New", "Open", …).
    pub fn label(self) -> &'static str {
        match self {
            TicketStatus::New => "New",
            TicketStatus::Open => "Open",
            TicketStatus::Pending => "Pending",
            TicketStatus::Resolved => "Resolved",
            TicketStatus::Closed => "Closed",
        }
    }

    /// New, open or pending: somebody still has work to do.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TicketStatus::New | TicketStatus::Open | TicketStatus::Pending
        )
    }
}

/// What a ticket entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A message the client wrote in Teams.
    ClientMessage,
    /// A technician's public reply (sent to Teams, or typed directly in Teams by the support
    /// user).
    Reply,
    /// An internal note; never leaves Regentra.
    Note,
    /// Something that happened to the ticket (status change, assignment, reopen …).
    Event,
}
string_enum!(EntryKind, "kind", {
    ClientMessage => "client_message",
    Reply => "reply",
    Note => "note",
    Event => "event",
});

/// Delivery of a reply to Teams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting in the outbox (possibly after failed attempts that will be retried).
    Queued,
    /// Posted to the chat; the Graph message id is recorded.
    Sent,
    /// Gave up (a permanent error); the ticket shows the reason and a retry button.
    Failed,
}
string_enum!(DeliveryState, "delivery_state", {
    Queued => "queued",
    Sent => "sent",
    Failed => "failed",
});

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A link (e.g. a SharePoint/OneDrive `reference` attachment); `url` is set.
    Link,
    /// An image pasted into the message (Graph hosted content); bytes stored once downloaded.
    Image,
}
string_enum!(AttachmentKind, "attachment_kind", {
    Link => "link",
    Image => "image",
});

/// Whether an attachment's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Nothing to download (links).
    NotNeeded,
    /// Waiting for a (re)try of the download.
    Pending,
    /// The bytes are stored in `attachments.content`.
    Downloaded,
    /// The download failed for good; the ticket shows a placeholder.
    Failed,
}
string_enum!(DownloadState, "download_state", {
    NotNeeded => "not_needed",
    Pending => "pending",
    Downloaded => "downloaded",
    Failed => "failed",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_its_own_string_form_case_insensitively() {
        for status in TicketStatus::ALL {
            assert_eq!(status.as_str().parse::<TicketStatus>().unwrap(), *status);
        }
        assert_eq!(
            "Resolved".parse::<TicketStatus>().unwrap(),
            TicketStatus::Resolved
        );
    }

    #[test]
    fn unknown_status_lists_the_allowed_values() {
        let err = "done".parse::<TicketStatus>().unwrap_err();
        assert_eq!(err.field(), "status");
        assert_eq!(
            err.to_string(),
            "status must be one of new, open, pending, resolved, closed"
        );
    }

    #[test]
    fn serde_and_display_agree() {
        assert_eq!(
            serde_json::to_string(&EntryKind::ClientMessage).unwrap(),
            "\"client_message\""
        );
        assert_eq!(EntryKind::ClientMessage.to_string(), "client_message");
        assert_eq!(
            serde_json::to_string(&DownloadState::NotNeeded).unwrap(),
            "\"not_needed\""
        );
        assert_eq!(DownloadState::NotNeeded.to_string(), "not_needed");
    }
}
