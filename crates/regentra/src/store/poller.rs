//! Teams poller state: per-account watermark, lease and last cycle; per-chat message cursor,
//! last handled activity and failure mark; retry bookkeeping for pasted images whose download
//! failed.
//!
//! The rules these rows carry (ARCHITECTURE §5.2–5.3):
//! * a chat's `message_cursor` only moves forward, and only in the same transaction that stored
//!   every message up to it (the ingest passes its transaction here);
//! * a failed or incompletely read chat keeps its cursor; it is only *marked*;
//! * the lease is claimed with one `UPDATE … WHERE lease free … RETURNING`, so two processes
//!   sharing a database never poll the same account at once (PostgreSQL re-checks the predicate
//!   after a row lock wait; SQLite has a single writer).
//!
//! This module must never call Graph or decide what a message means; it only stores progress.

use std::collections::HashMap;

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::StoreError;
use super::sql::{from_ms, opt_from_ms, opt_to_ms, parse_stored, to_ms};
use crate::tickets::{AttachmentId, ChatId, EntryId};

/// Largest number of bind parameters one `IN (…)` list uses.
const IN_CHUNK: usize = 400;

/// What the poller keeps per connected account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub account_id: String,
    /// Messages created before this never open tickets (connect time minus the backfill).
    pub history_start: OffsetDateTime,
    /// The chat list is read down to chats whose last message is older than this (minus the
    /// overlap).
    pub watermark: OffsetDateTime,
    pub last_sweep_at: Option<OffsetDateTime>,
}

/// The last cycle of an account, for the integrations card and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCycle {
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// `ok`, `partial`, `failed` or `reconnect_required`.
    pub result: Option<String>,
    pub error: Option<String>,
    /// JSON of the cycle summary.
    pub summary_json: Option<String>,
    pub last_success_at: Option<OffsetDateTime>,
    pub next_cycle_at: Option<OffsetDateTime>,
}

/// What the poller knows about one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatState {
    pub chat_id: ChatId,
    pub chat_type: Option<String>,
    /// Every message modified up to this instant is stored. `None`: never read completely.
    pub message_cursor: Option<OffsetDateTime>,
    /// The newest message time already handled (compared with the chat list's preview).
    pub last_preview_at: Option<OffsetDateTime>,
    /// Why the last read failed (`forbidden`, `not_found`, `throttled`, `incomplete`, `error`).
    pub failure: Option<String>,
    pub failure_count: i64,
    pub first_failed_at: Option<OffsetDateTime>,
}

/// The progress to store for a chat after its messages were stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatProgress {
    pub chat_type: Option<String>,
    /// New cursor; `None` keeps the stored one. Never moves the stored cursor backwards.
    pub message_cursor: Option<OffsetDateTime>,
    /// New last handled activity; `None` keeps the stored one. Never moves backwards.
    pub last_preview_at: Option<OffsetDateTime>,
    /// `None` clears a failure mark (a complete read); `Some` marks the chat (incomplete read).
    pub failure: Option<(String, String)>,
}

/// A finished cycle, as stored on the account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRecord {
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub result: String,
    pub error: Option<String>,
    pub summary_json: String,
    /// True when the cycle counts as successful (every chat read).
    pub success: bool,
}

/// A pasted image waiting for another download attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDownload {
    pub attachment_id: AttachmentId,
    /// The Graph `hostedContents/{id}/$value` URL as found in the message.
    pub url: Option<String>,
    pub attempts: i64,
}

/// The account row, created on first sight with the watermark at `history_start` (connect
/// time minus the backfill): history before it is never listed. The first daily sweep is due a
/// day after creation (there is nothing to re-read before).
pub async fn ensure_account(
    conn: &mut AnyConnection,
    account_id: &str,
    history_start: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<AccountState, StoreError> {
    sqlx::query(
        "INSERT INTO poll_accounts (account_id, history_start, watermark, last_sweep_at, \
           created_at) VALUES ($1, $2, $2, $3, $3) ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account_id)
    .bind(to_ms(history_start))
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    account(conn, account_id)
        .await?
        .ok_or(StoreError::NotFound("poll account"))
}

/// The account row, if the account was ever polled.
pub async fn account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Option<AccountState>, StoreError> {
    let row: Option<(String, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT account_id, history_start, watermark, last_sweep_at FROM poll_accounts \
         WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(account_id, history_start, watermark, last_sweep_at)| {
        Ok(AccountState {
            account_id,
            history_start: from_ms(history_start)?,
            watermark: from_ms(watermark)?,
            last_sweep_at: opt_from_ms(last_sweep_at)?,
        })
    })
    .transpose()
}

/// Starts history over at `history_start` (a different account was connected): the watermark
/// moves there and every chat cursor of the account is forgotten.
pub async fn restart_history(
    conn: &mut AnyConnection,
    account_id: &str,
    history_start: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut tx = super::write_tx(conn).await?;
    sqlx::query("DELETE FROM poll_chats WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE poll_accounts SET history_start = $1, watermark = $1, last_sweep_at = NULL \
         WHERE account_id = $2",
    )
    .bind(to_ms(history_start))
    .bind(account_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Claims the account for `owner` until `now + ttl` if nobody holds it (or the holder's lease
/// ran out, or `owner` already holds it). True when claimed.
pub async fn claim_lease(
    conn: &mut AnyConnection,
    account_id: &str,
    owner: &str,
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<bool, StoreError> {
    // The predicate is repeated in the outer WHERE so that a PostgreSQL writer that waited for
    // the row lock re-checks it against the committed row (rust-stack A.5).
    let claimed: Option<String> = sqlx::query_scalar(
        "UPDATE poll_accounts SET lease_owner = $1, lease_until = $2 \
         WHERE account_id = $3 \
           AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until <= $4 OR lease_owner = $1) \
         RETURNING account_id",
    )
    .bind(owner)
    .bind(to_ms(now + ttl))
    .bind(account_id)
    .bind(to_ms(now))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(claimed.is_some())
}

/// Extends `owner`'s lease. False when the lease was lost (expired and taken by another
/// process): the caller must stop working on the account.
pub async fn renew_lease(
    conn: &mut AnyConnection,
    account_id: &str,
    owner: &str,
    now: OffsetDateTime,
    ttl: time::Duration,
) -> Result<bool, StoreError> {
    let renewed = sqlx::query(
        "UPDATE poll_accounts SET lease_until = $1 WHERE account_id = $2 AND lease_owner = $3",
    )
    .bind(to_ms(now + ttl))
    .bind(account_id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Gives the lease back (only if `owner` still holds it).
pub async fn release_lease(
    conn: &mut AnyConnection,
    account_id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE poll_accounts SET lease_owner = NULL, lease_until = NULL \
         WHERE account_id = $1 AND lease_owner = $2",
    )
    .bind(account_id)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Who holds the lease and until when, if anyone.
pub async fn lease_holder(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Option<(String, OffsetDateTime)>, StoreError> {
    let row: Option<(Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT lease_owner, lease_until FROM poll_accounts WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(&mut *conn)
            .await?;
    match row {
        Some((Some(owner), Some(until))) => Ok(Some((owner, from_ms(until)?))),
        _ => Ok(None),
    }
}

/// Sets the watermark (the cycle read the chat list down to it and stored every changed chat).
pub async fn set_watermark(
    conn: &mut AnyConnection,
    account_id: &str,
    watermark: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE poll_accounts SET watermark = $1 WHERE account_id = $2")
        .bind(to_ms(watermark))
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that the daily sweep ran.
pub async fn record_sweep(
    conn: &mut AnyConnection,
    account_id: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE poll_accounts SET last_sweep_at = $1 WHERE account_id = $2")
        .bind(to_ms(at))
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores the outcome of a finished cycle.
pub async fn record_cycle(
    conn: &mut AnyConnection,
    account_id: &str,
    cycle: &CycleRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE poll_accounts SET last_started_at = $1, last_finished_at = $2, last_result = $3, \
           last_error = $4, last_summary = $5, \
           last_success_at = CASE WHEN $6 = 1 THEN $2 ELSE last_success_at END \
         WHERE account_id = $7",
    )
    .bind(to_ms(cycle.started_at))
    .bind(to_ms(cycle.finished_at))
    .bind(&cycle.result)
    .bind(cycle.error.clone())
    .bind(&cycle.summary_json)
    .bind(i64::from(cycle.success))
    .bind(account_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records when the scheduler plans the next cycle (shown on the integrations card).
pub async fn set_next_cycle(
    conn: &mut AnyConnection,
    account_id: &str,
    at: Option<OffsetDateTime>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE poll_accounts SET next_cycle_at = $1 WHERE account_id = $2")
        .bind(opt_to_ms(at))
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The last cycle of the account (`None` if it was never polled).
pub async fn last_cycle(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Option<LastCycle>, StoreError> {
    #[expect(clippy::type_complexity, reason = "one row of optional columns")]
    let row: Option<(
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
    )> = sqlx::query_as(
        "SELECT last_started_at, last_finished_at, last_result, last_error, last_summary, \
           last_success_at, next_cycle_at FROM poll_accounts WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(
        |(started, finished, result, error, summary, success, next)| -> Result<_, StoreError> {
            Ok(LastCycle {
                started_at: opt_from_ms(started)?,
                finished_at: opt_from_ms(finished)?,
                result,
                error,
                summary_json: summary,
                last_success_at: opt_from_ms(success)?,
                next_cycle_at: opt_from_ms(next)?,
            })
        },
    )
    .transpose()
}

type ChatRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
);

const CHAT_COLUMNS: &str = "chat_id, chat_type, message_cursor, last_preview_at, failure, \
     failure_count, first_failed_at";

fn chat_state(row: ChatRow) -> Result<ChatState, StoreError> {
    let (chat_id, chat_type, cursor, preview, failure, failure_count, first_failed_at) = row;
    Ok(ChatState {
        chat_id: parse_stored(&chat_id, ChatId::parse)?,
        chat_type,
        message_cursor: opt_from_ms(cursor)?,
        last_preview_at: opt_from_ms(preview)?,
        failure,
        failure_count,
        first_failed_at: opt_from_ms(first_failed_at)?,
    })
}

/// The stored state of these chats (chats never seen are absent from the map).
pub async fn chat_states(
    conn: &mut AnyConnection,
    account_id: &str,
    chats: &[ChatId],
) -> Result<HashMap<ChatId, ChatState>, StoreError> {
    let mut states = HashMap::with_capacity(chats.len());
    for chunk in chats.chunks(IN_CHUNK) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {CHAT_COLUMNS} FROM poll_chats WHERE account_id = $1 AND chat_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, ChatRow>(sqlx::AssertSqlSafe(sql)).bind(account_id);
        for chat in chunk {
            query = query.bind(chat.as_str().to_owned());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let state = chat_state(row)?;
            states.insert(state.chat_id.clone(), state);
        }
    }
    Ok(states)
}

/// Chats whose newest handled message is at or after `since` (the daily sweep re-reads them),
/// plus every chat currently marked as failed.
pub async fn chats_active_since(
    conn: &mut AnyConnection,
    account_id: &str,
    since: OffsetDateTime,
) -> Result<Vec<ChatState>, StoreError> {
    let rows: Vec<ChatRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHAT_COLUMNS} FROM poll_chats WHERE account_id = $1 \
           AND (last_preview_at >= $2 OR failure IS NOT NULL) \
         ORDER BY last_preview_at DESC, chat_id"
    )))
    .bind(account_id)
    .bind(to_ms(since))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(chat_state).collect()
}

/// Stores a chat's progress (pass the ingest transaction so it commits with the messages).
/// Cursor and last activity only ever move forward.
pub async fn save_chat_progress(
    conn: &mut AnyConnection,
    account_id: &str,
    chat: &ChatId,
    progress: &ChatProgress,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let (failure, detail) = match &progress.failure {
        Some((kind, detail)) => (Some(kind.clone()), Some(detail.clone())),
        None => (None, None),
    };
    let failed = i64::from(failure.is_some());
    sqlx::query(
        "INSERT INTO poll_chats (account_id, chat_id, chat_type, message_cursor, last_preview_at, \
           failure, failure_detail, failure_count, first_failed_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8 = 1 THEN $9 ELSE NULL END, $9) \
         ON CONFLICT (account_id, chat_id) DO UPDATE SET \
           chat_type = COALESCE(excluded.chat_type, poll_chats.chat_type), \
           message_cursor = CASE \
             WHEN excluded.message_cursor IS NULL THEN poll_chats.message_cursor \
             WHEN poll_chats.message_cursor IS NULL THEN excluded.message_cursor \
             WHEN excluded.message_cursor > poll_chats.message_cursor THEN excluded.message_cursor \
             ELSE poll_chats.message_cursor END, \
           last_preview_at = CASE \
             WHEN excluded.last_preview_at IS NULL THEN poll_chats.last_preview_at \
             WHEN poll_chats.last_preview_at IS NULL THEN excluded.last_preview_at \
             WHEN excluded.last_preview_at > poll_chats.last_preview_at THEN excluded.last_preview_at \
             ELSE poll_chats.last_preview_at END, \
           failure = excluded.failure, \
           failure_detail = excluded.failure_detail, \
           failure_count = CASE WHEN excluded.failure IS NULL THEN 0 \
             ELSE poll_chats.failure_count + 1 END, \
           first_failed_at = CASE WHEN excluded.failure IS NULL THEN NULL \
             ELSE COALESCE(poll_chats.first_failed_at, excluded.updated_at) END, \
           updated_at = excluded.updated_at",
    )
    .bind(account_id)
    .bind(chat.as_str())
    .bind(progress.chat_type.clone())
    .bind(opt_to_ms(progress.message_cursor))
    .bind(opt_to_ms(progress.last_preview_at))
    .bind(failure)
    .bind(detail)
    .bind(failed)
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a chat whose read failed (403, 404, throttled, …) without touching its cursor.
pub async fn mark_chat_failure(
    conn: &mut AnyConnection,
    account_id: &str,
    chat: &ChatId,
    chat_type: Option<&str>,
    failure: &str,
    detail: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    save_chat_progress(
        conn,
        account_id,
        chat,
        &ChatProgress {
            chat_type: chat_type.map(str::to_owned),
            message_cursor: None,
            last_preview_at: None,
            failure: Some((failure.to_owned(), detail.to_owned())),
        },
        now,
    )
    .await
}

/// Replies of a chat that Regentra is sending right now (queued, no Graph id yet), with their
/// text: a support-user message matching one of them is that reply, not one typed in Teams.
pub async fn replies_in_flight(
    conn: &mut AnyConnection,
    chat: &ChatId,
) -> Result<Vec<(EntryId, String)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, text FROM ticket_entries WHERE teams_chat_id = $1 AND kind = 'reply' \
           AND graph_message_id IS NULL AND delivery_state IN ('queued', 'failed') \
         ORDER BY created_at",
    )
    .bind(chat.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, text)| Ok((parse_stored(&id, EntryId::parse)?, text)))
        .collect()
}

/// Which of these Graph message ids of `chat` already have an entry.
pub async fn known_message_ids(
    conn: &mut AnyConnection,
    chat: &ChatId,
    ids: &[&str],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut known = std::collections::HashSet::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT graph_message_id FROM ticket_entries WHERE teams_chat_id = $1 \
             AND graph_message_id IN ({})",
            placeholders.join(", ")
        );
        let mut query =
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(chat.as_str());
        for id in chunk {
            query = query.bind((*id).to_owned());
        }
        known.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(known)
}

/// Plans another download attempt of a pasted image at `next_attempt_at`.
pub async fn schedule_download_retry(
    conn: &mut AnyConnection,
    attachment: AttachmentId,
    next_attempt_at: OffsetDateTime,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO attachment_downloads (attachment_id, attempts, next_attempt_at, last_error) \
         VALUES ($1, 1, $2, $3) \
         ON CONFLICT (attachment_id) DO UPDATE SET attempts = attachment_downloads.attempts + 1, \
           next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error",
    )
    .bind(attachment.to_string())
    .bind(to_ms(next_attempt_at))
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets the retry bookkeeping of an attachment (downloaded, or given up).
pub async fn clear_download_retry(
    conn: &mut AnyConnection,
    attachment: AttachmentId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM attachment_downloads WHERE attachment_id = $1")
        .bind(attachment.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Pending image downloads whose next attempt is due, oldest first.
pub async fn due_downloads(
    conn: &mut AnyConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<DueDownload>, StoreError> {
    let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT d.attachment_id, a.url, d.attempts FROM attachment_downloads d \
         JOIN attachments a ON a.id = d.attachment_id \
         WHERE d.next_attempt_at <= $1 AND a.download_state = 'pending' \
         ORDER BY d.next_attempt_at, d.attachment_id LIMIT $2",
    )
    .bind(to_ms(now))
    .bind(limit.clamp(1, 1000))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, url, attempts)| {
            Ok(DueDownload {
                attachment_id: parse_stored(&id, AttachmentId::parse)?,
                url,
                attempts,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::fresh_dbs;
    use time::macros::datetime;

    const ACCOUNT: &str = "account-1";

    fn chat(n: u32) -> ChatId {
        ChatId::parse(&format!("19:chat{n}@thread.v2")).unwrap()
    }

    #[tokio::test]
    async fn new_account_starts_its_watermark_at_history_start() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let start = datetime!(2026-01-10 09:00 UTC);
            let state = ensure_account(&mut conn, ACCOUNT, start, start)
                .await
                .unwrap();
            assert_eq!(state.watermark, start, "{}", test_db.label);
            assert_eq!(state.history_start, start);
            let later = start + time::Duration::hours(1);
            let again = ensure_account(&mut conn, ACCOUNT, later, later)
                .await
                .unwrap();
            assert_eq!(
                again.watermark, start,
                "an existing account keeps its watermark"
            );
        }
    }

    #[tokio::test]
    async fn lease_is_exclusive_until_it_expires_or_is_released() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let now = datetime!(2026-01-10 09:00 UTC);
            let ttl = time::Duration::seconds(60);
            ensure_account(&mut conn, ACCOUNT, now, now).await.unwrap();
            assert!(
                claim_lease(&mut conn, ACCOUNT, "a", now, ttl)
                    .await
                    .unwrap()
            );
            assert!(
                !claim_lease(&mut conn, ACCOUNT, "b", now, ttl)
                    .await
                    .unwrap(),
                "{}",
                test_db.label
            );
            assert!(
                claim_lease(&mut conn, ACCOUNT, "a", now, ttl)
                    .await
                    .unwrap(),
                "re-entrant"
            );
            let expired = now + time::Duration::seconds(61);
            assert!(
                claim_lease(&mut conn, ACCOUNT, "b", expired, ttl)
                    .await
                    .unwrap()
            );
            assert!(
                !renew_lease(&mut conn, ACCOUNT, "a", expired, ttl)
                    .await
                    .unwrap(),
                "a lost it"
            );
            release_lease(&mut conn, ACCOUNT, "a").await.unwrap();
            assert_eq!(
                lease_holder(&mut conn, ACCOUNT).await.unwrap().unwrap().0,
                "b"
            );
            release_lease(&mut conn, ACCOUNT, "b").await.unwrap();
            assert!(
                claim_lease(&mut conn, ACCOUNT, "c", expired, ttl)
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn chat_cursor_only_moves_forward_and_failures_keep_it() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let t0 = datetime!(2026-01-10 09:00 UTC);
            ensure_account(&mut conn, ACCOUNT, t0, t0).await.unwrap();
            let progress = |cursor: OffsetDateTime| ChatProgress {
                chat_type: Some("oneOnOne".into()),
                message_cursor: Some(cursor),
                last_preview_at: Some(cursor),
                failure: None,
            };
            let t1 = t0 + time::Duration::minutes(5);
            save_chat_progress(&mut conn, ACCOUNT, &chat(1), &progress(t1), t1)
                .await
                .unwrap();
            save_chat_progress(&mut conn, ACCOUNT, &chat(1), &progress(t0), t1)
                .await
                .unwrap();
            mark_chat_failure(&mut conn, ACCOUNT, &chat(1), None, "forbidden", "403", t1)
                .await
                .unwrap();
            mark_chat_failure(&mut conn, ACCOUNT, &chat(1), None, "forbidden", "403", t1)
                .await
                .unwrap();
            let states = chat_states(&mut conn, ACCOUNT, &[chat(1), chat(2)])
                .await
                .unwrap();
            let state = &states[&chat(1)];
            assert_eq!(state.message_cursor, Some(t1), "{}", test_db.label);
            assert_eq!(state.chat_type.as_deref(), Some("oneOnOne"));
            assert_eq!(state.failure.as_deref(), Some("forbidden"));
            assert_eq!(state.failure_count, 2);
            assert_eq!(state.first_failed_at, Some(t1));
            assert!(!states.contains_key(&chat(2)));
            save_chat_progress(&mut conn, ACCOUNT, &chat(1), &progress(t1), t1)
                .await
                .unwrap();
            let cleared = &chat_states(&mut conn, ACCOUNT, &[chat(1)]).await.unwrap()[&chat(1)];
            assert_eq!(cleared.failure, None);
            assert_eq!(cleared.failure_count, 0);
            let active = chats_active_since(&mut conn, ACCOUNT, t0).await.unwrap();
            assert_eq!(active.len(), 1);
        }
    }

    #[tokio::test]
    async fn cycle_record_keeps_the_last_success() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let t0 = datetime!(2026-01-10 09:00 UTC);
            ensure_account(&mut conn, ACCOUNT, t0, t0).await.unwrap();
            let ok = CycleRecord {
                started_at: t0,
                finished_at: t0 + time::Duration::seconds(1),
                result: "ok".into(),
                error: None,
                summary_json: "{}".into(),
                success: true,
            };
            record_cycle(&mut conn, ACCOUNT, &ok).await.unwrap();
            let failed = CycleRecord {
                started_at: t0 + time::Duration::minutes(5),
                finished_at: t0 + time::Duration::minutes(6),
                result: "failed".into(),
                error: Some("Graph is down".into()),
                summary_json: "{}".into(),
                success: false,
            };
            record_cycle(&mut conn, ACCOUNT, &failed).await.unwrap();
            set_next_cycle(&mut conn, ACCOUNT, Some(t0 + time::Duration::minutes(10)))
                .await
                .unwrap();
            let last = last_cycle(&mut conn, ACCOUNT).await.unwrap().unwrap();
            assert_eq!(last.result.as_deref(), Some("failed"), "{}", test_db.label);
            assert_eq!(last.last_success_at, Some(ok.finished_at));
            assert_eq!(last.next_cycle_at, Some(t0 + time::Duration::minutes(10)));
            assert!(last_cycle(&mut conn, "other").await.unwrap().is_none());
        }
    }
}
