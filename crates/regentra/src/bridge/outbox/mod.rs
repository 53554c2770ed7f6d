//! Outbound delivery (ARCHITECTURE §7): a technician's public reply reaches its Teams chat at
//! once, exactly once, in the order written — or visibly fails with a reason in plain words.
//!
//! * [`enqueue_reply`] runs inside the reply's transaction: it builds the Teams body with
//!   [`content::reply_html`], refuses a body larger than Teams accepts (the reply is marked
//!   failed with a clear message, nothing is sent) and writes the outbox row. Notes never get
//!   one. After the commit the caller wakes the worker ([`OutboxWaker::wake`]).
//! * [`Outbox::deliver_next`] is one step: claim the head of one chat (lease), look in the chat
//!   first if an earlier attempt's outcome is unknown, record that an attempt starts, POST,
//!   then record `sent` (with the Graph message id, so the poller knows the echo is ours),
//!   `queued` with a retry time, or `failed` — the outbox row and the reply entry in one
//!   transaction. It returns a [`DeliveryOutcome`]; tests drive it directly.
//! * [`Outbox::run`] is the loop: woken by [`OutboxWaker`], by a timer for retries and paced
//!   chats, and by connection changes; several chats are handled concurrently (bounded), one
//!   post at a time per chat, at most one per [`OutboxSettings::chat_spacing`] per chat.
//! * A reconnect-class error pauses sending (replies stay queued, the connection is marked
//!   `reconnect_required`); a connection change resumes it. On start the loop drains whatever
//!   was queued while the process was down.
//! * [`retry_reply`] puts a failed reply back in the queue (the ticket's Retry button);
//!   [`adopt_echo`] lets the poller hand over a support-user message that is really one of our
//!   replies whose outcome was not recorded yet.
//!
//! This module must never post a message twice knowingly (an attempt whose outcome is unknown
//! is reconciled against the chat before any new POST), never send a note, never hold a
//! database transaction across a network call, and never log message text or tokens.

mod verdict;

use std::sync::Arc;
use std::time::Duration;

use msgraph::GraphClient;
use msgraph::model::{BodyContentType, ChatMessage};
use rand::Rng as _;
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use verdict::{
    RECONNECT_REASON, TEAMS_MAX_MESSAGE_BYTES, Verdict, classify, gave_up_reason, too_large_reason,
};

use crate::bridge::connection::{
    ActiveAccount, Clock, ConnectionId, SystemClock, TeamsConnections,
};
use crate::bridge::content;
use crate::store::entries::{self, DeliveryUpdate};
use crate::store::outbox::{self as rows, AttemptOutcome, NewOutboxRow, OutboxRow, OutboxState};
use crate::store::{AnyConnection, Db, StoreError};
use crate::tickets::{ChatId, Entry, EntryId, EntryKind, GraphMessageId};

/// Wakes the delivery worker right after a reply (or a retry) is committed. Cheap to clone; a
/// wake while the worker is busy is remembered, never lost.
#[derive(Debug, Clone, Default)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    pub fn new() -> Self {
        Self::default()
    }

    /// There is new work: deliver it now.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

/// Tuning of the delivery worker. [`OutboxSettings::default`] follows the Teams limits.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// How long a claimed reply stays reserved for one worker; renewed every third of it
    /// while the worker is busy, so it only runs out when that worker died.
    pub lease: Duration,
    /// Minimum time between two posts to one chat. Teams allows one per second per user per
    /// chat; the extra 100 ms absorbs clock and network jitter so we are not counted twice in
    /// one of Teams' windows.
    pub chat_spacing: Duration,
    /// Attempts before a reply that keeps failing with retryable errors is marked failed.
    pub max_attempts: i64,
    /// Backoff between attempts when Teams gives no `Retry-After` (capped, full jitter).
    pub retry: msgraph::RetryPolicy,
    /// When looking for an attempt's message in the chat, also accept messages created this
    /// much before the attempt started (clock skew between us and Microsoft).
    pub reconcile_margin: Duration,
    /// Chats served at the same time.
    pub max_concurrent_chats: usize,
    /// Look for due work at least this often even without a wake (another process's writes,
    /// a paused account reconnected elsewhere).
    pub idle_recheck: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            chat_spacing: Duration::from_millis(1100),
            max_attempts: 10,
            retry: msgraph::RetryPolicy {
                max_attempts: 10,
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(300),
                max_retry_after: Duration::from_secs(3600),
            },
            reconcile_margin: Duration::from_secs(120),
            max_concurrent_chats: 8,
            idle_recheck: Duration::from_secs(30),
        }
    }
}

/// The account replies are posted as.
#[derive(Debug, Clone)]
pub struct SendingAccount {
    /// The connection to mark `reconnect_required` on a reconnect-class error (`None` for a
    /// fixed test account).
    pub connection_id: Option<ConnectionId>,
    /// Entra object id of the support user (Graph `from.user.id` of our messages).
    pub user_id: String,
    pub graph: GraphClient,
}

impl From<ActiveAccount> for SendingAccount {
    fn from(account: ActiveAccount) -> Self {
        Self {
            connection_id: Some(account.connection_id),
            user_id: account.user_id,
            graph: account.graph,
        }
    }
}

/// What the outbox needs from the Teams connection. Implemented by [`TeamsConnections`]; tests
/// may supply a fixed account.
#[async_trait::async_trait]
pub trait SendingAccounts: Send + Sync + 'static {
    /// The connected account, or `None` while there is none (disconnected, reconnect
    /// required). An error is a failure to find out (database down).
    async fn sending_account(&self) -> Result<Option<SendingAccount>, OutboxError>;

    /// Sending met a reconnect-class error: stop using the account until it is reconnected.
    async fn reconnect_required(&self, account: &SendingAccount, reason: &str);

    /// Changes whenever the connection changes (connect, disconnect, reconnect required).
    fn changes(&self) -> watch::Receiver<u64>;
}

#[async_trait::async_trait]
impl SendingAccounts for TeamsConnections {
    async fn sending_account(&self) -> Result<Option<SendingAccount>, OutboxError> {
        self.active()
            .await
            .map(|account| account.map(SendingAccount::from))
            .map_err(|error| OutboxError::Connection(error.to_string()))
    }

    async fn reconnect_required(&self, account: &SendingAccount, reason: &str) {
        if let Some(id) = account.connection_id
            && let Err(error) = self.mark_reconnect_required(id, reason).await
        {
            tracing::error!(connection.id = %id, %error, "could not mark the Teams connection as needing a reconnect");
        }
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.subscribe_changes()
    }
}

/// What one [`Outbox::deliver_next`] step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The reply is in the chat (`reconciled`: found there after an unknown outcome, not
    /// posted again).
    Delivered {
        entry_id: EntryId,
        graph_message_id: GraphMessageId,
        reconciled: bool,
    },
    /// The attempt failed in a way that may pass; the reply stays queued until `next_attempt_at`.
    Retrying {
        entry_id: EntryId,
        next_attempt_at: OffsetDateTime,
        reason: String,
    },
    /// Given up; the reply shows `reason` and a Retry button.
    Failed { entry_id: EntryId, reason: String },
    /// Replies are waiting but there is no usable account (disconnected or reconnect required).
    Paused,
    /// Nothing is due now.
    Empty,
}

/// Why a step could not run at all (the reply's own fate is always a [`DeliveryOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox could not read or write the database: {0}")]
    Store(#[from] StoreError),
    #[error("the outbox could not commit to the database: {0}")]
    Commit(#[from] sqlx::Error),
    #[error("the outbox could not find out whether Teams is connected: {0}")]
    Connection(String),
}

/// Writes the outbox row for a public reply, inside the caller's transaction (the one that
/// added the reply). The body is the escaped text; if it is larger than Teams accepts, the reply
/// is marked failed with a clear reason instead and nothing will be sent. Returns the entry as
/// it now stands. `Invalid` for anything but a reply written in Regentra (notes are never sent).
pub async fn enqueue_reply(
    conn: &mut AnyConnection,
    reply: &Entry,
    now: OffsetDateTime,
) -> Result<Entry, StoreError> {
    let chat = match (&reply.kind, &reply.teams_chat_id, reply.sent_from_teams) {
        (EntryKind::Reply, Some(chat), false) => chat,
        _ => {
            return Err(StoreError::Invalid(
                "only a public reply written in Regentra is sent to Teams".into(),
            ));
        }
    };
    let html = content::reply_html(&reply.text);
    if html.len() > TEAMS_MAX_MESSAGE_BYTES {
        let reason = too_large_reason(html.len());
        rows::insert(
            conn,
            &NewOutboxRow {
                entry_id: reply.id,
                chat_id: chat,
                html: &html,
                state: OutboxState::Failed,
                error: Some(&reason),
            },
            now,
        )
        .await?;
        return entries::update_delivery(conn, reply.id, &DeliveryUpdate::Failed { error: reason })
            .await;
    }
    rows::insert(
        conn,
        &NewOutboxRow {
            entry_id: reply.id,
            chat_id: chat,
            html: &html,
            state: OutboxState::Pending,
            error: None,
        },
        now,
    )
    .await?;
    Ok(reply.clone())
}

/// The ticket's Retry button: a failed reply goes back into the queue (fresh retry budget;
/// if an earlier attempt may have arrived, the chat is checked before posting). Wake the worker
/// after this returns. `Invalid` when the reply is not failed.
pub async fn retry_reply(
    db: &Db,
    entry: EntryId,
    now: OffsetDateTime,
) -> Result<Entry, StoreError> {
    let mut tx = db.begin().await?;
    if rows::requeue_failed(&mut tx, entry, now).await?.is_none() {
        let current = entries::get(&mut tx, entry).await?;
        let state = current.delivery.as_ref().map(|d| d.state.as_str());
        return Err(StoreError::Invalid(match state {
            Some("queued") => "this reply is already queued for Teams".to_owned(),
            Some("sent") => "this reply was already delivered to Teams".to_owned(),
            _ => "only a reply that failed to reach Teams can be retried".to_owned(),
        }));
    }
    let updated = entries::update_delivery(&mut tx, entry, &DeliveryUpdate::Requeued).await?;
    tx.commit().await?;
    Ok(updated)
}

/// For the poller: a message by the support user that no entry knows yet may be one of our
/// replies whose POST reached Teams before we recorded it (in flight, or cut off by a timeout
/// or crash). If an unconfirmed reply in `chat` has the same content, it is marked sent with
/// this message's id and its entry id is returned: record nothing else for the message.
/// `None`: the support user typed it in Teams.
pub async fn adopt_echo(
    conn: &mut AnyConnection,
    chat: &ChatId,
    message: &ChatMessage,
    now: OffsetDateTime,
) -> Result<Option<EntryId>, StoreError> {
    let Some(candidate_html) = body_html(message) else {
        return Ok(None);
    };
    let Ok(graph_id) = GraphMessageId::parse(&message.id) else {
        return Ok(None);
    };
    let unconfirmed = rows::unconfirmed_in_chat(conn, chat).await?;
    let Some(row) = unconfirmed
        .into_iter()
        .find(|row| content::reply_text_matches(&row.html, &candidate_html))
    else {
        return Ok(None);
    };
    let sent_at = message.created_date_time.unwrap_or(now);
    let mut tx = crate::store::write_tx(conn).await?;
    if !rows::mark_sent(&mut tx, row.id, &graph_id, sent_at, now).await? {
        return Ok(None);
    }
    entries::update_delivery(
        &mut tx,
        row.entry_id,
        &DeliveryUpdate::Sent {
            graph_message_id: graph_id,
            sent_at,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        entry.id = %row.entry_id, chat.id = chat.as_str(),
        "a reply whose delivery was unconfirmed was found in the chat by the poller; marked sent"
    );
    Ok(Some(row.entry_id))
}

/// The delivery worker. Cheap to share (`Arc`); any number of `deliver_next` steps may run at
/// once — each claims a different chat.
pub struct Outbox {
    db: Db,
    accounts: Arc<dyn SendingAccounts>,
    waker: OutboxWaker,
    settings: OutboxSettings,
    clock: Arc<dyn Clock>,
    /// This worker's name on leases.
    owner: String,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("owner", &self.owner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a reply's attempt ended, before it is written down.
enum Resolution {
    Sent {
        graph_message_id: GraphMessageId,
        sent_at: OffsetDateTime,
        reconciled: bool,
    },
    Error {
        error: msgraph::Error,
        /// The earlier attempt's outcome is still unknown (the error came while looking).
        still_unknown: bool,
    },
    /// The chat listing was incomplete: cannot tell whether the earlier attempt arrived.
    Undecided,
    /// Another worker took the row meanwhile (our lease ran out): leave it alone.
    LostLease,
}

impl Outbox {
    /// A worker on the system clock.
    pub fn new(
        db: Db,
        accounts: Arc<dyn SendingAccounts>,
        waker: OutboxWaker,
        settings: OutboxSettings,
    ) -> Self {
        Self::with_clock(db, accounts, waker, settings, Arc::new(SystemClock))
    }

    /// A worker with an injected clock (tests move time instead of sleeping).
    pub fn with_clock(
        db: Db,
        accounts: Arc<dyn SendingAccounts>,
        waker: OutboxWaker,
        settings: OutboxSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            accounts,
            waker,
            settings,
            clock,
            owner: format!("outbox-{}", uuid::Uuid::now_v7().simple()),
        }
    }

    /// One delivery step: the oldest due reply of some chat is delivered, rescheduled, failed —
    /// or nothing is due ([`DeliveryOutcome::Empty`]), or sending is paused.
    pub async fn deliver_next(&self) -> Result<DeliveryOutcome, OutboxError> {
        self.step(None).await
    }

    /// `claimed` fires once this step holds a reply, so the loop can start the next step for
    /// another chat while this one talks to Teams.
    async fn step(
        &self,
        claimed: Option<oneshot::Sender<()>>,
    ) -> Result<DeliveryOutcome, OutboxError> {
        let Some(account) = self.accounts.sending_account().await? else {
            let waiting = rows::pending_count(&mut *self.db.acquire().await?).await?;
            return Ok(if waiting > 0 {
                DeliveryOutcome::Paused
            } else {
                DeliveryOutcome::Empty
            });
        };
        let Some(row) = self.claim().await? else {
            return Ok(DeliveryOutcome::Empty);
        };
        if let Some(claimed) = claimed {
            let _ = claimed.send(());
        }
        let resolution = self.with_lease(row.id, self.attempt(&account, &row)).await;
        self.record(&account, &row, resolution).await
    }

    /// Claims the oldest due chat head, trying the next one if another worker was faster.
    async fn claim(&self) -> Result<Option<OutboxRow>, OutboxError> {
        let now = self.clock.now();
        let mut conn = self.db.acquire().await?;
        let heads = rows::chat_heads(&mut conn).await?;
        for head in heads.iter().filter(|head| head.due_at() <= now) {
            let lease_until = now + self.settings.lease;
            if let Some(row) =
                rows::try_claim(&mut conn, head.row_id, &self.owner, now, lease_until).await?
            {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// The earliest time some queued reply becomes due (`None`: nothing is queued).
    pub async fn next_due(&self) -> Result<Option<OffsetDateTime>, OutboxError> {
        let heads = rows::chat_heads(&mut *self.db.acquire().await?).await?;
        Ok(heads.iter().map(rows::ChatHead::due_at).min())
    }

    /// Runs `work` while renewing the lease on `row_id`, so a slow Teams (in-call 429 waits,
    /// long timeouts) never lets another worker take the row while we may still post it.
    async fn with_lease<T>(&self, row_id: i64, work: impl Future<Output = T>) -> T {
        let renew_every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let mut work = std::pin::pin!(work);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = ticker.tick() => self.renew_lease(row_id).await,
            }
        }
    }

    async fn renew_lease(&self, row_id: i64) {
        let until = self.clock.now() + self.settings.lease;
        let renewed = match self.db.acquire().await {
            Ok(mut conn) => rows::renew_lease(&mut conn, row_id, &self.owner, until).await,
            Err(error) => Err(error),
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                outbox.row = row_id,
                "the lease on a reply being sent was lost; its outcome will be checked in the chat"
            ),
            Err(error) => {
                tracing::warn!(outbox.row = row_id, %error, "renewing a reply's lease failed")
            }
        }
    }

    /// Looks in the chat first when an earlier attempt's outcome is unknown, then posts.
    async fn attempt(&self, account: &SendingAccount, row: &OutboxRow) -> Resolution {
        if row.html.len() > TEAMS_MAX_MESSAGE_BYTES {
            return Resolution::Error {
                error: msgraph::Error::PayloadTooLarge {
                    ids: msgraph::RequestIds::default(),
                },
                still_unknown: false,
            };
        }
        if let Some(started) = row.attempt_started_at {
            match self.find_in_chat(account, row, started).await {
                Ok(Found::Yes(message)) => {
                    return Resolution::Sent {
                        sent_at: message.created_date_time.unwrap_or(started),
                        graph_message_id: message.id,
                        reconciled: true,
                    };
                }
                Ok(Found::No) => {}
                Ok(Found::Unsure) => return Resolution::Undecided,
                Err(error) => {
                    return Resolution::Error {
                        error,
                        still_unknown: true,
                    };
                }
            }
        }
        let now = self.clock.now();
        let started = match self.db.acquire().await {
            Ok(mut conn) => {
                rows::start_attempt(
                    &mut conn,
                    row.id,
                    &self.owner,
                    now,
                    now + self.settings.chat_spacing,
                )
                .await
            }
            Err(error) => Err(error),
        };
        match started {
            Ok(true) => {}
            Ok(false) => return Resolution::LostLease,
            Err(error) => {
                tracing::error!(outbox.row = row.id, %error, "could not record the start of a delivery attempt; not sending");
                return Resolution::Error {
                    error: msgraph::Error::Transient {
                        status: None,
                        detail: "the database did not answer".into(),
                        ids: msgraph::RequestIds::default(),
                    },
                    still_unknown: row.attempt_started_at.is_some(),
                };
            }
        }
        let sent = account
            .graph
            .send_message(row.chat_id.as_str(), &row.html)
            .await;
        // The client may have retried inside the call (429 with a short Retry-After): the
        // chat's spacing counts from the last request that left, which is now.
        let finished = self.clock.now();
        match self.db.acquire().await {
            Ok(mut conn) => {
                if let Err(error) = rows::set_chat_pace(
                    &mut conn,
                    &row.chat_id,
                    finished + self.settings.chat_spacing,
                )
                .await
                {
                    tracing::warn!(%error, "could not record when the next post to the chat may leave");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not record when the next post to the chat may leave")
            }
        }
        match sent {
            Ok(message) => match GraphMessageId::parse(&message.id) {
                Ok(id) => Resolution::Sent {
                    graph_message_id: id,
                    sent_at: message.created_date_time.unwrap_or(now),
                    reconciled: false,
                },
                // Teams stored something but we cannot name it: look for it next time.
                Err(_) => Resolution::Error {
                    error: msgraph::Error::OutcomeUnknown {
                        method: "POST".into(),
                        path: "/chats/{id}/messages".into(),
                        detail: "Graph answered without a usable message id".into(),
                        ids: msgraph::RequestIds::default(),
                    },
                    still_unknown: true,
                },
            },
            Err(error) => Resolution::Error {
                error,
                still_unknown: false,
            },
        }
    }

    /// Looks for the reply in the chat: a message by the support user with the same content,
    /// created after the attempt started (less the clock-skew margin), not already recorded for
    /// another entry.
    async fn find_in_chat(
        &self,
        account: &SendingAccount,
        row: &OutboxRow,
        started: OffsetDateTime,
    ) -> Result<Found, msgraph::Error> {
        let since = started - self.settings.reconcile_margin;
        let listing = account
            .graph
            .list_messages_since(row.chat_id.as_str(), Some(since))
            .await?;
        let mut candidates: Vec<(OffsetDateTime, GraphMessageId)> = Vec::new();
        let mut could_not_check = false;
        for message in &listing.messages {
            let ours = message
                .sender_user()
                .and_then(|user| user.id.as_deref())
                .is_some_and(|id| id.eq_ignore_ascii_case(&account.user_id));
            let Some(created) = message
                .created_date_time
                .filter(|created| *created >= since)
            else {
                continue;
            };
            if !ours || message.deleted_date_time.is_some() {
                continue;
            }
            let Some(html) = body_html(message) else {
                continue;
            };
            if !content::reply_text_matches(&row.html, &html) {
                continue;
            }
            let Ok(id) = GraphMessageId::parse(&message.id) else {
                continue;
            };
            // The same words sent earlier for another reply ("Thanks!") are not this one.
            let known = match self.db.acquire().await {
                Ok(mut conn) => entries::find_by_graph_id(&mut conn, &row.chat_id, &id).await,
                Err(error) => Err(error),
            };
            match known {
                Ok(Some(entry)) if entry.id != row.entry_id => continue,
                Ok(_) => candidates.push((created, id)),
                Err(error) => {
                    tracing::warn!(%error, "could not check whether a chat message is already recorded");
                    could_not_check = true;
                }
            }
        }
        candidates.sort();
        if let Some((created, id)) = candidates.into_iter().next() {
            return Ok(Found::Yes(FoundMessage {
                id,
                created_date_time: Some(created),
            }));
        }
        Ok(if listing.complete && !could_not_check {
            Found::No
        } else {
            Found::Unsure
        })
    }

    /// Writes the attempt's outcome: outbox row and reply entry in one transaction.
    async fn record(
        &self,
        account: &SendingAccount,
        row: &OutboxRow,
        resolution: Resolution,
    ) -> Result<DeliveryOutcome, OutboxError> {
        let now = self.clock.now();
        let attempts = row.attempts + 1;
        match resolution {
            Resolution::Sent {
                graph_message_id,
                sent_at,
                reconciled,
            } => {
                self.record_sent(row, &graph_message_id, sent_at, now)
                    .await?;
                tracing::info!(
                    entry.id = %row.entry_id, chat.id = row.chat_id.as_str(),
                    graph.message_id = graph_message_id.as_str(), reconciled,
                    "reply delivered to Teams"
                );
                Ok(DeliveryOutcome::Delivered {
                    entry_id: row.entry_id,
                    graph_message_id,
                    reconciled,
                })
            }
            Resolution::LostLease => {
                tracing::warn!(
                    entry.id = %row.entry_id,
                    "another worker took over this reply before it was sent; leaving it to them"
                );
                Ok(DeliveryOutcome::Empty)
            }
            Resolution::Undecided => {
                let reason = "Teams did not confirm the message in time and the chat could not \
                              be read completely; Regentra checks again before sending";
                self.reschedule(row, reason, None, AttemptOutcome::Unknown, attempts, now)
                    .await
            }
            Resolution::Error {
                error,
                still_unknown,
            } => {
                let verdict = classify(&error);
                tracing::warn!(
                    entry.id = %row.entry_id, chat.id = row.chat_id.as_str(),
                    graph.request_id = error.request_id().unwrap_or(""), %error,
                    "a reply could not be delivered to Teams this time"
                );
                match verdict {
                    Verdict::Retry {
                        reason,
                        after,
                        outcome,
                    } => {
                        let outcome = if still_unknown {
                            AttemptOutcome::Unknown
                        } else {
                            outcome
                        };
                        if outcome == AttemptOutcome::NotSent
                            && matches!(error, msgraph::Error::Throttled { .. })
                            && let Some(wait) = after
                        {
                            // Teams throttles the chat, not just this reply.
                            let mut conn = self.db.acquire().await?;
                            rows::set_chat_pace(&mut conn, &row.chat_id, now + wait).await?;
                        }
                        self.reschedule(row, &reason, after, outcome, attempts, now)
                            .await
                    }
                    Verdict::Fail { reason } => {
                        let outcome = if still_unknown {
                            AttemptOutcome::Unknown
                        } else {
                            AttemptOutcome::NotSent
                        };
                        self.fail(row, &reason, outcome, now).await
                    }
                    Verdict::Reconnect { reason } => {
                        self.pause(row, &reason, still_unknown, now).await?;
                        self.accounts
                            .reconnect_required(account, &error.to_string())
                            .await;
                        Ok(DeliveryOutcome::Paused)
                    }
                    Verdict::Pause { reason } => {
                        self.pause(row, &reason, still_unknown, now).await?;
                        Ok(DeliveryOutcome::Paused)
                    }
                }
            }
        }
    }

    async fn record_sent(
        &self,
        row: &OutboxRow,
        graph_message_id: &GraphMessageId,
        sent_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), OutboxError> {
        let mut tx = self.db.begin().await?;
        if !rows::mark_sent(&mut tx, row.id, graph_message_id, sent_at, now).await? {
            // Already recorded (the poller adopted the echo, or another worker reconciled it).
            return Ok(());
        }
        let update = DeliveryUpdate::Sent {
            graph_message_id: graph_message_id.clone(),
            sent_at,
        };
        match entries::update_delivery(&mut tx, row.entry_id, &update).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                // The poller recorded the echo as typed in Teams before we could claim it.
                // The message is in Teams once; keep the row sent and say so in the log.
                tracing::warn!(
                    entry.id = %row.entry_id, graph.message_id = graph_message_id.as_str(),
                    "the poller recorded this reply's echo as a message typed in Teams; the ticket shows it twice"
                );
                drop(tx);
                let mut tx = self.db.begin().await?;
                rows::mark_sent(&mut tx, row.id, graph_message_id, sent_at, now).await?;
                entries::update_delivery(
                    &mut tx,
                    row.entry_id,
                    &DeliveryUpdate::Retrying {
                        error: "delivered to Teams; the chat also shows it as sent from Teams"
                            .into(),
                    },
                )
                .await?;
                tx.commit().await?;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reschedule(
        &self,
        row: &OutboxRow,
        reason: &str,
        after: Option<Duration>,
        outcome: AttemptOutcome,
        attempts: i64,
        now: OffsetDateTime,
    ) -> Result<DeliveryOutcome, OutboxError> {
        if attempts >= self.settings.max_attempts {
            return self
                .fail(row, &gave_up_reason(attempts, reason), outcome, now)
                .await;
        }
        let retry_number = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        let wait = after.unwrap_or_else(|| {
            self.settings
                .retry
                .backoff_delay(retry_number, &mut rand::rng())
        });
        let next_attempt_at = now + wait;
        let mut tx = self.db.begin().await?;
        if !rows::schedule_retry(
            &mut tx,
            row.id,
            &self.owner,
            next_attempt_at,
            reason,
            outcome,
            now,
        )
        .await?
        {
            return Ok(DeliveryOutcome::Empty);
        }
        entries::update_delivery(
            &mut tx,
            row.entry_id,
            &DeliveryUpdate::Retrying {
                error: reason.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(DeliveryOutcome::Retrying {
            entry_id: row.entry_id,
            next_attempt_at,
            reason: reason.to_owned(),
        })
    }

    async fn fail(
        &self,
        row: &OutboxRow,
        reason: &str,
        outcome: AttemptOutcome,
        now: OffsetDateTime,
    ) -> Result<DeliveryOutcome, OutboxError> {
        let mut tx = self.db.begin().await?;
        if !rows::mark_failed(&mut tx, row.id, &self.owner, reason, outcome, now).await? {
            return Ok(DeliveryOutcome::Empty);
        }
        entries::update_delivery(
            &mut tx,
            row.entry_id,
            &DeliveryUpdate::Failed {
                error: reason.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(entry.id = %row.entry_id, chat.id = row.chat_id.as_str(), reason, "reply marked failed");
        Ok(DeliveryOutcome::Failed {
            entry_id: row.entry_id,
            reason: reason.to_owned(),
        })
    }

    /// Gives the reply back (still queued, shown with `reason`) while there is no usable account.
    /// The POST never left (the token was refused first), unless an earlier attempt's outcome
    /// is still unknown.
    async fn pause(
        &self,
        row: &OutboxRow,
        reason: &str,
        still_unknown: bool,
        now: OffsetDateTime,
    ) -> Result<(), OutboxError> {
        let outcome = if still_unknown {
            AttemptOutcome::Unknown
        } else {
            AttemptOutcome::NotSent
        };
        let mut tx = self.db.begin().await?;
        if rows::release(&mut tx, row.id, &self.owner, Some(reason), outcome, now).await? {
            entries::update_delivery(
                &mut tx,
                row.entry_id,
                &DeliveryUpdate::Retrying {
                    error: reason.to_owned(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The loop: drains on start, then runs steps whenever woken, when a retry or a paced chat
    /// becomes due, when the connection changes, and every [`OutboxSettings::idle_recheck`].
    /// Up to [`OutboxSettings::max_concurrent_chats`] chats are served at once. Returns when
    /// `shutdown` fires (giving in-flight posts a few seconds to finish).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut changes = Some(self.accounts.changes());
        let mut tasks: JoinSet<Result<DeliveryOutcome, OutboxError>> = JoinSet::new();
        let mut claimer: Option<oneshot::Receiver<()>> = None;
        let mut want_claim = true;
        let mut paused = false;
        let mut next_wake = tokio::time::Instant::now() + self.settings.idle_recheck;
        tracing::info!("outbox worker started; delivering replies queued while Regentra was down");
        loop {
            if want_claim
                && !paused
                && claimer.is_none()
                && tasks.len() < self.settings.max_concurrent_chats.max(1)
            {
                let (claimed, receiver) = oneshot::channel();
                let outbox = self.clone();
                tasks.spawn(async move { outbox.step(Some(claimed)).await });
                claimer = Some(receiver);
                want_claim = false;
            }
            let claimed = async {
                match claimer.as_mut() {
                    Some(receiver) => receiver.await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                got_one = claimed => {
                    claimer = None;
                    // That step holds a reply now: another chat may be due too.
                    want_claim = got_one;
                }
                Some(joined) = tasks.join_next() => {
                    let mut failed_step = false;
                    match joined {
                        Ok(Ok(DeliveryOutcome::Empty)) => {}
                        Ok(Ok(DeliveryOutcome::Paused)) => {
                            if !paused {
                                tracing::info!("sending to Teams is paused until the support account is connected; replies stay queued");
                            }
                            paused = true;
                        }
                        Ok(Ok(_)) => want_claim = true,
                        Ok(Err(error)) => {
                            tracing::error!(%error, "the outbox could not run a delivery step; trying again in a few seconds");
                            failed_step = true;
                        }
                        Err(join_error) => {
                            tracing::error!(%join_error, "a delivery step panicked or was cancelled");
                            want_claim = true;
                        }
                    }
                    if tasks.is_empty() {
                        let now = tokio::time::Instant::now();
                        // While paused or failing, the queued replies are "due" but cannot go:
                        // look again later instead of spinning.
                        next_wake = if paused {
                            now + self.settings.idle_recheck
                        } else if failed_step {
                            now + STEP_ERROR_PAUSE
                        } else {
                            self.schedule_wake().await
                        };
                    }
                }
                () = self.waker.woken() => want_claim = true,
                changed = connection_changed(&mut changes) => {
                    if !changed {
                        // The connection service is gone (shutting down): rely on the timer.
                        changes = None;
                    }
                    paused = false;
                    want_claim = true;
                }
                () = tokio::time::sleep_until(next_wake) => {
                    paused = false;
                    want_claim = true;
                    next_wake = tokio::time::Instant::now() + self.settings.idle_recheck;
                }
            }
        }
        let grace = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        });
        if grace.await.is_err() {
            tracing::warn!(
                "stopping with replies still being sent; their outcome is checked in the chat on the next start"
            );
            tasks.shutdown().await;
        }
        tracing::info!("outbox worker stopped");
    }

    /// When the loop should look again: the earliest due reply, at the latest after the idle
    /// recheck interval.
    async fn schedule_wake(&self) -> tokio::time::Instant {
        let fallback = tokio::time::Instant::now() + self.settings.idle_recheck;
        match self.next_due().await {
            Ok(Some(due)) => {
                let wait = due - self.clock.now();
                let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
                // A little jitter keeps several processes from claiming in lockstep.
                let jitter = Duration::from_millis(rand::rng().random_range(0..=5));
                (tokio::time::Instant::now() + wait + jitter).min(fallback)
            }
            Ok(None) => fallback,
            Err(error) => {
                tracing::error!(%error, "the outbox could not read its queue");
                tokio::time::Instant::now() + Duration::from_secs(5)
            }
        }
    }
}

/// How long the loop waits after a step failed to reach the database.
const STEP_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// Waits for the next connection change: `true` on a change, `false` once the sender is gone
/// (and forever after, when there is no receiver).
async fn connection_changed(changes: &mut Option<watch::Receiver<u64>>) -> bool {
    match changes {
        Some(receiver) => receiver.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Starts the delivery loop for the app (called from `app.rs`).
pub async fn run(outbox: Arc<Outbox>, shutdown: CancellationToken) {
    outbox.run(shutdown).await;
}

enum Found {
    Yes(FoundMessage),
    No,
    /// The listing ended early: a match may exist beyond it.
    Unsure,
}

struct FoundMessage {
    id: GraphMessageId,
    created_date_time: Option<OffsetDateTime>,
}

/// A message body as HTML (a `text` body is escaped the way we build ours).
fn body_html(message: &ChatMessage) -> Option<String> {
    let body = message.body.as_ref()?;
    let content_text = body.content.as_deref()?;
    Some(match &body.content_type {
        Some(BodyContentType::Html) => content_text.to_owned(),
        _ => content::reply_html(content_text),
    })
}

#[cfg(test)]
mod tests;
