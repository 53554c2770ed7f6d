//! Who is calling: [`SignedIn`] (browser session) and [`ApiCaller`] (bearer API token)
//! extractors, the login/logout handlers, and the login rate limiter.
//!
//! A handler that takes `SignedIn` or `ApiCaller` cannot run for an anonymous request. The
//! JSON API accepts bearer tokens only, never the session cookie (CSRF protection relies on
//! that). This module must never log or echo a password or token; failed logins get one
//! message that does not reveal whether the e-mail exists.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;
use serde::Deserialize;
use tower_sessions::Session;

use super::error::{WebError, WebResult};
use super::extract::{Form, Query};
use super::session::{self, TECHNICIAN_KEY};
use crate::app::AppState;
use crate::store;
use crate::tickets::{Technician, TechnicianEmail, TechnicianId};

/// A request from a signed-in technician (browser UI). Rejects with "login required", which
/// the UI turns into a redirect to `/login`.
pub struct SignedIn {
    pub technician: Technician,
    pub session: Session,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, message)| {
                WebError::internal(anyhow::anyhow!("session layer missing: {message}"))
            })?;
        let Some(id) = session.get::<TechnicianId>(TECHNICIAN_KEY).await? else {
            return Err(WebError::login_required());
        };
        let mut conn = state.db.acquire().await?;
        match store::technicians::get(&mut conn, id).await {
            Ok(technician) => Ok(SignedIn {
                technician,
                session,
            }),
            // The technician was deleted while signed in: end the session.
            Err(store::StoreError::NotFound(_)) => {
                session.flush().await?;
                Err(WebError::login_required())
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// A JSON API request with a valid `Authorization: Bearer <token>`.
pub struct ApiCaller {
    /// The technician the token acts as.
    pub technician: Technician,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header_value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            WebError::unauthorized("This API needs an API token: send `Authorization: Bearer <token>`. Create one with `regentra admin create-api-token`.")
        })?;
        let token = header_value
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, rest) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                WebError::unauthorized("The Authorization header must be `Bearer <token>`.")
            })?;
        let mut conn = state.db.acquire().await?;
        let owner =
            store::api_tokens::authenticate(&mut conn, token, time::OffsetDateTime::now_utc())
                .await?;
        let Some(technician_id) = owner else {
            return Err(WebError::unauthorized(
                "The API token is not valid (unknown or revoked). Create a new one with `regentra admin create-api-token`.",
            ));
        };
        match store::technicians::get(&mut conn, technician_id).await {
            Ok(technician) => Ok(ApiCaller { technician }),
            Err(store::StoreError::NotFound(_)) => Err(WebError::unauthorized(
                "The technician this API token belongs to no longer exists.",
            )),
            Err(err) => Err(err.into()),
        }
    }
}

/// Limits login attempts per (e-mail, client IP): a burst of [`LOGIN_BURST`], then one more
/// every 6 seconds.
pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<(String, IpAddr)>,
}

/// Attempts allowed in a burst before the limiter slows down.
pub const LOGIN_BURST: u32 = 10;

impl LoginLimiter {
    pub fn new() -> Self {
        // LOGIN_BURST is a non-zero constant.
        let burst = NonZeroU32::new(LOGIN_BURST).unwrap_or(NonZeroU32::MIN);
        LoginLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(burst)),
        }
    }

    /// `true` if another attempt for this e-mail from this address is allowed now.
    pub fn allow(&self, email: &str, ip: IpAddr) -> bool {
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&(email.to_lowercase(), ip)).is_ok()
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub css_url: String,
    pub email: String,
    pub next: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_form(session: Session, Query(query): Query<LoginQuery>) -> WebResult<Response> {
    if session.get::<TechnicianId>(TECHNICIAN_KEY).await?.is_some() {
        return Ok(Redirect::to(&safe_next(query.next.as_deref())).into_response());
    }
    render_login(
        StatusCode::OK,
        String::new(),
        safe_next(query.next.as_deref()),
        None,
    )
}

fn render_login(
    status: StatusCode,
    email: String,
    next: String,
    error: Option<String>,
) -> WebResult<Response> {
    let page = LoginPage {
        css_url: super::assets::asset_url("app.css"),
        email,
        next,
        error,
    };
    Ok((status, Html(page.render()?)).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    // Wrapped into a SecretString right away (SecretString itself is not Deserialize).
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the password, starts a fresh session (new id), redirects to `next`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> WebResult<Response> {
    let next = safe_next(form.next.as_deref());
    let typed_email = form.email.trim().to_owned();
    if !state.login_limiter.allow(&typed_email, peer.ip()) {
        tracing::warn!(client.ip = %peer.ip(), "too many sign-in attempts; refusing for now");
        return render_login(
            StatusCode::TOO_MANY_REQUESTS,
            typed_email,
            next,
            Some("Too many sign-in attempts. Wait a minute and try again.".to_owned()),
        );
    }
    let wrong = || Some("Wrong e-mail or password.".to_owned());
    let Ok(email) = TechnicianEmail::parse(&typed_email) else {
        return render_login(StatusCode::OK, typed_email, next, wrong());
    };
    let mut conn = state.db.acquire().await?;
    let password = SecretString::from(form.password);
    let technician = store::technicians::verify_login(&mut conn, email.as_str(), &password).await?;
    drop(conn);
    let Some(technician) = technician else {
        tracing::info!(client.ip = %peer.ip(), "failed sign-in attempt");
        return render_login(StatusCode::OK, typed_email, next, wrong());
    };
    // A new session id on every login defeats session fixation.
    session.cycle_id().await?;
    session.insert(TECHNICIAN_KEY, technician.id).await?;
    tracing::info!(technician.id = %technician.id, "technician signed in");
    Ok(Redirect::to(&next).into_response())
}

/// `POST /logout`: deletes the session and its cookie.
pub async fn logout(session: Session) -> WebResult<Response> {
    session.flush().await?;
    Ok(Redirect::to("/login").into_response())
}

/// Only local paths are allowed as a post-login target (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.starts_with("/login")
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/tickets".to_owned(),
    }
}

/// Sets the flash for the next page; re-exported for handlers.
pub use session::{flash_error, flash_ok};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(safe_next(Some("/tickets/abc")), "/tickets/abc");
        assert_eq!(safe_next(Some("https://evil.example")), "/tickets");
        assert_eq!(safe_next(Some("//evil.example")), "/tickets");
        assert_eq!(safe_next(Some("/\\evil.example")), "/tickets");
        assert_eq!(safe_next(Some("/login")), "/tickets");
        assert_eq!(safe_next(None), "/tickets");
    }

    #[test]
    fn limiter_allows_a_burst_then_refuses() {
        let limiter = LoginLimiter::new();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..LOGIN_BURST {
            assert!(limiter.allow("a@example.com", ip));
        }
        assert!(
            !limiter.allow("A@example.com", ip),
            "same e-mail in another case counts too"
        );
        assert!(
            limiter.allow("b@example.com", ip),
            "other e-mails are not affected"
        );
    }
}
