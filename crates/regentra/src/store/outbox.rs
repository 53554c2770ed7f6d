//! The outbox table: one row per technician reply that must reach a Teams chat, written in the
//! same transaction as the reply entry (`store::entries::add_reply`).
//!
//! The row is the delivery worker's bookkeeping (order, lease, next attempt, whether a POST may
//! have left); the reply entry's `delivery_*` columns are what technicians see, and the bridge
//! updates both in one transaction. Rules encoded here:
//!
//! * **Order per chat**: only the oldest `pending` row of a chat (its *head*) may be claimed, so
//!   replies to one chat leave in the order they were written, one at a time.
//! * **Leases**: a worker claims a head with a conditional `UPDATE … RETURNING` (portable, no
//!   `FOR UPDATE`); another worker (or process) sees it as taken until the lease runs out.
//! * **Pace**: `outbox_chat_pace` holds the earliest time of the next post to each chat
//!   (Teams: one post per second per user per chat), shared by every worker.
//! * **Unknown outcomes**: `attempt_started_at` is committed *before* a POST and cleared only
//!   once its outcome is known, so after a crash or a timeout the next worker knows it must look
//!   in the chat before sending again.
//!
//! This module never talks to Graph and never decides *why* something failed; it stores what
//! the bridge (`bridge::outbox`) decided.

use std::fmt;
use std::str::FromStr;

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::sql::{from_ms, opt_from_ms, parse_enum, parse_stored, parse_stored_opt, to_ms};
use super::{StoreError, write_tx};
use crate::tickets::{ChatId, EntryId, GraphMessageId, ValidationError};

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Waiting to be sent (first time, or again after a retryable failure).
    Pending,
    /// Posted; the Graph message id is recorded.
    Sent,
    /// Given up until a technician presses Retry.
    Failed,
}

impl OutboxState {
    pub const ALL: [OutboxState; 3] =
        [OutboxState::Pending, OutboxState::Sent, OutboxState::Failed];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxState {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutboxState::ALL
            .into_iter()
            .find(|state| state.as_str() == s.trim())
            .ok_or_else(|| {
                ValidationError::new(
                    "outbox_state",
                    "outbox state must be pending, sent or failed",
                )
            })
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Insertion order (the order replies were written).
    pub id: i64,
    pub entry_id: EntryId,
    pub chat_id: ChatId,
    /// The exact HTML body posted to Teams.
    pub html: String,
    pub state: OutboxState,
    /// Attempts since the row was (re)queued; the retry budget counts these.
    pub attempts: i64,
    pub next_attempt_at: OffsetDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<OffsetDateTime>,
    /// Set while a POST may have reached Teams without us learning its outcome.
    pub attempt_started_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub graph_message_id: Option<GraphMessageId>,
    pub sent_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    entry_id: String,
    chat_id: String,
    html: String,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    attempt_started_at: Option<i64>,
    last_error: Option<String>,
    graph_message_id: Option<String>,
    sent_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_row(self) -> Result<OutboxRow, StoreError> {
        Ok(OutboxRow {
            id: self.id,
            entry_id: parse_stored(&self.entry_id, EntryId::parse)?,
            chat_id: parse_stored(&self.chat_id, ChatId::parse)?,
            html: self.html,
            state: parse_enum(&self.state)?,
            attempts: self.attempts,
            next_attempt_at: from_ms(self.next_attempt_at)?,
            lease_owner: self.lease_owner,
            lease_until: opt_from_ms(self.lease_until)?,
            attempt_started_at: opt_from_ms(self.attempt_started_at)?,
            last_error: self.last_error,
            graph_message_id: parse_stored_opt(
                self.graph_message_id.as_deref(),
                GraphMessageId::parse,
            )?,
            sent_at: opt_from_ms(self.sent_at)?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

const COLUMNS: &str = "id, entry_id, chat_id, html, state, attempts, next_attempt_at, \
     lease_owner, lease_until, attempt_started_at, last_error, graph_message_id, sent_at, \
     created_at, updated_at";

/// A row to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxRow<'a> {
    pub entry_id: EntryId,
    pub chat_id: &'a ChatId,
    pub html: &'a str,
    /// `Pending` normally; `Failed` (with `error`) when the reply was refused before sending.
    pub state: OutboxState,
    pub error: Option<&'a str>,
}

/// Adds a row, due at once. Pass the transaction that added the reply entry.
pub async fn insert(
    conn: &mut AnyConnection,
    new: &NewOutboxRow<'_>,
    now: OffsetDateTime,
) -> Result<OutboxRow, StoreError> {
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO outbox (entry_id, chat_id, html, state, attempts, next_attempt_at, \
           last_error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 0, $5, $6, $5, $5) RETURNING {COLUMNS}"
    )))
    .bind(new.entry_id.to_string())
    .bind(new.chat_id.as_str())
    .bind(new.html)
    .bind(new.state.as_str())
    .bind(to_ms(now))
    .bind(new.error.map(str::to_owned))
    .fetch_one(&mut *conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db_err) if db_err.is_unique_violation() => {
            StoreError::Conflict("this reply is already in the outbox".into())
        }
        sqlx::Error::Database(db_err) if db_err.is_foreign_key_violation() => {
            StoreError::NotFound("entry")
        }
        _ => StoreError::from(err),
    })?;
    row.into_row()
}

/// The row of a reply entry, if it has one.
pub async fn get_by_entry(
    conn: &mut AnyConnection,
    entry: EntryId,
) -> Result<Option<OutboxRow>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE entry_id = $1"
    )))
    .bind(entry.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_row).transpose()
}

/// One row by id.
pub async fn get(conn: &mut AnyConnection, id: i64) -> Result<OutboxRow, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("outbox row"))?.into_row()
}

/// Rows in `state`, oldest first (for tests, diagnostics and the "work left behind" check).
pub async fn list_in_state(
    conn: &mut AnyConnection,
    state: OutboxState,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE state = $1 ORDER BY id"
    )))
    .bind(state.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_row).collect()
}

/// How many rows are waiting to be sent.
pub async fn pending_count(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// The oldest pending row of one chat, with what keeps it from being sent right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHead {
    pub row_id: i64,
    pub chat_id: ChatId,
    pub next_attempt_at: OffsetDateTime,
    /// Set while some worker holds the row (may be in the past = expired, free to take).
    pub lease_until: Option<OffsetDateTime>,
    /// The earliest time the next post to this chat may leave (pace).
    pub next_post_at: Option<OffsetDateTime>,
}

impl ChatHead {
    /// When this head may be claimed: the latest of its retry time, the chat's pace and a
    /// lease held by someone else.
    pub fn due_at(&self) -> OffsetDateTime {
        [
            Some(self.next_attempt_at),
            self.lease_until,
            self.next_post_at,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(self.next_attempt_at)
    }
}

/// `(row id, chat id, next_attempt_at, lease_until, next_post_at)` as read.
type HeadRow = (i64, String, i64, Option<i64>, Option<i64>);

/// The head of every chat that has pending rows, oldest first.
pub async fn chat_heads(conn: &mut AnyConnection) -> Result<Vec<ChatHead>, StoreError> {
    let rows: Vec<HeadRow> = sqlx::query_as(
        "SELECT o.id, o.chat_id, o.next_attempt_at, o.lease_until, p.next_post_at \
         FROM outbox o LEFT JOIN outbox_chat_pace p ON p.chat_id = o.chat_id \
         WHERE o.id IN (SELECT MIN(id) FROM outbox WHERE state = 'pending' GROUP BY chat_id) \
         ORDER BY o.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(
            |(row_id, chat_id, next_attempt_at, lease_until, next_post_at)| {
                Ok(ChatHead {
                    row_id,
                    chat_id: parse_stored(&chat_id, ChatId::parse)?,
                    next_attempt_at: from_ms(next_attempt_at)?,
                    lease_until: opt_from_ms(lease_until)?,
                    next_post_at: opt_from_ms(next_post_at)?,
                })
            },
        )
        .collect()
}

/// Takes row `id` for `owner` until `lease_until`, if it is still pending and nobody else holds
/// a live lease on it. `None` when another worker was faster (or the row moved on).
pub async fn try_claim(
    conn: &mut AnyConnection,
    id: i64,
    owner: &str,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
) -> Result<Option<OutboxRow>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE id = $4 AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
         RETURNING {COLUMNS}"
    )))
    .bind(owner)
    .bind(to_ms(lease_until))
    .bind(to_ms(now))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_row).transpose()
}

/// Extends `owner`'s lease on row `id`. `false` when the lease was lost (expired and taken).
pub async fn renew_lease(
    conn: &mut AnyConnection,
    id: i64,
    owner: &str,
    lease_until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'pending'",
    )
    .bind(to_ms(lease_until))
    .bind(id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records, before the POST leaves, that an attempt starts now: `attempt_started_at`, one more
/// attempt, and the chat's pace (`next_post_at`). `false` (nothing written) when `owner` no
/// longer holds the row: then it must not send.
pub async fn start_attempt(
    conn: &mut AnyConnection,
    id: i64,
    owner: &str,
    now: OffsetDateTime,
    next_post_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut tx = write_tx(conn).await?;
    let chat: Option<String> = sqlx::query_scalar(
        "UPDATE outbox SET attempt_started_at = $1, attempts = attempts + 1, updated_at = $1 \
         WHERE id = $2 AND lease_owner = $3 AND state = 'pending' RETURNING chat_id",
    )
    .bind(to_ms(now))
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(chat) = chat else {
        return Ok(false);
    };
    set_next_post_at(&mut tx, &chat, next_post_at).await?;
    tx.commit().await?;
    Ok(true)
}

/// Moves the chat's pace to at least `next_post_at` (never earlier: after a 429 Teams' wait
/// and our own spacing both hold).
pub async fn set_chat_pace(
    conn: &mut AnyConnection,
    chat: &ChatId,
    next_post_at: OffsetDateTime,
) -> Result<(), StoreError> {
    set_next_post_at(conn, chat.as_str(), next_post_at).await
}

async fn set_next_post_at(
    conn: &mut AnyConnection,
    chat: &str,
    next_post_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox_chat_pace (chat_id, next_post_at) VALUES ($1, $2) \
         ON CONFLICT (chat_id) DO UPDATE SET next_post_at = CASE \
           WHEN excluded.next_post_at > outbox_chat_pace.next_post_at \
           THEN excluded.next_post_at ELSE outbox_chat_pace.next_post_at END",
    )
    .bind(chat)
    .bind(to_ms(next_post_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The POST (or the reconciliation) showed the message is in the chat: `sent`, lease and
/// unknown-outcome marker cleared. Recorded even if the lease was lost meanwhile, because it
/// is the truth; `false` only when the row is no longer pending (someone else finished it).
pub async fn mark_sent(
    conn: &mut AnyConnection,
    id: i64,
    graph_message_id: &GraphMessageId,
    sent_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET state = 'sent', graph_message_id = $1, sent_at = $2, \
           lease_owner = NULL, lease_until = NULL, attempt_started_at = NULL, last_error = NULL, \
           updated_at = $3 \
         WHERE id = $4 AND state = 'pending'",
    )
    .bind(graph_message_id.as_str())
    .bind(to_ms(sent_at))
    .bind(to_ms(now))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// What happened to the attempt's possible POST, for [`schedule_retry`] and [`mark_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Teams certainly did not store the message (refused, throttled, never reached):
    /// the unknown-outcome marker is cleared.
    NotSent,
    /// The message may be in the chat: the marker stays, so the next attempt looks first.
    Unknown,
}

/// A retryable failure: back to waiting until `next_attempt_at`, lease released. `false` when
/// `owner` no longer holds the row (nothing written).
pub async fn schedule_retry(
    conn: &mut AnyConnection,
    id: i64,
    owner: &str,
    next_attempt_at: OffsetDateTime,
    error: &str,
    outcome: AttemptOutcome,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET next_attempt_at = $1, last_error = $2, lease_owner = NULL, \
           lease_until = NULL, \
           attempt_started_at = CASE WHEN $3 = 1 THEN attempt_started_at ELSE NULL END, \
           updated_at = $4 \
         WHERE id = $5 AND lease_owner = $6 AND state = 'pending'",
    )
    .bind(to_ms(next_attempt_at))
    .bind(error)
    .bind(i64::from(outcome == AttemptOutcome::Unknown))
    .bind(to_ms(now))
    .bind(id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A permanent failure: `failed` until a technician retries. The unknown-outcome marker stays
/// when the message may have arrived, so a Retry looks in the chat first. `false` when `owner`
/// no longer holds the row.
pub async fn mark_failed(
    conn: &mut AnyConnection,
    id: i64,
    owner: &str,
    error: &str,
    outcome: AttemptOutcome,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET state = 'failed', last_error = $1, lease_owner = NULL, \
           lease_until = NULL, \
           attempt_started_at = CASE WHEN $2 = 1 THEN attempt_started_at ELSE NULL END, \
           updated_at = $3 \
         WHERE id = $4 AND lease_owner = $5 AND state = 'pending'",
    )
    .bind(error)
    .bind(i64::from(outcome == AttemptOutcome::Unknown))
    .bind(to_ms(now))
    .bind(id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives the row back (e.g. the account needs reconnecting): still pending, due at once, lease
/// cleared, `error` shown meanwhile. `false` when `owner` no longer holds it.
pub async fn release(
    conn: &mut AnyConnection,
    id: i64,
    owner: &str,
    error: Option<&str>,
    outcome: AttemptOutcome,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, \
           last_error = COALESCE($1, last_error), \
           attempt_started_at = CASE WHEN $2 = 1 THEN attempt_started_at ELSE NULL END, \
           updated_at = $3 \
         WHERE id = $4 AND lease_owner = $5 AND state = 'pending'",
    )
    .bind(error.map(str::to_owned))
    .bind(i64::from(outcome == AttemptOutcome::Unknown))
    .bind(to_ms(now))
    .bind(id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A technician pressed Retry: a `failed` row goes back to `pending`, due at once, with a fresh
/// retry budget. The unknown-outcome marker is kept (a reply that may have arrived is looked
/// for before it is posted again). `None` when the entry has no failed row.
pub async fn requeue_failed(
    conn: &mut AnyConnection,
    entry: EntryId,
    now: OffsetDateTime,
) -> Result<Option<OutboxRow>, StoreError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, \
           last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $1 \
         WHERE entry_id = $2 AND state = 'failed' RETURNING {COLUMNS}"
    )))
    .bind(to_ms(now))
    .bind(entry.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Row::into_row).transpose()
}

/// Rows of `chat` whose POST may have reached Teams without the outcome being recorded yet
/// (in flight right now, or unknown after a timeout or crash). The poller asks this before it
/// records a support-user message it does not know as "typed directly in Teams".
pub async fn unconfirmed_in_chat(
    conn: &mut AnyConnection,
    chat: &ChatId,
) -> Result<Vec<OutboxRow>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE chat_id = $1 AND state <> 'sent' \
           AND attempt_started_at IS NOT NULL ORDER BY id"
    )))
    .bind(chat.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(Row::into_row).collect()
}

#[cfg(test)]
mod tests;
