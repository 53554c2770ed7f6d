//! Verify Client Federation on the web (ARCHITECTURE §9): the panel under the Teams Chat Bridge
//! card on Settings → Integrations, its form posts, and the JSON API.
//!
//! UI (session + CSRF like every form):
//! * `POST /settings/integrations/teams/federation/verify` — runs the check, flashes a summary;
//! * `POST /settings/integrations/teams/federation/settings` — imports the pasted (or, with
//!   `assets/federation.js`, uploaded) output of `Get-CsTenantFederationConfiguration |
//!   ConvertTo-Json`; a malformed export is a flashed error and the previous settings stay;
//! * `POST /settings/integrations/teams/federation/settings/delete` — forgets them.
//!
//! API (bearer token):
//! * `POST /api/v1/integrations/teams/federation/verify` — runs the check, one row per client;
//! * `GET /api/v1/integrations/teams/federation` — the last stored rows and imported settings;
//! * `PUT /api/v1/integrations/teams/federation/settings` — body: the export as text (UTF-8, or
//!   UTF-16 with a byte-order mark); 400 with the import error otherwise;
//! * `DELETE /api/v1/integrations/teams/federation/settings`.
//!
//! Stable ids/classes: `#federation-card`, `#federation-verify`, `#federation-results`,
//! `.federation-row` (`data-client-id`, `data-status`), `.federation-status`,
//! `.federation-reasons`, `.federation-checked-at`, `.federation-fix`, `.federation-powershell`
//! (`data-side`), `.federation-admin-center`, `.federation-client-message`,
//! `.copy-client-instructions`, `#federation-import`, `#federation-settings-text`,
//! `#federation-settings-file`, `#federation-import-submit`, `#federation-settings`,
//! `#federation-settings-clear`, `#no-federation-results`.
//!
//! This module holds no rules: verdicts come from `bridge::federation`. It must never render
//! unescaped text (reasons and scripts contain client names) nor echo a rejected export.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::bridge::federation::check::{self, CheckOptions, ClientVerdict};
use crate::bridge::federation::{
    AllowedDomains, FederationResult, FederationStatus, MspFederationSettings, Side,
    import_federation_configuration, import_federation_configuration_bytes,
};
use crate::store;
use crate::tickets::TechnicianId;
use crate::web::api::rfc3339;
use crate::web::assets::asset_url;
use crate::web::auth::{ApiCaller, SignedIn};
use crate::web::error::{WebError, WebResult};
use crate::web::extract::{Form, Json};
use crate::web::session::{flash_error, flash_ok};
use crate::web::ui::display_time;

/// Where the panel lives; form posts redirect back here.
const PANEL_URL: &str = "/settings/integrations#federation-card";

/// UI routes (merged into the session + CSRF protected UI router).
pub fn ui_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/settings/integrations/teams/federation/verify",
            post(verify_from_ui),
        )
        .route(
            "/settings/integrations/teams/federation/settings",
            post(import_from_ui),
        )
        .route(
            "/settings/integrations/teams/federation/settings/delete",
            post(clear_from_ui),
        )
}

/// API routes (merged under `/api/v1`).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/integrations/teams/federation", get(last_results_api))
        .route(
            "/integrations/teams/federation/verify",
            post(verify_from_api),
        )
        .route(
            "/integrations/teams/federation/settings",
            put(import_from_api).delete(clear_from_api),
        )
}

// ------------------------------------------------------------------ running the check

async fn run_check(state: &AppState) -> WebResult<Vec<ClientVerdict>> {
    check::verify_all_clients(
        &state.db,
        &state.config.microsoft.authority,
        CheckOptions::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|err| match err {
        check::CheckError::Store(err) => WebError::from(err),
        other => WebError::internal(anyhow::Error::new(other)),
    })
}

/// "3 clients checked: 1 connected, 1 blocked, 1 unknown."
pub fn summary_sentence(verdicts: &[ClientVerdict]) -> String {
    if verdicts.is_empty() {
        return "There are no clients to check yet: add clients with their Entra tenant ID first."
            .to_owned();
    }
    let count = |status| {
        verdicts
            .iter()
            .filter(|row| row.result.status == status)
            .count()
    };
    format!(
        "{} {} checked: {} connected, {} blocked, {} unknown.",
        verdicts.len(),
        if verdicts.len() == 1 {
            "client"
        } else {
            "clients"
        },
        count(FederationStatus::Connected),
        count(FederationStatus::Blocked),
        count(FederationStatus::Unknown),
    )
}

/// `POST /settings/integrations/teams/federation/verify`.
async fn verify_from_ui(State(state): State<AppState>, signed_in: SignedIn) -> WebResult<Redirect> {
    let verdicts = run_check(&state).await?;
    flash_ok(&signed_in.session, summary_sentence(&verdicts)).await;
    Ok(Redirect::to(PANEL_URL))
}

/// The rows of a check, as the API and `regentra federation verify --json` return them.
#[derive(Debug, Serialize)]
pub struct VerifyJson {
    pub items: Vec<ClientVerdict>,
    pub total: usize,
}

/// `POST /api/v1/integrations/teams/federation/verify`.
async fn verify_from_api(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> WebResult<Json<VerifyJson>> {
    let items = run_check(&state).await?;
    Ok(Json(VerifyJson {
        total: items.len(),
        items,
    }))
}

/// `GET /api/v1/integrations/teams/federation`: the last stored verdicts (clients never
/// checked are left out) and the imported settings.
#[derive(Debug, Serialize)]
pub struct LastResultsJson {
    pub items: Vec<ClientVerdict>,
    pub total: usize,
    pub msp_settings: Option<SettingsJson>,
}

async fn last_results_api(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> WebResult<Json<LastResultsJson>> {
    let mut conn = state.db.acquire().await?;
    let clients = store::clients::list(&mut conn).await?;
    let mut checks = store::federation::last_checks(&mut conn).await?;
    let settings = store::federation::msp_settings(&mut conn).await?;
    let items: Vec<ClientVerdict> = clients
        .iter()
        .filter_map(|client| {
            let stored = checks.remove(&client.id)?;
            Some(ClientVerdict {
                client_id: client.id,
                name: client.name.to_string(),
                tenant_id: stored.tenant_id,
                domains: client.domains.iter().map(ToString::to_string).collect(),
                result: stored.result,
                checked_at: stored.checked_at,
            })
        })
        .collect();
    Ok(Json(LastResultsJson {
        total: items.len(),
        items,
        msp_settings: settings.as_ref().map(SettingsJson::from),
    }))
}

// ------------------------------------------------------------------ imported settings

/// The imported settings as the API shows them.
#[derive(Debug, Serialize)]
pub struct SettingsJson {
    /// One sentence, e.g. "Allow only specific external domains: contoso.com".
    pub summary: String,
    pub allow_federated_users: bool,
    /// `null` when all known domains are allowed, otherwise the allow list.
    pub allowed_domains: Option<Vec<String>>,
    pub blocked_domains: Vec<String>,
    pub block_all_subdomains: bool,
    pub imported_at: String,
}

impl From<&MspFederationSettings> for SettingsJson {
    fn from(settings: &MspFederationSettings) -> Self {
        SettingsJson {
            summary: settings_summary(settings),
            allow_federated_users: settings.allow_federated_users,
            allowed_domains: match &settings.allowed {
                AllowedDomains::All => None,
                AllowedDomains::List(domains) => {
                    Some(domains.iter().map(ToString::to_string).collect())
                }
            },
            blocked_domains: settings.blocked.iter().map(ToString::to_string).collect(),
            block_all_subdomains: settings.block_all_subdomains,
            imported_at: rfc3339(settings.imported_at),
        }
    }
}

/// What the imported settings mean, in the Teams admin center's words.
pub fn settings_summary(settings: &MspFederationSettings) -> String {
    let join = |domains: &[crate::tickets::Domain]| {
        domains
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !settings.allow_federated_users {
        return "Block all external domains (AllowFederatedUsers is False)".to_owned();
    }
    match &settings.allowed {
        AllowedDomains::List(domains) if domains.is_empty() => {
            "Allow only specific external domains, and the list is empty".to_owned()
        }
        AllowedDomains::List(domains) => {
            format!("Allow only specific external domains: {}", join(domains))
        }
        AllowedDomains::All if settings.blocked.is_empty() => {
            "Allow all external domains".to_owned()
        }
        AllowedDomains::All => format!(
            "Allow all external domains except the blocked ones: {}{}",
            join(&settings.blocked),
            if settings.block_all_subdomains {
                " (and their subdomains)"
            } else {
                ""
            }
        ),
    }
}

async fn save_import(
    state: &AppState,
    settings: &MspFederationSettings,
    by: TechnicianId,
) -> WebResult<()> {
    store::federation::save_msp_settings(&mut *state.db.acquire().await?, settings, Some(by))
        .await?;
    tracing::info!(
        technician = %by,
        summary = %settings_summary(settings),
        "imported the MSP's Teams external-access settings"
    );
    Ok(())
}

const NOTHING_PASTED: &str = "Nothing was pasted: paste the complete output of \
     `Get-CsTenantFederationConfiguration | ConvertTo-Json` (or choose the file holding it). \
     The previous settings were kept.";

/// The import form.
#[derive(Debug, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    pub configuration: String,
}

/// `POST /settings/integrations/teams/federation/settings`.
async fn import_from_ui(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<ImportForm>,
) -> WebResult<Redirect> {
    let session = &signed_in.session;
    if form.configuration.trim().is_empty() {
        flash_error(session, NOTHING_PASTED).await;
        return Ok(Redirect::to(PANEL_URL));
    }
    match import_federation_configuration(&form.configuration, OffsetDateTime::now_utc()) {
        Ok(settings) => {
            save_import(&state, &settings, signed_in.technician.id).await?;
            flash_ok(
                session,
                format!(
                    "Imported the MSP's Teams settings: {}. Run Verify Client Federation to \
                     apply them.",
                    settings_summary(&settings)
                ),
            )
            .await;
        }
        Err(error) => {
            flash_error(
                session,
                format!("The Teams settings were not imported: {error}"),
            )
            .await;
        }
    }
    Ok(Redirect::to(PANEL_URL))
}

/// `PUT /api/v1/integrations/teams/federation/settings`.
async fn import_from_api(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: Bytes,
) -> WebResult<Json<SettingsJson>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(WebError::bad_request(NOTHING_PASTED));
    }
    let settings = import_federation_configuration_bytes(&body, OffsetDateTime::now_utc())
        .map_err(|error| {
            WebError::new(
                StatusCode::BAD_REQUEST,
                "invalid_federation_configuration",
                format!("The Teams settings were not imported: {error}"),
            )
        })?;
    save_import(&state, &settings, caller.technician.id).await?;
    Ok(Json(SettingsJson::from(&settings)))
}

/// `POST /settings/integrations/teams/federation/settings/delete`.
async fn clear_from_ui(State(state): State<AppState>, signed_in: SignedIn) -> WebResult<Redirect> {
    let removed = store::federation::clear_msp_settings(&mut *state.db.acquire().await?).await?;
    let message = if removed {
        "Removed the imported Teams settings; verdicts no longer use them."
    } else {
        "No Teams settings were imported."
    };
    flash_ok(&signed_in.session, message).await;
    Ok(Redirect::to(PANEL_URL))
}

/// `DELETE /api/v1/integrations/teams/federation/settings`: 204 either way.
async fn clear_from_api(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> WebResult<StatusCode> {
    store::federation::clear_msp_settings(&mut *state.db.acquire().await?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ the panel

/// Everything the Verify Client Federation panel shows (`settings/federation.html`).
#[derive(Debug, Clone)]
pub struct FederationPanelView {
    pub script_url: String,
    pub css_url: String,
    /// One row per client, by name (clients never checked say so).
    pub rows: Vec<FederationRowView>,
    /// The imported settings, if any: summary and import time.
    pub settings: Option<SettingsView>,
}

/// The imported settings on the panel.
#[derive(Debug, Clone)]
pub struct SettingsView {
    pub summary: String,
    pub imported_at: String,
}

/// One client on the panel.
#[derive(Debug, Clone)]
pub struct FederationRowView {
    pub client_id: String,
    pub name: String,
    pub tenant_id: Option<String>,
    /// `connected`, `blocked`, `unknown`, or `not_checked`.
    pub status: &'static str,
    pub status_label: &'static str,
    pub reasons: Vec<String>,
    pub checked_at: Option<String>,
    /// The tenant ID changed since the check: the row is out of date.
    pub stale: bool,
    pub fixes: Vec<FixView>,
    pub test_steps: Vec<String>,
    /// The message for the client's administrator, when they may have to act.
    pub client_admin_message: Option<String>,
}

/// What one administrator does (Blocked and Unknown rows).
#[derive(Debug, Clone)]
pub struct FixView {
    /// `client` or `msp`.
    pub side: &'static str,
    pub side_label: String,
    pub summary: String,
    pub admin_center: String,
    pub powershell: Option<String>,
}

/// The label of a status badge.
pub fn status_label(status: FederationStatus) -> &'static str {
    match status {
        FederationStatus::Connected => "Connected",
        FederationStatus::Blocked => "Blocked",
        FederationStatus::Unknown => "Unknown",
    }
}

fn fixes(result: &FederationResult, client_name: &str) -> Vec<FixView> {
    let Some(remediation) = &result.remediation else {
        return Vec::new();
    };
    remediation
        .actions
        .iter()
        .map(|action| FixView {
            side: match action.side {
                Side::Client => "client",
                Side::Msp => "msp",
            },
            side_label: match action.side {
                Side::Client => format!("{client_name}'s Teams administrator"),
                Side::Msp => "Your (the MSP's) Teams administrator".to_owned(),
            },
            summary: action.summary.clone(),
            admin_center: action.admin_center.clone(),
            powershell: action.powershell.clone(),
        })
        .collect()
}

/// The panel from the stored verdicts and settings.
pub async fn panel_view(state: &AppState) -> WebResult<FederationPanelView> {
    let mut conn = state.db.acquire().await?;
    let clients = store::clients::list(&mut conn).await?;
    let mut checks = store::federation::last_checks(&mut conn).await?;
    let settings = store::federation::msp_settings(&mut conn).await?;
    let rows = clients
        .iter()
        .map(|client| {
            let tenant_id = client.entra_tenant_id.as_ref().map(ToString::to_string);
            match checks.remove(&client.id) {
                Some(stored) => FederationRowView {
                    client_id: client.id.to_string(),
                    name: client.name.to_string(),
                    stale: stored.tenant_id != client.entra_tenant_id,
                    tenant_id,
                    status: stored.result.status.as_str(),
                    status_label: status_label(stored.result.status),
                    fixes: fixes(&stored.result, client.name.as_str()),
                    test_steps: stored
                        .result
                        .remediation
                        .as_ref()
                        .map(|remediation| remediation.test_steps.clone())
                        .unwrap_or_default(),
                    client_admin_message: stored
                        .result
                        .remediation
                        .as_ref()
                        .and_then(|remediation| remediation.client_admin_message.clone()),
                    reasons: stored.result.reasons,
                    checked_at: Some(display_time(stored.checked_at)),
                },
                None => FederationRowView {
                    client_id: client.id.to_string(),
                    name: client.name.to_string(),
                    tenant_id,
                    status: "not_checked",
                    status_label: "Not checked",
                    reasons: vec!["Not checked yet: press Verify Client Federation.".to_owned()],
                    checked_at: None,
                    stale: false,
                    fixes: Vec::new(),
                    test_steps: Vec::new(),
                    client_admin_message: None,
                },
            }
        })
        .collect();
    Ok(FederationPanelView {
        script_url: asset_url("federation.js"),
        css_url: asset_url("federation.css"),
        rows,
        settings: settings.as_ref().map(|settings| SettingsView {
            summary: settings_summary(settings),
            imported_at: display_time(settings.imported_at),
        }),
    })
}

/// The panel alone (for tests and htmx swaps of `#federation-card`).
#[derive(Template)]
#[template(path = "settings/federation.html")]
pub struct FederationPanelFragment {
    pub federation: FederationPanelView,
}

/// One client's last status for the clients page: (`status`, label with the check time).
pub fn client_list_status(
    check: Option<&store::federation::StoredCheck>,
) -> (&'static str, String) {
    match check {
        None => ("not_checked", "Not checked".to_owned()),
        Some(check) => (
            check.result.status.as_str(),
            format!(
                "{} · {}",
                status_label(check.result.status),
                display_time(check.checked_at)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn settings(json: &str) -> MspFederationSettings {
        import_federation_configuration(json, datetime!(2026-03-01 08:00 UTC)).unwrap()
    }

    #[test]
    fn settings_are_summarised_in_the_admin_centers_words() {
        assert_eq!(
            settings_summary(&settings(
                r#"{"AllowFederatedUsers":false,"AllowedDomains":{}}"#
            )),
            "Block all external domains (AllowFederatedUsers is False)"
        );
        assert_eq!(
            settings_summary(&settings(
                r#"{"AllowFederatedUsers":true,"AllowedDomains":{"AllowedDomain":["Domain=contoso.com","Domain=fabrikam.com"]}}"#
            )),
            "Allow only specific external domains: contoso.com, fabrikam.com"
        );
        assert_eq!(
            settings_summary(&settings(
                r#"{"AllowFederatedUsers":true,"AllowedDomains":{},"BlockedDomains":["Domain=tailspin.com"],"BlockAllSubdomains":true}"#
            )),
            "Allow all external domains except the blocked ones: tailspin.com (and their subdomains)"
        );
        assert_eq!(
            settings_summary(&settings(
                r#"{"AllowFederatedUsers":true,"AllowedDomains":"AllowAllKnownDomains"}"#
            )),
            "Allow all external domains"
        );
    }

    #[test]
    fn the_panel_escapes_client_text_and_offers_copyable_powershell() {
        let panel = FederationPanelView {
            script_url: "/assets/federation.js".into(),
            css_url: "/assets/federation.css".into(),
            settings: None,
            rows: vec![FederationRowView {
                client_id: "c1".into(),
                name: "<b>Evil</b> Corp".into(),
                tenant_id: Some("c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a41".into()),
                status: "blocked",
                status_label: "Blocked",
                reasons: vec!["<script>alert(1)</script>".into()],
                checked_at: Some("2026-03-02 09:00 UTC".into()),
                stale: false,
                fixes: vec![FixView {
                    side: "client",
                    side_label: "Their admin".into(),
                    summary: "Allow msp.example".into(),
                    admin_center: "Teams admin center → Users → External access".into(),
                    powershell: Some("$domains.Add('msp.example')".into()),
                }],
                test_steps: vec!["Ask them to write.".into()],
                client_admin_message: Some("Dear admin".into()),
            }],
        };
        let html = FederationPanelFragment { federation: panel }
            .render()
            .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>Evil</b>"), "{html}");
        assert!(html.contains("data-status=\"blocked\""));
        assert!(
            html.contains("$domains.Add(&#39;msp.example&#39;)")
                || html.contains("$domains.Add(&#x27;msp.example&#x27;)"),
            "{html}"
        );
        assert!(html.contains("Teams admin center → Users → External access"));
        assert!(html.contains("copy-client-instructions"));
        assert!(html.contains("<script src=\"/assets/federation.js\" defer></script>"));
    }
}
