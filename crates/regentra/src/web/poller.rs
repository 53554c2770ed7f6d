//! The poller's HTTP face: `POST /api/v1/integrations/teams/poll` (run a cycle now and answer
//! with its report) and `GET /metrics` (Prometheus text).
//!
//! `/metrics` needs no login, like `/healthz`: it holds counters only, with accounts named by
//! connection id, never names, addresses or message content.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use serde::Deserialize;

use crate::app::AppState;
use crate::bridge::poller::{CycleMode, CycleReport, CycleResult};
use crate::web::auth::ApiCaller;
use crate::web::error::{WebError, WebResult};
use crate::web::extract::{Json, Query};

/// API routes of the poller (merged under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new().route("/integrations/teams/poll", post(poll_now))
}

/// `?mode=` of the poll route.
#[derive(Debug, Deserialize)]
pub struct PollQuery {
    /// `incremental` (default), `sweep` or `auto`.
    #[serde(default)]
    pub mode: Option<CycleMode>,
}

/// `POST /api/v1/integrations/teams/poll[?mode=sweep]`: one cycle for the connected account,
/// now. 409 when no account is connected or another process is polling it at this moment.
async fn poll_now(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(query): Query<PollQuery>,
) -> WebResult<Json<CycleReport>> {
    let account = state
        .teams
        .active()
        .await
        .map_err(|error| WebError::internal(anyhow::Error::new(error).context("Teams connection")))?
        .ok_or_else(|| {
            WebError::conflict(
                "The Teams support account is not connected, so there is nothing to poll. \
                 Connect it under Settings → Integrations.",
            )
        })?;
    let report = state
        .poller
        .poll_once(&account, query.mode.unwrap_or(CycleMode::Incremental))
        .await
        .map_err(|error| WebError::internal(anyhow::Error::new(error).context("poll cycle")))?;
    if report.result == CycleResult::Busy {
        return Err(WebError::conflict(
            "Another Regentra process is polling this account right now; try again in a minute.",
        ));
    }
    Ok(Json(report))
}

/// `GET /metrics`: Prometheus text exposition of the poller's counters.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.poller.metrics().render(),
    )
}
