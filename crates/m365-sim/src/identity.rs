//! The Microsoft identity platform (v2.0) as our app sees it: OIDC discovery, the authorize
//! endpoint with a sign-in page and a consent page, and the token endpoint (authorization_code
//! with PKCE + client secret, refresh_token with rotation). Errors use the real AADSTS codes and
//! bodies (`graph-facts.md` §6, fixtures 43–55).
//!
//! Must never log secrets, codes or tokens.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::model::{AuthCode, AuthorizeFlow, User, World};
use crate::odata::AadError;
use crate::sim::Sim;
use crate::timefmt;
use crate::tokens::{self, GRAPH_RESOURCE, OIDC_SCOPES};

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
        .route("/{tenant}/v2.0/adminconsent", get(admin_consent))
        .route("/{tenant}/login", post(sign_in))
        .route("/{tenant}/Consent/Set", post(consent))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
}

const MULTI_TENANT_SEGMENTS: [&str; 2] = ["common", "organizations"];

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The `{tenant}` segment resolved: a known tenant id, or `None` for common/organizations.
enum TenantSegment {
    Multi(String),
    Known(String),
}

fn resolve_tenant(world: &World, segment: &str) -> Result<TenantSegment, AadError> {
    if MULTI_TENANT_SEGMENTS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(segment))
    {
        return Ok(TenantSegment::Multi(segment.to_ascii_lowercase()));
    }
    if let Some(tenant) = world.tenant_by_segment(segment) {
        return Ok(TenantSegment::Known(tenant.id.clone()));
    }
    if uuid::Uuid::parse_str(segment).is_err() && !segment.contains('.') {
        return Err(AadError::bad_request(
            "invalid_request",
            900023,
            format!(
                "Specified tenant identifier '{segment}' is neither a valid DNS name, nor a valid external domain."
            ),
        ));
    }
    Err(AadError::bad_request(
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    ))
}

async fn discovery(
    State(sim): State<Sim>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AadError> {
    let resolved = resolve_tenant(&sim.world(), &segment)?;
    let base = base_url(&headers);
    let (path_tenant, issuer_tenant) = match &resolved {
        TenantSegment::Multi(name) => (name.clone(), "{tenantid}".to_owned()),
        TenantSegment::Known(id) => (id.clone(), id.clone()),
    };
    let prefix = format!("{base}/{path_tenant}");
    let body = json!({
        "token_endpoint": format!("{prefix}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{prefix}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("https://login.microsoftonline.com/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{prefix}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{prefix}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{prefix}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{prefix}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    Ok(axum::Json(body).into_response())
}

async fn keys() -> Response {
    axum::Json(json!({"keys": []})).into_response()
}

// ---------- pages ----------

struct UserOption {
    id: String,
    display_name: String,
    upn: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    app_name: String,
    tenant_label: String,
    error: Option<String>,
    action: String,
    flow: String,
    login_hint: String,
    users: Vec<UserOption>,
}

struct ScopeLine {
    name: String,
    description: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    user_upn: String,
    app_name: String,
    scopes: Vec<ScopeLine>,
    action: String,
    flow: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub title: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage {
    redirect_uri: String,
    fields: Vec<(String, String)>,
}

fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("page rendering failed: {error}"),
        )
            .into_response(),
    }
}

/// An error Entra shows on its own page because it cannot trust the redirect URI.
fn error_page(aadsts: u32, message: String) -> Response {
    render(
        &MessagePage {
            title: "Sorry, but we're having trouble signing you in.".into(),
            message: format!("AADSTS{aadsts}: {message}"),
        },
        StatusCode::BAD_REQUEST,
    )
}

fn scope_description(scope: &str) -> String {
    match scope.to_ascii_lowercase().as_str() {
        "openid" => "Sign you in".into(),
        "profile" => "View your basic profile".into(),
        "email" => "View your email address".into(),
        "offline_access" => "Maintain access to data you have given it access to".into(),
        "user.read" => "Sign you in and read your profile".into(),
        "chat.read" => "Read your chat messages".into(),
        "chat.readbasic" => "Read names and members of your chats".into(),
        "chat.readwrite" => "Read and write your chat messages".into(),
        "chatmessage.read" => "Read user chat messages".into(),
        "chatmessage.send" => "Send user chat messages".into(),
        _ => format!("Use the {scope} permission"),
    }
}

/// Normalises a `scope` parameter: Graph scopes lose their resource prefix; other resources
/// are refused with AADSTS70011 as Entra does.
fn parse_scopes(raw: &str) -> Result<Vec<String>, AadError> {
    let mut scopes: Vec<String> = Vec::new();
    for word in raw.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let short = if let Some(rest) = lower.strip_prefix(GRAPH_RESOURCE) {
            word[word.len() - rest.len()..].to_owned()
        } else if lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with("api://")
        {
            return Err(AadError::bad_request(
                "invalid_scope",
                70011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {word} is not valid."
                ),
            ));
        } else if let Some(oidc) = OIDC_SCOPES.iter().find(|o| o.eq_ignore_ascii_case(word)) {
            (*oidc).to_owned()
        } else {
            word.to_owned()
        };
        if !scopes.iter().any(|s| s.eq_ignore_ascii_case(&short)) {
            scopes.push(short);
        }
    }
    Ok(scopes)
}

/// Exact match, unless the registration opted into the loopback-any-port convenience.
fn redirect_uri_registered(app: &crate::scenario::ScenarioApp, redirect_uri: &str) -> bool {
    if app.redirect_uris.iter().any(|r| r == redirect_uri) {
        return true;
    }
    if !app.allow_any_loopback_port {
        return false;
    }
    let Ok(wanted) = url::Url::parse(redirect_uri) else {
        return false;
    };
    let is_loopback = |u: &url::Url| {
        matches!(
            u.host_str(),
            Some("127.0.0.1") | Some("localhost") | Some("[::1]")
        )
    };
    app.redirect_uris
        .iter()
        .filter_map(|r| url::Url::parse(r).ok())
        .any(|mut registered| {
            is_loopback(&registered)
                && is_loopback(&wanted)
                && registered.set_port(wanted.port()).is_ok()
                && registered.as_str() == wanted.as_str()
        })
}

fn flow_redirect(flow: &AuthorizeFlow, mut fields: Vec<(String, String)>) -> Response {
    if let Some(state) = &flow.state {
        fields.push(("state".into(), state.clone()));
    }
    match flow.response_mode.as_str() {
        "form_post" => render(
            &FormPostPage {
                redirect_uri: flow.redirect_uri.clone(),
                fields,
            },
            StatusCode::OK,
        ),
        mode => {
            let Ok(mut url) = url::Url::parse(&flow.redirect_uri) else {
                return error_page(
                    50011,
                    format!(
                        "The redirect URI '{}' is not a valid URL.",
                        flow.redirect_uri
                    ),
                );
            };
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            if mode == "fragment" {
                url.set_fragment(Some(&encoded));
            } else {
                let query = match url.query() {
                    Some(existing) if !existing.is_empty() => format!("{existing}&{encoded}"),
                    _ => encoded,
                };
                url.set_query(Some(&query));
            }
            (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
        }
    }
}

fn error_fields(sim: &Sim, error: &str, aadsts: u32, description: &str) -> Vec<(String, String)> {
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    let timestamp = timefmt::aad_timestamp(sim.now());
    vec![
        ("error".into(), error.into()),
        (
            "error_description".into(),
            format!(
                "AADSTS{aadsts}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
            ),
        ),
        (
            "error_uri".into(),
            format!("https://login.microsoftonline.com/error?code={aadsts}"),
        ),
    ]
}

async fn authorize(
    State(sim): State<Sim>,
    Path(segment): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let world = sim.world();
    let tenant = match resolve_tenant(&world, &segment) {
        Ok(t) => t,
        Err(error) => return error_page(error.aadsts, error.description),
    };
    let Some(client_id) = param("client_id") else {
        return error_page(
            900144,
            "The request body must contain the following parameter: 'client_id'.".into(),
        );
    };
    let Some(app) = world.app(&client_id).cloned() else {
        let directory = match &tenant {
            TenantSegment::Known(id) => world
                .tenant(id)
                .map(|t| t.display_name.clone())
                .unwrap_or_default(),
            TenantSegment::Multi(name) => name.clone(),
        };
        return error_page(
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{directory}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    let redirect_uri = param("redirect_uri").unwrap_or_default();
    if !redirect_uri_registered(&app, &redirect_uri) {
        return error_page(
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        );
    }
    let mut flow = AuthorizeFlow {
        tenant_segment: segment.clone(),
        client_id: app.client_id.clone(),
        redirect_uri,
        scopes: Vec::new(),
        state: param("state"),
        code_challenge: param("code_challenge"),
        code_challenge_method: param("code_challenge_method"),
        nonce: param("nonce"),
        response_mode: param("response_mode").unwrap_or_else(|| "query".into()),
        prompt: param("prompt"),
        login_hint: param("login_hint"),
        user_id: None,
        admin_consent: false,
    };
    drop(world);
    let redirect_error = |flow: &AuthorizeFlow, error: &str, aadsts: u32, description: &str| {
        flow_redirect(flow, error_fields(&sim, error, aadsts, description))
    };
    match param("response_type").as_deref() {
        Some("code") => {}
        Some(other) => {
            return redirect_error(
                &flow,
                "unsupported_response_type",
                700054,
                &format!("response_type '{other}' is not enabled for the application."),
            );
        }
        None => {
            return redirect_error(
                &flow,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            );
        }
    }
    let Some(raw_scope) = param("scope") else {
        return redirect_error(
            &flow,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    };
    flow.scopes = match parse_scopes(&raw_scope) {
        Ok(scopes) => scopes,
        Err(error) => return redirect_error(&flow, &error.error, error.aadsts, &error.description),
    };
    if let Some(challenge) = &flow.code_challenge {
        let method = flow
            .code_challenge_method
            .clone()
            .unwrap_or_else(|| "plain".into());
        if method != "S256" && method != "plain" {
            return redirect_error(
                &flow,
                "invalid_request",
                501491,
                &format!(
                    "Invalid code_challenge_method '{method}'. Supported values are 'S256' and 'plain'."
                ),
            );
        }
        let well_formed = (43..=128).contains(&challenge.len())
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !well_formed {
            return redirect_error(
                &flow,
                "invalid_request",
                501491,
                "Invalid size of Code_Challenge parameter.",
            );
        }
    } else if flow.code_challenge_method.is_some() {
        return redirect_error(
            &flow,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code_challenge'.",
        );
    }
    if flow.prompt.as_deref() == Some("none") {
        // The simulator keeps no browser session, so silent sign-in always needs interaction.
        return redirect_error(
            &flow,
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in.",
        );
    }
    let flow_id = tokens::random_b64url(24);
    let page = sign_in_page(&sim, &flow, &flow_id, None);
    sim.world().flows.insert(flow_id, flow);
    page
}

/// `GET /{tenant}/v2.0/adminconsent`: a tenant-wide grant. The simulator has no directory
/// roles, so any user of the tenant may act as its administrator here.
async fn admin_consent(
    State(sim): State<Sim>,
    Path(segment): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let world = sim.world();
    if let Err(error) = resolve_tenant(&world, &segment) {
        return error_page(error.aadsts, error.description);
    }
    let Some(client_id) = param("client_id") else {
        return error_page(
            900144,
            "The request body must contain the following parameter: 'client_id'.".into(),
        );
    };
    let Some(app) = world.app(&client_id).cloned() else {
        return error_page(
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{segment}'."
            ),
        );
    };
    drop(world);
    let redirect_uri = param("redirect_uri").unwrap_or_default();
    if !redirect_uri_registered(&app, &redirect_uri) {
        return error_page(
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        );
    }
    let scopes = match parse_scopes(
        &param("scope").unwrap_or_else(|| format!("{GRAPH_RESOURCE}.default")),
    ) {
        Ok(scopes) => scopes,
        Err(error) => return error_page(error.aadsts, error.description),
    };
    let flow = AuthorizeFlow {
        tenant_segment: segment,
        client_id: app.client_id.clone(),
        redirect_uri,
        scopes,
        state: param("state"),
        code_challenge: None,
        code_challenge_method: None,
        nonce: None,
        response_mode: "query".into(),
        prompt: None,
        login_hint: param("login_hint"),
        user_id: None,
        admin_consent: true,
    };
    let flow_id = tokens::random_b64url(24);
    let page = sign_in_page(&sim, &flow, &flow_id, None);
    sim.world().flows.insert(flow_id, flow);
    page
}

fn sign_in_page(sim: &Sim, flow: &AuthorizeFlow, flow_id: &str, error: Option<String>) -> Response {
    let world = sim.world();
    let tenant = world
        .tenant_by_segment(&flow.tenant_segment)
        .map(|t| t.id.clone());
    let users = world
        .users
        .iter()
        .filter(|u| {
            tenant
                .as_deref()
                .is_none_or(|t| u.tenant_id.eq_ignore_ascii_case(t))
        })
        .map(|u| UserOption {
            id: u.id.clone(),
            display_name: u.display_name.clone(),
            upn: u.upn.clone(),
        })
        .collect();
    let app_name = world
        .app(&flow.client_id)
        .and_then(|a| a.display_name.clone())
        .unwrap_or_else(|| flow.client_id.clone());
    let tenant_label = tenant
        .as_deref()
        .and_then(|t| world.tenant(t))
        .map(|t| t.display_name.clone())
        .unwrap_or_else(|| flow.tenant_segment.clone());
    drop(world);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        &SignInPage {
            app_name,
            tenant_label,
            error,
            action: format!("/{}/login", flow.tenant_segment),
            flow: flow_id.to_owned(),
            login_hint: flow.login_hint.clone().unwrap_or_default(),
            users,
        },
        status,
    )
}

fn form_fields(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn expired_flow_page() -> Response {
    error_page(
        90014,
        "This sign-in request is unknown or has already been completed. Go back to the application and start signing in again.".into(),
    )
}

async fn sign_in(State(sim): State<Sim>, Path(_segment): Path<String>, body: Bytes) -> Response {
    let form = form_fields(&body);
    let flow_id = form.get("flow").cloned().unwrap_or_default();
    let Some(mut flow) = sim.world().flows.get(&flow_id).cloned() else {
        return expired_flow_page();
    };
    let login = form
        .get("login")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let picked = form
        .get("user_id")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let Some(login) = login.or(picked) else {
        return sign_in_page(
            &sim,
            &flow,
            &flow_id,
            Some("Enter a valid email address or pick an account.".into()),
        );
    };
    let world = sim.world();
    let tenant_filter = world
        .tenant_by_segment(&flow.tenant_segment)
        .map(|t| t.id.clone());
    let user = world
        .user_by_login(&login)
        .filter(|u| {
            tenant_filter
                .as_deref()
                .is_none_or(|t| u.tenant_id.eq_ignore_ascii_case(t))
        })
        .cloned();
    let directory = tenant_filter
        .as_deref()
        .and_then(|t| world.tenant(t))
        .map(|t| t.display_name.clone());
    drop(world);
    let Some(user) = user else {
        let message = match directory {
            Some(name) => format!(
                "AADSTS50034: The user account {login} does not exist in the {name} directory. To sign into this application, the account must be added to the directory."
            ),
            None => format!(
                "AADSTS50034: The user account {login} does not exist. To sign into this application, the account must be added to a directory."
            ),
        };
        return sign_in_page(&sim, &flow, &flow_id, Some(message));
    };
    flow.user_id = Some(user.id.clone());
    sim.world().flows.insert(flow_id.clone(), flow.clone());

    let (admin_granted, admin_required, user_granted) = {
        let world = sim.world();
        let tenant = world.tenant(&user.tenant_id);
        let admin_granted = tenant.is_some_and(|t| {
            t.admin_consent_granted
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&flow.client_id))
        });
        let admin_required = tenant.is_some_and(|t| t.admin_consent_required);
        let granted = world
            .grants
            .get(&(
                user.id.to_ascii_lowercase(),
                flow.client_id.to_ascii_lowercase(),
            ))
            .cloned()
            .unwrap_or_default();
        let user_granted = tokens::graph_scopes(&flow.scopes)
            .iter()
            .all(|s| tokens::has_scope(&granted, s));
        (admin_granted, admin_required, user_granted)
    };
    let forced_consent = flow.prompt.as_deref() == Some("consent") || flow.admin_consent;
    if !flow.admin_consent && (admin_granted || (user_granted && !forced_consent)) {
        return complete_with_code(&sim, &flow_id, &flow, &user);
    }
    if admin_required && !flow.admin_consent {
        sim.world().flows.remove(&flow_id);
        let app_name = sim
            .world()
            .app(&flow.client_id)
            .and_then(|a| a.display_name.clone())
            .unwrap_or_else(|| flow.client_id.clone());
        let fields = error_fields(
            &sim,
            "consent_required",
            90094,
            &format!(
                "The grant requires admin permission. An administrator must consent to '{app_name}' ({}) for the whole organization before users can sign in.",
                flow.client_id
            ),
        );
        return flow_redirect(&flow, fields);
    }
    let world = sim.world();
    let app_name = world
        .app(&flow.client_id)
        .and_then(|a| a.display_name.clone())
        .unwrap_or_else(|| flow.client_id.clone());
    drop(world);
    render(
        &ConsentPage {
            user_upn: user.upn.clone(),
            app_name,
            scopes: flow
                .scopes
                .iter()
                .map(|s| ScopeLine {
                    name: s.clone(),
                    description: scope_description(s),
                })
                .collect(),
            action: format!("/{}/Consent/Set", flow.tenant_segment),
            flow: flow_id,
        },
        StatusCode::OK,
    )
}

async fn consent(State(sim): State<Sim>, Path(_segment): Path<String>, body: Bytes) -> Response {
    let form = form_fields(&body);
    let flow_id = form.get("flow").cloned().unwrap_or_default();
    let Some(flow) = sim.world().flows.get(&flow_id).cloned() else {
        return expired_flow_page();
    };
    let Some(user) = flow
        .user_id
        .as_deref()
        .and_then(|id| sim.world().user(id).cloned())
    else {
        return expired_flow_page();
    };
    if form.get("action").map(String::as_str) != Some("accept") {
        sim.world().flows.remove(&flow_id);
        let mut fields = error_fields(
            &sim,
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
        fields.insert(1, ("error_subcode".into(), "cancel".into()));
        return flow_redirect(&flow, fields);
    }
    if flow.admin_consent {
        sim.world().flows.remove(&flow_id);
        let tenant = user.tenant_id.clone();
        if let Err(error) = sim.grant_admin_consent(&tenant, &flow.client_id) {
            return error_page(90002, error.to_string());
        }
        let scope = flow
            .scopes
            .iter()
            .map(|s| format!("{GRAPH_RESOURCE}{s}"))
            .collect::<Vec<_>>()
            .join(" ");
        let fields = vec![
            ("admin_consent".into(), "True".into()),
            ("tenant".into(), tenant),
            ("scope".into(), scope),
        ];
        return flow_redirect(&flow, fields);
    }
    {
        let mut world = sim.world();
        let granted = world
            .grants
            .entry((
                user.id.to_ascii_lowercase(),
                flow.client_id.to_ascii_lowercase(),
            ))
            .or_default();
        for scope in tokens::graph_scopes(&flow.scopes) {
            if !tokens::has_scope(granted, &scope) {
                granted.push(scope);
            }
        }
    }
    complete_with_code(&sim, &flow_id, &flow, &user)
}

fn complete_with_code(sim: &Sim, flow_id: &str, flow: &AuthorizeFlow, user: &User) -> Response {
    let code = format!("1.A{}", tokens::random_b64url(120));
    let now = sim.now();
    let mut world = sim.world();
    world.flows.remove(flow_id);
    world.codes.insert(
        code.clone(),
        AuthCode {
            client_id: flow.client_id.clone(),
            redirect_uri: flow.redirect_uri.clone(),
            user_id: user.id.clone(),
            scopes: flow.scopes.clone(),
            code_challenge: flow.code_challenge.clone(),
            code_challenge_method: flow.code_challenge_method.clone(),
            nonce: flow.nonce.clone(),
            issued_at: now,
            redeemed: false,
        },
    );
    drop(world);
    flow_redirect(
        flow,
        vec![
            ("code".into(), code),
            ("session_state".into(), uuid::Uuid::new_v4().to_string()),
        ],
    )
}

// ---------- token endpoint ----------

fn missing(parameter: &str) -> AadError {
    AadError::bad_request(
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

fn no_store(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-store, no-cache"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response()
}

/// Client credentials from the form or HTTP Basic (both accepted by Entra).
fn client_credentials(
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |v: &str| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((decode(id), decode(secret)))
        });
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let secret = form
        .get("client_secret")
        .cloned()
        .or_else(|| basic.map(|b| b.1));
    (client_id, secret)
}

async fn token(
    State(sim): State<Sim>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AadError> {
    let form = form_fields(&body);
    {
        let world = sim.world();
        resolve_tenant(&world, &segment)?;
    }
    let grant_type = form
        .get("grant_type")
        .cloned()
        .ok_or_else(|| missing("grant_type"))?;
    let (client_id, secret) = client_credentials(&form, &headers);
    let client_id = client_id.ok_or_else(|| missing("client_id"))?;
    let app = sim.world().app(&client_id).cloned().ok_or_else(|| {
        AadError::bad_request(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{segment}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        )
    })?;
    match secret {
        None => {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
        Some(secret) if secret != app.client_secret => {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            ));
        }
        Some(_) => {}
    }
    match grant_type.as_str() {
        "authorization_code" => redeem_code(&sim, &app.client_id, &form),
        "refresh_token" => redeem_refresh_token(&sim, &app, &form),
        other => Err(AadError::bad_request(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn redeem_code(
    sim: &Sim,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Response, AadError> {
    let code_value = form.get("code").ok_or_else(|| missing("code"))?;
    let now = sim.now();
    let config = sim.config().clone();
    let mut world = sim.world();
    let code = world.codes.get(code_value).cloned().ok_or_else(|| {
        AadError::bad_request(
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        )
    })?;
    if !code.client_id.eq_ignore_ascii_case(client_id) {
        return Err(AadError::bad_request(
            "invalid_grant",
            70000,
            "The provided value for the 'code' parameter is not valid.",
        ));
    }
    if code.redeemed {
        return Err(AadError::bad_request(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    let lifetime =
        time::Duration::try_from(config.auth_code_lifetime).unwrap_or(time::Duration::minutes(10));
    if code.issued_at + lifetime < now {
        return Err(AadError::bad_request(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    let redirect_uri = form
        .get("redirect_uri")
        .map(String::as_str)
        .unwrap_or_default();
    if redirect_uri != code.redirect_uri {
        return Err(AadError::bad_request(
            "invalid_grant",
            500112,
            format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                code.redirect_uri
            ),
        ));
    }
    if let Some(challenge) = &code.code_challenge {
        let verifier = form
            .get("code_verifier")
            .ok_or_else(|| missing("code_verifier"))?;
        let expected = match code.code_challenge_method.as_deref() {
            Some("S256") => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes())),
            _ => verifier.clone(),
        };
        if &expected != challenge {
            return Err(AadError::bad_request(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    let user = world.user(&code.user_id).cloned().ok_or_else(|| {
        AadError::bad_request(
            "invalid_grant",
            50034,
            "The user account does not exist in the directory.",
        )
    })?;
    if let Some(stored) = world.codes.get_mut(code_value) {
        stored.redeemed = true;
    }
    let issued = tokens::issue(
        &mut world,
        &config,
        now,
        &user,
        client_id,
        &code.scopes,
        code.nonce.as_deref(),
    );
    Ok(no_store(issued.to_json()))
}

fn redeem_refresh_token(
    sim: &Sim,
    app: &crate::scenario::ScenarioApp,
    form: &HashMap<String, String>,
) -> Result<Response, AadError> {
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| missing("refresh_token"))?;
    let now = sim.now();
    let config = sim.config().clone();
    let mut world = sim.world();
    let record = world
        .refresh_tokens
        .iter()
        .find(|t| &t.token == presented)
        .cloned()
        .ok_or_else(|| {
            AadError::bad_request(
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
        })?;
    if !record.client_id.eq_ignore_ascii_case(&app.client_id) {
        return Err(AadError::bad_request(
            "invalid_grant",
            70000,
            "The provided value for the 'refresh_token' parameter is not valid.",
        ));
    }
    let user = world.user(&record.user_id).cloned().ok_or_else(|| {
        AadError::bad_request(
            "invalid_grant",
            50034,
            "The user account does not exist in the directory.",
        )
    })?;
    if let Some(valid_from) = user
        .tokens_valid_from
        .filter(|_| record.serial < user.revoked_below_serial)
    {
        return Err(AadError::bad_request(
            "invalid_grant",
            50173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                timefmt::aad_long(record.issued_at),
                timefmt::aad_long(valid_from)
            ),
        ));
    }
    let inactivity = time::Duration::try_from(config.refresh_token_inactivity)
        .unwrap_or(time::Duration::days(90));
    if record.last_used_at + inactivity < now {
        let days = inactivity.whole_days();
        return Err(AadError::bad_request(
            "invalid_grant",
            700082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {days}.00:00:00.",
                timefmt::aad_long(record.issued_at)
            ),
        ));
    }
    let scopes = match form.get("scope").filter(|s| !s.trim().is_empty()) {
        None => record.scopes.clone(),
        Some(raw) => {
            let requested = parse_scopes(raw)?;
            let allowed = |s: &String| tokens::has_scope(&record.scopes, s);
            if let Some(missing_scope) = tokens::graph_scopes(&requested)
                .into_iter()
                .find(|s| !allowed(s))
            {
                let name = app
                    .display_name
                    .clone()
                    .unwrap_or_else(|| app.client_id.clone());
                return Err(AadError::bad_request(
                    "invalid_grant",
                    65001,
                    format!(
                        "The user or administrator has not consented to use the application with ID '{}' named '{name}'. Send an interactive authorization request for this user and resource. (missing scope {missing_scope})",
                        app.client_id
                    ),
                ));
            }
            requested
        }
    };
    // Entra does not revoke the used refresh token; it hands out a fresh one every time.
    if let Some(used) = world
        .refresh_tokens
        .iter_mut()
        .find(|t| &t.token == presented)
    {
        used.last_used_at = now;
    }
    let issued = tokens::issue(
        &mut world,
        &config,
        now,
        &user,
        &app.client_id,
        &scopes,
        None,
    );
    Ok(no_store(issued.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_scopes_lose_their_resource_prefix_and_other_resources_are_refused() {
        let scopes =
            parse_scopes("openid https://graph.microsoft.com/Chat.Read OFFLINE_ACCESS User.Read")
                .unwrap_or_default();
        assert_eq!(
            scopes,
            vec!["openid", "Chat.Read", "offline_access", "User.Read"]
        );
        let refused = parse_scopes("https://foo.microsoft.com/mail.read")
            .err()
            .map(|e| e.aadsts);
        assert_eq!(refused, Some(70011));
    }
}
