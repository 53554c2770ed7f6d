//! Login sessions for the browser UI: the tower-sessions layer over the database session store,
//! the keys kept in a session, one-shot flash messages, and the expired-session sweeper.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax`, `Secure` when the public URL is https, and holds
//! only a random session id; the session record lives in the database. Sessions expire after
//! [`SESSION_IDLE_HOURS`] of inactivity. This module must never store a password or token in a
//! session.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion as _;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::store::Db;
use crate::store::sessions::DbSessionStore;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "regentra_session";
/// A session ends after this many hours without a request.
pub const SESSION_IDLE_HOURS: i64 = 12;
/// Session key: the signed-in technician's id.
pub const TECHNICIAN_KEY: &str = "technician_id";
const FLASH_KEY: &str = "flash";
/// How often expired session rows are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(15 * 60);

/// The session layer for the UI routes.
pub fn layer(db: Db, secure_cookie: bool) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(DbSessionStore::new(db))
        .with_name(COOKIE_NAME)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure_cookie)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(
            SESSION_IDLE_HOURS,
        )))
}

/// A one-shot message shown at the top of the next page ("Note added.").
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    /// `ok` or `error` (CSS class).
    pub kind: String,
    pub message: String,
}

/// Remembers a success message for the next page.
pub async fn flash_ok(session: &Session, message: impl Into<String>) {
    set_flash(session, "ok", message.into()).await;
}

/// Remembers an error message for the next page.
pub async fn flash_error(session: &Session, message: impl Into<String>) {
    set_flash(session, "error", message.into()).await;
}

async fn set_flash(session: &Session, kind: &str, message: String) {
    let flash = Flash {
        kind: kind.to_owned(),
        message,
    };
    if let Err(err) = session.insert(FLASH_KEY, flash).await {
        // Losing a "saved" banner is not worth failing the request for.
        tracing::warn!("could not store a flash message in the session: {err}");
    }
}

/// Takes (and clears) the pending flash message, if any.
pub async fn take_flash(session: &Session) -> Option<Flash> {
    match session.remove::<Flash>(FLASH_KEY).await {
        Ok(flash) => flash,
        Err(err) => {
            tracing::warn!("could not read a flash message from the session: {err}");
            None
        }
    }
}

/// Background worker: deletes expired session rows every [`SWEEP_EVERY`] until `shutdown`.
pub async fn sweep_expired_sessions(db: Db, shutdown: CancellationToken) {
    let store = DbSessionStore::new(db);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        if let Err(err) = store.delete_expired().await {
            tracing::warn!("deleting expired sessions failed (will retry): {err}");
        }
    }
}
