//! Microsoft Graph v1.0 routes for the Teams Chat Bridge: `/me`, `/organization`, chats,
//! members, messages (list with the documented `$top`/`$orderby`/`$filter`/`$skiptoken` rules,
//! get, post), and hosted contents. Tokens are checked for expiry and scope on every call and
//! the Teams throttling limits apply (`graph-facts.md` §1–§5).
//!
//! Handlers lock the world briefly and never await while holding it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::model::{Chat, StoredMessage, User, World, hide_evolvable_enum_members, id_order_key};
use crate::odata::GraphError;
use crate::query::{
    DateClause, MAX_TOP, ODataQuery, PageCursor, operation_kind, parse_date_filter,
};
use crate::sim::{Sim, build_message};
use crate::tokens;

/// Page size when the caller sends no `$top` (not documented; third-party code reports 20).
const DEFAULT_PAGE_SIZE: usize = 20;

const READ_USER: &[&str] = &[
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const READ_ORGANIZATION: &[&str] = &[
    "User.Read",
    "Organization.Read.All",
    "Directory.Read.All",
    "Organization.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const LIST_CHATS: &[&str] = &["Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite"];
const READ_MEMBERS: &[&str] = &[
    "ChatMember.Read",
    "ChatMember.ReadWrite",
    "Chat.ReadBasic",
    "Chat.Read",
    "Chat.ReadWrite",
];
const READ_MESSAGES: &[&str] = &["Chat.Read", "Chat.ReadWrite"];
const SEND_MESSAGES: &[&str] = &["ChatMessage.Send", "Chat.ReadWrite", "Group.ReadWrite.All"];

/// Path characters escaped inside `@odata.context` (`19%3A…%40thread.v2`, as Graph writes it).
const CONTEXT_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b':')
    .add(b'@')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b'\'');

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/v1.0/me", get(me))
        .route("/v1.0/organization", get(organization))
        .route("/v1.0/me/chats", get(list_chats))
        .route("/v1.0/chats", get(list_chats))
        .route("/v1.0/users/{user}/chats", get(list_user_chats))
        .route("/v1.0/chats/{chat}", get(get_chat))
        .route("/v1.0/me/chats/{chat}", get(get_chat))
        .route("/v1.0/chats/{chat}/members", get(list_members))
        .route("/v1.0/me/chats/{chat}/members", get(list_members))
        .route(
            "/v1.0/chats/{chat}/messages",
            get(list_messages).post(post_message),
        )
        .route(
            "/v1.0/me/chats/{chat}/messages",
            get(list_messages).post(post_to_me_chats),
        )
        .route(
            "/v1.0/users/{user}/chats/{chat}/messages",
            get(list_user_chat_messages),
        )
        .route("/v1.0/chats/{chat}/messages/{message}", get(get_message))
        .route("/v1.0/me/chats/{chat}/messages/{message}", get(get_message))
        .route(
            "/v1.0/chats/{chat}/messages/{message}/hostedContents",
            get(list_hosted_contents),
        )
        .route(
            "/v1.0/chats/{chat}/messages/{message}/hostedContents/{hosted}",
            get(get_hosted_content),
        )
        .route(
            "/v1.0/chats/{chat}/messages/{message}/hostedContents/{hosted}/$value",
            get(hosted_content_value),
        )
        .route(
            "/v1.0/{*rest}",
            get(unknown_segment)
                .post(unknown_segment)
                .patch(unknown_segment)
                .delete(unknown_segment),
        )
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn context_segment(id: &str) -> String {
    utf8_percent_encode(id, CONTEXT_SEGMENT).to_string()
}

fn include_unknown_enums(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|p| {
                p.trim()
                    .eq_ignore_ascii_case("include-unknown-enum-members")
            })
        })
}

/// The signed-in user behind a Graph call.
struct Caller {
    user: User,
    client_id: String,
}

/// Checks the bearer token: present, issued here, unexpired, carrying one of `required`.
fn authenticate(sim: &Sim, headers: &HeaderMap, required: &[&str]) -> Result<Caller, GraphError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(GraphError::unauthorized("Access token is empty."));
    }
    if token.split('.').count() != 3 {
        return Err(GraphError::unauthorized(
            "CompactToken parsing failed with error code: 80049217",
        ));
    }
    let now = sim.now();
    let world = sim.world();
    let Some(record) = world.access_tokens.iter().find(|t| t.token == token) else {
        return Err(GraphError::unauthorized(
            "Access token validation failure. Invalid audience.",
        ));
    };
    if now >= record.expires_at || now < record.issued_at {
        return Err(GraphError::unauthorized(
            "Access token has expired or is not yet valid.",
        ));
    }
    if !required
        .iter()
        .any(|r| tokens::has_scope(&record.scopes, r))
    {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Missing scope permissions on the request. API requires one of '{}'. Scopes on the request '{}'",
                required.join(", "),
                record.scopes.join(", ")
            ),
        ));
    }
    let user = world.user(&record.user_id).cloned().ok_or_else(|| {
        GraphError::unauthorized("Access token validation failure. The user no longer exists.")
    })?;
    Ok(Caller {
        user,
        client_id: record.client_id.clone(),
    })
}

fn throttle(
    sim: &Sim,
    world: &mut World,
    checks: Vec<(String, Option<crate::config::RateLimit>)>,
) -> Result<(), GraphError> {
    let now = sim.now();
    // Check every window first so a refused request is not counted anywhere.
    for (key, limit) in &checks {
        let mut probe = world.throttle_windows.get(key).cloned().unwrap_or_default();
        if let Some(limit) = limit {
            let window = time::Duration::try_from(limit.window).unwrap_or(time::Duration::SECOND);
            while probe.front().is_some_and(|t| *t + window <= now) {
                probe.pop_front();
            }
            if probe.len() >= limit.max as usize {
                let oldest = probe.front().copied().unwrap_or(now);
                let wait = (oldest + window - now).as_seconds_f64().ceil().max(1.0) as u64;
                return Err(GraphError::throttled(Some(wait.to_string())));
            }
        }
    }
    for (key, limit) in checks {
        world
            .throttle(key, limit, now)
            .map_err(|wait| GraphError::throttled(Some(wait.to_string())))?;
    }
    Ok(())
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn me(State(sim): State<Sim>, headers: HeaderMap) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_USER)?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/v1.0/$metadata#users/$entity",
            base_url(&headers)
        )),
    );
    if let Value::Object(user) = caller.user.me_json() {
        body.extend(user);
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

async fn organization(State(sim): State<Sim>, headers: HeaderMap) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_ORGANIZATION)?;
    let world = sim.world();
    let value: Vec<Value> = world
        .tenant(&caller.user.tenant_id)
        .map(|t| t.organization_json())
        .into_iter()
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"@odata.context": format!("{}/v1.0/$metadata#organization", base_url(&headers)), "value": value}),
    ))
}

async fn list_user_chats(
    State(sim): State<Sim>,
    Path(user): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, LIST_CHATS)?;
    if !user.eq_ignore_ascii_case(&caller.user.id) && !user.eq_ignore_ascii_case(&caller.user.upn) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Forbidden",
        ));
    }
    chats_page(&sim, &caller, &headers, raw)
}

async fn list_chats(
    State(sim): State<Sim>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, LIST_CHATS)?;
    chats_page(&sim, &caller, &headers, raw)
}

struct ChatExpand {
    members: bool,
    preview: bool,
}

fn chat_expand(query: &ODataQuery) -> Result<ChatExpand, GraphError> {
    let mut expand = ChatExpand {
        members: false,
        preview: false,
    };
    for property in query.expands() {
        match property.as_str() {
            "members" => expand.members = true,
            "lastmessagepreview" => expand.preview = true,
            other => {
                return Err(GraphError::bad_request(format!(
                    "Parsing OData Select and Expand failed: Could not find a property named '{other}' on type 'microsoft.graph.chat'."
                )));
            }
        }
    }
    Ok(expand)
}

fn chats_page(
    sim: &Sim,
    caller: &Caller,
    headers: &HeaderMap,
    raw: Option<String>,
) -> Result<Response, GraphError> {
    let query = ODataQuery::parse(raw.as_deref())?;
    let expand = chat_expand(&query)?;
    let by_preview = match query.orderby.as_deref().map(|o| {
        o.split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
    }) {
        None => false,
        Some(words)
            if words.first().map(String::as_str) == Some("lastmessagepreview/createddatetime") =>
        {
            if words.get(1).map(String::as_str) != Some("desc") {
                return Err(GraphError::bad_request(
                    "QueryOptions to order by 'lastMessagePreview/createdDateTime' in 'Ascending' direction is not supported.",
                ));
            }
            true
        }
        // Other properties are not supported and silently leave the list unsorted (Q&A report).
        Some(_) => false,
    };
    let cursor = query
        .skiptoken_raw
        .as_deref()
        .map(PageCursor::decode)
        .transpose()?;
    let include_unknown = include_unknown_enums(headers);
    let mut world = sim.world();
    let limits = sim.config().throttling.list_chats_per_user;
    throttle(
        sim,
        &mut world,
        vec![(
            format!("list-chats:{}", caller.user.id.to_ascii_lowercase()),
            limits,
        )],
    )?;

    let mut chats: Vec<&Chat> = world
        .chats
        .iter()
        .filter(|c| c.is_visible_to(&caller.user.id))
        .collect();
    let sort_key = |chat: &Chat| {
        if by_preview {
            (chat.preview_created_key(), chat.seq)
        } else {
            (None, u64::MAX - chat.seq)
        }
    };
    // Both orders are "descending by (key, tiebreak)"; insertion order is encoded as u64::MAX - seq.
    chats.sort_by_key(|c| std::cmp::Reverse(sort_key(c)));
    if let Some(cursor) = &cursor {
        let position = (
            cursor.sort_key(),
            cursor.tiebreak.parse::<u64>().unwrap_or(0),
        );
        chats.retain(|c| sort_key(c) < position);
    }
    let page_size = query.top.map(|t| t as usize).unwrap_or(DEFAULT_PAGE_SIZE);
    let has_more = chats.len() > page_size;
    chats.truncate(page_size);
    let base = base_url(headers);
    let value: Vec<Value> = chats
        .iter()
        .map(|chat| {
            let mut object = chat.graph_json(expand.members, expand.preview, include_unknown);
            object.remove("@odata.context");
            Value::Object(object)
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{base}/v1.0/$metadata#chats")),
    );
    body.insert("@odata.count".into(), json!(value.len()));
    if has_more && let Some(last) = chats.last() {
        let (key, tiebreak) = sort_key(last);
        let next = PageCursor::new(key, tiebreak.to_string()).encode();
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{base}/v1.0/chats?{}", query.next_query(&next))),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

/// The chat if it exists and the caller may see it (404 / 403 otherwise).
fn visible_chat<'w>(
    world: &'w World,
    chat_id: &str,
    caller: &Caller,
) -> Result<&'w Chat, GraphError> {
    let chat = world
        .chat(chat_id)
        .ok_or_else(|| GraphError::not_found(format!("Chat '{chat_id}' was not found.")))?;
    if !chat.is_visible_to(&caller.user.id) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Forbidden",
        ));
    }
    Ok(chat)
}

async fn get_chat(
    State(sim): State<Sim>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, LIST_CHATS)?;
    let query = ODataQuery::parse(raw.as_deref())?;
    let expand = chat_expand(&query)?;
    let mut world = sim.world();
    let limits = sim.config().throttling.list_chats_per_user;
    throttle(
        &sim,
        &mut world,
        vec![(
            format!("list-chats:{}", caller.user.id.to_ascii_lowercase()),
            limits,
        )],
    )?;
    let chat = visible_chat(&world, &chat_id, &caller)?;
    let object = chat.graph_json(
        expand.members,
        expand.preview,
        include_unknown_enums(&headers),
    );
    let mut body = Map::new();
    let context = object.get("@odata.context").cloned().unwrap_or_else(|| {
        json!(format!(
            "{}/v1.0/$metadata#chats/$entity",
            base_url(&headers)
        ))
    });
    body.insert("@odata.context".into(), context);
    body.extend(object);
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

async fn list_members(
    State(sim): State<Sim>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MEMBERS)?;
    let world = sim.world();
    let chat = visible_chat(&world, &chat_id, &caller)?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#chats('{}')/members", base_url(&headers), context_segment(&chat.id)),
            "@odata.count": chat.members.len(),
            "value": chat.members,
        }),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MessageOrder {
    LastModified,
    Created,
}

impl MessageOrder {
    fn property(self) -> &'static str {
        match self {
            MessageOrder::LastModified => "lastmodifieddatetime",
            MessageOrder::Created => "createddatetime",
        }
    }

    fn key(self, message: &StoredMessage) -> Option<i128> {
        match self {
            MessageOrder::LastModified => message.last_modified_key(),
            MessageOrder::Created => message.created_key(),
        }
    }
}

fn message_order(query: &ODataQuery) -> Result<MessageOrder, GraphError> {
    let Some(orderby) = query.orderby.as_deref() else {
        return Ok(MessageOrder::LastModified);
    };
    let words: Vec<&str> = orderby.split_whitespace().collect();
    let property = words.first().copied().unwrap_or_default();
    let order = match property.to_ascii_lowercase().as_str() {
        "lastmodifieddatetime" => MessageOrder::LastModified,
        "createddatetime" => MessageOrder::Created,
        _ => {
            return Err(GraphError::bad_request(format!(
                "QueryOptions to order by '{property}' is not supported."
            )));
        }
    };
    if !words.get(1).is_some_and(|d| d.eq_ignore_ascii_case("desc")) {
        return Err(GraphError::bad_request(format!(
            "QueryOptions to order by '{property}' in 'Ascending' direction is not supported."
        )));
    }
    Ok(order)
}

/// The date clauses Graph honours: only with an explicit `$orderby` on the same property.
fn honoured_filter(query: &ODataQuery, order: MessageOrder) -> Result<Vec<DateClause>, GraphError> {
    let (Some(filter), Some(_)) = (query.filter.as_deref(), query.orderby.as_deref()) else {
        return Ok(Vec::new());
    };
    let clauses = match parse_date_filter(filter) {
        Ok(Some(clauses)) => clauses,
        Ok(None) => return Ok(Vec::new()),
        Err(error) => {
            if filter.to_ascii_lowercase().contains(order.property()) {
                return Err(error);
            }
            return Ok(Vec::new());
        }
    };
    if clauses.iter().any(|c| c.property != order.property()) {
        return Ok(Vec::new());
    }
    let allowed: &[&str] = match order {
        MessageOrder::LastModified => &["gt", "lt"],
        MessageOrder::Created => &["lt"],
    };
    if let Some(refused) = clauses
        .iter()
        .find(|c| !allowed.contains(&c.operator.as_str()))
    {
        return Err(GraphError::bad_request(format!(
            "operationKind '{}' is not allowed",
            operation_kind(&refused.operator)
        )));
    }
    Ok(clauses)
}

async fn list_user_chat_messages(
    State(sim): State<Sim>,
    Path((user, chat_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MESSAGES)?;
    if !user.eq_ignore_ascii_case(&caller.user.id) && !user.eq_ignore_ascii_case(&caller.user.upn) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Forbidden",
        ));
    }
    messages_page(&sim, &caller, &chat_id, &headers, raw)
}

async fn list_messages(
    State(sim): State<Sim>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MESSAGES)?;
    messages_page(&sim, &caller, &chat_id, &headers, raw)
}

fn message_read_limits(
    sim: &Sim,
    caller: &Caller,
    chat_id: &str,
) -> Vec<(String, Option<crate::config::RateLimit>)> {
    let limits = &sim.config().throttling;
    let app_tenant = format!(
        "{}:{}",
        caller.client_id.to_ascii_lowercase(),
        caller.user.tenant_id.to_ascii_lowercase()
    );
    vec![
        (
            format!("get-messages:{app_tenant}:{chat_id}"),
            limits.get_messages_per_app_per_chat,
        ),
        (
            format!("chat-messages:{app_tenant}"),
            limits.chat_messages_per_app_per_tenant,
        ),
    ]
}

fn messages_page(
    sim: &Sim,
    caller: &Caller,
    chat_id: &str,
    headers: &HeaderMap,
    raw: Option<String>,
) -> Result<Response, GraphError> {
    let query = ODataQuery::parse(raw.as_deref())?;
    let order = message_order(&query)?;
    let clauses = honoured_filter(&query, order)?;
    let cursor = query
        .skiptoken_raw
        .as_deref()
        .map(PageCursor::decode)
        .transpose()?;
    let include_unknown = include_unknown_enums(headers);
    let mut world = sim.world();
    throttle(sim, &mut world, message_read_limits(sim, caller, chat_id))?;
    let chat = visible_chat(&world, chat_id, caller)?;

    let sort_key = |m: &StoredMessage| (order.key(m), id_order_key(m.id()));
    let mut messages: Vec<&StoredMessage> = chat
        .messages
        .iter()
        .filter(|m| {
            clauses.iter().all(|clause| {
                let Some(key) = order.key(m) else {
                    return false;
                };
                match clause.operator.as_str() {
                    "gt" => key > clause.value,
                    "lt" => key < clause.value,
                    _ => false,
                }
            })
        })
        .collect();
    messages.sort_by_key(|m| std::cmp::Reverse(sort_key(m)));
    if let Some(cursor) = &cursor {
        let position = (cursor.sort_key(), id_order_key(&cursor.tiebreak));
        messages.retain(|m| sort_key(m) < position);
    }
    let page_size = query
        .top
        .map(|t| t as usize)
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .min(MAX_TOP as usize);
    let has_more = messages.len() > page_size;
    messages.truncate(page_size);

    let base = base_url(headers);
    let value: Vec<Value> = messages
        .iter()
        .map(|m| message_json(m, include_unknown, false))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{base}/v1.0/$metadata#chats('{}')/messages",
            context_segment(&chat.id)
        )),
    );
    body.insert("@odata.count".into(), json!(value.len()));
    if has_more && let Some(last) = messages.last() {
        let next = PageCursor::new(order.key(last), last.id().to_owned()).encode();
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{base}/v1.0/chats/{}/messages?{}",
                chat.id,
                query.next_query(&next)
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

/// A stored message as served; list items never carry their own `@odata.context`.
fn message_json(message: &StoredMessage, include_unknown: bool, single: bool) -> Value {
    let mut object = message.object.clone();
    if !single {
        object.remove("@odata.context");
    }
    let mut value = Value::Object(object);
    if !include_unknown {
        hide_evolvable_enum_members(&mut value);
    }
    value
}

async fn get_message(
    State(sim): State<Sim>,
    Path((chat_id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MESSAGES)?;
    let mut world = sim.world();
    throttle(
        &sim,
        &mut world,
        message_read_limits(&sim, &caller, &chat_id),
    )?;
    let chat = visible_chat(&world, &chat_id, &caller)?;
    let message = chat.message(&message_id).ok_or_else(|| {
        GraphError::not_found(format!(
            "Message '{message_id}' was not found in chat '{chat_id}'."
        ))
    })?;
    let served = message_json(message, include_unknown_enums(&headers), true);
    let mut body = Map::new();
    let context = served.get("@odata.context").cloned().unwrap_or_else(|| {
        json!(format!(
            "{}/v1.0/$metadata#chats('{}')/messages/$entity",
            base_url(&headers),
            context_segment(&chat.id)
        ))
    });
    body.insert("@odata.context".into(), context);
    if let Value::Object(object) = served {
        body.extend(object);
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

fn find_message<'w>(
    world: &'w World,
    chat_id: &str,
    message_id: &str,
    caller: &Caller,
) -> Result<(&'w Chat, &'w StoredMessage), GraphError> {
    let chat = visible_chat(world, chat_id, caller)?;
    let message = chat.message(message_id).ok_or_else(|| {
        GraphError::not_found(format!(
            "Message '{message_id}' was not found in chat '{chat_id}'."
        ))
    })?;
    Ok((chat, message))
}

async fn list_hosted_contents(
    State(sim): State<Sim>,
    Path((chat_id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MESSAGES)?;
    let world = sim.world();
    let (chat, message) = find_message(&world, &chat_id, &message_id, &caller)?;
    let value: Vec<Value> = message
        .hosted
        .iter()
        .map(|h| json!({"id": h.id, "contentBytes": null, "contentType": null}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#chats('{}')/messages('{}')/hostedContents", base_url(&headers), context_segment(&chat.id), message.id()),
            "@odata.count": value.len(),
            "value": value,
        }),
    ))
}

async fn get_hosted_content(
    State(sim): State<Sim>,
    Path((chat_id, message_id, hosted_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MESSAGES)?;
    let world = sim.world();
    let (chat, message) = find_message(&world, &chat_id, &message_id, &caller)?;
    let hosted = message
        .hosted
        .iter()
        .find(|h| h.id == hosted_id)
        .ok_or_else(|| {
            GraphError::not_found(format!("Hosted content '{hosted_id}' was not found."))
        })?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#chats('{}')/messages('{}')/hostedContents/$entity", base_url(&headers), context_segment(&chat.id), message.id()),
            "id": hosted.id, "contentBytes": null, "contentType": null,
        }),
    ))
}

async fn hosted_content_value(
    State(sim): State<Sim>,
    Path((chat_id, message_id, hosted_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, READ_MESSAGES)?;
    let world = sim.world();
    let (_, message) = find_message(&world, &chat_id, &message_id, &caller)?;
    let hosted = message
        .hosted
        .iter()
        .find(|h| h.id == hosted_id)
        .ok_or_else(|| {
            GraphError::not_found(format!("Hosted content '{hosted_id}' was not found."))
        })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, hosted.content_type.clone())],
        hosted.bytes.clone(),
    )
        .into_response())
}

/// Field report row 21: sends through `/me/chats/{id}/messages` are refused by Graph.
async fn post_to_me_chats(
    State(sim): State<Sim>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    authenticate(&sim, &headers, SEND_MESSAGES)?;
    Err(GraphError::bad_request(
        "Write requests are only supported on contained entities",
    ))
}

async fn post_message(
    State(sim): State<Sim>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers, SEND_MESSAGES)?;
    let request: Value = serde_json::from_slice(&body).map_err(|_| {
        GraphError::bad_request("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
    })?;
    let content = request.pointer("/body/content").and_then(Value::as_str);
    let Some(content) = content else {
        return Err(GraphError::bad_request(
            "Invalid request body: the message 'body' with its 'content' is required.",
        ));
    };
    let attachment_bytes: usize = request
        .get("attachments")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|a| {
                    a.get("content")
                        .and_then(Value::as_str)
                        .map(str::len)
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0);
    let now = sim.now();
    let base = base_url(&headers);
    let config = sim.config().clone();
    let mut world = sim.world();
    let mut limits = vec![(
        format!("post:{}:{}", caller.user.id.to_ascii_lowercase(), chat_id),
        config.throttling.post_message_per_user_per_chat,
    )];
    limits.push((
        format!(
            "chat-messages:{}:{}",
            caller.client_id.to_ascii_lowercase(),
            caller.user.tenant_id.to_ascii_lowercase()
        ),
        config.throttling.chat_messages_per_app_per_tenant,
    ));
    let chat = visible_chat(&world, &chat_id, &caller)?;
    if !chat.has_member(&caller.user.id) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Forbidden",
        ));
    }
    if content.len() + attachment_bytes > config.max_message_bytes {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Request Entity Too Large",
        ));
    }
    if world.federation_block(chat, &caller.user).is_some() {
        let spec = &config.federation_blocked_post;
        let status = StatusCode::from_u16(spec.status).unwrap_or(StatusCode::FORBIDDEN);
        return Err(GraphError::new(status, &spec.code, spec.message.clone()));
    }
    throttle(&sim, &mut world, limits)?;
    let chat = visible_chat(&world, &chat_id, &caller)?;
    let id = World::new_message_id(chat, now);
    let chat_id = chat.id.clone();
    let mut object = build_message(&chat_id, &id, &caller.user, now, &request);
    let hosted = hosted_contents_from_request(&request, &base, &chat_id, &id, &mut object);
    let response_object = object.clone();
    if let Some(chat) = world.chat_mut(&chat_id) {
        chat.messages.push(StoredMessage { object, hosted });
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{base}/v1.0/$metadata#chats('{}')/messages/$entity",
            context_segment(&chat_id)
        )),
    );
    body.extend(response_object);
    Ok(json_response(StatusCode::CREATED, Value::Object(body)))
}

/// Turns `hostedContents` with `@microsoft.graph.temporaryId` into stored images and rewrites
/// `../hostedContents/{temporaryId}/$value` in the body to the real URL (chatmessage-post ex. 6).
fn hosted_contents_from_request(
    request: &Value,
    base: &str,
    chat_id: &str,
    message_id: &str,
    object: &mut Map<String, Value>,
) -> Vec<crate::model::HostedContent> {
    use base64::Engine as _;
    let mut hosted = Vec::new();
    let Some(items) = request.get("hostedContents").and_then(Value::as_array) else {
        return hosted;
    };
    let mut content = object
        .get("body")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    for item in items {
        let temporary_id = item
            .get("@microsoft.graph.temporaryId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bytes = item
            .get("contentBytes")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        let content_type = item
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream")
            .to_owned();
        let id = base64::engine::general_purpose::STANDARD
            .encode(format!("id=x_{},type=1", uuid::Uuid::new_v4().simple()));
        let url =
            format!("{base}/v1.0/chats/{chat_id}/messages/{message_id}/hostedContents/{id}/$value");
        content = content.replace(&format!("../hostedContents/{temporary_id}/$value"), &url);
        hosted.push(crate::model::HostedContent {
            id,
            content_type,
            bytes,
        });
    }
    if let Some(Value::Object(body)) = object.get_mut("body") {
        body.insert("content".into(), json!(content));
    }
    hosted
}

async fn unknown_segment(Path(rest): Path<String>) -> GraphError {
    let segment = rest.split('/').rfind(|s| !s.is_empty()).unwrap_or_default();
    GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
}
