//! Ticket actions shared by the browser UI and the JSON API, so both go through exactly the same
//! path: add a reply or an internal note, create a manual ticket.
//!
//! This is the hook for outbound delivery: when the outbox lands, a public reply is enqueued in
//! the same transaction as the entry (`add_entry`) and the delivery worker is woken right after
//! the commit. Notes are never sent anywhere. No HTTP types here besides [`WebError`].

use time::OffsetDateTime;

use crate::app::AppState;
use crate::store;
use crate::tickets::{ClientId, Entry, EntryId, NewTicket, Technician, Ticket, TicketId};
use crate::web::error::WebError;

/// Longest reply/note text accepted, in characters (a Teams message allows about 28 KB).
pub const MAX_TEXT_CHARS: usize = 20_000;

fn check_text(text: &str) -> Result<&str, WebError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(WebError::invalid_field("text", "text must not be empty"));
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(WebError::invalid_field(
            "text",
            format!("text must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(trimmed)
}

/// Adds a public reply (`internal == false`, delivered to the ticket's Teams chat) or an
/// internal note (`internal == true`) by `technician`. A public reply needs a ticket with a
/// Teams chat: a manual ticket has none, which is a 422 with a clear message.
pub async fn add_entry(
    state: &AppState,
    ticket_id: TicketId,
    technician: &Technician,
    text: &str,
    internal: bool,
    now: OffsetDateTime,
) -> Result<Entry, WebError> {
    let text = check_text(text)?;
    let mut tx = state.db.begin().await?;
    let ticket = store::tickets::get(&mut tx, ticket_id).await?;
    let entry = if internal {
        store::entries::add_note(&mut tx, ticket.id, technician.id, text, now).await?
    } else {
        if ticket.teams_chat_id.is_none() {
            return Err(WebError::unprocessable(
                "no_teams_chat",
                "This ticket has no Teams chat to reply in (it was created by hand). Add an internal note instead.",
            ));
        }
        let reply = store::entries::add_reply(&mut tx, ticket.id, technician.id, text, now).await?;
        // Same transaction: a reply is never stored without its outbox row, nor the reverse.
        crate::bridge::outbox::enqueue_reply(&mut tx, &reply, now).await?
    };
    tx.commit().await?;
    if !internal {
        state.outbox.wake();
    }
    tracing::info!(
        ticket.id = %ticket.id, entry.id = %entry.id, technician.id = %technician.id,
        "{} added to ticket #{}", if internal { "note" } else { "reply" }, ticket.number
    );
    Ok(entry)
}

/// The ticket's Retry button: puts a reply that failed to reach Teams back into the queue and
/// wakes the outbox. 404 when the entry is not on this ticket; 422 when it is not a failed reply.
pub async fn retry_delivery(
    state: &AppState,
    ticket_id: TicketId,
    entry_id: EntryId,
    technician: &Technician,
    now: OffsetDateTime,
) -> Result<Entry, WebError> {
    let entry = store::entries::get(&mut *state.db.acquire().await?, entry_id).await?;
    if entry.ticket_id != ticket_id {
        return Err(WebError::not_found("This reply"));
    }
    let entry = crate::bridge::outbox::retry_reply(&state.db, entry_id, now).await?;
    state.outbox.wake();
    tracing::info!(
        ticket.id = %ticket_id, entry.id = %entry_id, technician.id = %technician.id,
        "reply queued again for Teams"
    );
    Ok(entry)
}

/// Creates a ticket by hand (no Teams chat): `subject`, optional client, and a first text that
/// becomes an internal note by `technician`. One transaction.
pub async fn create_manual_ticket(
    state: &AppState,
    technician: &Technician,
    subject: &str,
    client_id: Option<ClientId>,
    text: Option<&str>,
    now: OffsetDateTime,
) -> Result<(Ticket, Option<Entry>), WebError> {
    let subject = subject.trim();
    if subject.is_empty() {
        return Err(WebError::invalid_field(
            "subject",
            "subject must not be empty",
        ));
    }
    if subject.chars().count() > 200 {
        return Err(WebError::invalid_field(
            "subject",
            "subject must be at most 200 characters",
        ));
    }
    let text = match text {
        Some(text) if !text.trim().is_empty() => Some(check_text(text)?),
        _ => None,
    };
    let mut tx = state.db.begin().await?;
    if let Some(client_id) = client_id {
        // A clear 404 naming the client rather than a foreign-key failure.
        store::clients::get(&mut tx, client_id).await?;
    }
    let new = NewTicket {
        client_id,
        ..NewTicket::with_subject(subject)
    };
    let ticket = store::tickets::create(&mut tx, &new, now).await?;
    let entry = match text {
        Some(text) => {
            Some(store::entries::add_note(&mut tx, ticket.id, technician.id, text, now).await?)
        }
        None => None,
    };
    tx.commit().await?;
    tracing::info!(ticket.id = %ticket.id, technician.id = %technician.id, "manual ticket #{} created", ticket.number);
    Ok((ticket, entry))
}
