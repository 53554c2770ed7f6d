//! The server-rendered browser UI: page templates (askama, `templates/`), the view structs they
//! render, and the handlers behind them.
//!
//! Templates never see domain records directly: each page has a view struct built from them
//! here, so templates stay simple and the domain can change without touching HTML. Everything
//! is HTML-escaped by askama except `EntryView::html`, which is sanitised again with ammonia
//! right before rendering. This module must not contain business rules (those live in
//! `tickets`/`store`) and must not accept a request without a [`super::auth::SignedIn`]
//! technician, except the login page.

pub mod clients;
pub mod settings;
pub mod tickets;

use askama::Template;
use axum::http::StatusCode;
use time::OffsetDateTime;
use time::macros::format_description;

use super::assets::asset_url;
use super::session::{Flash, take_flash};
use crate::tickets::Technician;

/// What every page's frame needs: title, active nav item, signed-in name, asset URLs, flash.
pub struct Layout {
    pub title: String,
    /// `tickets`, `clients` or `settings`.
    pub nav: &'static str,
    pub technician_name: String,
    pub css_url: String,
    pub htmx_url: String,
    pub flash: Option<Flash>,
}

impl Layout {
    /// Builds the frame and takes the pending flash message out of the session.
    pub async fn new(
        title: impl Into<String>,
        nav: &'static str,
        technician: &Technician,
        session: &tower_sessions::Session,
    ) -> Layout {
        Layout {
            title: title.into(),
            nav,
            technician_name: technician.display_name.clone(),
            css_url: asset_url("app.css"),
            htmx_url: asset_url("htmx.min.js"),
            flash: take_flash(session).await,
        }
    }
}

/// The HTML error page (rendered by `web::error::render_html_errors`).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub css_url: String,
    pub status: u16,
    pub title: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, message: &str) -> ErrorPage {
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "That did not work",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::TOO_MANY_REQUESTS => "Slow down",
            s if s.is_server_error() => "Something went wrong",
            _ => "Error",
        };
        ErrorPage {
            css_url: asset_url("app.css"),
            status: status.as_u16(),
            title: title.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// One `<option>` of a `<select>`.
pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl SelectOption {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> SelectOption {
        SelectOption {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// How times appear in the UI: `2026-03-10 12:00 UTC`.
pub fn display_time(time: OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_else(|_| utc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_shown_in_utc_to_the_minute() {
        assert_eq!(
            display_time(datetime!(2026-03-10 13:05:59 +01:00)),
            "2026-03-10 12:05 UTC"
        );
    }

    #[test]
    fn error_page_escapes_the_message() {
        let page = ErrorPage::new(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }
}
