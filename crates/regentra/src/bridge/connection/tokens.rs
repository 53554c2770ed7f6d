//! The vault-backed [`TokenSource`] behind every [`ActiveAccount`](super::ActiveAccount)'s
//! Graph client, the refresh (single-flight inside the process, a compare-and-swap lease in the
//! database across processes), and the keep-alive refresh of an idle connection.
//!
//! Rules:
//! * an access token is used while it is valid for more than [`REFRESH_MARGIN`]; otherwise it is
//!   refreshed first;
//! * only the holder of the refresh lease on the current `token_version` redeems the refresh
//!   token, and the rotated refresh token is stored (sealed) before the new access token is
//!   handed out;
//! * every token read checks the connection is still `connected`: after a disconnect or a
//!   reconnect-required no Graph request can be made with this connection;
//! * a reconnect-class refusal (dead grant, missing consent, interaction required) marks the
//!   connection `reconnect_required` once and is never retried.
//!
//! This module must never log or return a token outside a `SecretString`.

use std::sync::{Arc, Weak};
use std::time::Duration as StdDuration;

use msgraph::TokenSource;
use msgraph::oauth::{TokenError, TokenErrorClass};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;

use super::{ConnectionError, ConnectionId, ConnectionState, Inner, TeamsConnections};
use crate::bridge::vault::SealedField;
use crate::store::teams::{
    ACCESS_TOKEN_FIELD, CONNECTIONS_TABLE, ConnectionRecord, REFRESH_TOKEN_FIELD,
};
use crate::store::{self};

/// Refresh when the access token expires within this (ARCHITECTURE §5.1).
pub const REFRESH_MARGIN: Duration = Duration::minutes(5);
/// An idle connection is refreshed once its last refresh is this old, keeping the refresh
/// token far inside Microsoft's 90-day inactivity limit (at least every 7 days).
pub const KEEP_ALIVE_AFTER: Duration = Duration::days(6);
/// How long a refresh lease protects one redemption of the refresh token.
const REFRESH_LEASE: Duration = Duration::seconds(60);
/// How often a process waiting for another process's refresh looks again.
const LEASE_POLL: StdDuration = StdDuration::from_millis(200);
/// How often the keep-alive loop checks whether a refresh is due.
const KEEP_ALIVE_CHECK: StdDuration = StdDuration::from_secs(3600);

/// The sealed-field of a connection's token (associated data = table, row id, field).
pub(super) fn token_field(id: ConnectionId, field: &str) -> SealedField {
    SealedField::new(CONNECTIONS_TABLE, id.to_string(), field)
}

/// The [`TokenSource`] of one connection. Holds the service weakly so cached Graph clients do
/// not keep it alive in a cycle.
pub(super) struct VaultTokenSource {
    inner: Weak<Inner>,
    id: ConnectionId,
}

impl VaultTokenSource {
    pub(super) fn new(inner: Weak<Inner>, id: ConnectionId) -> Self {
        Self { inner, id }
    }

    fn connections(&self) -> Result<TeamsConnections, msgraph::Error> {
        self.inner
            .upgrade()
            .map(TeamsConnections::from_inner)
            .ok_or_else(|| unavailable("Regentra is shutting down"))
    }
}

#[async_trait::async_trait]
impl TokenSource for VaultTokenSource {
    async fn access_token(&self) -> Result<SecretString, msgraph::Error> {
        self.connections()?.access_token(self.id).await
    }

    async fn refresh_after_unauthorized(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, msgraph::Error> {
        self.connections()?
            .refresh_after_rejection(self.id, rejected)
            .await
    }
}

fn unavailable(message: impl Into<String>) -> msgraph::Error {
    msgraph::Error::TokenUnavailable {
        message: message.into(),
    }
}

/// Whether this refusal means "a human must connect again" (never retried).
fn is_reconnect_class(error: &TokenError) -> bool {
    matches!(
        error.class,
        TokenErrorClass::ReconnectRequired
            | TokenErrorClass::ConsentRequired
            | TokenErrorClass::InteractionRequired
    )
}

/// The card's sentence for a refresh Microsoft refused.
fn reconnect_reason(error: &TokenError) -> String {
    format!("Microsoft refused to renew the sign-in of the support account: {error}")
}

/// What a keep-alive check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// No connected account.
    NotConnected,
    /// The tokens were refreshed recently enough.
    NotDue,
    /// The refresh token was redeemed and the new tokens stored.
    Refreshed,
}

impl TeamsConnections {
    /// A valid access token for `id`, refreshing first if it expires within [`REFRESH_MARGIN`].
    pub(super) async fn access_token(
        &self,
        id: ConnectionId,
    ) -> Result<SecretString, msgraph::Error> {
        let record = self.load_connected(id).await?;
        if self.is_fresh(&record) {
            return self.open_access_token(&record);
        }
        let lock = self.refresh_lock(id);
        let _single_flight = lock.lock().await;
        // Another task may have refreshed while this one waited for the lock.
        let record = self.load_connected(id).await?;
        if self.is_fresh(&record) {
            return self.open_access_token(&record);
        }
        self.refresh_locked(record).await
    }

    /// Graph answered 401 to `rejected`: refresh unless another task already replaced it.
    pub(super) async fn refresh_after_rejection(
        &self,
        id: ConnectionId,
        rejected: &SecretString,
    ) -> Result<SecretString, msgraph::Error> {
        let lock = self.refresh_lock(id);
        let _single_flight = lock.lock().await;
        let record = self.load_connected(id).await?;
        if record.access_token.is_some() {
            let stored = self.open_access_token(&record)?;
            if stored.expose_secret() != rejected.expose_secret() && self.is_fresh(&record) {
                return Ok(stored);
            }
        }
        self.refresh_locked(record).await
    }

    /// Redeems the refresh token now, whatever the access token's expiry (keep-alive, tests).
    pub async fn refresh_now(&self, id: ConnectionId) -> Result<(), ConnectionError> {
        let lock = self.refresh_lock(id);
        let _single_flight = lock.lock().await;
        let record =
            self.load_connected(id)
                .await
                .map_err(|source| ConnectionError::Microsoft {
                    context: "refreshing the Teams connection's tokens failed",
                    source: Box::new(source),
                })?;
        self.refresh_locked(record)
            .await
            .map(|_| ())
            .map_err(|source| ConnectionError::Microsoft {
                context: "refreshing the Teams connection's tokens failed",
                source: Box::new(source),
            })
    }

    /// True when the current connection is connected and its tokens were last refreshed
    /// [`KEEP_ALIVE_AFTER`] ago or longer.
    pub async fn keep_alive_due(&self) -> Result<bool, ConnectionError> {
        let record = store::teams::current(&mut *self.inner.db.acquire().await?).await?;
        Ok(record.is_some_and(|record| self.keep_alive_due_for(&record)))
    }

    fn keep_alive_due_for(&self, record: &ConnectionRecord) -> bool {
        record.state == ConnectionState::Connected
            && record
                .last_refreshed_at
                .unwrap_or(record.connected_at)
                .saturating_add(KEEP_ALIVE_AFTER)
                <= self.inner.clock.now()
    }

    /// Refreshes the current connection if [`TeamsConnections::keep_alive_due`].
    pub async fn keep_alive(&self) -> Result<KeepAlive, ConnectionError> {
        let record = store::teams::current(&mut *self.inner.db.acquire().await?).await?;
        let Some(record) = record.filter(|r| r.state == ConnectionState::Connected) else {
            return Ok(KeepAlive::NotConnected);
        };
        if !self.keep_alive_due_for(&record) {
            return Ok(KeepAlive::NotDue);
        }
        self.refresh_now(record.id).await?;
        tracing::info!(connection.id = %record.id, "Teams connection kept alive: tokens refreshed");
        Ok(KeepAlive::Refreshed)
    }

    /// Checks every hour whether a keep-alive refresh is due, until `shutdown`. Failures are
    /// logged (reconnect-class ones already marked the connection) and tried again next hour.
    pub async fn run_keep_alive(self, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.keep_alive().await {
                tracing::warn!("Teams connection keep-alive refresh failed: {error}");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(KEEP_ALIVE_CHECK) => {}
            }
        }
    }

    fn refresh_lock(&self, id: ConnectionId) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .refresh_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    fn is_fresh(&self, record: &ConnectionRecord) -> bool {
        record.access_token.is_some()
            && record
                .access_token_expires_at
                .is_some_and(|expires| expires > self.inner.clock.now() + REFRESH_MARGIN)
    }

    /// The connection, if (and only if) it is connected; otherwise no token may be used.
    async fn load_connected(&self, id: ConnectionId) -> Result<ConnectionRecord, msgraph::Error> {
        let mut conn = self
            .inner
            .db
            .acquire()
            .await
            .map_err(|error| unavailable(format!("the database is not answering: {error}")))?;
        let record = store::teams::get(&mut conn, id).await.map_err(|error| {
            unavailable(format!("the Teams connection could not be read: {error}"))
        })?;
        match record.state {
            ConnectionState::Connected => Ok(record),
            ConnectionState::Disconnected => Err(unavailable(
                "the Teams support account was disconnected; connect it again in Settings → Integrations",
            )),
            ConnectionState::ReconnectRequired => Err(unavailable(format!(
                "the Teams connection must be reconnected ({})",
                record
                    .problem
                    .as_deref()
                    .unwrap_or("Microsoft refused the stored sign-in")
            ))),
        }
    }

    fn open_access_token(&self, record: &ConnectionRecord) -> Result<SecretString, msgraph::Error> {
        let blob = record
            .access_token
            .as_deref()
            .ok_or_else(|| unavailable("the Teams connection holds no access token"))?;
        self.inner
            .keys
            .decrypt_secret(blob, &token_field(record.id, ACCESS_TOKEN_FIELD))
            .map_err(|error| unavailable(error.to_string()))
    }

    /// Redeems the refresh token (caller holds the in-process lock for this connection).
    async fn refresh_locked(
        &self,
        record: ConnectionRecord,
    ) -> Result<SecretString, msgraph::Error> {
        let Some(app) = &self.inner.app else {
            return Err(unavailable(
                "the Microsoft app settings are incomplete, so tokens cannot be refreshed",
            ));
        };
        let id = record.id;
        let now = self.inner.clock.now();
        let owner = self.inner.lease_owner.as_str();
        let claimed = {
            let mut conn = self.inner.db.acquire().await.map_err(store_unavailable)?;
            store::teams::claim_refresh_lease(
                &mut conn,
                id,
                record.token_version,
                owner,
                now + REFRESH_LEASE,
                now,
            )
            .await
            .map_err(store_unavailable)?
        };
        if !claimed {
            return self.wait_for_other_refresh(id, record.token_version).await;
        }

        let refresh_token = match record.refresh_token.as_deref().map(|blob| {
            self.inner
                .keys
                .decrypt_secret(blob, &token_field(id, REFRESH_TOKEN_FIELD))
        }) {
            Some(Ok(token)) => token,
            Some(Err(error)) => {
                self.release_lease(id).await;
                return Err(unavailable(error.to_string()));
            }
            None => {
                self.release_lease(id).await;
                return Err(unavailable("the Teams connection holds no refresh token"));
            }
        };

        let tokens = match app.oauth.refresh(&refresh_token).await {
            Ok(tokens) => tokens,
            Err(error) if is_reconnect_class(&error) => {
                let reason = reconnect_reason(&error);
                if let Err(store_error) = self.mark_reconnect_required(id, &reason).await {
                    tracing::error!(connection.id = %id, "could not record that the Teams connection needs reconnecting: {store_error}");
                }
                return Err(msgraph::Error::from(error));
            }
            Err(error) => {
                self.release_lease(id).await;
                return Err(msgraph::Error::from(error));
            }
        };

        // Microsoft always rotates; `OAuthClient::refresh` falls back to the used token if not.
        let new_refresh = tokens.refresh_token.clone().unwrap_or(refresh_token);
        let expires_at = self.expiry_on_our_clock(tokens.expires_at);
        let sealed = self
            .inner
            .keys
            .encrypt_secret(&tokens.access_token, &token_field(id, ACCESS_TOKEN_FIELD))
            .and_then(|access| {
                self.inner
                    .keys
                    .encrypt_secret(&new_refresh, &token_field(id, REFRESH_TOKEN_FIELD))
                    .map(|refresh| (access, refresh))
            });
        let (access_blob, refresh_blob) = match sealed {
            Ok(blobs) => blobs,
            Err(error) => {
                self.release_lease(id).await;
                return Err(unavailable(error.to_string()));
            }
        };
        // Stored before the new access token is used: a crash right after still leaves the
        // newest refresh token in the vault.
        let stored = {
            let mut conn = self.inner.db.acquire().await.map_err(store_unavailable)?;
            store::teams::store_refreshed_tokens(
                &mut conn,
                id,
                record.token_version,
                owner,
                &access_blob,
                expires_at,
                &refresh_blob,
                self.inner.clock.now(),
            )
            .await
            .map_err(store_unavailable)?
        };
        if !stored {
            // Disconnected meanwhile (the new tokens are dropped), or our lease ran out and
            // another process stored newer tokens: use what is stored, if anything.
            let record = self.load_connected(id).await?;
            return self.open_access_token(&record);
        }
        tracing::debug!(connection.id = %id, "Teams connection tokens refreshed");
        Ok(tokens.access_token)
    }

    /// Another process holds the refresh lease: wait for its tokens (or for the lease to lapse).
    async fn wait_for_other_refresh(
        &self,
        id: ConnectionId,
        seen_version: i64,
    ) -> Result<SecretString, msgraph::Error> {
        let deadline = tokio::time::Instant::now()
            + StdDuration::try_from(REFRESH_LEASE).unwrap_or(StdDuration::from_secs(60));
        loop {
            let record = self.load_connected(id).await?;
            if record.token_version != seen_version && record.access_token.is_some() {
                return self.open_access_token(&record);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(msgraph::Error::Token(Box::new(TokenError {
                    class: TokenErrorClass::Transient,
                    error: "refresh_in_progress".to_owned(),
                    error_codes: Vec::new(),
                    description: Some(
                        "another Regentra process is refreshing this connection's tokens and has \
                         not finished; the next attempt will use its result"
                            .to_owned(),
                    ),
                    suberror: None,
                    trace_id: None,
                    correlation_id: None,
                    http_status: None,
                })));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    async fn release_lease(&self, id: ConnectionId) {
        let released = match self.inner.db.acquire().await {
            Ok(mut conn) => {
                store::teams::release_refresh_lease(&mut conn, id, &self.inner.lease_owner).await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = released {
            // The lease expires on its own within a minute.
            tracing::warn!(connection.id = %id, "could not release the token refresh lease: {error}");
        }
    }

    /// `expires_at` from the token endpoint is on the system clock; keep the same remaining
    /// lifetime on the injected clock.
    pub(super) fn expiry_on_our_clock(&self, expires_at: OffsetDateTime) -> OffsetDateTime {
        let remaining = expires_at - OffsetDateTime::now_utc();
        self.inner.clock.now() + remaining
    }
}

fn store_unavailable(error: store::StoreError) -> msgraph::Error {
    unavailable(format!("the Teams connection could not be stored: {error}"))
}
