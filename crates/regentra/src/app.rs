//! Application assembly: [`App::build`] opens the database (running migrations), binds the
//! listener and builds the router; [`App::run_until_shutdown`] serves HTTP and runs the
//! background workers until a [`CancellationToken`] fires, then waits for them to finish.
//!
//! [`AppState`] is what every handler and worker receives. It is a plain `Clone` struct of
//! cheap handles; later capabilities add a field (e.g. `bridge`) and fill it in `build`.
//! This module must not contain request handling or business rules, and must never log a
//! secret (the database location is logged through `DatabaseLocation::describe`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use secrecy::ExposeSecret as _;

use crate::config::{Config, DatabaseLocation};
use crate::store::{self, Db};
use crate::web;

/// Shared state of the running application, handed to handlers (`State<AppState>`) and workers.
///
/// To add a capability: add a field here, create it in [`App::build`], and (if handlers need
/// only that part) implement `axum::extract::FromRef<AppState>` for its type.
#[derive(Clone)]
pub struct AppState {
    /// The database (SQLite or PostgreSQL), migrated.
    pub db: Db,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The effective public URL (configured, or derived from the bound address).
    pub base_url: Url,
    /// Login attempt limiter (per e-mail address and client IP).
    pub login_limiter: Arc<web::auth::LoginLimiter>,
    /// The Teams connection: consent flow, sealed tokens, `active()` account for the workers.
    pub teams: crate::bridge::connection::TeamsConnections,
    /// Runs Teams poll cycles (the scheduler, `POST …/teams/poll`) and holds their metrics.
    pub poller: crate::bridge::poller::Poller,
    /// Wakes the outbox worker after a reply (or a retry) is committed.
    pub outbox: crate::bridge::outbox::OutboxWaker,
}

impl axum::extract::FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Db {
        state.db.clone()
    }
}

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open the database ({location})")]
    Database {
        location: String,
        #[source]
        source: store::StoreError,
    },
    #[error(
        "cannot listen on {address}: is another program using that port? Set REGENTRA_PORT / --port to another one"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the public URL {url} cannot be used as a trusted origin")]
    PublicUrl { url: String },
    #[error("cannot load the encryption key for stored Microsoft tokens")]
    Keys(#[source] crate::bridge::vault::KeyError),
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A built, bound, not yet serving application.
pub struct App {
    state: AppState,
    listener: TcpListener,
    address: SocketAddr,
    router: axum::Router,
}

impl App {
    /// Opens (and migrates) the database, binds the listener (port 0 picks a free port) and
    /// prepares the router. Nothing is served until [`App::run_until_shutdown`].
    pub async fn build(config: Config) -> Result<App, AppError> {
        let db = open_database(&config)
            .await
            .map_err(|source| AppError::Database {
                location: config.database.describe(),
                source,
            })?;
        tracing::info!(db.location = %config.database.describe(), "database ready");
        App::build_with_db(config, db).await
    }

    /// Like [`App::build`] but with an already opened database (tests with a fresh PostgreSQL
    /// schema, or commands that share one pool).
    pub async fn build_with_db(config: Config, db: Db) -> Result<App, AppError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AppError::Bind {
                address: config.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| AppError::Bind {
            address: config.listen,
            source,
        })?;
        let base_url = effective_base_url(&config, address);
        // A missing, short or unreadable key stops the start with a message saying what to do.
        let keys =
            crate::bridge::vault::KeyRing::load(config.encryption_key.as_ref(), &config.data_dir)
                .map_err(AppError::Keys)?;
        let teams = crate::bridge::connection::TeamsConnections::new(
            db.clone(),
            Arc::new(keys),
            crate::bridge::connection::ConnectionSettings::from_config(&config, &base_url),
        );
        let poller = crate::bridge::poller::Poller::new(
            db.clone(),
            Some(teams.clone()),
            crate::bridge::poller::PollerSettings::from_config(&config),
            Arc::new(crate::bridge::metrics::PollMetrics::new()),
        );
        let state = AppState {
            db,
            config: Arc::new(config),
            base_url,
            login_limiter: Arc::new(web::auth::LoginLimiter::new()),
            teams,
            poller,
            outbox: crate::bridge::outbox::OutboxWaker::new(),
        };
        // Built here so that a bad public URL fails at start, not on the first request.
        let router = web::router(state.clone()).map_err(|_| AppError::PublicUrl {
            url: state.base_url.to_string(),
        })?;
        Ok(App {
            state,
            listener,
            address,
            router,
        })
    }

    /// The address the server is bound to (with the real port when configured as 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The effective public URL, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        &self.state.base_url
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The shared state (for tests and for wiring additional workers).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP and runs the background workers until `shutdown` is cancelled; then stops
    /// accepting connections, lets in-flight requests finish, cancels the workers and waits for
    /// them. Cancelling is the only way to stop; a server error also cancels the workers.
    pub async fn run_until_shutdown(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let App {
            state,
            listener,
            router,
            ..
        } = self;

        let workers = TaskTracker::new();
        spawn_background_workers(&state, &workers, &shutdown);
        workers.close();

        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
        // Whatever ended the server, the workers must stop too.
        shutdown.cancel();
        workers.wait().await;
        served.map_err(AppError::Serve)
    }
}

/// Opens (creating if needed) and migrates the configured database: the SQLite file (its
/// directory is created) or the PostgreSQL server.
pub async fn open_database(config: &Config) -> Result<Db, store::StoreError> {
    match &config.database {
        DatabaseLocation::Sqlite { path } => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|err| {
                    store::StoreError::Invalid(format!(
                        "cannot create the directory {} for the database: {err}; check REGENTRA_DATA_DIR and its permissions",
                        dir.display()
                    ))
                })?;
            }
            Db::connect(&store::sqlite_url_for_file(path)).await
        }
        DatabaseLocation::Postgres { url } => Db::connect(url.expose_secret()).await,
    }
}

/// Starts every background worker under `tracker`; each must return when `shutdown` fires.
///
/// To add a worker (poller, outbox, …): write a loop `async fn run(state, shutdown)` that
/// `select!`s on `shutdown.cancelled()`, and add one `tracker.spawn(...)` line here.
fn spawn_background_workers(state: &AppState, tracker: &TaskTracker, shutdown: &CancellationToken) {
    tracker.spawn(web::session::sweep_expired_sessions(
        state.db.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(state.teams.clone().run_keep_alive(shutdown.clone()));
    // Polls the connected Teams account every REGENTRA_POLL_INTERVAL and right after connecting.
    tracker.spawn(crate::bridge::poller::run(
        state.poller.clone(),
        state.teams.clone(),
        shutdown.clone(),
    ));
    // Delivers replies to Teams; drains what was queued while Regentra was down.
    let outbox = crate::bridge::outbox::Outbox::new(
        state.db.clone(),
        Arc::new(state.teams.clone()),
        state.outbox.clone(),
        crate::bridge::outbox::OutboxSettings::default(),
    );
    tracker.spawn(Arc::new(outbox).run(shutdown.clone()));
}

/// The configured public URL, or `http://<address>` of the bound socket. A wildcard bind
/// (0.0.0.0 / ::) is shown as loopback, which at least works on the server itself.
fn effective_base_url(config: &Config, bound: SocketAddr) -> Url {
    if let Some(url) = &config.public_url {
        return url.clone();
    }
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let text = format!("http://{}/", SocketAddr::new(ip, bound.port()));
    // A SocketAddr always formats as a valid URL authority, so this parse cannot fail.
    Url::parse(&text).unwrap_or_else(|_| unreachable!("{text} is a valid URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_defaults_to_the_bound_address() {
        let config = Config::for_tests("/tmp/unused");
        let url = effective_base_url(&config, "127.0.0.1:41234".parse().unwrap());
        assert_eq!(url.as_str(), "http://127.0.0.1:41234/");
        let wildcard = effective_base_url(&config, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(wildcard.as_str(), "http://127.0.0.1:8080/");
        let v6 = effective_base_url(&config, "[::]:8080".parse().unwrap());
        assert_eq!(v6.as_str(), "http://[::1]:8080/");
    }

    #[test]
    fn configured_public_url_wins() {
        let mut config = Config::for_tests("/tmp/unused");
        config.public_url = Some(Url::parse("https://help.example.com").unwrap());
        let url = effective_base_url(&config, "127.0.0.1:41234".parse().unwrap());
        assert_eq!(url.as_str(), "https://help.example.com/");
    }
}
