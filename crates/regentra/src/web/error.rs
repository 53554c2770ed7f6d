//! The one error type of the web layer, [`WebError`], and how it becomes a response.
//!
//! Handlers return `Result<_, WebError>`. A `WebError` carries a status, a stable machine
//! `code`, a message written for the user, and (for unexpected failures) the underlying cause.
//! `IntoResponse` logs the cause chain once and answers with JSON
//! `{"error": {"code", "message"}}`; the [`render_html_errors`] middleware turns the same
//! error into the HTML error page (or a redirect to the login page) for UI routes.
//! This module must never put a cause chain, a stack trace or a secret into a response body.

use std::borrow::Cow;

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Serialize;

use crate::store::StoreError;
use crate::tickets::ValidationError;

/// A failed request: what the user is told, and (for 5xx) what the log gets.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// The request field at fault, for validation errors (`entra_tenant_id`, `status` …).
    field: Option<&'static str>,
    cause: Option<anyhow::Error>,
}

/// Result alias for handlers.
pub type WebResult<T> = Result<T, WebError>;

/// The part of a [`WebError`] that reaches the client; attached to the response's extensions so
/// the HTML renderer can re-render it as a page.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: &'a ErrorBody,
}

impl WebError {
    /// An error with an explicit status and code. Prefer the named constructors below.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        WebError {
            status,
            code,
            message: message.into(),
            field: None,
            cause: None,
        }
    }

    /// 400: the request is malformed or a value is invalid. The message says which and why.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        WebError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 for one invalid field. The message always names the field (e.g. `entra_tenant_id`):
    /// `problem` is used as is when it already starts with the field name, else prefixed.
    pub fn invalid_field(field: &'static str, problem: impl std::fmt::Display) -> Self {
        let problem = problem.to_string();
        let message = if problem.starts_with(field) {
            problem
        } else {
            format!("{field}: {problem}")
        };
        let mut error = WebError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
        error.field = Some(field);
        error
    }

    /// 401 for the JSON API: missing or invalid bearer token.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        WebError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 401 for the UI: not signed in. Rendered as a redirect to the login page.
    pub fn login_required() -> Self {
        WebError::new(
            StatusCode::UNAUTHORIZED,
            LOGIN_REQUIRED,
            "Please sign in to continue.",
        )
    }

    /// 403: signed in (or not) but not allowed, e.g. a cross-site form post.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        WebError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for a named thing: "ticket 42 was not found".
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        WebError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} was not found"),
        )
    }

    /// 409: the request conflicts with the current state (duplicate, illegal transition).
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        WebError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422: well-formed but breaks a rule (e.g. a ticket lifecycle rule).
    pub fn unprocessable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        WebError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429: too many attempts.
    pub fn too_many_requests(message: impl Into<Cow<'static, str>>) -> Self {
        WebError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
    }

    /// 503: a dependency (the database) is not answering.
    pub fn unavailable(message: impl Into<Cow<'static, str>>, cause: anyhow::Error) -> Self {
        WebError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).with_cause(cause)
    }

    /// 500 with an opaque message; the cause goes to the log only.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. The details are in the server log; please try again.",
        )
        .with_cause(cause.into())
    }

    /// Attaches the underlying cause (logged, never shown).
    pub fn with_cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

const LOGIN_REQUIRED: &str = "login_required";

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // Log once, here, where the error is handled. `{:#}` prints the whole cause chain.
        match (&self.cause, self.status.is_server_error()) {
            (Some(cause), true) => {
                tracing::error!(
                    http.status = self.status.as_u16(),
                    error.code = self.code,
                    "request failed: {cause:#}"
                );
            }
            (Some(cause), false) => {
                tracing::info!(
                    http.status = self.status.as_u16(),
                    error.code = self.code,
                    "request rejected: {}: {cause:#}",
                    self.message
                );
            }
            (None, true) => {
                tracing::error!(
                    http.status = self.status.as_u16(),
                    error.code = self.code,
                    "request failed: {}",
                    self.message
                );
            }
            (None, false) => {
                tracing::debug!(
                    http.status = self.status.as_u16(),
                    error.code = self.code,
                    "request rejected: {}",
                    self.message
                );
            }
        }
        let body = ErrorBody {
            code: self.code,
            message: self.message.into_owned(),
            field: self.field,
        };
        let mut response = (self.status, Json(ErrorEnvelope { error: &body })).into_response();
        if self.status == StatusCode::UNAUTHORIZED && body.code != LOGIN_REQUIRED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"regentra\""),
            );
        }
        response.extensions_mut().insert(body);
        response
    }
}

impl From<anyhow::Error> for WebError {
    fn from(cause: anyhow::Error) -> Self {
        WebError::internal(cause)
    }
}

impl From<ValidationError> for WebError {
    fn from(err: ValidationError) -> Self {
        WebError::invalid_field(err.field(), err.message())
    }
}

impl From<sqlx::Error> for WebError {
    fn from(err: sqlx::Error) -> Self {
        WebError::from(StoreError::Database(err))
    }
}

impl From<StoreError> for WebError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => WebError::not_found(capitalised(what)),
            StoreError::Conflict(message) => WebError::conflict(message),
            StoreError::Invalid(message) => WebError::unprocessable("invalid_request", message),
            StoreError::Database(sqlx::Error::PoolTimedOut) => WebError::unavailable(
                "The database is not answering right now. Please try again in a moment.",
                anyhow::Error::new(err),
            ),
            other => WebError::internal(anyhow::Error::new(other)),
        }
    }
}

fn capitalised(what: &str) -> String {
    let mut chars = what.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<askama::Error> for WebError {
    fn from(cause: askama::Error) -> Self {
        WebError::internal(anyhow::Error::new(cause).context("rendering a page template"))
    }
}

impl From<tower_sessions::session::Error> for WebError {
    fn from(cause: tower_sessions::session::Error) -> Self {
        WebError::internal(
            anyhow::Error::new(cause).context("reading or writing the login session"),
        )
    }
}

impl From<JsonRejection> for WebError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else {
            "bad_request"
        };
        WebError::new(
            status,
            code,
            format!("The JSON body could not be read: {}", rejection.body_text()),
        )
    }
}

impl From<FormRejection> for WebError {
    fn from(rejection: FormRejection) -> Self {
        WebError::new(
            rejection.status(),
            "bad_request",
            format!("The form could not be read: {}", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for WebError {
    fn from(rejection: QueryRejection) -> Self {
        WebError::bad_request(format!(
            "The query string could not be read: {}",
            rejection.body_text()
        ))
    }
}

impl From<PathRejection> for WebError {
    fn from(rejection: PathRejection) -> Self {
        WebError::new(
            rejection.status(),
            "bad_request",
            format!("The address is not valid: {}", rejection.body_text()),
        )
    }
}

/// Fallback for unknown routes.
pub async fn route_not_found() -> WebError {
    WebError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is nothing at this address.",
    )
}

/// Middleware for the browser UI: responses that carry an [`ErrorBody`] are re-rendered as an
/// HTML page, and "login required" becomes a redirect to `/login` (an `HX-Redirect` for htmx).
/// JSON API routes (`/api/…`) and `/healthz` keep their JSON.
pub async fn render_html_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let wants_json = path.starts_with("/api/") || path == "/api" || path == "/healthz";
    let is_htmx = request.headers().contains_key("hx-request");
    let return_to = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let is_get = request.method() == axum::http::Method::GET;

    let mut response = next.run(request).await;
    if wants_json {
        return response;
    }
    let Some(body) = response.extensions_mut().remove::<ErrorBody>() else {
        return response;
    };
    let status = response.status();
    if body.code == LOGIN_REQUIRED {
        let target = if is_get && return_to.starts_with('/') && !return_to.starts_with("//") {
            format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            )
        } else {
            "/login".to_owned()
        };
        if is_htmx {
            let mut redirect = StatusCode::NO_CONTENT.into_response();
            if let Ok(value) = HeaderValue::from_str(&target) {
                redirect.headers_mut().insert("hx-redirect", value);
            }
            return redirect;
        }
        return Redirect::to(&target).into_response();
    }
    let page = super::ui::ErrorPage::new(status, &body.message);
    let mut html = match askama::Template::render(&page) {
        Ok(text) => (status, Html(text)).into_response(),
        // The error page itself failed to render: fall back to plain text, still no details.
        Err(err) => {
            tracing::error!("rendering the error page failed: {err}");
            (status, body.message.clone()).into_response()
        }
    };
    html.extensions_mut().insert(body);
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_error_hides_the_cause() {
        let err = WebError::internal(anyhow::anyhow!("password=hunter2 in the connection string"));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let json = body_json(response).await;
        assert_eq!(json["error"]["code"], "internal");
        assert!(!json.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn unauthorized_carries_www_authenticate_bearer() {
        let response = WebError::unauthorized("Missing bearer token").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"regentra\""
        );
        let json = body_json(response).await;
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "unauthorized", "message": "Missing bearer token"}})
        );
    }

    #[tokio::test]
    async fn invalid_field_names_the_field() {
        let response = WebError::invalid_field("entra_tenant_id", "is not a GUID").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let json = body_json(response).await;
        assert_eq!(json["error"]["message"], "entra_tenant_id: is not a GUID");
        assert_eq!(json["error"]["field"], "entra_tenant_id");
    }

    #[tokio::test]
    async fn store_errors_map_to_statuses() {
        let not_found = WebError::from(StoreError::NotFound("ticket")).into_response();
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body_json(not_found).await["error"]["message"],
            "Ticket was not found"
        );
        let conflict = WebError::from(StoreError::Conflict("tenant taken".into())).into_response();
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        let invalid = WebError::from(StoreError::Invalid("closed".into())).into_response();
        assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
