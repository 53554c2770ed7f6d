//! Static assets (CSS, the vendored htmx) embedded in the binary and served under `/assets/`.
//!
//! Pages link assets through [`asset_url`], which appends a content hash (`?v=…`); such URLs
//! are cached for a year as immutable, so a new release never serves stale CSS. This module
//! must only ever serve files from `crates/regentra/assets/`, never from the file system at run
//! time.

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use serde::Deserialize;

use super::error::WebError;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The versioned URL of an embedded asset, e.g. `/assets/app.css?v=1a2b3c4d5e6f`.
/// An unknown name yields the plain path (a 404 the browser console will show).
pub fn asset_url(name: &str) -> String {
    match Assets::get(name) {
        Some(file) => format!(
            "/assets/{name}?v={}",
            short_hash(&file.metadata.sha256_hash())
        ),
        None => format!("/assets/{name}"),
    }
}

fn short_hash(hash: &[u8; 32]) -> String {
    hash.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
pub struct VersionQuery {
    v: Option<String>,
}

/// `GET /assets/{*path}`.
pub async fn serve_asset(
    Path(path): Path<String>,
    Query(version): Query<VersionQuery>,
    request_headers: HeaderMap,
) -> Result<Response, WebError> {
    let file = Assets::get(&path).ok_or_else(|| WebError::not_found(format!("asset {path}")))?;
    let hash = short_hash(&file.metadata.sha256_hash());
    let etag = format!("\"{hash}\"");
    // Only a URL that names the current content may be cached forever.
    let cache_control = if version.v.as_deref() == Some(hash.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300, must-revalidate"
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let content_type = match path.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok((headers, file.data.into_owned()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_htmx_keeps_its_license_header() {
        let file = Assets::get("htmx.min.js").expect("htmx is embedded");
        let text = std::str::from_utf8(&file.data).unwrap();
        assert!(text.starts_with("/*! htmx 2."), "license header first");
        assert!(text.contains("Zero-Clause BSD"));
        assert!(Assets::get("htmx.LICENSE.txt").is_some());
    }

    #[test]
    fn asset_urls_carry_a_content_hash() {
        let url = asset_url("app.css");
        assert!(url.starts_with("/assets/app.css?v="), "{url}");
        assert_eq!(url.len(), "/assets/app.css?v=".len() + 12);
    }
}
