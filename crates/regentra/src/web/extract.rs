//! Request extractors whose rejections are [`WebError`]s, so a malformed body, form, query or
//! path gets the same JSON error (API) or error page (UI) as every other failure, instead of
//! axum's plain-text rejection. Use these instead of `axum::Json`, `axum::Form`,
//! `axum::extract::Query` and `axum::extract::Path` in handlers.

use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::WebError;

/// JSON request body (rejects with 400/415 `WebError`) and JSON response.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(WebError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// URL-encoded form body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Form), rejection(WebError))]
pub struct Form<T>(pub T);

/// Query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(WebError))]
pub struct Query<T>(pub T);

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(WebError))]
pub struct Path<T>(pub T);
