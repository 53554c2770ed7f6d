//! The simulator control API (`/_sim/…`, ARCHITECTURE §4): inspect state, play the other side of
//! a Teams chat, script faults, move the clock, revoke tokens. Loopback only, no auth — it is a
//! test and demo tool. Errors are `{"error": {"code", "message"}}`.
//!
//! Requests here are not written to the Graph/identity request log.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::model::Fault;
use crate::odata::no_content;
use crate::scenario::{ExternalAccess, Scenario};
use crate::sim::{ControlError, PostOutcome, Sim, UserPost};

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/_sim/state", get(state))
        .route("/_sim/scenario", post(load_scenario))
        .route("/_sim/chats", post(create_chat))
        .route("/_sim/chats/{chat}", get(get_chat))
        .route("/_sim/chats/{chat}/messages", post(post_message))
        .route(
            "/_sim/chats/{chat}/messages/{message}",
            patch(edit_message).delete(delete_message),
        )
        .route(
            "/_sim/chats/{chat}/messages/{message}/reactions",
            post(add_reaction).delete(remove_reactions),
        )
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sim/tenants/{tenant}/federation", post(set_federation))
        .route(
            "/_sim/tenants/{tenant}/admin-consent",
            post(grant_admin_consent),
        )
        .route("/_sim/users/{user}/revoke", post(revoke))
        .route("/_sim/tokens", get(tokens))
        .route("/_sim/clock", get(clock).post(advance_clock))
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ControlError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ControlError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        (
            status,
            axum::Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response()
    }
}

fn bad_json(error: serde_json::Error) -> ControlError {
    ControlError::BadRequest(format!(
        "request body is not what this route expects: {error}"
    ))
}

/// Parses a JSON body ourselves so a wrong body gets our error shape, not axum's text.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    serde_json::from_slice(body).map_err(bad_json)
}

async fn state(State(sim): State<Sim>) -> Response {
    axum::Json(sim.state_json()).into_response()
}

async fn load_scenario(
    State(sim): State<Sim>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let scenario: Scenario = parse(&body)?;
    sim.load_scenario(&scenario)
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    Ok(axum::Json(sim.state_json()).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewChat {
    chat_type: String,
    members: Vec<String>,
    #[serde(default)]
    topic: Option<String>,
}

async fn create_chat(
    State(sim): State<Sim>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: NewChat = parse(&body)?;
    let (created, chat) = sim.create_chat(
        &request.chat_type,
        &request.members,
        request.topic.as_deref(),
    )?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(chat)).into_response())
}

async fn get_chat(
    State(sim): State<Sim>,
    Path(chat): Path<String>,
) -> Result<Response, ControlError> {
    Ok(axum::Json(sim.chat_json(&chat)?).into_response())
}

#[derive(Deserialize)]
struct UserMessage {
    from: String,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    message: Option<Map<String, Value>>,
}

/// 201 + chatMessage when Teams delivered it; 202 + `{"delivered": false, "reason"}` when
/// federation dropped it (Teams shows the sender an error, the other side sees nothing).
async fn post_message(
    State(sim): State<Sim>,
    Path(chat): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: UserMessage = parse(&body)?;
    let post = match (request.html, request.message) {
        (Some(html), None) => UserPost::Html(html),
        (None, Some(message)) => UserPost::Raw(message),
        _ => {
            return Err(ControlError::BadRequest(
                "send exactly one of `html` or `message`".into(),
            ));
        }
    };
    Ok(post_outcome_response(sim.post_as_user(
        &chat,
        &request.from,
        post,
    )?))
}

pub(crate) fn post_outcome_response(outcome: PostOutcome) -> Response {
    match outcome {
        PostOutcome::Delivered(message) => {
            (StatusCode::CREATED, axum::Json(message)).into_response()
        }
        PostOutcome::Dropped { reason } => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"delivered": false, "reason": reason})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct EditMessage {
    html: String,
}

async fn edit_message(
    State(sim): State<Sim>,
    Path((chat, message)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: EditMessage = parse(&body)?;
    Ok(axum::Json(sim.edit_message(&chat, &message, &request.html)?).into_response())
}

async fn delete_message(
    State(sim): State<Sim>,
    Path((chat, message)): Path<(String, String)>,
) -> Result<Response, ControlError> {
    Ok(axum::Json(sim.delete_message(&chat, &message)?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reaction {
    user: String,
    reaction_type: String,
}

async fn add_reaction(
    State(sim): State<Sim>,
    Path((chat, message)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: Reaction = parse(&body)?;
    Ok(
        axum::Json(sim.add_reaction(&chat, &message, &request.user, &request.reaction_type)?)
            .into_response(),
    )
}

#[derive(Deserialize)]
struct ReactionOwner {
    user: String,
}

async fn remove_reactions(
    State(sim): State<Sim>,
    Path((chat, message)): Path<(String, String)>,
    Query(owner): Query<ReactionOwner>,
) -> Result<Response, ControlError> {
    Ok(axum::Json(sim.remove_reactions(&chat, &message, &owner.user)?).into_response())
}

async fn requests(State(sim): State<Sim>) -> Response {
    axum::Json(sim.requests_json()).into_response()
}

async fn clear_requests(State(sim): State<Sim>) -> Response {
    sim.clear_requests();
    no_content()
}

#[derive(Deserialize)]
struct NewFault {
    #[serde(default)]
    method: Option<String>,
    path_prefix: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    retry_after: Option<Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    times: Option<u32>,
    #[serde(default)]
    run_handler: Option<bool>,
}

async fn add_fault(
    State(sim): State<Sim>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: NewFault = parse(&body)?;
    if request.status.is_none() && request.delay_ms.unwrap_or(0) == 0 {
        return Err(ControlError::BadRequest(
            "a fault needs a `status`, a `delay_ms`, or both".into(),
        ));
    }
    if let Some(status) = request.status
        && StatusCode::from_u16(status).is_err()
    {
        return Err(ControlError::BadRequest(format!(
            "status {status} is not an HTTP status code"
        )));
    }
    let retry_after = match request.retry_after {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(ControlError::BadRequest(format!(
                "retry_after must be a number or string, not {other}"
            )));
        }
    };
    let fault = Fault {
        method: request.method,
        path_prefix: request.path_prefix,
        status: request.status,
        retry_after,
        body: request.body,
        delay_ms: request.delay_ms.unwrap_or(0),
        remaining: request.times.unwrap_or(1),
        run_handler: request.run_handler.unwrap_or(false),
    };
    sim.add_fault(fault);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"faults": faults_json(&sim)})),
    )
        .into_response())
}

fn faults_json(sim: &Sim) -> Value {
    let world = sim.world();
    Value::Array(
        world
            .faults
            .iter()
            .map(|f| {
                json!({
                    "method": f.method, "path_prefix": f.path_prefix, "status": f.status,
                    "retry_after": f.retry_after, "body": f.body, "delay_ms": f.delay_ms,
                    "remaining": f.remaining, "run_handler": f.run_handler,
                })
            })
            .collect(),
    )
}

async fn list_faults(State(sim): State<Sim>) -> Response {
    axum::Json(json!({"faults": faults_json(&sim)})).into_response()
}

async fn clear_faults(State(sim): State<Sim>) -> Response {
    sim.clear_faults();
    no_content()
}

#[derive(Deserialize)]
struct Federation {
    external_access: String,
    #[serde(default)]
    allowed_domains: Option<Vec<String>>,
    #[serde(default)]
    blocked_domains: Option<Vec<String>>,
}

async fn set_federation(
    State(sim): State<Sim>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: Federation = parse(&body)?;
    let access = ExternalAccess::from_control(
        &request.external_access,
        request.allowed_domains,
        request.blocked_domains,
    )?;
    Ok(axum::Json(sim.set_external_access(&tenant, access)?).into_response())
}

#[derive(Deserialize)]
struct AdminConsent {
    client_id: String,
}

async fn grant_admin_consent(
    State(sim): State<Sim>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: AdminConsent = parse(&body)?;
    sim.grant_admin_consent(&tenant, &request.client_id)?;
    Ok(no_content())
}

async fn revoke(
    State(sim): State<Sim>,
    Path(user): Path<String>,
) -> Result<Response, ControlError> {
    Ok(axum::Json(sim.revoke_user(&user)?).into_response())
}

async fn tokens(State(sim): State<Sim>) -> Response {
    axum::Json(sim.tokens_json()).into_response()
}

async fn clock(State(sim): State<Sim>) -> Response {
    axum::Json(json!({"now": crate::timefmt::rfc3339(sim.now())})).into_response()
}

#[derive(Deserialize)]
struct AdvanceClock {
    advance_secs: i64,
}

async fn advance_clock(
    State(sim): State<Sim>,
    body: axum::body::Bytes,
) -> Result<Response, ControlError> {
    let request: AdvanceClock = parse(&body)?;
    let now = sim.advance_clock(request.advance_secs);
    Ok(axum::Json(json!({"now": crate::timefmt::rfc3339(now)})).into_response())
}
