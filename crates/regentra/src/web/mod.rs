//! The HTTP face of Regentra (axum 0.8): the server-rendered UI, the JSON API under `/api/v1`,
//! `/healthz` and the embedded static assets.
//!
//! # Layout
//! - [`router`] assembles everything and is the only thing `app.rs` calls.
//! - `ui/` — browser pages (session login, CSRF-protected form posts), `api/` — JSON API
//!   (bearer tokens), [`actions`] — ticket actions both share, [`auth`] — who is calling,
//!   [`error`] — the one error type, [`security`] — headers + CSRF, [`session`] — login
//!   sessions, [`assets`] — CSS/htmx, [`extract`] — extractors with `WebError` rejections.
//!
//! # Adding things
//! - **A UI page**: a handler in `ui/<area>.rs` taking `SignedIn`, a template in
//!   `templates/<area>/<page>.html` extending `base.html` (fields `layout: Layout` + yours),
//!   one `.route(...)` line in [`ui_routes`]. Forms post to the UI router and are CSRF-checked
//!   automatically.
//! - **An API route**: a handler in `api/<area>.rs` taking `ApiCaller`, one `.route(...)` in
//!   `api::routes`. A whole area (e.g. the Teams integration) brings its own
//!   `fn routes() -> Router<AppState>` and is merged in [`router`] (see `api_routes`).
//!
//! # Stable element ids and classes (for browser tests; keep them when restyling)
//! Login: `#login-form`, `#login-email`, `#login-password`, `#login-submit`, `#login-error`.
//! Frame: `#main-nav`, `#nav-tickets`, `#nav-clients`, `#nav-settings`,
//! `#current-technician`, `#logout`, `#flash` (class `ok`/`error`).
//! Ticket list: `#ticket-filters`, `#filter-status`, `#filter-client`, `#filter-apply`,
//! `#ticket-list`, `.ticket-row` (`data-ticket-id`, `data-status`), `.ticket-link`,
//! `#ticket-total`, `#no-tickets`, `#page-prev`, `#page-next`.
//! Ticket view: `#ticket-header` (`data-ticket-id`), `#ticket-number`, `#ticket-subject`,
//! `#ticket-status` (`data-status`), `#ticket-client`, `#ticket-requester`, `#status-form`,
//! `#status-select`, `#status-save`, `#assign-tenant`, `#assign-form`, `#assign-client`,
//! `#assign-submit`, `#conversation`, `.entry` (+ `.entry-client_message|reply|note|event`,
//! `data-kind`, id `entry-<uuid>`), `.delivery-state` (`data-state`, `data-attempts`),
//! `.delivery-error`, `#reply-box`, `#reply-form`, `#reply-text`, `#reply-send`, `#note-send`,
//! `#no-chat-hint`.
//! Clients: `#client-list`, `.client-row` (`data-client-id`), `.client-name`,
//! `.client-tenant`, `.client-domains`, `.client-federation`, `.client-edit`, `#client-form`,
//! `#client-name`, `#client-tenant`, `#client-domains`, `#client-save`, `#client-form-error`.
//! Settings: `#chat-platforms`, `#teams-card` (`data-state`), `#teams-state`,
//! `#teams-account`, `#teams-problem`, `#teams-actions`. Error page: `#error-page`,
//! `#error-message`.
//!
//! This module must never authenticate API calls with the session cookie, render unescaped
//! user input, or put a secret into a response or log line.

pub mod actions;
pub mod api;
pub mod assets;
pub mod auth;
pub mod error;
pub mod extract;
pub mod poller;
pub mod federation;
pub mod security;
pub mod session;
pub mod teams;
pub mod ui;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Serialize;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use error::{WebError, WebResult};
use extract::Json;

/// The complete HTTP application for `state`. Fails only if the public URL cannot serve as a
/// trusted CSRF origin.
pub fn router(state: AppState) -> Result<Router, tower_http::csrf::ConfigError> {
    let public_origin = state.base_url.origin().ascii_serialization();
    let secure_cookie = state.base_url.scheme() == "https";

    let ui = ui_routes()
        .layer(session::layer(state.db.clone(), secure_cookie))
        .layer(from_fn_with_state(
            security::TrustedOrigin(public_origin.clone()),
            security::reject_foreign_origin,
        ))
        .layer(security::csrf_layer(&public_origin)?);

    Ok(Router::new()
        .merge(ui)
        .nest("/api/v1", api_routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(poller::metrics))
        .route("/assets/{*path}", get(assets::serve_asset))
        .fallback(error::route_not_found)
        .layer(from_fn(error::render_html_errors))
        .layer(from_fn(security::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state))
}

/// Browser UI routes (session + CSRF layers are added by [`router`]).
fn ui_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tickets") }))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/tickets", get(ui::tickets::list))
        .route("/tickets/{id}", get(ui::tickets::view))
        .route("/tickets/{id}/conversation", get(ui::tickets::conversation))
        .route("/tickets/{id}/status", post(ui::tickets::change_status))
        .route("/tickets/{id}/replies", post(ui::tickets::add_reply))
        .route(
            "/tickets/{id}/replies/{entry}/retry",
            post(ui::tickets::retry_delivery),
        )
        .route(
            "/tickets/{id}/assign-tenant",
            post(ui::tickets::assign_tenant),
        )
        .route("/clients", get(ui::clients::list).post(ui::clients::create))
        .route("/clients/{id}", post(ui::clients::update))
        .route("/clients/{id}/edit", get(ui::clients::edit_form))
        .route("/settings", get(ui::settings::settings_home))
        .route("/settings/integrations", get(ui::settings::integrations))
        .merge(teams::ui_routes())
        .merge(federation::ui_routes())
}

/// JSON API routes under `/api/v1`. Later areas merge their routers here.
fn api_routes() -> Router<AppState> {
    Router::new()
        .merge(api::routes())
        .merge(teams::api_routes())
        .merge(poller::api_routes())
        .merge(federation::api_routes())
        .fallback(error::route_not_found)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise. No authentication, no details.
async fn healthz(State(state): State<AppState>) -> WebResult<(StatusCode, Json<Health>)> {
    match sqlx::query("SELECT 1").execute(state.db.pool()).await {
        Ok(_) => Ok((
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database: "ok",
            }),
        )),
        Err(err) => Err(WebError::unavailable(
            "The database is not answering.",
            anyhow::Error::new(err).context("health check query"),
        )),
    }
}
