//! Error shapes and the request pipeline shared by the Graph and identity routes:
//! request ids (`request-id`/`client-request-id` headers and `innerError`), scripted faults,
//! the request log, and rendering of Graph OData errors and Entra token errors.
//!
//! Handlers return `GraphError`/`AadError`; the `observe` middleware fills in the ids and dates,
//! so every error carries them. This module must never log tokens or request bodies.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, json};

use crate::model::{Fault, RequestLogEntry};
use crate::sim::Sim;
use crate::timefmt;

/// A Graph error, rendered as `{"error": {"code", "message", "innerError": {date, request-id, client-request-id}}}`.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<String>,
    /// Extra members inside `innerError` (the 429 body carries `code`, `message`, `status`).
    pub inner_extra: Vec<(&'static str, &'static str)>,
    pub www_authenticate: bool,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
            inner_extra: Vec::new(),
            www_authenticate: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn unauthorized(message: &str) -> Self {
        let mut error = GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        error.www_authenticate = true;
        error
    }

    /// 429 exactly as `concepts/throttling.md` shows it (fixture 62).
    pub fn throttled(retry_after: Option<String>) -> Self {
        let mut error = GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Please retry again later.",
        );
        error.retry_after = retry_after;
        error.inner_extra = vec![
            ("code", "429"),
            ("message", "Please retry after"),
            ("status", "429"),
        ];
        error
    }

    /// The default body for a scripted fault status.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => GraphError::bad_request("Bad Request"),
            401 => GraphError::unauthorized("Access token has expired or is not yet valid."),
            403 => GraphError::new(status, "Forbidden", "Forbidden"),
            404 => GraphError::not_found("Not Found"),
            409 => GraphError::new(status, "Conflict", "Conflict"),
            412 => GraphError::new(status, "PreconditionFailed", "Precondition Failed"),
            413 => GraphError::new(status, "RequestEntityTooLarge", "Request Entity Too Large"),
            429 => GraphError::throttled(None),
            500 => GraphError::new(status, "InternalServerError", "Internal Server Error"),
            502 => GraphError::new(status, "BadGateway", "Bad Gateway"),
            503 => GraphError::new(status, "serviceNotAvailable", "Service Unavailable"),
            504 => GraphError::new(status, "GatewayTimeout", "Gateway Timeout"),
            _ => GraphError::new(
                status,
                "UnknownError",
                status.canonical_reason().unwrap_or("Error"),
            ),
        }
    }
}

/// An Entra token/discovery error: `{error, error_description "AADSTSn: …\r\nTrace ID…", error_codes, timestamp, trace_id, correlation_id, error_uri}`.
#[derive(Debug, Clone)]
pub(crate) struct AadError {
    pub status: StatusCode,
    pub error: String,
    pub aadsts: u32,
    /// The text after `AADSTSnnnn: ` and before the trace lines.
    pub description: String,
}

impl AadError {
    pub fn new(
        status: StatusCode,
        error: &str,
        aadsts: u32,
        description: impl Into<String>,
    ) -> Self {
        AadError {
            status,
            error: error.to_owned(),
            aadsts,
            description: description.into(),
        }
    }

    pub fn bad_request(error: &str, aadsts: u32, description: impl Into<String>) -> Self {
        AadError::new(StatusCode::BAD_REQUEST, error, aadsts, description)
    }

    fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => AadError::new(
                status,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ),
            401 => AadError::new(
                status,
                "invalid_client",
                7000215,
                "Invalid client secret provided.",
            ),
            _ => AadError::new(
                status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            ),
        }
    }
}

/// Handlers return this; `observe` turns it into the final body with ids and dates.
#[derive(Debug, Clone)]
enum PendingError {
    Graph(GraphError),
    Aad(AadError),
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(PendingError::Graph(self));
        response
    }
}

impl IntoResponse for AadError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(PendingError::Aad(self));
        response
    }
}

struct RequestIds {
    request_id: String,
    client_request_id: String,
    base_url: String,
}

fn render(pending: PendingError, ids: &RequestIds, sim: &Sim) -> Response {
    let now = sim.now();
    match pending {
        PendingError::Graph(error) => {
            let mut inner = Map::new();
            for (key, value) in &error.inner_extra {
                inner.insert((*key).to_owned(), json!(value));
            }
            inner.insert("date".into(), json!(timefmt::inner_error_date(now)));
            inner.insert("request-id".into(), json!(ids.request_id));
            inner.insert("client-request-id".into(), json!(ids.client_request_id));
            let body = json!({"error": {"code": error.code, "message": error.message, "innerError": inner}});
            let mut response = (error.status, axum::Json(body)).into_response();
            if let Some(retry_after) = error
                .retry_after
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, retry_after);
            }
            if error.www_authenticate {
                let value = format!(
                    "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                    ids.base_url
                );
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response
                        .headers_mut()
                        .insert(axum::http::header::WWW_AUTHENTICATE, value);
                }
            }
            response
        }
        PendingError::Aad(error) => {
            let timestamp = timefmt::aad_timestamp(now);
            let description = format!(
                "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                error.aadsts, error.description, ids.request_id, ids.client_request_id, timestamp
            );
            let body = json!({
                "error": error.error,
                "error_description": description,
                "error_codes": [error.aadsts],
                "timestamp": timestamp,
                "trace_id": ids.request_id,
                "correlation_id": ids.client_request_id,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", error.aadsts),
            });
            (error.status, axum::Json(body)).into_response()
        }
    }
}

fn fault_response(fault: &Fault, graph: bool) -> Response {
    let status = fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match &fault.body {
        Some(body) => (status, axum::Json(body.clone())).into_response(),
        None if graph => {
            let mut error = GraphError::for_status(status);
            error.retry_after = None;
            error.into_response()
        }
        None => AadError::for_status(status).into_response(),
    };
    if let Some(retry_after) = fault
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, retry_after);
    }
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Middleware for every Graph and identity route: ids, faults, error rendering, request log.
pub(crate) async fn observe(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id =
        header(request.headers(), "client-request-id").unwrap_or_else(|| request_id.clone());
    let host = header(request.headers(), "host").unwrap_or_else(|| "127.0.0.1".to_owned());
    let ids = RequestIds {
        request_id,
        client_request_id,
        base_url: format!("http://{host}"),
    };
    let graph = path.starts_with("/v1.0/") || path.starts_with("/beta/");

    let fault = {
        let mut world = sim.world();
        let found = world.faults.iter_mut().find(|f| f.matches(&method, &path));
        found.map(|f| {
            f.remaining -= 1;
            f.clone()
        })
    };

    let mut response = match &fault {
        Some(f) if f.status.is_some() && !f.run_handler => fault_response(f, graph),
        _ => {
            let mut response = next.run(request).await;
            if let Some(f) = fault.as_ref().filter(|f| f.status.is_some()) {
                response = fault_response(f, graph);
            }
            response
        }
    };
    if let Some(pending) = response.extensions_mut().remove::<PendingError>() {
        let headers = response.headers().clone();
        response = render(pending, &ids, &sim);
        for (name, value) in headers.iter() {
            if name != axum::http::header::CONTENT_TYPE
                && name != axum::http::header::CONTENT_LENGTH
            {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    for (name, value) in [
        ("request-id", &ids.request_id),
        ("client-request-id", &ids.client_request_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }

    let entry = RequestLogEntry {
        method,
        path: path_and_query,
        status: response.status().as_u16(),
        time: sim.now(),
        request_id: ids.request_id.clone(),
        client_request_id: ids.client_request_id.clone(),
    };
    {
        let mut world = sim.world();
        if world.requests.len() >= crate::model::REQUEST_LOG_CAP {
            world.requests.remove(0);
        }
        world.requests.push(entry);
    }
    // Delay after the handler ran and the request was logged: a client that times out now
    // leaves the side effects (a stored message) behind, like an ambiguous real timeout.
    if let Some(f) = &fault
        && f.delay_ms > 0
    {
        tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
    }
    response
}

/// An empty 204 (used for DELETEs on the control API).
pub(crate) fn no_content() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .unwrap_or_default()
}
