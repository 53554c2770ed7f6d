//! The Teams Chat Bridge connection on the web: the card's connect / disconnect / status parts,
//! Microsoft's OAuth callback, and `GET`/`DELETE /api/v1/integrations/teams` (ARCHITECTURE §3).
//!
//! Routes (UI, session + CSRF like every UI route):
//! * `GET /settings/integrations/teams/connect` — starts the sign-in and redirects to Microsoft.
//!   A link, not a form post: the page's CSP `form-action 'self'` would block a form whose
//!   redirect leaves the site.
//! * `GET /integrations/teams/callback` — Microsoft's redirect (the URI registered on the app).
//! * `POST /settings/integrations/teams/disconnect`.
//!
//! The browser session keeps the SHA-256 of the pending `state` (so a state from another browser
//! is refused) and, for one page view, why the last connect attempt failed. This module must
//! never log or render a code, verifier or token.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::api::rfc3339;
use super::auth::{ApiCaller, SignedIn};
use super::error::{WebError, WebResult};
use super::extract::{Json, Query};
use super::session::flash_ok;
use super::ui::settings::{CardAction, TeamsAccountView, TeamsCardView};
use crate::app::AppState;
use crate::bridge::connection::{
    CallbackParams, ConnectError, ConnectOutcome, ConnectionError, ConnectionState,
    ConnectionStatus, SetupStatus,
};

/// Session key: SHA-256 of the `state` of the sign-in this browser started.
const PENDING_STATE_KEY: &str = "teams_oauth_state_hash";
/// Session key: why the last connect attempt failed (shown once on the card).
const CONNECT_PROBLEM_KEY: &str = "teams_connect_problem";

/// Path of the card's page.
pub const INTEGRATIONS_PAGE: &str = "/settings/integrations";
/// Starts the consent flow.
pub const CONNECT_PATH: &str = "/settings/integrations/teams/connect";
/// Disconnects the support account.
pub const DISCONNECT_PATH: &str = "/settings/integrations/teams/disconnect";
/// Microsoft's redirect back to us (must equal `bridge::connection::CALLBACK_PATH`).
pub const CALLBACK_ROUTE: &str = "/integrations/teams/callback";

/// UI routes of the Teams connection (merged into the UI router).
pub fn ui_routes() -> Router<AppState> {
    Router::new()
        .route(CONNECT_PATH, get(connect))
        .route(DISCONNECT_PATH, post(disconnect))
        .route(CALLBACK_ROUTE, get(callback))
}

/// API routes under `/api/v1` (merged into the API router).
pub fn api_routes() -> Router<AppState> {
    Router::new().route(
        "/integrations/teams",
        get(api_status).delete(api_disconnect),
    )
}

/// A failed connect attempt, kept in the session until the card shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConnectProblem {
    message: String,
    admin_consent_url: Option<String>,
}

async fn remember_problem(session: &Session, problem: ConnectProblem) {
    if let Err(error) = session.insert(CONNECT_PROBLEM_KEY, problem).await {
        tracing::warn!("could not keep the Teams connect problem in the session: {error}");
    }
}

/// `GET /settings/integrations/teams/connect`: to Microsoft's sign-in page.
async fn connect(State(state): State<AppState>, signed_in: SignedIn) -> WebResult<Response> {
    match state.teams.begin_connect(signed_in.technician.id).await {
        Ok(start) => {
            signed_in
                .session
                .insert(PENDING_STATE_KEY, start.state_hash)
                .await?;
            Ok(Redirect::to(start.authorize_url.as_str()).into_response())
        }
        Err(ConnectionError::NotConfigured(message)) => {
            remember_problem(
                &signed_in.session,
                ConnectProblem {
                    message,
                    admin_consent_url: None,
                },
            )
            .await;
            Ok(Redirect::to(INTEGRATIONS_PAGE).into_response())
        }
        Err(error) => Err(WebError::internal(
            anyhow::Error::new(error).context("starting the Teams sign-in"),
        )),
    }
}

/// `GET /integrations/teams/callback`: Microsoft sends the browser back here.
async fn callback(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(params): Query<CallbackParams>,
) -> WebResult<Response> {
    let session = &signed_in.session;
    // Taken whatever happens: one sign-in, one callback.
    let expected: Option<String> = session.remove(PENDING_STATE_KEY).await?;
    let outcome = state
        .teams
        .complete_connect(params, signed_in.technician.id, expected.as_deref())
        .await;
    match outcome {
        Ok(ConnectOutcome::Connected { email, .. }) => {
            flash_ok(session, format!("Teams Chat Bridge connected as {email}.")).await;
        }
        Ok(ConnectOutcome::AdminConsentGranted) => {
            flash_ok(
                session,
                "An administrator approved Regentra for your organization. Click Connect Teams \
                 Chat and sign in as the shared support account.",
            )
            .await;
        }
        Err(ConnectError::Internal(error)) => {
            tracing::error!(
                technician.id = %signed_in.technician.id,
                "connecting the Teams support account failed: {error}"
            );
            remember_problem(
                session,
                ConnectProblem {
                    message: format!(
                        "Connecting the Microsoft 365 support account failed on our side: \
                         {error}. Try again; the server log has the details."
                    ),
                    admin_consent_url: None,
                },
            )
            .await;
        }
        Err(error) => {
            tracing::info!(
                technician.id = %signed_in.technician.id,
                "a Teams connect attempt was refused: {error}"
            );
            remember_problem(
                session,
                ConnectProblem {
                    admin_consent_url: error.admin_consent_url().map(ToString::to_string),
                    message: error.to_string(),
                },
            )
            .await;
        }
    }
    Ok(Redirect::to(INTEGRATIONS_PAGE).into_response())
}

/// `POST /settings/integrations/teams/disconnect`.
async fn disconnect(State(state): State<AppState>, signed_in: SignedIn) -> WebResult<Response> {
    let disconnected = state.teams.disconnect().await.map_err(|error| {
        WebError::internal(anyhow::Error::new(error).context("disconnecting Teams"))
    })?;
    let message = match disconnected {
        Some(_) => {
            "Teams Chat Bridge disconnected: polling stopped and the stored tokens were erased. \
             Tickets and chat history are kept."
        }
        None => "Teams Chat Bridge was not connected.",
    };
    flash_ok(&signed_in.session, message).await;
    Ok(Redirect::to(INTEGRATIONS_PAGE).into_response())
}

/// The Teams Chat Bridge card for the integrations page (takes the one-shot connect problem
/// out of `session`).
pub async fn card_view(state: &AppState, session: &Session) -> WebResult<TeamsCardView> {
    let status =
        state.teams.status().await.map_err(|error| {
            WebError::internal(anyhow::Error::new(error).context("Teams status"))
        })?;
    let connect_problem: Option<ConnectProblem> = session
        .remove(CONNECT_PROBLEM_KEY)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!("could not read the Teams connect problem from the session: {error}");
            None
        });
    let mut card = build_card(&status, connect_problem);
    if status.state != ConnectionState::Disconnected
        && let Some(connection_id) = status.connection_id
    {
        card.details.extend(
            crate::bridge::poller::card_lines(&state.db, &connection_id.to_string()).await?,
        );
    }
    Ok(card)
}

fn build_card(status: &ConnectionStatus, connect_problem: Option<ConnectProblem>) -> TeamsCardView {
    let mut card = TeamsCardView::not_connected();
    card.state = status.state.as_str();
    card.state_label = match status.state {
        ConnectionState::Disconnected => "Not connected",
        ConnectionState::Connected => "Connected",
        ConnectionState::ReconnectRequired => "Reconnect required",
    }
    .to_owned();
    card.account = status.account.as_ref().map(|account| TeamsAccountView {
        email: account.email.clone(),
        display_name: account.display_name.clone(),
        tenant_id: account.tenant_id.to_string(),
    });

    let mut problems = Vec::new();
    if let Some(problem) = connect_problem.as_ref() {
        problems.push(problem.message.clone());
    }
    if status.state == ConnectionState::ReconnectRequired {
        problems.push(format!(
            "Polling stopped: {} Connect the support account again to resume.",
            status
                .reason
                .as_deref()
                .unwrap_or("Microsoft refused the stored sign-in.")
        ));
    }
    let setup_problem = status.setup.problem(&status.redirect_uri);
    if let Some(problem) = &setup_problem {
        problems.push(problem.clone());
    }
    card.problem = (!problems.is_empty()).then(|| problems.join(" "));

    match status.state {
        ConnectionState::Connected => {
            card.description = "Clients chat with this Microsoft 365 account in Teams; their \
                                 messages become tickets here and your replies go back into the \
                                 same chat."
                .to_owned();
            if let Some(connected_at) = status.connected_at {
                card.details
                    .push(format!("Connected since {}.", rfc3339(connected_at)));
            }
        }
        ConnectionState::ReconnectRequired => {
            card.description = "Microsoft no longer accepts the stored sign-in of the support \
                                account, so nothing is read from or sent to Teams until it is \
                                connected again."
                .to_owned();
        }
        ConnectionState::Disconnected => {}
    }
    card.hint = status.personal_account_hint.clone();
    if !status.public_url_configured && status.setup == SetupStatus::Ready {
        card.details.push(format!(
            "REGENTRA_PUBLIC_URL is not set, so the redirect URI is {} (from the listening \
             address). Set it when people reach Regentra at another address, and register that \
             redirect URI on the Azure app.",
            status.redirect_uri
        ));
    }

    if setup_problem.is_none() {
        let (label, primary) = match status.state {
            ConnectionState::Disconnected => ("Connect Teams Chat", true),
            ConnectionState::ReconnectRequired => ("Reconnect Teams Chat", true),
            ConnectionState::Connected => ("Reconnect or switch account", false),
        };
        card.actions.push(CardAction {
            id: "teams-connect",
            label: label.to_owned(),
            method: "get",
            href: CONNECT_PATH.to_owned(),
            primary,
        });
    }
    if let Some(url) = connect_problem.and_then(|problem| problem.admin_consent_url) {
        card.actions.push(CardAction {
            id: "teams-admin-consent",
            label: "Open the admin-consent page".to_owned(),
            method: "get",
            href: url,
            primary: false,
        });
    }
    if status.state != ConnectionState::Disconnected {
        card.actions.push(CardAction {
            id: "teams-disconnect",
            label: "Disconnect".to_owned(),
            method: "post",
            href: DISCONNECT_PATH.to_owned(),
            primary: false,
        });
    }
    card
}

/// `GET /api/v1/integrations/teams`.
#[derive(Debug, Serialize)]
pub struct TeamsStatusJson {
    /// `disconnected`, `connected` or `reconnect_required`.
    pub state: ConnectionState,
    pub account: Option<TeamsAccountJson>,
    /// Why a reconnect is required.
    pub reason: Option<String>,
    pub personal_account_hint: Option<String>,
    pub connected_at: Option<String>,
    /// The last poll cycle's summary — filled in by the poller (null until then).
    pub last_poll: Option<serde_json::Value>,
    /// When the next poll cycle is due — filled in by the poller (null until then).
    pub next_poll: Option<String>,
    pub setup: TeamsSetupJson,
}

/// The connected account.
#[derive(Debug, Serialize)]
pub struct TeamsAccountJson {
    pub email: String,
    pub display_name: String,
    pub tenant_id: String,
}

/// Whether the Microsoft settings are complete.
#[derive(Debug, Serialize)]
pub struct TeamsSetupJson {
    pub ready: bool,
    /// Missing `REGENTRA_*` variables.
    pub missing: Vec<&'static str>,
    /// The sentence the card shows when not ready.
    pub problem: Option<String>,
    /// The redirect URI to register on the Azure app.
    pub redirect_uri: String,
}

impl From<&ConnectionStatus> for TeamsStatusJson {
    fn from(status: &ConnectionStatus) -> Self {
        TeamsStatusJson {
            state: status.state,
            account: status.account.as_ref().map(|account| TeamsAccountJson {
                email: account.email.clone(),
                display_name: account.display_name.clone(),
                tenant_id: account.tenant_id.to_string(),
            }),
            reason: status.reason.clone(),
            personal_account_hint: status.personal_account_hint.clone(),
            connected_at: status.connected_at.map(rfc3339),
            last_poll: None,
            next_poll: None,
            setup: TeamsSetupJson {
                ready: status.setup == SetupStatus::Ready,
                missing: match &status.setup {
                    SetupStatus::Incomplete { missing } => missing.clone(),
                    _ => Vec::new(),
                },
                problem: status.setup.problem(&status.redirect_uri),
                redirect_uri: status.redirect_uri.to_string(),
            },
        }
    }
}

async fn status_json(state: &AppState) -> WebResult<TeamsStatusJson> {
    let status =
        state.teams.status().await.map_err(|error| {
            WebError::internal(anyhow::Error::new(error).context("Teams status"))
        })?;
    let mut json = TeamsStatusJson::from(&status);
    if let Some(connection_id) = status.connection_id
        && let Some(poll) =
            crate::bridge::poller::status(&state.db, &connection_id.to_string()).await?
    {
        json.next_poll = poll.next_cycle_at.map(rfc3339);
        json.last_poll = serde_json::to_value(&poll).ok();
    }
    Ok(json)
}

/// `GET /api/v1/integrations/teams`.
async fn api_status(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> WebResult<Json<TeamsStatusJson>> {
    Ok(Json(status_json(&state).await?))
}

/// `DELETE /api/v1/integrations/teams`: disconnects; answers with the new status.
async fn api_disconnect(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> WebResult<Json<TeamsStatusJson>> {
    let disconnected = state.teams.disconnect().await.map_err(|error| {
        WebError::internal(anyhow::Error::new(error).context("disconnecting Teams"))
    })?;
    if let Some(id) = disconnected {
        tracing::info!(
            connection.id = %id,
            technician.id = %caller.technician.id,
            "Teams disconnected through the API"
        );
    }
    Ok(Json(status_json(&state).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::connection::AccountSummary;
    use crate::tickets::TenantId;

    fn status(state: ConnectionState, setup: SetupStatus) -> ConnectionStatus {
        ConnectionStatus {
            state,
            connection_id: None,
            account: (state != ConnectionState::Disconnected).then(|| AccountSummary {
                email: "support@northwind-it.example".into(),
                display_name: "Northwind IT Support".into(),
                tenant_id: TenantId::parse("4b6e1f3a-7c2d-4e8f-9a1b-2c3d4e5f6a70").unwrap(),
                user_id: "9d2c5a1e-3f4b-4c6d-8e7f-0a1b2c3d4e51".into(),
            }),
            reason: (state == ConnectionState::ReconnectRequired)
                .then(|| "Microsoft refused to renew the sign-in (AADSTS50173).".to_owned()),
            problem_at: None,
            personal_account_hint: None,
            connected_at: None,
            last_refreshed_at: None,
            setup,
            redirect_uri: url::Url::parse("https://help.msp.example/integrations/teams/callback")
                .unwrap(),
            public_url_configured: true,
        }
    }

    fn action_ids(card: &TeamsCardView) -> Vec<&'static str> {
        card.actions.iter().map(|action| action.id).collect()
    }

    #[test]
    fn missing_settings_name_the_variable_and_offer_no_button() {
        let card = build_card(
            &status(
                ConnectionState::Disconnected,
                SetupStatus::Incomplete {
                    missing: vec!["REGENTRA_MS_CLIENT_SECRET"],
                },
            ),
            None,
        );
        let problem = card.problem.unwrap();
        assert!(
            problem.starts_with(
                "Teams Chat Bridge is not set up yet: REGENTRA_MS_CLIENT_SECRET is not set."
            ),
            "{problem}"
        );
        assert!(problem.contains("https://help.msp.example/integrations/teams/callback"));
        assert!(
            problem.contains(
                "offline_access, User.Read, Chat.Read, ChatMessage.Read, ChatMessage.Send"
            )
        );
        assert!(card.actions.is_empty());
    }

    #[test]
    fn disconnected_card_offers_connect() {
        let card = build_card(
            &status(ConnectionState::Disconnected, SetupStatus::Ready),
            None,
        );
        assert_eq!(card.state, "disconnected");
        assert_eq!(action_ids(&card), ["teams-connect"]);
        assert_eq!(card.actions[0].method, "get");
        assert!(card.problem.is_none());
    }

    #[test]
    fn connected_card_shows_the_account_and_offers_disconnect() {
        let card = build_card(
            &status(ConnectionState::Connected, SetupStatus::Ready),
            None,
        );
        assert_eq!(card.state_label, "Connected");
        assert_eq!(card.account.as_ref().unwrap().email, "support@northwind-it.example");
        assert_eq!(action_ids(&card), ["teams-connect", "teams-disconnect"]);
    }

    #[test]
    fn reconnect_required_card_says_why() {
        let card = build_card(
            &status(ConnectionState::ReconnectRequired, SetupStatus::Ready),
            None,
        );
        let problem = card.problem.unwrap();
        assert!(problem.contains("AADSTS50173"), "{problem}");
        assert!(problem.starts_with("Polling stopped:"), "{problem}");
        assert_eq!(card.actions[0].label, "Reconnect Teams Chat");
    }

    #[test]
    fn refused_consent_shows_the_message_and_the_admin_consent_link() {
        let card = build_card(
            &status(ConnectionState::Disconnected, SetupStatus::Ready),
            Some(ConnectProblem {
                message: "Your Microsoft 365 organization only lets administrators approve apps"
                    .into(),
                admin_consent_url: Some(
                    "https://login.example/organizations/v2.0/adminconsent?client_id=x".into(),
                ),
            }),
        );
        assert!(card.problem.as_ref().unwrap().contains("only lets administrators"));
        assert_eq!(action_ids(&card), ["teams-connect", "teams-admin-consent"]);
        assert!(card.actions[1].href.contains("/v2.0/adminconsent"));
    }
}
