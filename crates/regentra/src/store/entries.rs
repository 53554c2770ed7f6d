//! Ticket entries (the timeline): client messages, replies, internal notes and events, plus
//! their edit revisions, deletions, attachments and the delivery state of replies.
//!
//! Inbound Teams messages are keyed by (chat id, Graph message id) — unique in the schema — so
//! ingesting the same message twice never creates a second entry; a newer
//! `lastModifiedDateTime` is an edit ([`apply_edit`]) or a deletion ([`mark_deleted`]).
//! Technician replies start `queued`; the outbox (its own module and table, written in the same
//! transaction as [`add_reply`]) reports progress through [`update_delivery`].
//! Notes are never delivered anywhere.

use std::collections::HashMap;

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::sql::{
    from_flag, from_ms, opt_from_ms, parse_enum, parse_stored, parse_stored_opt, to_flag, to_ms,
};
use super::{StoreError, technicians, tickets, write_tx};
use crate::tickets::lifecycle;
use crate::tickets::{
    Attachment, AttachmentId, ChatId, Contact, ContactId, Delivery, DeliveryState, DownloadState,
    Entry, EntryId, EntryKind, EntryRevision, GraphMessageId, NewAttachment, TechnicianId,
    TicketId, text_to_html,
};

/// Longest reply or note a technician may write, in characters (Teams itself refuses
/// messages of roughly 28 KB).
pub const MAX_TEXT_CHARS: usize = 20_000;

/// Author name on event entries.
pub const SYSTEM_AUTHOR: &str = "Regentra";

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: String,
    ticket_id: String,
    kind: String,
    author_technician_id: Option<String>,
    author_contact_id: Option<String>,
    author_name: String,
    text: String,
    html: String,
    teams_chat_id: Option<String>,
    graph_message_id: Option<String>,
    graph_last_modified: Option<i64>,
    sent_from_teams: i64,
    delivery_state: Option<String>,
    delivery_attempts: i64,
    delivery_error: Option<String>,
    sent_at: Option<i64>,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
    created_at: i64,
}

impl EntryRow {
    fn into_entry(self, attachments: Vec<Attachment>) -> Result<Entry, StoreError> {
        let delivery = match self.delivery_state.as_deref() {
            Some(state) => Some(Delivery {
                state: parse_enum::<DeliveryState>(state)?,
                attempts: self.delivery_attempts,
                error: self.delivery_error,
                sent_at: opt_from_ms(self.sent_at)?,
            }),
            None => None,
        };
        Ok(Entry {
            id: parse_stored(&self.id, EntryId::parse)?,
            ticket_id: parse_stored(&self.ticket_id, TicketId::parse)?,
            kind: parse_enum(&self.kind)?,
            author_technician_id: parse_stored_opt(
                self.author_technician_id.as_deref(),
                TechnicianId::parse,
            )?,
            author_contact_id: parse_stored_opt(
                self.author_contact_id.as_deref(),
                ContactId::parse,
            )?,
            author_name: self.author_name,
            text: self.text,
            html: self.html,
            teams_chat_id: parse_stored_opt(self.teams_chat_id.as_deref(), ChatId::parse)?,
            graph_message_id: parse_stored_opt(
                self.graph_message_id.as_deref(),
                GraphMessageId::parse,
            )?,
            graph_last_modified: opt_from_ms(self.graph_last_modified)?,
            sent_from_teams: from_flag(self.sent_from_teams),
            delivery,
            edited_at: opt_from_ms(self.edited_at)?,
            deleted_at: opt_from_ms(self.deleted_at)?,
            created_at: from_ms(self.created_at)?,
            attachments,
        })
    }
}

const ENTRY_COLUMNS: &str = "id, ticket_id, kind, author_technician_id, author_contact_id, \
     author_name, text, html, teams_chat_id, graph_message_id, graph_last_modified, \
     sent_from_teams, delivery_state, delivery_attempts, delivery_error, sent_at, edited_at, \
     deleted_at, created_at";

#[derive(sqlx::FromRow)]
struct AttachmentRow {
    id: String,
    entry_id: String,
    kind: String,
    name: String,
    url: Option<String>,
    content_type: Option<String>,
    size_bytes: Option<i64>,
    download_state: String,
    created_at: i64,
}

impl AttachmentRow {
    fn into_attachment(self) -> Result<Attachment, StoreError> {
        Ok(Attachment {
            id: parse_stored(&self.id, AttachmentId::parse)?,
            entry_id: parse_stored(&self.entry_id, EntryId::parse)?,
            kind: parse_enum(&self.kind)?,
            name: self.name,
            url: self.url,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            download_state: parse_enum(&self.download_state)?,
            created_at: from_ms(self.created_at)?,
        })
    }
}

const ATTACHMENT_COLUMNS: &str = "a.id, a.entry_id, a.kind, a.name, a.url, a.content_type, \
     CAST(length(a.content) AS BIGINT) AS size_bytes, a.download_state, a.created_at";

/// A ticket's entries, oldest first, each with its attachments.
pub async fn list_for_ticket(
    conn: &mut AnyConnection,
    ticket: TicketId,
) -> Result<Vec<Entry>, StoreError> {
    let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENTRY_COLUMNS} FROM ticket_entries WHERE ticket_id = $1 ORDER BY created_at, id"
    )))
    .bind(ticket.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let attachment_rows: Vec<AttachmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a \
         JOIN ticket_entries e ON e.id = a.entry_id \
         WHERE e.ticket_id = $1 ORDER BY a.created_at, a.id"
    )))
    .bind(ticket.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut by_entry: HashMap<EntryId, Vec<Attachment>> = HashMap::new();
    for row in attachment_rows {
        let attachment = row.into_attachment()?;
        by_entry
            .entry(attachment.entry_id)
            .or_default()
            .push(attachment);
    }
    rows.into_iter()
        .map(|row| {
            let entry_id = parse_stored(&row.id, EntryId::parse)?;
            row.into_entry(by_entry.remove(&entry_id).unwrap_or_default())
        })
        .collect()
}

/// One entry with its attachments.
pub async fn get(conn: &mut AnyConnection, id: EntryId) -> Result<Entry, StoreError> {
    let row: Option<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENTRY_COLUMNS} FROM ticket_entries WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let row = row.ok_or(StoreError::NotFound("entry"))?;
    let attachments = attachments_of(conn, id).await?;
    row.into_entry(attachments)
}

/// The entry stored for this Teams message, if any (client message, or a reply we sent or
/// recorded from Teams).
pub async fn find_by_graph_id(
    conn: &mut AnyConnection,
    chat: &ChatId,
    message: &GraphMessageId,
) -> Result<Option<Entry>, StoreError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM ticket_entries WHERE teams_chat_id = $1 AND graph_message_id = $2",
    )
    .bind(chat.as_str())
    .bind(message.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => Ok(Some(get(conn, parse_stored(&id, EntryId::parse)?).await?)),
        None => Ok(None),
    }
}

/// Adds an internal note (never sent to Teams; no status change).
pub async fn add_note(
    conn: &mut AnyConnection,
    ticket: TicketId,
    by: TechnicianId,
    text: &str,
    now: OffsetDateTime,
) -> Result<Entry, StoreError> {
    let text = technician_text(text)?;
    let mut tx = write_tx(conn).await?;
    let ticket_row = tickets::get(&mut tx, ticket).await?;
    let technician = technicians::get(&mut tx, by).await?;
    let id = EntryId::new();
    sqlx::query(
        "INSERT INTO ticket_entries (id, ticket_id, kind, author_technician_id, author_name, \
           text, html, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_string())
    .bind(ticket_row.id.to_string())
    .bind(EntryKind::Note.as_str())
    .bind(by.to_string())
    .bind(&technician.display_name)
    .bind(text)
    .bind(text_to_html(text))
    .bind(to_ms(now))
    .execute(&mut *tx)
    .await?;
    tickets::touch(&mut tx, ticket, now).await?;
    let entry = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(entry)
}

/// Adds a technician's public reply, `queued` for delivery to the ticket's Teams chat, and
/// applies the lifecycle's status-after-reply (`new` → `open`). `Invalid` when the ticket has
/// no Teams chat (nowhere to deliver: add a note instead).
///
/// Pass a transaction to also write the outbox row atomically:
/// `let mut tx = db.begin().await?; let e = add_reply(&mut tx, …).await?; outbox::enqueue(&mut tx, e.id, …).await?; tx.commit().await?;`
pub async fn add_reply(
    conn: &mut AnyConnection,
    ticket: TicketId,
    by: TechnicianId,
    text: &str,
    now: OffsetDateTime,
) -> Result<Entry, StoreError> {
    let text = technician_text(text)?;
    let mut tx = write_tx(conn).await?;
    let ticket_row = tickets::get(&mut tx, ticket).await?;
    let Some(chat) = ticket_row.teams_chat_id.clone() else {
        return Err(StoreError::Invalid(format!(
            "ticket #{} has no Teams chat to reply in; add an internal note instead",
            ticket_row.number
        )));
    };
    let technician = technicians::get(&mut tx, by).await?;
    let id = EntryId::new();
    sqlx::query(
        "INSERT INTO ticket_entries (id, ticket_id, kind, author_technician_id, author_name, \
           text, html, teams_chat_id, delivery_state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id.to_string())
    .bind(ticket.to_string())
    .bind(EntryKind::Reply.as_str())
    .bind(by.to_string())
    .bind(&technician.display_name)
    .bind(text)
    .bind(text_to_html(text))
    .bind(chat.as_str())
    .bind(DeliveryState::Queued.as_str())
    .bind(to_ms(now))
    .execute(&mut *tx)
    .await?;
    apply_status_after_reply(&mut tx, ticket_row.id, ticket_row.status, now).await?;
    tickets::touch(&mut tx, ticket, now).await?;
    let entry = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(entry)
}

/// Adds an event entry ("Federation check failed: …") authored by Regentra.
pub async fn add_event(
    conn: &mut AnyConnection,
    ticket: TicketId,
    text: &str,
    now: OffsetDateTime,
) -> Result<Entry, StoreError> {
    let mut tx = write_tx(conn).await?;
    tickets::get(&mut tx, ticket).await?;
    let id = insert_event(&mut tx, ticket, text, now).await?;
    let entry = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(entry)
}

/// A message the connected support user typed directly in Teams (ARCHITECTURE §5.4): recorded
/// as a reply "sent from Teams", never as client content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsReply {
    pub chat_id: ChatId,
    pub graph_message_id: GraphMessageId,
    /// The support user's display name.
    pub author_name: String,
    pub text: String,
    /// Sanitised HTML.
    pub html: String,
    pub sent_at: OffsetDateTime,
    pub last_modified: OffsetDateTime,
}

/// What [`record_teams_reply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamsReplyOutcome {
    /// Stored on the chat's current ticket.
    Recorded {
        ticket_id: TicketId,
        entry_id: EntryId,
    },
    /// Already stored: a reply Regentra sent (its Graph id was recorded) or seen before.
    AlreadyKnown { entry_id: EntryId },
    /// The chat has no ticket yet (the support user wrote first): nothing to attach it to.
    NoTicket,
}

/// Records a support user's own Teams message on the chat's current ticket, idempotently on
/// (chat, message id). Applies the status-after-reply rule like a reply from Regentra.
pub async fn record_teams_reply(
    conn: &mut AnyConnection,
    reply: &TeamsReply,
    now: OffsetDateTime,
) -> Result<TeamsReplyOutcome, StoreError> {
    let mut tx = write_tx(conn).await?;
    if let Some(existing) =
        find_by_graph_id(&mut tx, &reply.chat_id, &reply.graph_message_id).await?
    {
        return Ok(TeamsReplyOutcome::AlreadyKnown {
            entry_id: existing.id,
        });
    }
    let Some(ticket) = tickets::current_for_chat(&mut tx, &reply.chat_id).await? else {
        return Ok(TeamsReplyOutcome::NoTicket);
    };
    let id = EntryId::new();
    let inserted = sqlx::query(
        "INSERT INTO ticket_entries (id, ticket_id, kind, author_name, text, html, \
           teams_chat_id, graph_message_id, graph_last_modified, sent_from_teams, \
           delivery_state, delivery_attempts, sent_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (teams_chat_id, graph_message_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(ticket.id.to_string())
    .bind(EntryKind::Reply.as_str())
    .bind(display_or_placeholder(&reply.author_name, "Support"))
    .bind(&reply.text)
    .bind(&reply.html)
    .bind(reply.chat_id.as_str())
    .bind(reply.graph_message_id.as_str())
    .bind(to_ms(reply.last_modified))
    .bind(to_flag(true))
    .bind(DeliveryState::Sent.as_str())
    .bind(1_i64)
    .bind(to_ms(reply.sent_at))
    .bind(to_ms(reply.sent_at))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        drop(tx);
        let existing = find_by_graph_id(conn, &reply.chat_id, &reply.graph_message_id)
            .await?
            .ok_or(StoreError::NotFound("entry"))?;
        return Ok(TeamsReplyOutcome::AlreadyKnown {
            entry_id: existing.id,
        });
    }
    apply_status_after_reply(&mut tx, ticket.id, ticket.status, now).await?;
    tickets::touch(&mut tx, ticket.id, reply.sent_at).await?;
    tx.commit().await?;
    Ok(TeamsReplyOutcome::Recorded {
        ticket_id: ticket.id,
        entry_id: id,
    })
}

/// A newer version of a Teams message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditedMessage {
    pub text: String,
    pub html: String,
    /// Graph `lastModifiedDateTime` of this version.
    pub last_modified: OffsetDateTime,
}

/// What an edit or deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    /// The entry now shows the new version (the old text is kept as a revision), or is marked
    /// deleted.
    Applied,
    /// The version is newer but text and HTML are the same (e.g. a reaction changed
    /// `lastModifiedDateTime`): only the modification time was recorded.
    Unchanged,
    /// We already hold this or a newer version (or the entry is deleted): nothing changed.
    Stale,
    /// No entry for this (chat, message id).
    UnknownMessage,
}

/// Applies an edit of a Teams message keyed by (chat, message id), keeping the previous
/// text and HTML in `entry_revisions`. Only versions newer than the stored
/// `graph_last_modified` change anything.
pub async fn apply_edit(
    conn: &mut AnyConnection,
    chat: &ChatId,
    message: &GraphMessageId,
    edited: &EditedMessage,
    now: OffsetDateTime,
) -> Result<EditOutcome, StoreError> {
    let mut tx = write_tx(conn).await?;
    let Some(entry) = find_by_graph_id(&mut tx, chat, message).await? else {
        return Ok(EditOutcome::UnknownMessage);
    };
    if entry.deleted_at.is_some() || !is_newer(&entry, edited.last_modified) {
        return Ok(EditOutcome::Stale);
    }
    let outcome = if entry.text == edited.text && entry.html == edited.html {
        sqlx::query("UPDATE ticket_entries SET graph_last_modified = $1 WHERE id = $2")
            .bind(to_ms(edited.last_modified))
            .bind(entry.id.to_string())
            .execute(&mut *tx)
            .await?;
        EditOutcome::Unchanged
    } else {
        sqlx::query(
            "INSERT INTO entry_revisions (id, entry_id, previous_text, previous_html, replaced_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(entry.id.to_string())
        .bind(&entry.text)
        .bind(&entry.html)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE ticket_entries SET text = $1, html = $2, graph_last_modified = $3, \
               edited_at = $3 WHERE id = $4",
        )
        .bind(&edited.text)
        .bind(&edited.html)
        .bind(to_ms(edited.last_modified))
        .bind(entry.id.to_string())
        .execute(&mut *tx)
        .await?;
        tickets::touch(&mut tx, entry.ticket_id, edited.last_modified).await?;
        EditOutcome::Applied
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Marks a Teams message deleted (keyed by chat, message id). The text stays for the
/// technicians' history; the timeline shows it as deleted. `deleted_at` is the Graph
/// `deletedDateTime` (or `lastModifiedDateTime`).
pub async fn mark_deleted(
    conn: &mut AnyConnection,
    chat: &ChatId,
    message: &GraphMessageId,
    deleted_at: OffsetDateTime,
) -> Result<EditOutcome, StoreError> {
    let mut tx = write_tx(conn).await?;
    let Some(entry) = find_by_graph_id(&mut tx, chat, message).await? else {
        return Ok(EditOutcome::UnknownMessage);
    };
    if entry.deleted_at.is_some() {
        return Ok(EditOutcome::Stale);
    }
    let last_modified = match entry.graph_last_modified {
        Some(previous) if previous > deleted_at => previous,
        _ => deleted_at,
    };
    sqlx::query(
        "UPDATE ticket_entries SET deleted_at = $1, graph_last_modified = $2 WHERE id = $3",
    )
    .bind(to_ms(deleted_at))
    .bind(to_ms(last_modified))
    .bind(entry.id.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(EditOutcome::Applied)
}

/// Earlier versions of an entry, oldest first.
pub async fn revisions(
    conn: &mut AnyConnection,
    entry: EntryId,
) -> Result<Vec<EntryRevision>, StoreError> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT entry_id, previous_text, previous_html, replaced_at FROM entry_revisions \
         WHERE entry_id = $1 ORDER BY replaced_at, id",
    )
    .bind(entry.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(entry_id, previous_text, previous_html, replaced_at)| {
            Ok(EntryRevision {
                entry_id: parse_stored(&entry_id, EntryId::parse)?,
                previous_text,
                previous_html,
                replaced_at: from_ms(replaced_at)?,
            })
        })
        .collect()
}

/// Progress of a reply's delivery, reported by the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryUpdate {
    /// An attempt failed and will be retried; `error` is shown meanwhile. State stays `queued`.
    Retrying { error: String },
    /// Posted to Teams: state `sent`, the Graph message id recorded (so the poller recognises
    /// it as ours), error cleared.
    Sent {
        graph_message_id: GraphMessageId,
        sent_at: OffsetDateTime,
    },
    /// Permanent failure: state `failed` with the reason.
    Failed { error: String },
    /// A technician pressed "retry": back to `queued`, error cleared (attempts kept).
    Requeued,
}

/// Updates a reply's delivery state. Attempts count up for `Retrying`, `Sent` and `Failed`.
/// `Invalid` for entries that are not deliverable replies; `Conflict` when `Sent` carries a
/// Graph id already stored for another entry of the chat.
pub async fn update_delivery(
    conn: &mut AnyConnection,
    entry: EntryId,
    update: &DeliveryUpdate,
) -> Result<Entry, StoreError> {
    let mut tx = write_tx(conn).await?;
    let current = get(&mut tx, entry).await?;
    if current.kind != EntryKind::Reply || current.delivery.is_none() || current.sent_from_teams {
        return Err(StoreError::Invalid(
            "only replies sent through Regentra have a delivery state".into(),
        ));
    }
    let query = match update {
        DeliveryUpdate::Retrying { error } => sqlx::query(
            "UPDATE ticket_entries SET delivery_state = 'queued', \
               delivery_attempts = delivery_attempts + 1, delivery_error = $1 WHERE id = $2",
        )
        .bind(error.clone())
        .bind(entry.to_string()),
        DeliveryUpdate::Sent {
            graph_message_id,
            sent_at,
        } => sqlx::query(
            "UPDATE ticket_entries SET delivery_state = 'sent', \
               delivery_attempts = delivery_attempts + 1, delivery_error = NULL, \
               graph_message_id = $1, graph_last_modified = $2, sent_at = $2 WHERE id = $3",
        )
        .bind(graph_message_id.as_str().to_owned())
        .bind(to_ms(*sent_at))
        .bind(entry.to_string()),
        DeliveryUpdate::Failed { error } => sqlx::query(
            "UPDATE ticket_entries SET delivery_state = 'failed', \
               delivery_attempts = delivery_attempts + 1, delivery_error = $1 WHERE id = $2",
        )
        .bind(error.clone())
        .bind(entry.to_string()),
        DeliveryUpdate::Requeued => sqlx::query(
            "UPDATE ticket_entries SET delivery_state = 'queued', delivery_error = NULL \
             WHERE id = $1",
        )
        .bind(entry.to_string()),
    };
    query.execute(&mut *tx).await.map_err(|err| {
        let err = StoreError::from(err);
        if err.is_unique_violation() {
            StoreError::Conflict(
                "this Teams message id is already recorded for another entry of the chat".into(),
            )
        } else {
            err
        }
    })?;
    let updated = get(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Adds an attachment to an entry.
pub async fn add_attachment(
    conn: &mut AnyConnection,
    entry: EntryId,
    new: &NewAttachment,
    now: OffsetDateTime,
) -> Result<Attachment, StoreError> {
    let id = insert_attachment(conn, entry, new, now).await?;
    attachment(conn, id).await
}

/// One attachment's metadata.
pub async fn attachment(
    conn: &mut AnyConnection,
    id: AttachmentId,
) -> Result<Attachment, StoreError> {
    let row: Option<AttachmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("attachment"))?
        .into_attachment()
}

/// The stored bytes of an attachment and their content type; `None` while not downloaded.
pub async fn attachment_content(
    conn: &mut AnyConnection,
    id: AttachmentId,
) -> Result<Option<(Option<String>, Vec<u8>)>, StoreError> {
    let row: Option<(Option<String>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT content_type, content FROM attachments WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    let (content_type, content) = row.ok_or(StoreError::NotFound("attachment"))?;
    Ok(content.map(|bytes| (content_type, bytes)))
}

/// Stores downloaded bytes: state `downloaded`.
pub async fn store_attachment_content(
    conn: &mut AnyConnection,
    id: AttachmentId,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let result = sqlx::query(
        "UPDATE attachments SET content = $1, \
           content_type = COALESCE($2, content_type), download_state = 'downloaded' \
         WHERE id = $3",
    )
    .bind(bytes.to_vec())
    .bind(content_type.map(str::to_owned))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound("attachment"));
    }
    Ok(())
}

/// Records a download outcome without bytes: `Pending` (retry later) or `Failed` (give up).
pub async fn set_download_state(
    conn: &mut AnyConnection,
    id: AttachmentId,
    state: DownloadState,
) -> Result<(), StoreError> {
    let result = sqlx::query("UPDATE attachments SET download_state = $1 WHERE id = $2")
        .bind(state.as_str())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound("attachment"));
    }
    Ok(())
}

/// Attachments waiting for a (re)try of their download, oldest first.
pub async fn attachments_pending_download(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<Attachment>, StoreError> {
    let rows: Vec<AttachmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.download_state = 'pending' \
         ORDER BY a.created_at, a.id LIMIT $1"
    )))
    .bind(limit.clamp(1, 1000))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(AttachmentRow::into_attachment)
        .collect()
}

// ---- crate-internal writers used by `tickets` -------------------------------------------

/// Inserts an event entry; returns its id. Touches the ticket.
pub(crate) async fn insert_event(
    conn: &mut AnyConnection,
    ticket: TicketId,
    text: &str,
    now: OffsetDateTime,
) -> Result<EntryId, StoreError> {
    let id = EntryId::new();
    sqlx::query(
        "INSERT INTO ticket_entries (id, ticket_id, kind, author_name, text, html, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(ticket.to_string())
    .bind(EntryKind::Event.as_str())
    .bind(SYSTEM_AUTHOR)
    .bind(text)
    .bind(text_to_html(text))
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    tickets::touch(conn, ticket, now).await?;
    Ok(id)
}

/// Inserts a client message entry with its attachments. `None` when (chat, message id) is
/// already stored (a concurrent writer won): the caller must roll back.
pub(crate) async fn insert_client_message(
    conn: &mut AnyConnection,
    ticket: TicketId,
    sender: &Contact,
    message: &super::tickets::InboundClientMessage,
) -> Result<Option<EntryId>, StoreError> {
    let id = EntryId::new();
    let inserted = sqlx::query(
        "INSERT INTO ticket_entries (id, ticket_id, kind, author_contact_id, author_name, text, \
           html, teams_chat_id, graph_message_id, graph_last_modified, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (teams_chat_id, graph_message_id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(ticket.to_string())
    .bind(EntryKind::ClientMessage.as_str())
    .bind(sender.id.to_string())
    .bind(&sender.display_name)
    .bind(&message.text)
    .bind(&message.html)
    .bind(message.chat_id.as_str())
    .bind(message.graph_message_id.as_str())
    .bind(to_ms(message.last_modified))
    .bind(to_ms(message.sent_at))
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    for attachment in &message.attachments {
        insert_attachment(conn, id, attachment, message.sent_at).await?;
    }
    Ok(Some(id))
}

async fn insert_attachment(
    conn: &mut AnyConnection,
    entry: EntryId,
    new: &NewAttachment,
    now: OffsetDateTime,
) -> Result<AttachmentId, StoreError> {
    let id = AttachmentId::new();
    let name = display_or_placeholder(&new.name, "attachment");
    let download_state = match (&new.content, new.download_state) {
        (Some(_), _) => DownloadState::Downloaded,
        (None, DownloadState::Downloaded) => DownloadState::Pending,
        (None, state) => state,
    };
    sqlx::query(
        "INSERT INTO attachments (id, entry_id, kind, name, url, content_type, content, \
           download_state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_string())
    .bind(entry.to_string())
    .bind(new.kind.as_str())
    .bind(name)
    .bind(new.url.clone())
    .bind(new.content_type.clone())
    .bind(new.content.clone())
    .bind(download_state.as_str())
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db_err) if db_err.is_foreign_key_violation() => {
            StoreError::NotFound("entry")
        }
        _ => StoreError::from(err),
    })?;
    Ok(id)
}

async fn attachments_of(
    conn: &mut AnyConnection,
    entry: EntryId,
) -> Result<Vec<Attachment>, StoreError> {
    let rows: Vec<AttachmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.entry_id = $1 \
         ORDER BY a.created_at, a.id"
    )))
    .bind(entry.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(AttachmentRow::into_attachment)
        .collect()
}

async fn apply_status_after_reply(
    conn: &mut AnyConnection,
    ticket: TicketId,
    status: crate::tickets::TicketStatus,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let after = lifecycle::status_after_technician_reply(status);
    if after != status {
        tickets::write_status(conn, ticket, after, now).await?;
    }
    Ok(())
}

fn technician_text(text: &str) -> Result<&str, StoreError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(StoreError::Invalid("text must not be empty".into()));
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(StoreError::Invalid(format!(
            "text must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(trimmed)
}

fn display_or_placeholder<'a>(value: &'a str, placeholder: &'a str) -> &'a str {
    match value.trim() {
        "" => placeholder,
        trimmed => trimmed,
    }
}

fn is_newer(entry: &Entry, candidate: OffsetDateTime) -> bool {
    match entry.graph_last_modified {
        Some(stored) => to_ms(candidate) > to_ms(stored),
        None => true,
    }
}
