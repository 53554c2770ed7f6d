//! The ticket lifecycle rules of ARCHITECTURE §6 as pure functions: what an inbound client
//! message does to the chat's current ticket, which status changes a technician may make, the
//! status after a technician reply, and how a subject is cut from a message.
//!
//! No I/O and no clock here: callers pass the times in, so every rule has a plain unit test.
//! The store applies these decisions inside its transactions.

use time::{Duration, OffsetDateTime};

use super::{TicketId, TicketStatus};

/// Longest subject, in characters (Unicode scalar values), including a trailing `…`.
pub const MAX_SUBJECT_CHARS: usize = 80;

/// Subject used when a message has no text at all (e.g. only a pasted image).
pub const EMPTY_MESSAGE_SUBJECT: &str = "Teams message without text";

/// How long after a ticket was resolved a client message still reopens it
/// (`REGENTRA_REOPEN_DAYS`, default 7). After that, the message starts a follow-up ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReopenWindow(Duration);

impl ReopenWindow {
    /// The default: 7 days.
    pub const DEFAULT_DAYS: u16 = 7;

    /// A window of `days` days. `0` means a resolved ticket is never reopened by the client.
    pub fn days(days: u16) -> Self {
        Self(Duration::days(i64::from(days)))
    }

    /// The window as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for ReopenWindow {
    fn default() -> Self {
        Self::days(Self::DEFAULT_DAYS)
    }
}

/// What the lifecycle needs to know about the chat's most recent ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentTicket {
    /// The ticket.
    pub id: TicketId,
    /// Its status now.
    pub status: TicketStatus,
    /// When it was (last) resolved; `None` if it is not resolved.
    pub resolved_at: Option<OffsetDateTime>,
}

/// What an inbound client message does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No ticket for this chat yet: open a new one from this message.
    NewTicket,
    /// Append to the current ticket; status unchanged (`new` or `open`).
    Append,
    /// Append and set the ticket back to `open` (it was `pending`, or `resolved` within the
    /// reopen window).
    AppendAndReopen,
    /// Start a new ticket linked to `of` (it was `closed`, or `resolved` longer ago than the
    /// reopen window).
    FollowUp {
        /// The earlier ticket the new one follows up.
        of: TicketId,
    },
}

/// Decides what a client message sent at `message_at` does, given the chat's most recent ticket.
///
/// Rules (ARCHITECTURE §6): no ticket → new ticket; `new`/`open` → append; `pending` → append and
/// reopen; `resolved` → append and reopen when `message_at - resolved_at <= window`, else a
/// follow-up; `closed` → always a follow-up. A resolved ticket without a recorded resolution time
/// (not written by this version) is treated as inside the window: reopening is the cautious
/// choice because it keeps the conversation in one place.
pub fn decide_inbound(
    current: Option<&CurrentTicket>,
    message_at: OffsetDateTime,
    window: ReopenWindow,
) -> Decision {
    let Some(current) = current else {
        return Decision::NewTicket;
    };
    match current.status {
        TicketStatus::New | TicketStatus::Open => Decision::Append,
        TicketStatus::Pending => Decision::AppendAndReopen,
        TicketStatus::Resolved => match current.resolved_at {
            Some(resolved_at) if message_at - resolved_at > window.duration() => {
                Decision::FollowUp { of: current.id }
            }
            _ => Decision::AppendAndReopen,
        },
        TicketStatus::Closed => Decision::FollowUp { of: current.id },
    }
}

/// Why a technician may not make a status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// `new` is only ever the initial status.
    #[error("a ticket cannot be set back to new; set it to open instead")]
    BackToNew,
    /// Closed tickets are final.
    #[error(
        "ticket is closed and cannot be changed; a new client message opens a follow-up ticket"
    )]
    Closed,
}

/// Checks a status change requested by a technician. Setting the status it already has is
/// allowed (and changes nothing). Allowed: any non-closed status → `open`, `pending`,
/// `resolved` or `closed`. Refused: anything → `new`, and any change of a `closed` ticket.
pub fn check_technician_transition(
    from: TicketStatus,
    to: TicketStatus,
) -> Result<(), TransitionError> {
    if from == to {
        return Ok(());
    }
    match (from, to) {
        (TicketStatus::Closed, _) => Err(TransitionError::Closed),
        (_, TicketStatus::New) => Err(TransitionError::BackToNew),
        _ => Ok(()),
    }
}

/// The status a ticket has after a technician's public reply: a `new` ticket becomes `open`
/// (somebody answered); every other status is the technician's explicit choice and stays.
/// Internal notes never change the status.
pub fn status_after_technician_reply(status: TicketStatus) -> TicketStatus {
    match status {
        TicketStatus::New => TicketStatus::Open,
        other => other,
    }
}

/// The subject of a ticket opened by `text`: its first non-blank line, trimmed, with runs of
/// whitespace collapsed to one space. Longer than [`MAX_SUBJECT_CHARS`] characters → cut to
/// `MAX_SUBJECT_CHARS - 1` characters (trailing whitespace dropped) plus `…`, so the result is
/// never longer than 80 characters. Counting is by Unicode scalar value, so a multi-byte
/// character is never split. No text at all → [`EMPTY_MESSAGE_SUBJECT`].
pub fn subject_from_text(text: &str) -> String {
    let Some(first_line) = text.lines().map(str::trim).find(|line| !line.is_empty()) else {
        return EMPTY_MESSAGE_SUBJECT.to_owned();
    };
    let collapsed = first_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= MAX_SUBJECT_CHARS {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(MAX_SUBJECT_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn ticket(status: TicketStatus, resolved_at: Option<OffsetDateTime>) -> CurrentTicket {
        CurrentTicket {
            id: TicketId::new(),
            status,
            resolved_at,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);

    #[test]
    fn first_client_message_in_a_chat_opens_a_new_ticket() {
        assert_eq!(
            decide_inbound(None, NOW, ReopenWindow::default()),
            Decision::NewTicket
        );
    }

    #[test]
    fn client_message_appends_to_new_and_open_tickets_without_status_change() {
        for status in [TicketStatus::New, TicketStatus::Open] {
            let current = ticket(status, None);
            assert_eq!(
                decide_inbound(Some(&current), NOW, ReopenWindow::default()),
                Decision::Append
            );
        }
    }

    #[test]
    fn client_reply_moves_pending_back_to_open() {
        let current = ticket(TicketStatus::Pending, None);
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::default()),
            Decision::AppendAndReopen
        );
    }

    #[test]
    fn client_message_within_reopen_window_reopens_resolved_ticket() {
        let current = ticket(TicketStatus::Resolved, Some(NOW - Duration::days(6)));
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::default()),
            Decision::AppendAndReopen
        );
    }

    #[test]
    fn client_message_exactly_at_window_end_still_reopens() {
        let current = ticket(TicketStatus::Resolved, Some(NOW - Duration::days(7)));
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::days(7)),
            Decision::AppendAndReopen
        );
    }

    #[test]
    fn client_message_after_reopen_window_starts_follow_up_of_resolved_ticket() {
        let current = ticket(
            TicketStatus::Resolved,
            Some(NOW - Duration::days(7) - Duration::seconds(1)),
        );
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::default()),
            Decision::FollowUp { of: current.id }
        );
    }

    #[test]
    fn reopen_window_is_configurable() {
        let current = ticket(TicketStatus::Resolved, Some(NOW - Duration::days(2)));
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::days(1)),
            Decision::FollowUp { of: current.id }
        );
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::days(3)),
            Decision::AppendAndReopen
        );
    }

    #[test]
    fn resolved_ticket_without_resolution_time_is_reopened() {
        let current = ticket(TicketStatus::Resolved, None);
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::days(0)),
            Decision::AppendAndReopen
        );
    }

    #[test]
    fn client_message_after_close_always_starts_follow_up() {
        let current = ticket(TicketStatus::Closed, None);
        assert_eq!(
            decide_inbound(Some(&current), NOW, ReopenWindow::days(365)),
            Decision::FollowUp { of: current.id }
        );
    }

    #[test]
    fn technician_may_move_an_active_ticket_to_any_later_status() {
        use TicketStatus::*;
        for from in [New, Open, Pending] {
            for to in [Open, Pending, Resolved, Closed] {
                assert_eq!(
                    check_technician_transition(from, to),
                    Ok(()),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn technician_may_reopen_or_close_a_resolved_ticket() {
        use TicketStatus::*;
        for to in [Open, Pending, Closed] {
            assert_eq!(
                check_technician_transition(Resolved, to),
                Ok(()),
                "resolved → {to}"
            );
        }
    }

    #[test]
    fn technician_cannot_set_a_ticket_back_to_new() {
        use TicketStatus::*;
        for from in [Open, Pending, Resolved] {
            assert_eq!(
                check_technician_transition(from, New),
                Err(TransitionError::BackToNew)
            );
        }
    }

    #[test]
    fn closed_ticket_cannot_be_changed_by_a_technician() {
        use TicketStatus::*;
        for to in [New, Open, Pending, Resolved] {
            let err = check_technician_transition(Closed, to).unwrap_err();
            assert_eq!(err, TransitionError::Closed);
            assert!(err.to_string().contains("follow-up"));
        }
    }

    #[test]
    fn setting_the_same_status_is_allowed() {
        for status in TicketStatus::ALL {
            assert_eq!(check_technician_transition(*status, *status), Ok(()));
        }
    }

    #[test]
    fn technician_reply_opens_a_new_ticket_and_keeps_other_statuses() {
        use TicketStatus::*;
        assert_eq!(status_after_technician_reply(New), Open);
        for status in [Open, Pending, Resolved, Closed] {
            assert_eq!(status_after_technician_reply(status), status);
        }
    }

    #[test]
    fn subject_is_the_first_non_blank_line_trimmed() {
        assert_eq!(
            subject_from_text("\n   \n  Printer on floor 2   is down \nIt shows E-42"),
            "Printer on floor 2 is down"
        );
    }

    #[test]
    fn subject_of_exactly_80_characters_is_kept_whole() {
        let line = "a".repeat(80);
        assert_eq!(subject_from_text(&line), line);
    }

    #[test]
    fn long_subject_is_cut_to_80_characters_with_ellipsis() {
        let line = format!("{} tail", "word ".repeat(30));
        let subject = subject_from_text(&line);
        assert_eq!(subject.chars().count(), 80);
        assert_eq!(subject, format!("{}word…", "word ".repeat(15)));
    }

    #[test]
    fn subject_cut_drops_trailing_space_before_ellipsis() {
        // 78 letters, a space, then more: the 79-char cut ends in a space, which is dropped.
        let line = format!("{} more text here", "b".repeat(78));
        let subject = subject_from_text(&line);
        assert_eq!(subject, format!("{}…", "b".repeat(78)));
    }

    #[test]
    fn subject_never_splits_multibyte_characters() {
        let line = "ü".repeat(100);
        let subject = subject_from_text(&line);
        assert_eq!(subject, format!("{}…", "ü".repeat(79)));
    }

    #[test]
    fn message_without_text_gets_a_placeholder_subject() {
        assert_eq!(subject_from_text(" \n\t\n"), EMPTY_MESSAGE_SUBJECT);
    }
}
