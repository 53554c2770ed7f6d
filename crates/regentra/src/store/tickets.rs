//! Tickets: numbering, listing, status changes, client assignment, and the one call the bridge
//! makes for every inbound client message ([`receive_client_message`]), which applies the
//! lifecycle decision of `tickets::lifecycle` atomically.
//!
//! Ticket numbers come from the `counters` row `ticket_number`, incremented in the same
//! transaction as the insert: sequential, never reused, safe with concurrent writers on both
//! backends (row lock on PostgreSQL, the single writer on SQLite).

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::sql::{
    from_ms, opt_from_ms, opt_to_ms, parse_enum, parse_stored, parse_stored_opt, to_ms,
};
use super::{StoreError, contacts, entries, technicians, write_tx};
use crate::tickets::lifecycle::{self, CurrentTicket, Decision, ReopenWindow};
use crate::tickets::{
    ChatId, ClientFilter, ClientId, ContactId, EntryId, GraphMessageId, NewAttachment, NewContact,
    NewTicket, Page, TechnicianId, TenantId, Ticket, TicketDetail, TicketFilter, TicketId,
    TicketStatus,
};

/// Largest page the list accepts (ARCHITECTURE §3).
pub const MAX_PAGE_SIZE: i64 = 1000;

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: String,
    number: i64,
    subject: String,
    status: String,
    client_id: Option<String>,
    client_name: Option<String>,
    unassigned_tenant_id: Option<String>,
    requester_contact_id: Option<String>,
    requester_name: Option<String>,
    teams_chat_id: Option<String>,
    follow_up_of: Option<String>,
    created_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
}

impl TicketRow {
    fn into_ticket(self) -> Result<Ticket, StoreError> {
        Ok(Ticket {
            id: parse_stored(&self.id, TicketId::parse)?,
            number: self.number,
            subject: self.subject,
            status: parse_enum(&self.status)?,
            client_id: parse_stored_opt(self.client_id.as_deref(), ClientId::parse)?,
            client_name: self.client_name,
            unassigned_tenant_id: parse_stored_opt(
                self.unassigned_tenant_id.as_deref(),
                TenantId::parse,
            )?,
            requester_contact_id: parse_stored_opt(
                self.requester_contact_id.as_deref(),
                ContactId::parse,
            )?,
            requester_name: self.requester_name,
            teams_chat_id: parse_stored_opt(self.teams_chat_id.as_deref(), ChatId::parse)?,
            follow_up_of: parse_stored_opt(self.follow_up_of.as_deref(), TicketId::parse)?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
            resolved_at: opt_from_ms(self.resolved_at)?,
            closed_at: opt_from_ms(self.closed_at)?,
        })
    }
}

const SELECT_TICKET: &str = "SELECT t.id, t.number, t.subject, t.status, t.client_id, \
     c.name AS client_name, t.unassigned_tenant_id, t.requester_contact_id, \
     r.display_name AS requester_name, t.teams_chat_id, t.follow_up_of, t.created_at, \
     t.updated_at, t.resolved_at, t.closed_at \
     FROM tickets t \
     LEFT JOIN clients c ON c.id = t.client_id \
     LEFT JOIN contacts r ON r.id = t.requester_contact_id";

/// Creates a ticket with status `new` and the next number.
pub async fn create(
    conn: &mut AnyConnection,
    new: &NewTicket,
    now: OffsetDateTime,
) -> Result<Ticket, StoreError> {
    let subject = new.subject.trim();
    if subject.is_empty() {
        return Err(StoreError::Invalid("subject must not be empty".into()));
    }
    let mut tx = write_tx(conn).await?;
    let id = insert_ticket(&mut tx, new, subject, now).await?;
    let ticket = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(ticket)
}

/// One ticket.
pub async fn get(conn: &mut AnyConnection, id: TicketId) -> Result<Ticket, StoreError> {
    let row: Option<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_TICKET} WHERE t.id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("ticket"))?.into_ticket()
}

/// The ticket with this human-facing number.
pub async fn get_by_number(conn: &mut AnyConnection, number: i64) -> Result<Ticket, StoreError> {
    let row: Option<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_TICKET} WHERE t.number = $1"
    )))
    .bind(number)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("ticket"))?.into_ticket()
}

/// A ticket with its whole timeline (entries oldest first, each with its attachments).
pub async fn detail(conn: &mut AnyConnection, id: TicketId) -> Result<TicketDetail, StoreError> {
    let ticket = get(conn, id).await?;
    let entries = entries::list_for_ticket(conn, id).await?;
    Ok(TicketDetail { ticket, entries })
}

/// The most recent ticket of a Teams chat (the one new messages go to, subject to the
/// lifecycle), if the chat has any.
pub async fn current_for_chat(
    conn: &mut AnyConnection,
    chat: &ChatId,
) -> Result<Option<Ticket>, StoreError> {
    let row: Option<TicketRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_TICKET} WHERE t.teams_chat_id = $1 ORDER BY t.number DESC LIMIT 1"
    )))
    .bind(chat.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(TicketRow::into_ticket).transpose()
}

/// One page of tickets matching `filter`, most recently active first, with the total count.
/// `limit` is clamped to `1..=1000`, a negative `offset` to 0.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &TicketFilter,
) -> Result<Page<Ticket>, StoreError> {
    // Built by hand with numbered placeholders: sqlx's QueryBuilder emits `?` through `Any`.
    let mut conditions: Vec<String> = Vec::new();
    let mut text_binds: Vec<String> = Vec::new();
    if !filter.statuses.is_empty() {
        let placeholders: Vec<String> = filter
            .statuses
            .iter()
            .map(|status| {
                text_binds.push(status.as_str().to_owned());
                format!("${}", text_binds.len())
            })
            .collect();
        conditions.push(format!("t.status IN ({})", placeholders.join(", ")));
    }
    match &filter.client {
        ClientFilter::Any => {}
        ClientFilter::Unassigned => conditions.push("t.client_id IS NULL".to_owned()),
        ClientFilter::Client(client) => {
            text_binds.push(client.to_string());
            conditions.push(format!("t.client_id = ${}", text_binds.len()));
        }
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };

    let count_sql = format!("SELECT COUNT(*) FROM tickets t{where_clause}");
    let mut count_query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for value in &text_binds {
        count_query = count_query.bind(value.clone());
    }
    let total = count_query.fetch_one(&mut *conn).await?;

    let page_sql = format!(
        "{SELECT_TICKET}{where_clause} ORDER BY t.updated_at DESC, t.number DESC \
         LIMIT ${} OFFSET ${}",
        text_binds.len() + 1,
        text_binds.len() + 2
    );
    let mut page_query = sqlx::query_as::<_, TicketRow>(sqlx::AssertSqlSafe(page_sql));
    for value in &text_binds {
        page_query = page_query.bind(value.clone());
    }
    let rows = page_query
        .bind(filter.limit.clamp(1, MAX_PAGE_SIZE))
        .bind(filter.offset.max(0))
        .fetch_all(&mut *conn)
        .await?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(TicketRow::into_ticket)
            .collect::<Result<_, _>>()?,
        total,
    })
}

/// A technician changes the status. Checked against the lifecycle rules
/// (`Invalid` with the rule's message when refused); records an event entry; sets or clears
/// `resolved_at` / `closed_at`. Setting the current status again changes nothing.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: TicketId,
    to: TicketStatus,
    by: TechnicianId,
    now: OffsetDateTime,
) -> Result<Ticket, StoreError> {
    let mut tx = write_tx(conn).await?;
    let ticket = get(&mut tx, id).await?;
    lifecycle::check_technician_transition(ticket.status, to)
        .map_err(|err| StoreError::Invalid(err.to_string()))?;
    if ticket.status == to {
        return Ok(ticket);
    }
    let technician = technicians::get(&mut tx, by).await?;
    write_status(&mut tx, id, to, now).await?;
    entries::insert_event(
        &mut tx,
        id,
        &format!(
            "{} changed the status from {} to {}",
            technician.display_name,
            ticket.status.label(),
            to.label()
        ),
        now,
    )
    .await?;
    let ticket = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(ticket)
}

/// A technician assigns the ticket to a client (`Some`) or back to Unassigned (`None`).
/// Records an event entry. Assigning clears the ticket's `unassigned_tenant_id`.
pub async fn assign_client(
    conn: &mut AnyConnection,
    id: TicketId,
    client: Option<ClientId>,
    by: TechnicianId,
    now: OffsetDateTime,
) -> Result<Ticket, StoreError> {
    let mut tx = write_tx(conn).await?;
    let ticket = get(&mut tx, id).await?;
    if ticket.client_id == client {
        return Ok(ticket);
    }
    let technician = technicians::get(&mut tx, by).await?;
    let client_name = match client {
        Some(client_id) => Some(super::clients::get(&mut tx, client_id).await?.name),
        None => None,
    };
    sqlx::query(
        "UPDATE tickets SET client_id = $1, \
           unassigned_tenant_id = CASE WHEN $1 IS NULL THEN unassigned_tenant_id ELSE NULL END, \
           updated_at = $2 WHERE id = $3",
    )
    .bind(client.map(|c| c.to_string()))
    .bind(to_ms(now))
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    let text = match &client_name {
        Some(name) => format!("{} assigned the ticket to {name}", technician.display_name),
        None => format!("{} moved the ticket to Unassigned", technician.display_name),
    };
    entries::insert_event(&mut tx, id, &text, now).await?;
    let ticket = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(ticket)
}

/// A client message as read from Teams, already converted by the bridge
/// (`html` sanitised for display, `text` readable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundClientMessage {
    pub chat_id: ChatId,
    pub graph_message_id: GraphMessageId,
    /// The sender as Teams names them (`from.user`: id, tenantId, displayName).
    pub sender: NewContact,
    pub text: String,
    pub html: String,
    /// Graph `createdDateTime`: decides the reopen window and orders the timeline.
    pub sent_at: OffsetDateTime,
    /// Graph `lastModifiedDateTime`: later edits must be newer than this.
    pub last_modified: OffsetDateTime,
    pub attachments: Vec<NewAttachment>,
}

/// What [`receive_client_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The ticket the message is (or already was) on.
    pub ticket_id: TicketId,
    pub ticket_number: i64,
    /// The message's entry (new, or the existing one for a duplicate).
    pub entry_id: EntryId,
    pub outcome: ReceiveOutcome,
}

/// The effect of an inbound client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// (chat, message id) was already stored: nothing changed. Edits go through
    /// `entries::apply_edit`.
    AlreadyKnown,
    /// First message of the chat: a new ticket.
    NewTicket,
    /// The chat's ticket was closed or resolved too long ago: a new ticket linked to `of`.
    FollowUp { of: TicketId },
    /// Appended to the chat's open ticket.
    Appended,
    /// Appended, and the ticket went back to `open` (was pending, or resolved within the
    /// reopen window).
    Reopened { from: TicketStatus },
}

impl ReceiveOutcome {
    /// True when the message was stored now (not a duplicate).
    pub fn is_new(&self) -> bool {
        !matches!(self, ReceiveOutcome::AlreadyKnown)
    }

    /// True when a ticket was created (new or follow-up).
    pub fn created_ticket(&self) -> bool {
        matches!(
            self,
            ReceiveOutcome::NewTicket | ReceiveOutcome::FollowUp { .. }
        )
    }
}

/// Stores an inbound client message, idempotently on (chat id, message id), applying
/// ARCHITECTURE §6: new ticket for a chat without one (client by the sender's tenant, else
/// Unassigned showing that tenant; requester = the sender's contact, created on first sight);
/// append; reopen; or follow-up ticket. All in one transaction (a savepoint when the caller
/// passes its own transaction, e.g. to advance a poll cursor together with it).
pub async fn receive_client_message(
    conn: &mut AnyConnection,
    message: &InboundClientMessage,
    window: ReopenWindow,
    now: OffsetDateTime,
) -> Result<Received, StoreError> {
    let mut tx = write_tx(conn).await?;
    if let Some(existing) =
        entries::find_by_graph_id(&mut tx, &message.chat_id, &message.graph_message_id).await?
    {
        let ticket = get(&mut tx, existing.ticket_id).await?;
        return Ok(Received {
            ticket_id: ticket.id,
            ticket_number: ticket.number,
            entry_id: existing.id,
            outcome: ReceiveOutcome::AlreadyKnown,
        });
    }

    let contact = contacts::find_or_create(&mut tx, &message.sender, now).await?;
    let current = current_for_chat(&mut tx, &message.chat_id).await?;
    let decision = lifecycle::decide_inbound(
        current
            .as_ref()
            .map(|ticket| CurrentTicket {
                id: ticket.id,
                status: ticket.status,
                resolved_at: ticket.resolved_at,
            })
            .as_ref(),
        message.sent_at,
        window,
    );

    let (ticket_id, outcome) = match (decision, current) {
        (Decision::Append, Some(ticket)) => {
            touch(&mut tx, ticket.id, message.sent_at).await?;
            (ticket.id, ReceiveOutcome::Appended)
        }
        (Decision::AppendAndReopen, Some(ticket)) => {
            write_status(&mut tx, ticket.id, TicketStatus::Open, message.sent_at).await?;
            touch(&mut tx, ticket.id, message.sent_at).await?;
            entries::insert_event(
                &mut tx,
                ticket.id,
                &format!(
                    "Reopened ({} → Open) by a message from {}",
                    ticket.status.label(),
                    contact.display_name
                ),
                message.sent_at,
            )
            .await?;
            (
                ticket.id,
                ReceiveOutcome::Reopened {
                    from: ticket.status,
                },
            )
        }
        (Decision::FollowUp { of }, previous) => {
            let new = new_ticket_from_message(message, &contact, Some(of));
            let id = insert_ticket(&mut tx, &new, &new.subject, message.sent_at).await?;
            if let Some(previous) = previous {
                entries::insert_event(
                    &mut tx,
                    id,
                    &format!(
                        "Follow-up of ticket #{} ({}), opened by a new message in the same chat",
                        previous.number,
                        previous.status.label()
                    ),
                    message.sent_at,
                )
                .await?;
            }
            (id, ReceiveOutcome::FollowUp { of })
        }
        // NewTicket, or (defensively) an append decision without a current ticket.
        (_, _) => {
            let new = new_ticket_from_message(message, &contact, None);
            let id = insert_ticket(&mut tx, &new, &new.subject, message.sent_at).await?;
            (id, ReceiveOutcome::NewTicket)
        }
    };

    let entry_id = entries::insert_client_message(&mut tx, ticket_id, &contact, message).await?;
    let Some(entry_id) = entry_id else {
        // Another writer stored the same message between our check and insert: undo ours.
        drop(tx);
        let existing = entries::find_by_graph_id(conn, &message.chat_id, &message.graph_message_id)
            .await?
            .ok_or(StoreError::NotFound("entry"))?;
        let ticket = get(conn, existing.ticket_id).await?;
        return Ok(Received {
            ticket_id: ticket.id,
            ticket_number: ticket.number,
            entry_id: existing.id,
            outcome: ReceiveOutcome::AlreadyKnown,
        });
    };
    let ticket = get(&mut tx, ticket_id).await?;
    tx.commit().await?;
    Ok(Received {
        ticket_id,
        ticket_number: ticket.number,
        entry_id,
        outcome,
    })
}

fn new_ticket_from_message(
    message: &InboundClientMessage,
    contact: &crate::tickets::Contact,
    follow_up_of: Option<TicketId>,
) -> NewTicket {
    NewTicket {
        subject: lifecycle::subject_from_text(&message.text),
        client_id: contact.client_id,
        unassigned_tenant_id: match contact.client_id {
            Some(_) => None,
            None => Some(message.sender.entra_tenant_id.clone()),
        },
        requester_contact_id: Some(contact.id),
        teams_chat_id: Some(message.chat_id.clone()),
        follow_up_of,
    }
}

/// Inserts a `new` ticket with the next number; returns its id. `subject` is already trimmed.
async fn insert_ticket(
    conn: &mut AnyConnection,
    new: &NewTicket,
    subject: &str,
    now: OffsetDateTime,
) -> Result<TicketId, StoreError> {
    let number: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'ticket_number' RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await?;
    let id = TicketId::new();
    sqlx::query(
        "INSERT INTO tickets (id, number, subject, status, client_id, unassigned_tenant_id, \
           requester_contact_id, teams_chat_id, follow_up_of, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(id.to_string())
    .bind(number)
    .bind(subject)
    .bind(TicketStatus::New.as_str())
    .bind(new.client_id.map(|c| c.to_string()))
    .bind(
        new.unassigned_tenant_id
            .as_ref()
            .map(|t| t.as_str().to_owned()),
    )
    .bind(new.requester_contact_id.map(|c| c.to_string()))
    .bind(new.teams_chat_id.as_ref().map(|c| c.as_str().to_owned()))
    .bind(new.follow_up_of.map(|t| t.to_string()))
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db_err) if db_err.is_foreign_key_violation() => StoreError::Invalid(
            "the ticket refers to a client, contact or ticket that does not exist".into(),
        ),
        _ => StoreError::from(err),
    })?;
    Ok(id)
}

/// Writes a status with its timestamps: entering `resolved` sets `resolved_at`, entering
/// `closed` sets `closed_at`, going back to an active status clears both.
pub(crate) async fn write_status(
    conn: &mut AnyConnection,
    id: TicketId,
    to: TicketStatus,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let (resolved_at, closed_at): (Option<OffsetDateTime>, Option<OffsetDateTime>) = match to {
        TicketStatus::Resolved => (Some(now), None),
        TicketStatus::Closed => (None, Some(now)),
        TicketStatus::New | TicketStatus::Open | TicketStatus::Pending => (None, None),
    };
    // Closing keeps the resolution time (a resolved ticket later closed was still resolved then).
    let result = sqlx::query(
        "UPDATE tickets SET status = $1, \
           resolved_at = CASE WHEN $1 = 'closed' THEN resolved_at ELSE $2 END, \
           closed_at = $3, \
           updated_at = CASE WHEN updated_at < $4 THEN $4 ELSE updated_at END \
         WHERE id = $5",
    )
    .bind(to.as_str())
    .bind(opt_to_ms(resolved_at))
    .bind(opt_to_ms(closed_at))
    .bind(to_ms(now))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound("ticket"));
    }
    Ok(())
}

/// Moves `updated_at` forward to `at` (never backwards: late-arriving old messages do not
/// make a ticket look older).
pub(crate) async fn touch(
    conn: &mut AnyConnection,
    id: TicketId,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tickets SET updated_at = CASE WHEN updated_at < $1 THEN $1 ELSE updated_at END \
         WHERE id = $2",
    )
    .bind(to_ms(at))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
