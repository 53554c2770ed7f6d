//! Browser-facing protections: security headers on every response, and CSRF protection for the
//! UI's form posts.
//!
//! CSRF is two checks in series: tower-http's `CsrfLayer` (Fetch Metadata: rejects
//! `Sec-Fetch-Site: cross-site`/`same-site`, falls back to Origin vs Host), then
//! [`reject_foreign_origin`], which additionally refuses any unsafe request whose `Origin`
//! header is present and is neither the configured public URL nor the request's own host. Both
//! answer 403 with the normal error page. Session cookies are `SameSite=Lax` on top (see
//! `web::session_layer`). The JSON API authenticates with bearer tokens only, so it is not
//! behind these layers; this module must never be the only thing protecting a route that a
//! session cookie alone can authorise — the cookie's SameSite attribute stays in place too.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::csrf::{CsrfLayer, ProtectionError};

use super::error::WebError;

/// `Content-Security-Policy` for every response. No inline scripts or styles are used: htmx is
/// told not to inject its indicator style (`htmx-config` meta in `base.html`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'; object-src 'none'";

/// Adds the security headers to every response (pages, JSON, assets, errors).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    response
}

/// The tower-http CSRF layer for the UI, trusting the configured public origin (needed when a
/// reverse proxy rewrites `Host`), answering rejections with our 403 page.
pub fn csrf_layer(
    public_origin: &str,
) -> Result<
    CsrfLayer<impl Fn(ProtectionError) -> Response + Clone + use<>>,
    tower_http::csrf::ConfigError,
> {
    let layer = CsrfLayer::new().add_trusted_origin(public_origin)?;
    Ok(layer.with_rejection_response(|error: ProtectionError| {
        tracing::warn!("refused a cross-site form submission: {error}");
        cross_site_refusal().into_response()
    }))
}

fn cross_site_refusal() -> WebError {
    WebError::forbidden(
        "This form was submitted from another site, so it was refused to protect your account. \
         Open Regentra directly and try again.",
    )
}

/// The state [`reject_foreign_origin`] needs: the public origin, e.g. `https://help.example.com`.
#[derive(Clone, Debug)]
pub struct TrustedOrigin(pub String);

/// Refuses unsafe requests whose `Origin` is present and matches neither the public origin nor
/// the request's `Host` (e.g. `Origin: https://evil.example` with `Sec-Fetch-Site` stripped).
pub async fn reject_foreign_origin(
    axum::extract::State(trusted): axum::extract::State<TrustedOrigin>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    let is_safe = method == Method::GET || method == Method::HEAD || method == Method::OPTIONS;
    if !is_safe && let Some(origin) = request.headers().get(header::ORIGIN) {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if !origin_is_ours(origin.to_str().ok(), host, &trusted.0) {
            tracing::warn!("refused a form submission from a foreign Origin");
            return cross_site_refusal().into_response();
        }
    }
    next.run(request).await
}

/// `origin` (the header value) equals the public origin, or its host:port equals `Host`.
fn origin_is_ours(origin: Option<&str>, host: Option<&str>, public_origin: &str) -> bool {
    let Some(origin) = origin else { return false };
    if origin == public_origin {
        return true;
    }
    let Ok(parsed) = url::Url::parse(origin) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return false;
    }
    let Some(origin_host) = parsed.host_str() else {
        return false;
    };
    let authority = match parsed.port() {
        Some(port) => format!("{origin_host}:{port}"),
        None => origin_host.to_owned(),
    };
    host.is_some_and(|host| host.eq_ignore_ascii_case(&authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_public_url_or_host() {
        let public = "https://help.example.com";
        assert!(origin_is_ours(
            Some("https://help.example.com"),
            Some("internal:8080"),
            public
        ));
        assert!(origin_is_ours(
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080"),
            public
        ));
        assert!(!origin_is_ours(
            Some("https://evil.example"),
            Some("127.0.0.1:8080"),
            public
        ));
        assert!(!origin_is_ours(
            Some("null"),
            Some("127.0.0.1:8080"),
            public
        ));
        assert!(!origin_is_ours(
            Some("http://127.0.0.1:9999"),
            Some("127.0.0.1:8080"),
            public
        ));
        assert!(!origin_is_ours(Some("http://127.0.0.1:8080"), None, public));
    }
}
