//! The Teams poller (ARCHITECTURE §5.1–5.3): one *cycle* reads what changed in the connected
//! support user's chats and hands each changed chat to the ingest; the scheduler runs a cycle
//! every `REGENTRA_POLL_INTERVAL` (with jitter) and at once when the connection changes.
//!
//! A cycle, for one account, under a lease (so two processes sharing a database never poll the
//! same account at once):
//! 1. list chats newest activity first (`lastMessagePreview/createdDateTime desc`, lazily, page
//!    by page) and stop at the first chat last active at or before the watermark minus a small
//!    overlap — a quiet cycle is one Graph request;
//! 2. a listed chat is *changed* when its last activity is newer than what this chat's row has
//!    handled (or it is new, or marked failed); only changed chats are read, with
//!    `lastModifiedDateTime gt (chat cursor − overlap)` — k changed chats cost about 1 + k
//!    requests whatever the number of chats;
//! 3. each chat's messages and its cursor are committed together by [`crate::bridge::ingest`];
//!    a chat that fails (403, 404, throttled after the client's retries, incomplete paging) is
//!    marked and keeps its cursor, and holds the watermark back so it is listed again;
//! 4. the watermark moves to the newest activity listed — only if the list was read down to the
//!    stop point — and never past a failed chat;
//! 5. once a day a *sweep* re-reads every chat active in the last week (edits and deletions do
//!    not move a chat in the list), including chats Graph forgets to list (field report B19);
//! 6. pasted images whose download failed earlier are retried.
//!
//! A reconnect-class error (dead refresh token, consent revoked) marks the connection
//! `reconnect_required` and ends the cycle; nothing retries it in a loop.
//!
//! This module must never store a message itself (the ingest does), advance a cursor outside
//! the ingest's transaction, or log message content or tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use msgraph::RequestCounter;
use msgraph::model::Chat;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::bridge::connection::{ActiveAccount, Clock, SystemClock, TeamsConnections};
use crate::bridge::ingest::{
    self, ChatBatch, GraphReads, IMAGE_MAX_ATTEMPTS, IMAGE_RETRY_BASE, IngestContext, IngestError,
    IngestSettings, IngestTally, ReadEnd, SkipReason, SupportUser,
};
use crate::bridge::metrics::{CycleObservation, PollMetrics};
use crate::config::Config;
use crate::store::poller::{self as poll_store, ChatProgress, ChatState, CycleRecord};
use crate::store::{Db, StoreError, entries};
use crate::tickets::{ChatId, DownloadState, ReopenWindow};

/// Pages one listing may read in a cycle (50 chats or messages each). The chat list stops at the
/// watermark by itself; this cap only bounds a pathological listing while still letting a cycle
/// get past a backlog of 10,000 chats or 10,000 changed messages of one chat. A listing that hits
/// it is incomplete: its cursor stays and the next cycle reads it again.
pub const LISTING_PAGE_CAP: u32 = 200;

/// Tunables of the poller. [`PollerSettings::from_config`] gives the production values.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// Time between cycles (`REGENTRA_POLL_INTERVAL`); each wait gets ±10 % jitter.
    pub interval: Duration,
    /// Re-read margin below the watermark and each chat cursor (Graph timestamps are not
    /// strictly ordered by arrival). Duplicates it brings are removed by message id.
    pub overlap: time::Duration,
    /// How long a claimed account stays reserved if this process dies mid-cycle. Renewed after
    /// every chat.
    pub lease_ttl: time::Duration,
    /// How often the sweep re-reads recently active chats.
    pub sweep_every: time::Duration,
    /// What "recently active" means for the sweep.
    pub sweep_lookback: time::Duration,
    /// How long a failing chat holds the watermark back (after that only the sweep retries it).
    pub failed_chat_hold: time::Duration,
    /// `REGENTRA_BACKFILL_HOURS`: history imported before the connect time.
    pub backfill: time::Duration,
    /// Ticket rules for the ingest.
    pub ingest: IngestSettings,
    /// Image downloads retried per cycle at most.
    pub image_retries_per_cycle: i64,
}

impl PollerSettings {
    /// Production values from the configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            interval: config.microsoft.poll_interval,
            overlap: time::Duration::minutes(2),
            lease_ttl: time::Duration::seconds(60),
            sweep_every: time::Duration::hours(24),
            sweep_lookback: time::Duration::days(7),
            failed_chat_hold: time::Duration::hours(24),
            backfill: time::Duration::hours(i64::from(config.microsoft.backfill_hours)),
            ingest: IngestSettings {
                ignore_own_tenant: config.microsoft.ignore_own_tenant,
                ignore_meeting_chats: true,
                reopen_window: ReopenWindow::days(
                    u16::try_from(config.reopen_days).unwrap_or(u16::MAX),
                ),
            },
            image_retries_per_cycle: 20,
        }
    }
}

/// Which kind of cycle to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleMode {
    /// Incremental, or a sweep when one is due (what the scheduler runs).
    Auto,
    /// Changed chats only.
    Incremental,
    /// Re-read every chat active within the sweep lookback.
    Sweep,
}

/// The poll cycle summary of ARCHITECTURE §3 (API, CLI, logs, metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleSummary {
    pub chats_listed: u64,
    pub chats_changed: u64,
    pub messages_seen: u64,
    pub messages_ingested: u64,
    pub tickets_created: u64,
    pub entries_appended: u64,
    pub edits: u64,
    pub deletes: u64,
    /// Skipped messages by reason (`bot_or_app`, `system_event`, …; `meeting_chat` counts chats).
    pub skipped: BTreeMap<String, u64>,
    pub graph_requests: u64,
    pub throttled: u64,
    pub errors: u64,
    pub duration_ms: u64,
}

impl CycleSummary {
    fn add_tally(&mut self, tally: &IngestTally) {
        self.messages_seen += tally.messages_seen;
        self.messages_ingested += tally.messages_ingested;
        self.tickets_created += tally.tickets_created;
        self.entries_appended += tally.entries_appended;
        self.edits += tally.edits;
        self.deletes += tally.deletes;
        for (reason, count) in &tally.skipped {
            *self.skipped.entry(reason.as_str().to_owned()).or_default() += count;
        }
    }

    fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason.as_str().to_owned()).or_default() += 1;
    }

    /// One line for logs and the CLI's text output.
    pub fn one_line(&self) -> String {
        let skipped: u64 = self.skipped.values().sum();
        format!(
            "{} chats listed, {} changed, {} messages seen, {} ingested ({} new tickets, {} appended), {} edits, {} deletes, {} skipped, {} Graph requests, {} throttled, {} errors, {} ms",
            self.chats_listed,
            self.chats_changed,
            self.messages_seen,
            self.messages_ingested,
            self.tickets_created,
            self.entries_appended,
            self.edits,
            self.deletes,
            skipped,
            self.graph_requests,
            self.throttled,
            self.errors,
            self.duration_ms
        )
    }
}

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleResult {
    /// Every listed change was stored.
    Ok,
    /// Some chats failed or the chat list was cut short; they are retried next cycle.
    Partial,
    /// Nothing could be read (e.g. the chat list failed).
    Failed,
    /// The connection needs an administrator; polling stopped.
    ReconnectRequired,
    /// Another process holds this account's lease; nothing was done.
    Busy,
}

impl CycleResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleResult::Ok => "ok",
            CycleResult::Partial => "partial",
            CycleResult::Failed => "failed",
            CycleResult::ReconnectRequired => "reconnect_required",
            CycleResult::Busy => "busy",
        }
    }
}

/// A finished cycle: what ran, how it ended and the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleReport {
    pub account_id: String,
    /// `incremental` or `sweep` (what actually ran).
    pub mode: CycleMode,
    pub result: CycleResult,
    /// What went wrong, for people (none for `ok`).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub summary: CycleSummary,
}

/// Why a cycle could not even start.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the poller's database work failed: {0}")]
    Store(#[from] StoreError),
}

/// Runs poll cycles. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Poller {
    inner: Arc<PollerInner>,
}

struct PollerInner {
    db: Db,
    connections: Option<TeamsConnections>,
    settings: PollerSettings,
    metrics: Arc<PollMetrics>,
    clock: Arc<dyn Clock>,
    /// This process's lease owner id.
    owner: String,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("owner", &self.inner.owner)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The account a cycle polls: who "we" are and how to call Graph.
#[derive(Debug, Clone)]
pub struct PollTarget {
    pub support: SupportUser,
    /// When the account was connected: the first watermark (minus the backfill).
    pub connected_at: OffsetDateTime,
    pub graph: msgraph::GraphClient,
    /// The connection to mark `reconnect_required` (none in tools and benchmarks).
    pub connection_id: Option<crate::bridge::connection::ConnectionId>,
}

impl PollTarget {
    /// The target for the connected account.
    pub fn from_account(account: &ActiveAccount) -> Self {
        Self {
            support: SupportUser {
                account_id: account.connection_id.to_string(),
                user_id: account.user_id.to_lowercase(),
                display_name: account.display_name.clone(),
                tenant_id: Some(account.tenant_id.clone()),
            },
            connected_at: account.connected_at,
            graph: account.graph.clone(),
            connection_id: Some(account.connection_id),
        }
    }
}

impl Poller {
    /// A poller that marks reconnect-class failures on `connections`.
    pub fn new(
        db: Db,
        connections: Option<TeamsConnections>,
        settings: PollerSettings,
        metrics: Arc<PollMetrics>,
    ) -> Self {
        Self::with_clock(db, connections, settings, metrics, Arc::new(SystemClock))
    }

    /// Same, with an injected clock (tests).
    pub fn with_clock(
        db: Db,
        connections: Option<TeamsConnections>,
        settings: PollerSettings,
        metrics: Arc<PollMetrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(PollerInner {
                db,
                connections,
                settings,
                metrics,
                clock,
                owner: format!("poller-{}", uuid::Uuid::now_v7()),
            }),
        }
    }

    pub fn settings(&self) -> &PollerSettings {
        &self.inner.settings
    }

    pub fn metrics(&self) -> &Arc<PollMetrics> {
        &self.inner.metrics
    }

    /// One cycle for the connected account, now.
    pub async fn poll_once(
        &self,
        account: &ActiveAccount,
        mode: CycleMode,
    ) -> Result<CycleReport, PollError> {
        self.poll_target(
            &PollTarget::from_account(account),
            mode,
            &CancellationToken::new(),
        )
        .await
    }

    /// One cycle for `target`; stops between chats when `cancel` fires (what was stored stays,
    /// the rest is read next cycle).
    pub async fn poll_target(
        &self,
        target: &PollTarget,
        mode: CycleMode,
        cancel: &CancellationToken,
    ) -> Result<CycleReport, PollError> {
        let inner = &self.inner;
        let started_at = inner.clock.now();
        let started = Instant::now();
        let account_id = target.support.account_id.clone();
        let history_start = target.connected_at - inner.settings.backfill;
        let state = {
            let mut conn = inner.db.acquire().await?;
            let state =
                poll_store::ensure_account(&mut conn, &account_id, history_start, started_at)
                    .await?;
            if !poll_store::claim_lease(
                &mut conn,
                &account_id,
                &inner.owner,
                started_at,
                inner.settings.lease_ttl,
            )
            .await?
            {
                let report = CycleReport {
                    account_id,
                    mode,
                    result: CycleResult::Busy,
                    error: Some(
                        "another Regentra process is polling this account right now".to_owned(),
                    ),
                    started_at,
                    finished_at: inner.clock.now(),
                    summary: CycleSummary::default(),
                };
                self.observe(&report);
                return Ok(report);
            }
            state
        };
        let mode = match mode {
            CycleMode::Auto => {
                let last = state.last_sweep_at.unwrap_or(state.history_start);
                if started_at - last >= inner.settings.sweep_every {
                    CycleMode::Sweep
                } else {
                    CycleMode::Incremental
                }
            }
            other => other,
        };
        let counter = Arc::new(RequestCounter::new());
        let graph = target
            .graph
            .counting_into(Arc::clone(&counter))
            .with_page_cap(LISTING_PAGE_CAP);
        let mut cycle = Cycle {
            poller: self,
            target,
            graph,
            state,
            mode,
            summary: CycleSummary::default(),
            problems: Vec::new(),
            reconnect: None,
            list_failed: false,
            cancel,
        };
        let outcome = cycle.run().await;
        let Cycle {
            mut summary,
            problems,
            reconnect,
            list_failed,
            ..
        } = cycle;
        summary.graph_requests = counter.requests();
        summary.throttled = counter.throttled();
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (result, error) = match (&outcome, &reconnect) {
            (_, Some(reason)) => (CycleResult::ReconnectRequired, Some(reason.clone())),
            (Err(error), None) => (CycleResult::Failed, Some(error.to_string())),
            (Ok(()), None) if list_failed => (CycleResult::Failed, problems.first().cloned()),
            (Ok(()), None) if summary.errors > 0 || !problems.is_empty() => {
                (CycleResult::Partial, Some(problems.join("; ")))
            }
            (Ok(()), None) => (CycleResult::Ok, None),
        };
        let finished_at = inner.clock.now();
        let report = CycleReport {
            account_id: account_id.clone(),
            mode,
            result,
            error,
            started_at,
            finished_at,
            summary,
        };
        if let (Some(reason), Some(connections), Some(connection_id)) =
            (&reconnect, &inner.connections, target.connection_id)
            && let Err(error) = connections
                .mark_reconnect_required(connection_id, reason)
                .await
        {
            tracing::error!(%error, "could not record that the Teams connection needs a reconnect");
        }
        let mut conn = inner.db.acquire().await?;
        let summary_json = serde_json::to_string(&report.summary)
            .map_err(|err| StoreError::Internal(format!("encoding the cycle summary: {err}")))?;
        poll_store::record_cycle(
            &mut conn,
            &account_id,
            &CycleRecord {
                started_at,
                finished_at,
                result: result.as_str().to_owned(),
                error: report.error.clone(),
                summary_json,
                success: result == CycleResult::Ok,
            },
        )
        .await?;
        poll_store::release_lease(&mut conn, &account_id, &inner.owner).await?;
        drop(conn);
        self.log(&report);
        self.observe(&report);
        Ok(report)
    }

    fn observe(&self, report: &CycleReport) {
        self.inner.metrics.observe(&CycleObservation {
            account_id: &report.account_id,
            result: report.result.as_str(),
            finished_at: report.finished_at,
            duration_seconds: report.summary.duration_ms as f64 / 1000.0,
            messages_ingested: report.summary.messages_ingested,
            tickets_created: report.summary.tickets_created,
            edits: report.summary.edits,
            deletes: report.summary.deletes,
            errors: report.summary.errors,
            graph_requests: report.summary.graph_requests,
            throttled: report.summary.throttled,
            skipped: &report.summary.skipped,
        });
    }

    fn log(&self, report: &CycleReport) {
        let line = report.summary.one_line();
        match report.result {
            CycleResult::Ok => tracing::info!(
                account.id = %report.account_id,
                cycle.mode = ?report.mode,
                "Teams poll cycle done: {line}"
            ),
            CycleResult::Busy => {}
            _ => tracing::warn!(
                account.id = %report.account_id,
                cycle.mode = ?report.mode,
                cycle.result = report.result.as_str(),
                error = report.error.as_deref().unwrap_or(""),
                "Teams poll cycle ended early: {line}"
            ),
        }
    }
}

/// One running cycle.
struct Cycle<'a> {
    poller: &'a Poller,
    target: &'a PollTarget,
    /// The target's client, counting into this cycle's counter.
    graph: msgraph::GraphClient,
    state: poll_store::AccountState,
    mode: CycleMode,
    summary: CycleSummary,
    /// Short descriptions of what failed (for the report's `error`).
    problems: Vec<String>,
    /// Set when the connection must be renewed; the cycle stops.
    reconnect: Option<String>,
    list_failed: bool,
    cancel: &'a CancellationToken,
}

/// A chat chosen for reading in this cycle.
struct ChatToRead {
    id: ChatId,
    chat_type: Option<String>,
    /// Its last activity as listed (`None`: read by the sweep without being listed).
    activity_at: Option<OffsetDateTime>,
    state: Option<ChatState>,
}

impl Cycle<'_> {
    fn settings(&self) -> &PollerSettings {
        &self.poller.inner.settings
    }

    fn now(&self) -> OffsetDateTime {
        self.poller.inner.clock.now()
    }

    async fn run(&mut self) -> Result<(), PollError> {
        let overlap = self.settings().overlap;
        let mut stop_at = self.state.watermark - overlap;
        if self.mode == CycleMode::Sweep {
            stop_at = stop_at.min(self.now() - self.settings().sweep_lookback);
        }
        let (listed, reached_stop) = self.list_chats(stop_at).await;
        if self.reconnect.is_some() {
            return Ok(());
        }
        self.summary.chats_listed = u64::try_from(listed.len()).unwrap_or(u64::MAX);

        let ids: Vec<ChatId> = listed.iter().map(|(id, _)| id.clone()).collect();
        let mut states = {
            let mut conn = self.poller.inner.db.acquire().await?;
            poll_store::chat_states(&mut conn, &self.state.account_id, &ids).await?
        };
        let mut to_read: Vec<ChatToRead> = Vec::new();
        let mut newest_listed: Option<OffsetDateTime> = None;
        for (id, chat) in listed {
            let activity_at = chat
                .last_message_preview
                .as_ref()
                .and_then(|p| p.created_date_time);
            newest_listed = newest_listed.max(activity_at);
            let state = states.remove(&id);
            let changed = self.mode == CycleMode::Sweep
                || match &state {
                    None => true,
                    Some(state) => {
                        state.failure.is_some()
                            || match (state.last_preview_at, activity_at) {
                                (Some(handled), Some(activity)) => activity > handled,
                                _ => true,
                            }
                    }
                };
            if changed {
                to_read.push(ChatToRead {
                    id,
                    chat_type: chat.chat_type.as_ref().map(|t| t.as_str().to_owned()),
                    activity_at,
                    state,
                });
            }
        }
        if self.mode == CycleMode::Sweep {
            // Chats active lately that the list did not show (Graph sometimes leaves federated
            // chats out of /chats while their messages stay readable).
            let since = self.now() - self.settings().sweep_lookback;
            let known = {
                let mut conn = self.poller.inner.db.acquire().await?;
                poll_store::chats_active_since(&mut conn, &self.state.account_id, since).await?
            };
            for state in known {
                if !to_read.iter().any(|chat| chat.id == state.chat_id) {
                    to_read.push(ChatToRead {
                        id: state.chat_id.clone(),
                        chat_type: state.chat_type.clone(),
                        activity_at: None,
                        state: Some(state),
                    });
                }
            }
        }

        // Chats that failed now hold the watermark back so they are listed again.
        let mut held_at: Option<OffsetDateTime> = None;
        for chat in &to_read {
            if self.cancel.is_cancelled() || self.reconnect.is_some() {
                self.problems
                    .push("the cycle was stopped before every chat was read".into());
                return Ok(());
            }
            if !self.renew_lease().await? {
                self.problems
                    .push("another process took over this account's lease".into());
                return Ok(());
            }
            let stored = self.read_chat(chat).await?;
            if !stored {
                let fresh_failure = chat
                    .state
                    .as_ref()
                    .and_then(|s| s.first_failed_at)
                    .is_none_or(|first| self.now() - first < self.settings().failed_chat_hold);
                if let (Some(activity), true) = (chat.activity_at, fresh_failure) {
                    held_at = Some(held_at.map_or(activity, |held| held.min(activity)));
                }
            }
        }
        if self.reconnect.is_some() {
            return Ok(());
        }

        let mut conn = self.poller.inner.db.acquire().await?;
        if reached_stop && let Some(newest) = newest_listed {
            let mut watermark = newest.max(self.state.watermark);
            if let Some(held) = held_at {
                watermark = watermark.min(held - time::Duration::milliseconds(1));
            }
            let watermark = watermark.max(self.state.history_start);
            if watermark != self.state.watermark {
                poll_store::set_watermark(&mut conn, &self.state.account_id, watermark).await?;
            }
        }
        if self.mode == CycleMode::Sweep && reached_stop {
            poll_store::record_sweep(&mut conn, &self.state.account_id, self.now()).await?;
        }
        drop(conn);
        self.retry_images().await?;
        Ok(())
    }

    /// Lists chats down to `stop_at`. Returns the listed chats (newest activity first) and
    /// whether the list reached the stop point (only then may the watermark move).
    async fn list_chats(&mut self, stop_at: OffsetDateTime) -> (Vec<(ChatId, Chat)>, bool) {
        let mut pager = self.graph.list_chats_by_recent_activity();
        let mut listed = Vec::new();
        loop {
            match pager.next_page().await {
                Ok(Some(page)) => {
                    for skipped in &page.skipped {
                        tracing::warn!(chat.id = skipped.id.as_deref().unwrap_or(""), reason = %skipped.reason, "a chat in the list could not be read");
                    }
                    for chat in page.chats {
                        let Some(activity) = chat
                            .last_message_preview
                            .as_ref()
                            .and_then(|p| p.created_date_time)
                        else {
                            // Never had a message: nothing to read, no place in the ordering.
                            continue;
                        };
                        if activity <= stop_at {
                            return (listed, true);
                        }
                        match ChatId::parse(&chat.id) {
                            Ok(id) => listed.push((id, chat)),
                            Err(_) => tracing::warn!("a listed chat has an unusable id; skipped"),
                        }
                    }
                }
                Ok(None) => {
                    if !pager.is_complete() {
                        self.summary.errors += 1;
                        self.problems.push(format!(
                            "the chat list stopped early ({:?}); the rest is read next cycle",
                            pager.incomplete_reason()
                        ));
                        return (listed, false);
                    }
                    return (listed, true);
                }
                Err(error) => {
                    if error.needs_reconnect() {
                        self.reconnect = Some(error.to_string());
                    } else {
                        self.summary.errors += 1;
                        if listed.is_empty() {
                            self.list_failed = true;
                        }
                        self.problems
                            .push(format!("listing the chats failed: {error}"));
                        tracing::warn!(%error, "listing the support user's chats failed; chats listed so far are still read");
                    }
                    return (listed, false);
                }
            }
        }
    }

    async fn renew_lease(&self) -> Result<bool, PollError> {
        let inner = &self.poller.inner;
        let mut conn = inner.db.acquire().await?;
        Ok(poll_store::renew_lease(
            &mut conn,
            &self.state.account_id,
            &inner.owner,
            self.now(),
            inner.settings.lease_ttl,
        )
        .await?)
    }

    /// Reads and stores one chat. True when everything read was stored and the cursor moved.
    async fn read_chat(&mut self, chat: &ChatToRead) -> Result<bool, PollError> {
        let now = self.now();
        let account_id = self.state.account_id.clone();
        if self.settings().ingest.ignore_meeting_chats
            && chat.chat_type.as_deref() == Some("meeting")
        {
            let handled_before = chat.state.as_ref().and_then(|s| s.last_preview_at);
            if chat.activity_at.is_some() && chat.activity_at != handled_before {
                self.summary.skip(SkipReason::MeetingChat);
            }
            let mut conn = self.poller.inner.db.acquire().await?;
            poll_store::save_chat_progress(
                &mut conn,
                &account_id,
                &chat.id,
                &ChatProgress {
                    chat_type: chat.chat_type.clone(),
                    message_cursor: None,
                    last_preview_at: chat.activity_at,
                    failure: None,
                },
                now,
            )
            .await?;
            return Ok(true);
        }
        self.summary.chats_changed += 1;
        let previous_cursor = chat.state.as_ref().and_then(|s| s.message_cursor);
        let read_from =
            previous_cursor.unwrap_or(self.state.history_start) - self.settings().overlap;
        let listing = match self
            .graph
            .list_messages_since(chat.id.as_str(), Some(read_from))
            .await
        {
            Ok(listing) => listing,
            Err(error) => {
                self.chat_failed(chat, &error).await?;
                return Ok(false);
            }
        };
        if listing.filter_fallback {
            tracing::info!(chat.id = %chat.id, "read without $filter after Graph rejected it; stopped at the cursor");
        }
        let end = if listing.complete {
            ReadEnd::Complete {
                activity_at: chat.activity_at,
            }
        } else {
            let reason = format!(
                "paging stopped early: {:?}",
                listing.incomplete_reason.clone()
            );
            ReadEnd::Incomplete { reason }
        };
        let complete = listing.complete;
        let graph: Arc<dyn GraphReads> = Arc::new(self.graph.clone());
        let ctx = IngestContext {
            db: &self.poller.inner.db,
            support: &self.target.support,
            settings: self.settings().ingest,
            history_start: self.state.history_start,
            graph,
            now,
        };
        let batch = ChatBatch {
            chat_id: &chat.id,
            chat_type: chat.chat_type.as_deref(),
            messages: &listing.messages,
            unreadable: listing.skipped.len(),
            previous_cursor,
            end,
        };
        match ingest::ingest_chat(&ctx, &batch).await {
            Ok(tally) => {
                self.summary.add_tally(&tally);
                if !complete {
                    self.summary.errors += 1;
                    self.problems.push(format!(
                        "chat {} was read incompletely ({:?}); it is read again next cycle",
                        chat.id, listing.incomplete_reason
                    ));
                    tracing::warn!(chat.id = %chat.id, reason = ?listing.incomplete_reason, "a chat's messages were read incompletely; its cursor stays");
                }
                Ok(complete)
            }
            Err(IngestError::Graph(error)) => {
                self.chat_failed(chat, &error).await?;
                Ok(false)
            }
            Err(IngestError::Store(error)) => {
                self.summary.errors += 1;
                self.problems
                    .push(format!("storing chat {} failed: {error}", chat.id));
                tracing::error!(chat.id = %chat.id, %error, "storing a chat's messages failed; nothing of it was committed and it is read again next cycle");
                Ok(false)
            }
        }
    }

    async fn chat_failed(
        &mut self,
        chat: &ChatToRead,
        error: &msgraph::Error,
    ) -> Result<(), PollError> {
        if error.needs_reconnect() {
            self.reconnect = Some(error.to_string());
            return Ok(());
        }
        let kind = match error {
            msgraph::Error::Forbidden { .. } => "forbidden",
            msgraph::Error::NotFound { .. } => "not_found",
            msgraph::Error::Throttled { .. } => "throttled",
            msgraph::Error::Transient { .. } => "unavailable",
            _ => "error",
        };
        self.summary.errors += 1;
        self.problems
            .push(format!("chat {} could not be read ({kind})", chat.id));
        tracing::warn!(chat.id = %chat.id, failure = kind, %error, "a chat could not be read; it keeps its cursor and tickets and is retried next cycle");
        let mut conn = self.poller.inner.db.acquire().await?;
        poll_store::mark_chat_failure(
            &mut conn,
            &self.state.account_id,
            &chat.id,
            chat.chat_type.as_deref(),
            kind,
            &error.to_string(),
            self.now(),
        )
        .await?;
        Ok(())
    }

    /// Retries pasted images whose download failed earlier.
    async fn retry_images(&mut self) -> Result<(), PollError> {
        let now = self.now();
        let due = {
            let mut conn = self.poller.inner.db.acquire().await?;
            poll_store::due_downloads(&mut conn, now, self.settings().image_retries_per_cycle)
                .await?
        };
        for download in due {
            let ids = download.url.as_deref().and_then(ingest::hosted_content_ids);
            let result = match &ids {
                Some((chat, message, hosted)) => {
                    GraphReads::hosted_content(&self.graph, chat, message, hosted).await
                }
                None => Err(msgraph::Error::InvalidInput(
                    "the image's address is not a Graph hosted-content URL".into(),
                )),
            };
            let mut conn = self.poller.inner.db.acquire().await?;
            match result {
                Ok(bytes) => {
                    entries::store_attachment_content(
                        &mut conn,
                        download.attachment_id,
                        bytes.content_type.as_deref(),
                        &bytes.bytes,
                    )
                    .await?;
                    poll_store::clear_download_retry(&mut conn, download.attachment_id).await?;
                }
                Err(error) if error.needs_reconnect() => {
                    self.reconnect = Some(error.to_string());
                    return Ok(());
                }
                Err(error) if download.attempts + 1 >= IMAGE_MAX_ATTEMPTS || ids.is_none() => {
                    tracing::warn!(attachment.id = %download.attachment_id, %error, "giving up on a pasted image; the ticket keeps its placeholder");
                    entries::set_download_state(
                        &mut conn,
                        download.attachment_id,
                        DownloadState::Failed,
                    )
                    .await?;
                    poll_store::clear_download_retry(&mut conn, download.attachment_id).await?;
                }
                Err(error) => {
                    let factor = 1_i32 << download.attempts.clamp(0, 10);
                    poll_store::schedule_download_retry(
                        &mut conn,
                        download.attachment_id,
                        now + IMAGE_RETRY_BASE * factor,
                        &error.to_string(),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// The next wait: `interval` ± 10 %.
pub fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    let offset = rand::rng().random_range(-spread..=spread);
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.0))
}

/// The scheduler: polls the connected account every interval (with jitter) and at once when the
/// connection changes (connect, reconnect, disconnect), until `shutdown` fires. Cycles that find
/// the account leased by another process are simply skipped.
pub async fn run(poller: Poller, connections: TeamsConnections, shutdown: CancellationToken) {
    let mut changes = connections.subscribe_changes();
    loop {
        let account = match connections.active().await {
            Ok(account) => account,
            Err(error) => {
                tracing::error!(%error, "could not read the Teams connection; the poller tries again next interval");
                None
            }
        };
        let wait = jittered(poller.settings().interval);
        if let Some(account) = &account {
            let target = PollTarget::from_account(account);
            if let Err(error) = poller
                .poll_target(&target, CycleMode::Auto, &shutdown)
                .await
            {
                tracing::error!(%error, "a Teams poll cycle failed");
            }
            let next = poller.inner.clock.now()
                + time::Duration::try_from(wait).unwrap_or(time::Duration::minutes(5));
            if let Ok(mut conn) = poller.inner.db.acquire().await
                && let Err(error) =
                    poll_store::set_next_cycle(&mut conn, &target.support.account_id, Some(next))
                        .await
            {
                tracing::warn!(%error, "could not record the next poll time");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    // The connection service is gone (shutting down).
                    shutdown.cancelled().await;
                    return;
                }
            }
        }
    }
}

/// What the card and `GET /api/v1/integrations/teams` show about polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollStatus {
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_finished_at: Option<OffsetDateTime>,
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_summary: Option<CycleSummary>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_cycle_at: Option<OffsetDateTime>,
}

/// The poll status of an account (`None` if it was never polled).
pub async fn status(db: &Db, account_id: &str) -> Result<Option<PollStatus>, StoreError> {
    let mut conn = db.acquire().await?;
    let Some(last) = poll_store::last_cycle(&mut conn, account_id).await? else {
        return Ok(None);
    };
    Ok(Some(PollStatus {
        last_started_at: last.started_at,
        last_finished_at: last.finished_at,
        last_result: last.result,
        last_error: last.error,
        last_summary: last
            .summary_json
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok()),
        last_success_at: last.last_success_at,
        next_cycle_at: last.next_cycle_at,
    }))
}

/// Per-chat states by id, for diagnostics and tests.
pub async fn chat_states(
    db: &Db,
    account_id: &str,
    chats: &[ChatId],
) -> Result<HashMap<ChatId, ChatState>, StoreError> {
    let mut conn = db.acquire().await?;
    poll_store::chat_states(&mut conn, account_id, chats).await
}

/// The "last cycle / next cycle" lines of the Teams card.
pub async fn card_lines(db: &Db, account_id: &str) -> Result<Vec<String>, StoreError> {
    let Some(status) = status(db, account_id).await? else {
        return Ok(vec![
            "Not polled yet: the first poll runs right after connecting.".to_owned(),
        ]);
    };
    let mut lines = Vec::new();
    if let (Some(finished), Some(result)) = (status.last_finished_at, &status.last_result) {
        let what = match (&status.last_summary, result.as_str()) {
            (Some(summary), "ok") => format!(
                "ok, {} changed chat(s), {} message(s) stored",
                summary.chats_changed, summary.messages_ingested
            ),
            (_, other) => format!(
                "{other}: {}",
                status
                    .last_error
                    .as_deref()
                    .unwrap_or("see the log for details")
            ),
        };
        lines.push(format!("Last poll: {} — {what}.", human_time(finished)));
    }
    if let Some(success) = status.last_success_at
        && status.last_result.as_deref() != Some("ok")
    {
        lines.push(format!("Last complete poll: {}.", human_time(success)));
    }
    if let Some(next) = status.next_cycle_at {
        lines.push(format!("Next poll: about {}.", human_time(next)));
    }
    Ok(lines)
}

/// `2026-03-02 09:00:05 UTC`.
fn human_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
