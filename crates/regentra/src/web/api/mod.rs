//! The JSON API under `/api/v1` (ARCHITECTURE §3): tickets, replies/notes, status changes and
//! clients. Every route needs `Authorization: Bearer <API token>` ([`ApiCaller`]); the session
//! cookie is never accepted here. Errors are `{"error": {"code", "message"}}`.
//!
//! The response shapes are this module's own structs (`TicketJson`, `EntryJson`, …), mapped
//! from the domain records, so the database can change without breaking API clients. Times
//! are RFC 3339 strings in UTC. To add routes for another area (e.g. the Teams integration),
//! write a `fn routes() -> Router<AppState>` in its module and `.merge()` it in [`routes`].
//!
//! [`ApiCaller`]: super::auth::ApiCaller

pub mod clients;
pub mod tickets;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::AppState;
use crate::web::error::WebError;

/// Default page size of list routes.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size of list routes.
pub const MAX_LIMIT: i64 = 1000;

/// The `/api/v1` routes (without the prefix).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tickets", get(tickets::list).post(tickets::create))
        .route("/tickets/{id}", get(tickets::get).patch(tickets::update))
        .route("/tickets/{id}/replies", post(tickets::add_reply))
        .route(
            "/tickets/{id}/replies/{entry}/retry",
            post(tickets::retry_delivery),
        )
        .route("/clients", get(clients::list).post(clients::create))
        .route("/clients/{id}", get(clients::get).patch(clients::update))
}

/// `{"items": [...], "total": N}`.
#[derive(Debug, Serialize)]
pub struct ListJson<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// `limit`/`offset` of list routes.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl PageQuery {
    /// Validated `(limit, offset)`: limit 1..=1000 (default 100), offset ≥ 0 (default 0).
    pub fn resolve(&self) -> Result<(i64, i64), WebError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(WebError::invalid_field(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(WebError::invalid_field(
                "offset",
                "offset must be 0 or more",
            ));
        }
        Ok((limit, offset))
    }
}

/// RFC 3339 in UTC, e.g. `2026-03-10T12:00:00.123Z`.
pub fn rfc3339(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}

/// For PATCH bodies: tells "field absent" (`None`) from "field is null" (`Some(None)`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
