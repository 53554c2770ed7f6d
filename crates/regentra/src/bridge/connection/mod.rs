//! The Teams connection (ARCHITECTURE §8): connecting the shared Microsoft 365 support user
//! through the consent flow, keeping its tokens sealed in the token vault, refreshing them, and
//! the connection's states `disconnected` → `connected` → `reconnect_required` → `connected`.
//!
//! [`TeamsConnections`] (one per process, held in `AppState`) is what the poller, the outbox and
//! the federation checker use:
//! * [`TeamsConnections::active`] — the connected account with a ready [`msgraph::GraphClient`]
//!   whose tokens come from the vault (refreshed within 5 minutes of expiry, single-flight);
//!   `None` unless the state is `connected`.
//! * [`TeamsConnections::subscribe_changes`] — a counter bumped on connect, disconnect and
//!   reconnect-required, so workers can stop or resume at once.
//! * [`TeamsConnections::mark_reconnect_required`] — for a worker that met a reconnect-class
//!   error itself (the token source already does this for dead refresh tokens).
//!
//! Submodules: `consent` (the connect flow and its messages), `tokens` (the vault-backed
//! [`msgraph::TokenSource`], refresh and keep-alive), `rotate` (`regentra keys rotate`),
//! `account_hint` (the "looks personal" heuristic), `clock`.
//!
//! This module must never log, print or return a token, code, verifier or secret (they travel as
//! `secrecy` types and are stored only as vault blobs), retry a refresh Microsoft refused as
//! reconnect-class, or touch tickets: disconnecting leaves tickets and chat links alone.

mod account_hint;
mod clock;
mod consent;
mod rotate;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use msgraph::oauth::{OAuthClient, OAuthConfig};
use msgraph::{GraphClient, GraphConfig};
use time::OffsetDateTime;
use tokio::sync::watch;
use url::Url;

pub use account_hint::personal_account_hint;
pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::{CallbackParams, ConnectError, ConnectOutcome, ConnectStart, STATE_LIFETIME};
pub use rotate::{RotateError, RotationReport, reencrypt_all_secrets, rotate_keys};
pub use tokens::{KEEP_ALIVE_AFTER, KeepAlive, REFRESH_MARGIN};

pub use crate::store::teams::{ConnectionId, ConnectionState};

use crate::bridge::vault::{KeyRing, VaultError};
use crate::config::{
    Config, ENV_MS_CLIENT_ID, ENV_MS_CLIENT_SECRET, ENV_PUBLIC_URL, MicrosoftConfig,
};
use crate::store::{self, Db, StoreError};
use crate::tickets::TenantId;

/// The delegated permissions Regentra asks for — exactly these, nothing broader.
pub const SCOPES: [&str; 5] = [
    "offline_access",
    "User.Read",
    "Chat.Read",
    "ChatMessage.Read",
    "ChatMessage.Send",
];

/// Path of the OAuth redirect URI under the public URL (register it on the Azure app).
pub const CALLBACK_PATH: &str = "integrations/teams/callback";

/// The connected support account, ready to call Graph. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ActiveAccount {
    pub connection_id: ConnectionId,
    pub email: String,
    pub display_name: String,
    /// Entra object id of the support user (lower-case): Graph `from.user.id` of its messages.
    pub user_id: String,
    pub tenant_id: TenantId,
    /// Verified domains of the support user's tenant (from `/organization`).
    pub tenant_domains: Vec<String>,
    /// When this account was (re)connected: the poller's first watermark.
    pub connected_at: OffsetDateTime,
    /// Graph client whose token source reads, refreshes and stores this connection's tokens.
    /// It stops working (no request is sent) as soon as the connection leaves `connected`.
    pub graph: GraphClient,
}

/// The account part of the status (card + `GET /api/v1/integrations/teams`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountSummary {
    pub email: String,
    pub display_name: String,
    pub tenant_id: TenantId,
    /// Entra object id of the support user.
    #[serde(skip)]
    pub user_id: String,
}

/// Whether the Microsoft app registration settings are complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupStatus {
    /// Everything needed to connect is configured.
    Ready,
    /// These variables are missing (e.g. `REGENTRA_MS_CLIENT_ID`).
    Incomplete { missing: Vec<&'static str> },
    /// A setting is present but unusable; the message says which and why.
    Invalid { message: String },
}

/// Everything the card and the API show about the connection.
#[derive(Debug, Clone)]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    pub connection_id: Option<ConnectionId>,
    pub account: Option<AccountSummary>,
    /// Why a reconnect is required.
    pub reason: Option<String>,
    pub problem_at: Option<OffsetDateTime>,
    /// Set when the account looks like a person's own (a hint, not a block).
    pub personal_account_hint: Option<String>,
    pub connected_at: Option<OffsetDateTime>,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub setup: SetupStatus,
    /// The redirect URI the Azure app registration must list.
    pub redirect_uri: Url,
    /// False when `REGENTRA_PUBLIC_URL` is unset and the redirect URI was derived from the
    /// listening address (fine on this machine, wrong behind a proxy).
    pub public_url_configured: bool,
}

/// What went wrong with the connection. Messages say what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The Microsoft app settings are incomplete or invalid.
    #[error("{0}")]
    NotConfigured(String),
    /// The database failed.
    #[error("reading or writing the Teams connection failed: {0}")]
    Store(#[from] StoreError),
    /// A stored secret could not be sealed or opened (the message names the connection).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Microsoft Graph or the token endpoint failed.
    #[error("{context}: {source}")]
    Microsoft {
        context: &'static str,
        #[source]
        source: Box<msgraph::Error>,
    },
}

/// How to reach Microsoft, derived from the configuration and the public URL.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub microsoft: MicrosoftConfig,
    /// `{public_url}/integrations/teams/callback`.
    pub redirect_uri: Url,
    pub public_url_configured: bool,
}

impl ConnectionSettings {
    /// Settings from the validated config and the effective public URL (`AppState::base_url`).
    pub fn from_config(config: &Config, base_url: &Url) -> Self {
        Self {
            microsoft: config.microsoft.clone(),
            redirect_uri: redirect_uri_for(base_url),
            public_url_configured: config.public_url.is_some(),
        }
    }
}

/// `{base_url}/integrations/teams/callback`.
pub fn redirect_uri_for(base_url: &Url) -> Url {
    let mut base = base_url.clone();
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    // Joining a relative path without `..` onto an http(s) base cannot fail.
    base.join(CALLBACK_PATH).unwrap_or(base)
}

/// The Microsoft side once configured.
#[derive(Debug)]
struct MicrosoftApp {
    oauth: OAuthClient,
    graph_config: GraphConfig,
}

/// The connection service. Cheap to clone (one shared inner state per process).
#[derive(Clone)]
pub struct TeamsConnections {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TeamsConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsConnections")
            .field("setup", &self.inner.setup)
            .field("redirect_uri", &self.inner.settings.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

struct Inner {
    db: Db,
    keys: Arc<KeyRing>,
    settings: ConnectionSettings,
    setup: SetupStatus,
    app: Option<MicrosoftApp>,
    clock: Arc<dyn Clock>,
    changes: watch::Sender<u64>,
    /// One refresh at a time per connection inside this process.
    refresh_locks: Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<()>>>>,
    /// One Graph client (connection pool) per connection.
    graph_clients: Mutex<HashMap<ConnectionId, GraphClient>>,
    /// This process's name on refresh leases in the database.
    lease_owner: String,
}

impl TeamsConnections {
    /// The connection service on the system clock.
    pub fn new(db: Db, keys: Arc<KeyRing>, settings: ConnectionSettings) -> Self {
        Self::with_clock(db, keys, settings, Arc::new(SystemClock))
    }

    /// The connection service with an injected clock (tests).
    pub fn with_clock(
        db: Db,
        keys: Arc<KeyRing>,
        settings: ConnectionSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (setup, app) = match microsoft_app(&settings) {
            Ok(app) => (SetupStatus::Ready, Some(app)),
            Err(setup) => (setup, None),
        };
        let (changes, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                db,
                keys,
                settings,
                setup,
                app,
                clock,
                changes,
                refresh_locks: Mutex::new(HashMap::new()),
                graph_clients: Mutex::new(HashMap::new()),
                lease_owner: format!("regentra-{}", uuid::Uuid::now_v7().simple()),
            }),
        }
    }

    /// The connected account, or `None` unless the state is `connected`.
    pub async fn active(&self) -> Result<Option<ActiveAccount>, ConnectionError> {
        let record = store::teams::current(&mut *self.inner.db.acquire().await?).await?;
        let Some(record) = record.filter(|r| r.state == ConnectionState::Connected) else {
            return Ok(None);
        };
        let Some(app) = &self.inner.app else {
            return Ok(None);
        };
        let graph = self.graph_client(record.id, app)?;
        Ok(Some(ActiveAccount {
            connection_id: record.id,
            email: record.email,
            display_name: record.display_name,
            user_id: record.user_id,
            tenant_id: record.tenant_id,
            tenant_domains: record.tenant_domains,
            connected_at: record.connected_at,
            graph,
        }))
    }

    /// State, account and reason for the card and the API.
    pub async fn status(&self) -> Result<ConnectionStatus, ConnectionError> {
        let record = store::teams::current(&mut *self.inner.db.acquire().await?).await?;
        let settings = &self.inner.settings;
        let mut status = ConnectionStatus {
            state: ConnectionState::Disconnected,
            connection_id: None,
            account: None,
            reason: None,
            problem_at: None,
            personal_account_hint: None,
            connected_at: None,
            last_refreshed_at: None,
            setup: self.inner.setup.clone(),
            redirect_uri: settings.redirect_uri.clone(),
            public_url_configured: settings.public_url_configured,
        };
        if let Some(record) = record {
            status.state = record.state;
            status.connection_id = Some(record.id);
            status.account = Some(AccountSummary {
                email: record.email,
                display_name: record.display_name,
                tenant_id: record.tenant_id,
                user_id: record.user_id,
            });
            status.reason = record.problem;
            status.problem_at = record.problem_at;
            status.personal_account_hint = record.personal_account_hint;
            status.connected_at = Some(record.connected_at);
            status.last_refreshed_at = record.last_refreshed_at;
        }
        Ok(status)
    }

    /// Sets `reconnect_required` (polling stops, the card shows `reason`) and erases the tokens.
    /// Logs once: a second call, or a call for a connection that is not connected, does nothing.
    pub async fn mark_reconnect_required(
        &self,
        connection_id: ConnectionId,
        reason: &str,
    ) -> Result<(), ConnectionError> {
        let now = self.inner.clock.now();
        let mut conn = self.inner.db.acquire().await?;
        let changed =
            store::teams::mark_reconnect_required(&mut conn, connection_id, reason, now).await?;
        if changed {
            tracing::warn!(
                connection.id = %connection_id,
                reason,
                "The Teams connection needs to be reconnected; polling and sending stopped until \
                 an administrator connects the support account again"
            );
            self.forget_graph_client(connection_id);
            self.bump_changes();
        }
        Ok(())
    }

    /// A receiver whose value changes on every connect, disconnect and reconnect-required.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Disconnects the current account: tokens erased, polling stops at once (change counter
    /// bumped); tickets and chat links stay. Returns the connection that was disconnected.
    pub async fn disconnect(&self) -> Result<Option<ConnectionId>, ConnectionError> {
        let now = self.inner.clock.now();
        let disconnected =
            store::teams::disconnect_current(&mut *self.inner.db.acquire().await?, now).await?;
        if let Some(id) = disconnected {
            tracing::info!(connection.id = %id, "Teams support account disconnected; tokens erased");
            self.forget_graph_client(id);
            self.bump_changes();
        }
        Ok(disconnected)
    }

    /// Whether the Microsoft settings allow connecting.
    pub fn setup(&self) -> &SetupStatus {
        &self.inner.setup
    }

    /// The redirect URI the Azure app registration must list.
    pub fn redirect_uri(&self) -> &Url {
        &self.inner.settings.redirect_uri
    }

    /// The tenant-wide admin-consent link for the app, when configured.
    pub fn admin_consent_url(&self) -> Option<Url> {
        self.inner
            .app
            .as_ref()
            .map(|app| app.oauth.admin_consent_url())
    }

    /// What the Azure app registration needs, in one paragraph (card and docs).
    pub fn app_registration_requirements(&self) -> String {
        app_registration_requirements(&self.inner.settings.redirect_uri)
    }

    /// The database this service stores into.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    fn bump_changes(&self) {
        self.inner
            .changes
            .send_modify(|counter| *counter = counter.wrapping_add(1));
    }

    fn graph_client(
        &self,
        id: ConnectionId,
        app: &MicrosoftApp,
    ) -> Result<GraphClient, ConnectionError> {
        let mut clients = self
            .inner
            .graph_clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&id) {
            return Ok(client.clone());
        }
        let source = tokens::VaultTokenSource::new(Arc::downgrade(&self.inner), id);
        let client =
            GraphClient::new(app.graph_config.clone(), Arc::new(source)).map_err(|source| {
                ConnectionError::Microsoft {
                    context: "building the Microsoft Graph client failed",
                    source: Box::new(source),
                }
            })?;
        clients.insert(id, client.clone());
        Ok(client)
    }

    fn forget_graph_client(&self, id: ConnectionId) {
        self.inner
            .graph_clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&id);
    }

    fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }
}

/// The paragraph telling an admin how to register the app in Entra.
pub fn app_registration_requirements(redirect_uri: &Url) -> String {
    format!(
        "In the Microsoft Entra admin center (App registrations), register a web app with the \
         redirect URI {redirect_uri}, add a client secret, and add the Microsoft Graph delegated \
         permissions {}. Then set {ENV_MS_CLIENT_ID} (the application ID), \
         {ENV_MS_CLIENT_SECRET} (the secret value) and {ENV_PUBLIC_URL} (the address users \
         open Regentra at) and restart Regentra.",
        SCOPES.join(", ")
    )
}

fn microsoft_app(settings: &ConnectionSettings) -> Result<MicrosoftApp, SetupStatus> {
    let microsoft = &settings.microsoft;
    let mut missing = Vec::new();
    let client_id = microsoft
        .client_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    if client_id.is_none() {
        missing.push(ENV_MS_CLIENT_ID);
    }
    let client_secret = microsoft.client_secret.clone();
    if client_secret.is_none() {
        missing.push(ENV_MS_CLIENT_SECRET);
    }
    let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
        return Err(SetupStatus::Incomplete { missing });
    };
    let oauth = OAuthClient::new(OAuthConfig {
        authority: microsoft.authority.clone(),
        tenant: microsoft.tenant.clone(),
        client_id: client_id.to_owned(),
        client_secret,
        redirect_uri: settings.redirect_uri.clone(),
        scopes: SCOPES.iter().map(|scope| (*scope).to_owned()).collect(),
    })
    .map_err(|error| SetupStatus::Invalid {
        message: format!("The Microsoft sign-in settings cannot be used: {error}"),
    })?;
    let mut graph_config = GraphConfig::new(microsoft.graph_url.clone());
    graph_config.timeout = microsoft.graph_timeout;
    Ok(MicrosoftApp {
        oauth,
        graph_config,
    })
}

impl SetupStatus {
    /// The card's sentence for an incomplete or invalid setup (`None` when ready).
    pub fn problem(&self, redirect_uri: &Url) -> Option<String> {
        match self {
            SetupStatus::Ready => None,
            SetupStatus::Incomplete { missing } => Some(format!(
                "Teams Chat Bridge is not set up yet: {} {} not set. {}",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" },
                app_registration_requirements(redirect_uri)
            )),
            SetupStatus::Invalid { message } => Some(format!(
                "{message}. {}",
                app_registration_requirements(redirect_uri)
            )),
        }
    }
}
