//! The Teams Chat Bridge connection (`teams_connections`) and the OAuth sign-ins in progress
//! (`teams_oauth_states`), ARCHITECTURE §8.
//!
//! Rules kept here:
//! * At most one connection is *current* (`active_slot = 1`, state `connected` or
//!   `reconnect_required`); saving a new connected account retires the previous one in the same
//!   transaction. One row per Microsoft 365 account (tenant id + user object id): reconnecting
//!   the same account reuses its row and id, so the poller's cursors for it carry on.
//! * Token writes are compare-and-swap on `token_version` (and, for refreshes, on the refresh
//!   lease owner), so two processes never both store tokens from the same refresh token.
//! * Leaving `connected` (disconnect, reconnect required) erases both tokens.
//! * An OAuth `state` is stored as its SHA-256 only and is taken (deleted) on first use.
//!
//! Secrets only pass through here as token-vault blobs (ciphertext); this module never sees,
//! logs or returns a plaintext token, and `Debug` of a record never shows the blobs.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{decode_error, from_ms, opt_from_ms, parse_stored, to_ms};
use super::{StoreError, write_tx};
use crate::tickets::{TechnicianId, TenantId, ValidationError};

/// Table name used in token-vault associated data (`teams_connections:<id>:<field>`).
pub const CONNECTIONS_TABLE: &str = "teams_connections";
/// Table name used in token-vault associated data for PKCE verifiers.
pub const OAUTH_STATES_TABLE: &str = "teams_oauth_states";
/// Field name of the sealed access token.
pub const ACCESS_TOKEN_FIELD: &str = "access_token";
/// Field name of the sealed refresh token.
pub const REFRESH_TOKEN_FIELD: &str = "refresh_token";
/// Field name of the sealed PKCE verifier.
pub const PKCE_VERIFIER_FIELD: &str = "pkce_verifier";

/// Id of one connected Microsoft 365 account (stable across reconnects of the same account).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ConnectionId(Uuid);

impl ConnectionId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the string form (as stored and shown in logs).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Uuid::try_parse(input.trim()).map(Self).map_err(|_| {
            ValidationError::new(
                "connection_id",
                "connection_id must be an id like 01890a5d-ac96-774b-bcce-b302099a8057",
            )
        })
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({})", self.0.hyphenated())
    }
}

impl FromStr for ConnectionId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The connection states of ARCHITECTURE §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// No account is connected (or the current one was disconnected).
    Disconnected,
    /// Tokens are stored and usable.
    Connected,
    /// Microsoft refused the stored grant; an administrator must connect again.
    ReconnectRequired,
}

impl ConnectionState {
    /// `disconnected`, `connected` or `reconnect_required` (stored and shown in the API).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Connected => "connected",
            ConnectionState::ReconnectRequired => "reconnect_required",
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionState {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disconnected" => Ok(ConnectionState::Disconnected),
            "connected" => Ok(ConnectionState::Connected),
            "reconnect_required" => Ok(ConnectionState::ReconnectRequired),
            other => Err(ValidationError::new(
                "state",
                format!(
                    "state must be disconnected, connected or reconnect_required, not {other:?}"
                ),
            )),
        }
    }
}

/// One stored connection. Token fields are vault blobs (ciphertext), never plaintext.
#[derive(Clone)]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub state: ConnectionState,
    pub tenant_id: TenantId,
    /// Entra object id of the support user (lower-case).
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// Verified domains of the account's tenant (from `/organization`).
    pub tenant_domains: Vec<String>,
    /// Scopes Microsoft granted.
    pub scopes: Vec<String>,
    /// Why the account looks like a person's rather than a shared one (a hint, not a block).
    pub personal_account_hint: Option<String>,
    pub access_token: Option<Vec<u8>>,
    pub access_token_expires_at: Option<OffsetDateTime>,
    pub refresh_token: Option<Vec<u8>>,
    /// Bumped on every token write; compare-and-swap guard.
    pub token_version: i64,
    pub refresh_lease_owner: Option<String>,
    pub refresh_lease_until: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// Why a reconnect is required (shown on the card).
    pub problem: Option<String>,
    pub problem_at: Option<OffsetDateTime>,
    pub connected_at: OffsetDateTime,
    pub disconnected_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl fmt::Debug for ConnectionRecord {
    // Blobs are ciphertext, but a log line has no business carrying them either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionRecord")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("has_access_token", &self.access_token.is_some())
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("token_version", &self.token_version)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: String,
    state: String,
    tenant_id: String,
    user_id: String,
    email: String,
    display_name: String,
    tenant_domains: String,
    scopes: String,
    personal_account_hint: Option<String>,
    access_token: Option<Vec<u8>>,
    access_token_expires_at: Option<i64>,
    refresh_token: Option<Vec<u8>>,
    token_version: i64,
    refresh_lease_owner: Option<String>,
    refresh_lease_until: Option<i64>,
    last_refreshed_at: Option<i64>,
    problem: Option<String>,
    problem_at: Option<i64>,
    connected_at: i64,
    disconnected_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

fn json_list(raw: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|err| {
        decode_error(format!(
            "teams connection {what} are not a JSON list: {err}"
        ))
    })
}

fn to_json_list(values: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(values).map_err(|err| StoreError::Internal(err.to_string()))
}

impl ConnectionRow {
    fn into_record(self) -> Result<ConnectionRecord, StoreError> {
        Ok(ConnectionRecord {
            id: parse_stored(&self.id, ConnectionId::parse)?,
            state: parse_stored(&self.state, str::parse)?,
            tenant_id: parse_stored(&self.tenant_id, TenantId::parse)?,
            user_id: self.user_id,
            email: self.email,
            display_name: self.display_name,
            tenant_domains: json_list(&self.tenant_domains, "domains")?,
            scopes: json_list(&self.scopes, "scopes")?,
            personal_account_hint: self.personal_account_hint,
            access_token: self.access_token,
            access_token_expires_at: opt_from_ms(self.access_token_expires_at)?,
            refresh_token: self.refresh_token,
            token_version: self.token_version,
            refresh_lease_owner: self.refresh_lease_owner,
            refresh_lease_until: opt_from_ms(self.refresh_lease_until)?,
            last_refreshed_at: opt_from_ms(self.last_refreshed_at)?,
            problem: self.problem,
            problem_at: opt_from_ms(self.problem_at)?,
            connected_at: from_ms(self.connected_at)?,
            disconnected_at: opt_from_ms(self.disconnected_at)?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

const COLUMNS: &str = "id, state, tenant_id, user_id, email, display_name, tenant_domains, \
     scopes, personal_account_hint, access_token, access_token_expires_at, refresh_token, \
     token_version, refresh_lease_owner, refresh_lease_until, last_refreshed_at, problem, \
     problem_at, connected_at, disconnected_at, created_at, updated_at";

/// The current connection (`connected` or `reconnect_required`), if any.
pub async fn current(conn: &mut AnyConnection) -> Result<Option<ConnectionRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM teams_connections WHERE active_slot = 1");
    let row: Option<ConnectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await?;
    row.map(ConnectionRow::into_record).transpose()
}

/// One connection by id.
pub async fn get(
    conn: &mut AnyConnection,
    id: ConnectionId,
) -> Result<ConnectionRecord, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM teams_connections WHERE id = $1");
    let row: Option<ConnectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or(StoreError::NotFound("teams connection"))?
        .into_record()
}

/// The id already used for this Microsoft 365 account, if it was ever connected.
pub async fn id_for_account(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    user_id: &str,
) -> Result<Option<ConnectionId>, StoreError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM teams_connections WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant_id.as_str())
    .bind(user_id.to_lowercase())
    .fetch_optional(&mut *conn)
    .await?;
    id.map(|raw| parse_stored(&raw, ConnectionId::parse))
        .transpose()
}

/// A freshly consented account and its sealed tokens, as [`save_connected`] stores it.
pub struct NewConnection<'a> {
    /// From [`id_for_account`], or a new id: the blobs are sealed for this row id.
    pub id: ConnectionId,
    pub tenant_id: &'a TenantId,
    pub user_id: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub tenant_domains: &'a [String],
    pub scopes: &'a [String],
    pub personal_account_hint: Option<&'a str>,
    pub access_token: &'a [u8],
    pub access_token_expires_at: OffsetDateTime,
    pub refresh_token: &'a [u8],
}

/// Makes `new` the current, connected account: retires any other current connection (state
/// `disconnected`, tokens erased) and inserts or updates this account's row, all in one
/// transaction. Returns the ids of the connections that were retired.
pub async fn save_connected(
    conn: &mut AnyConnection,
    new: &NewConnection<'_>,
    now: OffsetDateTime,
) -> Result<Vec<ConnectionId>, StoreError> {
    let now_ms = to_ms(now);
    let domains = to_json_list(new.tenant_domains)?;
    let scopes = to_json_list(new.scopes)?;
    let mut tx = write_tx(conn).await?;

    let retired: Vec<String> =
        sqlx::query_scalar("SELECT id FROM teams_connections WHERE active_slot = 1 AND id <> $1")
            .bind(new.id.to_string())
            .fetch_all(&mut *tx)
            .await?;
    for id in &retired {
        erase_and_set_state(&mut tx, id, ConnectionState::Disconnected, None, now_ms).await?;
    }

    let updated = sqlx::query(
        "UPDATE teams_connections SET state = 'connected', active_slot = 1, email = $2, \
         display_name = $3, tenant_domains = $4, scopes = $5, personal_account_hint = $6, \
         access_token = $7, access_token_expires_at = $8, refresh_token = $9, \
         token_version = token_version + 1, refresh_lease_owner = NULL, \
         refresh_lease_until = NULL, last_refreshed_at = $10, problem = NULL, problem_at = NULL, \
         connected_at = $10, disconnected_at = NULL, updated_at = $10 \
         WHERE id = $1 AND tenant_id = $11 AND user_id = $12",
    )
    .bind(new.id.to_string())
    .bind(new.email)
    .bind(new.display_name)
    .bind(&domains)
    .bind(&scopes)
    .bind(new.personal_account_hint)
    .bind(new.access_token.to_vec())
    .bind(to_ms(new.access_token_expires_at))
    .bind(new.refresh_token.to_vec())
    .bind(now_ms)
    .bind(new.tenant_id.as_str())
    .bind(new.user_id.to_lowercase())
    .execute(&mut *tx)
    .await?
    .rows_affected();

    if updated == 0 {
        let inserted = sqlx::query(
            "INSERT INTO teams_connections (id, state, active_slot, tenant_id, user_id, email, \
             display_name, tenant_domains, scopes, personal_account_hint, access_token, \
             access_token_expires_at, refresh_token, token_version, last_refreshed_at, \
             connected_at, created_at, updated_at) \
             VALUES ($1, 'connected', 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12, \
             $12, $12)",
        )
        .bind(new.id.to_string())
        .bind(new.tenant_id.as_str())
        .bind(new.user_id.to_lowercase())
        .bind(new.email)
        .bind(new.display_name)
        .bind(&domains)
        .bind(&scopes)
        .bind(new.personal_account_hint)
        .bind(new.access_token.to_vec())
        .bind(to_ms(new.access_token_expires_at))
        .bind(new.refresh_token.to_vec())
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(StoreError::Conflict(
                    "this Microsoft 365 account was connected at the same moment by another \
                     request; reload the page to see the connection"
                        .to_owned(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
    }
    tx.commit().await?;
    retired
        .iter()
        .map(|raw| parse_stored(raw, ConnectionId::parse))
        .collect()
}

/// Leaves the connected state: erases both tokens and the lease, sets `state`, and keeps or
/// clears the current slot (`reconnect_required` keeps it, `disconnected` clears it).
async fn erase_and_set_state(
    conn: &mut AnyConnection,
    id: &str,
    state: ConnectionState,
    problem: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let (active_slot, disconnected_at) = match state {
        ConnectionState::Disconnected => (None, Some(now_ms)),
        _ => (Some(1_i64), None),
    };
    let done = sqlx::query(
        "UPDATE teams_connections SET state = $2, active_slot = $3, access_token = NULL, \
         access_token_expires_at = NULL, refresh_token = NULL, \
         token_version = token_version + 1, refresh_lease_owner = NULL, \
         refresh_lease_until = NULL, problem = $4, problem_at = $5, \
         disconnected_at = COALESCE($6, disconnected_at), updated_at = $7 WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(active_slot)
    .bind(problem)
    .bind(problem.map(|_| now_ms))
    .bind(disconnected_at)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Sets `reconnect_required` with `reason` and erases the tokens — only if the connection is
/// `connected` right now. Returns true when this call made the change (so the caller logs it
/// once), false when it was already not connected.
pub async fn mark_reconnect_required(
    conn: &mut AnyConnection,
    id: ConnectionId,
    reason: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut tx = write_tx(conn).await?;
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM teams_connections WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    if state.as_deref() != Some(ConnectionState::Connected.as_str()) {
        return Ok(false);
    }
    erase_and_set_state(
        &mut tx,
        &id.to_string(),
        ConnectionState::ReconnectRequired,
        Some(reason),
        to_ms(now),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Disconnects the current connection (whatever its state): tokens erased, no longer current.
/// Tickets and chat links are untouched. Returns the id that was disconnected, if any.
pub async fn disconnect_current(
    conn: &mut AnyConnection,
    now: OffsetDateTime,
) -> Result<Option<ConnectionId>, StoreError> {
    let mut tx = write_tx(conn).await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT id FROM teams_connections WHERE active_slot = 1")
            .fetch_optional(&mut *tx)
            .await?;
    let Some(id) = current else {
        return Ok(None);
    };
    erase_and_set_state(
        &mut tx,
        &id,
        ConnectionState::Disconnected,
        None,
        to_ms(now),
    )
    .await?;
    tx.commit().await?;
    parse_stored(&id, ConnectionId::parse).map(Some)
}

/// Claims the right to redeem the stored refresh token: succeeds only if the connection is
/// connected, its tokens are still at `expected_version`, and no other owner holds an unexpired
/// lease. Returns true when `owner` now holds the lease until `until`.
pub async fn claim_refresh_lease(
    conn: &mut AnyConnection,
    id: ConnectionId,
    expected_version: i64,
    owner: &str,
    until: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE teams_connections SET refresh_lease_owner = $3, refresh_lease_until = $4 \
         WHERE id = $1 AND state = 'connected' AND token_version = $2 \
         AND (refresh_lease_until IS NULL OR refresh_lease_until < $5 OR refresh_lease_owner = $3)",
    )
    .bind(id.to_string())
    .bind(expected_version)
    .bind(owner)
    .bind(to_ms(until))
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the tokens a refresh returned (the rotated refresh token included) and releases the
/// lease — only while `owner` still holds the lease on `expected_version` and the connection is
/// connected. Returns false (nothing written) when that is no longer so (disconnected meanwhile,
/// or the lease expired and another process refreshed).
#[expect(
    clippy::too_many_arguments,
    reason = "one compare-and-swap statement; the arguments are its columns"
)]
pub async fn store_refreshed_tokens(
    conn: &mut AnyConnection,
    id: ConnectionId,
    expected_version: i64,
    owner: &str,
    access_token: &[u8],
    access_token_expires_at: OffsetDateTime,
    refresh_token: &[u8],
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE teams_connections SET access_token = $4, access_token_expires_at = $5, \
         refresh_token = $6, token_version = token_version + 1, refresh_lease_owner = NULL, \
         refresh_lease_until = NULL, last_refreshed_at = $7, updated_at = $7 \
         WHERE id = $1 AND state = 'connected' AND token_version = $2 \
         AND refresh_lease_owner = $3",
    )
    .bind(id.to_string())
    .bind(expected_version)
    .bind(owner)
    .bind(access_token.to_vec())
    .bind(to_ms(access_token_expires_at))
    .bind(refresh_token.to_vec())
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up a refresh lease held by `owner` (after a failed refresh that left the tokens as
/// they were), so the next attempt need not wait for it to expire.
pub async fn release_refresh_lease(
    conn: &mut AnyConnection,
    id: ConnectionId,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE teams_connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
         WHERE id = $1 AND refresh_lease_owner = $2",
    )
    .bind(id.to_string())
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The sealed tokens of one connection, for `keys rotate`.
#[derive(Clone)]
pub struct SealedTokens {
    pub id: ConnectionId,
    pub token_version: i64,
    pub access_token: Option<Vec<u8>>,
    pub refresh_token: Option<Vec<u8>>,
}

/// Every connection that still holds a sealed token.
pub async fn all_sealed_tokens(conn: &mut AnyConnection) -> Result<Vec<SealedTokens>, StoreError> {
    type Row = (String, i64, Option<Vec<u8>>, Option<Vec<u8>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, token_version, access_token, refresh_token FROM teams_connections \
         WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, token_version, access_token, refresh_token)| {
            Ok(SealedTokens {
                id: parse_stored(&id, ConnectionId::parse)?,
                token_version,
                access_token,
                refresh_token,
            })
        })
        .collect()
}

/// Replaces a connection's blobs with re-encrypted ones, unless the tokens changed since they
/// were read (`token_version`); returns false then (read again and retry). The version is not
/// bumped: the secrets are the same, only their encryption changed.
pub async fn replace_sealed_tokens(
    conn: &mut AnyConnection,
    id: ConnectionId,
    expected_version: i64,
    access_token: Option<&[u8]>,
    refresh_token: Option<&[u8]>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE teams_connections SET access_token = $3, refresh_token = $4 \
         WHERE id = $1 AND token_version = $2",
    )
    .bind(id.to_string())
    .bind(expected_version)
    .bind(access_token.map(<[u8]>::to_vec))
    .bind(refresh_token.map(<[u8]>::to_vec))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// SHA-256 (hex) of an OAuth `state`: what is stored and looked up, never the state itself.
pub fn state_hash(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A pending sign-in, as taken back by [`take_oauth_state`].
#[derive(Clone)]
pub struct OAuthStateRecord {
    pub state_hash: String,
    pub technician_id: TechnicianId,
    /// Vault blob sealed for `teams_oauth_states:<state_hash>:pkce_verifier`.
    pub pkce_verifier: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for OAuthStateRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthStateRecord")
            .field("technician_id", &self.technician_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Remembers a pending sign-in (and drops expired ones on the way).
pub async fn insert_oauth_state(
    conn: &mut AnyConnection,
    state_hash: &str,
    technician_id: TechnicianId,
    pkce_verifier: &[u8],
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut tx = write_tx(conn).await?;
    sqlx::query("DELETE FROM teams_oauth_states WHERE expires_at < $1")
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO teams_oauth_states (state_hash, technician_id, pkce_verifier, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state_hash)
    .bind(technician_id.to_string())
    .bind(pkce_verifier.to_vec())
    .bind(to_ms(now))
    .bind(to_ms(expires_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Takes (deletes and returns) a pending sign-in: a `state` works once at most. The caller
/// still checks `expires_at` and who it belongs to.
pub async fn take_oauth_state(
    conn: &mut AnyConnection,
    state_hash: &str,
) -> Result<Option<OAuthStateRecord>, StoreError> {
    type Row = (String, String, Vec<u8>, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM teams_oauth_states WHERE state_hash = $1 \
         RETURNING state_hash, technician_id, pkce_verifier, created_at, expires_at",
    )
    .bind(state_hash)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(
        |(state_hash, technician_id, pkce_verifier, created_at, expires_at)| {
            Ok(OAuthStateRecord {
                state_hash,
                technician_id: parse_stored(&technician_id, TechnicianId::parse)?,
                pkce_verifier,
                created_at: from_ms(created_at)?,
                expires_at: from_ms(expires_at)?,
            })
        },
    )
    .transpose()
}

/// Every pending sign-in's sealed verifier (`keys rotate`): (state hash, blob).
pub async fn all_sealed_oauth_verifiers(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT state_hash, pkce_verifier FROM teams_oauth_states")
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Replaces a pending sign-in's sealed verifier with a re-encrypted one (no-op if it was used
/// meanwhile).
pub async fn replace_sealed_oauth_verifier(
    conn: &mut AnyConnection,
    state_hash: &str,
    pkce_verifier: &[u8],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE teams_oauth_states SET pkce_verifier = $2 WHERE state_hash = $1")
        .bind(state_hash)
        .bind(pkce_verifier.to_vec())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
