//! Settings → Integrations: the "Chat Platforms" section with the Teams Chat Bridge card.
//!
//! The card is rendered only from a [`TeamsCardView`], built from the connection state by
//! `web::teams::card_view` (state, account, problem, connect/disconnect actions). Other parts
//! add their own lines and actions (`CardAction`) such as "Poll now" to that view.
//! The card is also its own template (`settings/teams_card.html`, root `#teams-card`) so an
//! htmx action can swap it in place via [`TeamsCardFragment`].

use askama::Template;
use axum::extract::State;
use axum::response::{Html, Redirect};

use super::Layout;
use crate::app::AppState;
use crate::web::auth::SignedIn;
use crate::web::error::WebResult;

/// Everything the Teams Chat Bridge card shows.
#[derive(Debug, Clone)]
pub struct TeamsCardView {
    /// `disconnected`, `connected` or `reconnect_required` (ARCHITECTURE §8); CSS `state-<state>`.
    pub state: &'static str,
    /// Badge text, e.g. "Not connected".
    pub state_label: String,
    /// One sentence about what the bridge does / what to do next.
    pub description: String,
    /// The connected Microsoft 365 account, when there is one.
    pub account: Option<TeamsAccountView>,
    /// Extra lines (last poll summary, next poll time, …).
    pub details: Vec<String>,
    /// Why the connection needs attention (reconnect required, consent error …).
    pub problem: Option<String>,
    /// Buttons/links, in order.
    pub actions: Vec<CardAction>,
    /// A non-blocking warning, e.g. "this looks like a personal account" (`#teams-hint`).
    pub hint: Option<String>,
}

/// The Microsoft 365 support account the bridge uses.
#[derive(Debug, Clone)]
pub struct TeamsAccountView {
    pub email: String,
    pub display_name: String,
    pub tenant_id: String,
}

/// A button (`method` "post": a form post, CSRF-protected like every form) or link ("get").
#[derive(Debug, Clone)]
pub struct CardAction {
    /// Stable element id for tests, e.g. `teams-connect`.
    pub id: &'static str,
    pub label: String,
    pub method: &'static str,
    pub href: String,
    pub primary: bool,
}

impl TeamsCardView {
    /// The card before any account is connected.
    pub fn not_connected() -> TeamsCardView {
        TeamsCardView {
            state: "disconnected",
            state_label: "Not connected".to_owned(),
            description: "Connect one Microsoft 365 support user. Your clients chat with that user in \
                          Microsoft Teams; their messages become tickets here and your replies go back \
                          into the same chat."
                .to_owned(),
            account: None,
            details: Vec::new(),
            problem: None,
            actions: Vec::new(),
            hint: None,
        }
    }
}

#[derive(Template)]
#[template(path = "settings/integrations.html")]
pub struct IntegrationsPage {
    pub layout: Layout,
    pub teams: TeamsCardView,
    /// Verify Client Federation, shown under the card (`settings/federation.html`).
    pub federation: crate::web::federation::FederationPanelView,
}

/// The card alone, for htmx swaps of `#teams-card`.
#[derive(Template)]
#[template(path = "settings/teams_card.html")]
pub struct TeamsCardFragment {
    pub teams: TeamsCardView,
}

/// `GET /settings`.
pub async fn settings_home() -> Redirect {
    Redirect::to("/settings/integrations")
}

/// `GET /settings/integrations`.
pub async fn integrations(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> WebResult<Html<String>> {
    let page = IntegrationsPage {
        layout: Layout::new(
            "Integrations",
            "settings",
            &signed_in.technician,
            &signed_in.session,
        )
        .await,
        teams: crate::web::teams::card_view(&state, &signed_in.session).await?,
        federation: crate::web::federation::panel_view(&state).await?,
    };
    Ok(Html(page.render()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_connected_card_says_so() {
        let html = TeamsCardFragment {
            teams: TeamsCardView::not_connected(),
        }
        .render()
        .unwrap();
        assert!(html.contains("id=\"teams-card\""));
        assert!(html.contains("data-state=\"disconnected\""));
        assert!(html.contains("Not connected"));
        assert!(html.contains("Teams Chat Bridge"));
    }

    #[test]
    fn actions_render_as_forms_or_links() {
        let mut card = TeamsCardView::not_connected();
        card.actions.push(CardAction {
            id: "teams-connect",
            label: "Connect".to_owned(),
            method: "post",
            href: "/settings/integrations/teams/connect".to_owned(),
            primary: true,
        });
        let html = TeamsCardFragment { teams: card }.render().unwrap();
        assert!(
            html.contains(r#"<form method="post" action="/settings/integrations/teams/connect">"#),
            "{html}"
        );
        assert!(html.contains(r#"id="teams-connect""#));
    }
}
