//! A small Teams client page (`GET /_sim/teams`): pick a user, open the oneOnOne chat with the
//! support account, read both directions and type messages. Sending goes through the same code
//! path as `POST /_sim/chats/{chat}/messages`, so federation rules apply; a dropped message shows
//! the sender a note, as the real Teams client shows an error.
//!
//! Server-rendered, no external assets. Message HTML from Graph is sanitised with ammonia before
//! display; typed text is escaped by the template engine. It must never render raw message HTML.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

use crate::sim::{PostOutcome, Sim, UserPost};

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
        .route("/_sim/teams", get(page))
        .route("/_sim/teams/send", post(send))
}

struct UserOption {
    id: String,
    label: String,
}

struct ShownMessage {
    id: String,
    sender: String,
    time: String,
    body_html: String,
    deleted: bool,
    mine: bool,
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    users: Vec<UserOption>,
    user_id: String,
    peer_id: String,
    note: Option<String>,
    chat_id: Option<String>,
    messages: Vec<ShownMessage>,
}

/// Typed text as Teams sends it: a paragraph, line breaks kept, everything escaped.
#[derive(Template)]
#[template(
    source = "<p>{% for line in lines %}{{ line }}{% if !loop.last %}<br>{% endif %}{% endfor %}</p>",
    ext = "html"
)]
struct TypedMessage<'a> {
    lines: Vec<&'a str>,
}

/// Plain text shown inside the page (escaped by the template engine).
#[derive(Template)]
#[template(source = "{{ text }}", ext = "html")]
struct EscapedText<'a> {
    text: &'a str,
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("page rendering failed: {error}"),
        )
            .into_response(),
    }
}

fn message_view(message: &Value, viewer: &str) -> ShownMessage {
    let text = |pointer: &str| {
        message
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let sender_id = text("/from/user/id");
    let sender = ["/from/user/displayName", "/from/application/displayName"]
        .iter()
        .find_map(|p| message.pointer(p).and_then(Value::as_str))
        .unwrap_or("Teams")
        .to_owned();
    let content = text("/body/content");
    let body_html = if text("/body/contentType").eq_ignore_ascii_case("html") {
        ammonia::clean(&content)
    } else {
        EscapedText { text: &content }.render().unwrap_or_default()
    };
    ShownMessage {
        id: text("/id"),
        sender,
        time: text("/createdDateTime"),
        body_html,
        deleted: message.get("deletedDateTime").is_some_and(|d| !d.is_null()),
        mine: !sender_id.is_empty() && sender_id.eq_ignore_ascii_case(viewer),
    }
}

async fn page(State(sim): State<Sim>, Query(query): Query<PageQuery>) -> Response {
    let (users, default_user, default_peer) = {
        let world = sim.world();
        let tenant_name = |id: &str| {
            world
                .tenant(id)
                .map(|t| t.display_name.clone())
                .unwrap_or_else(|| id.to_owned())
        };
        let users: Vec<UserOption> = world
            .users
            .iter()
            .map(|u| UserOption {
                id: u.id.clone(),
                label: format!(
                    "{} <{}> — {}",
                    u.display_name,
                    u.upn,
                    tenant_name(&u.tenant_id)
                ),
            })
            .collect();
        // The first tenant is the MSP in the demo; its first user is the support account.
        let msp = world
            .tenants
            .first()
            .map(|t| t.id.clone())
            .unwrap_or_default();
        let default_peer = world
            .users
            .iter()
            .find(|u| u.tenant_id == msp)
            .map(|u| u.id.clone());
        let default_user = world
            .users
            .iter()
            .find(|u| u.tenant_id != msp)
            .map(|u| u.id.clone());
        (users, default_user, default_peer)
    };
    let user_id = query.user.or(default_user).unwrap_or_default();
    let peer_id = query.peer.or(default_peer).unwrap_or_default();
    let chat = {
        let world = sim.world();
        world
            .chats
            .iter()
            .find(|c| {
                c.chat_type() == "oneOnOne" && c.has_member(&user_id) && c.has_member(&peer_id)
            })
            .map(|c| c.id.clone())
    };
    let messages = match &chat {
        Some(chat_id) => sim
            .chat_json(chat_id)
            .ok()
            .and_then(|c| c.get("messages").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .map(|m| message_view(m, &user_id))
            .collect(),
        None => Vec::new(),
    };
    render(&TeamsPage {
        users,
        user_id,
        peer_id,
        note: query.note,
        chat_id: chat,
        messages,
    })
}

fn back_to(user: &str, peer: &str, note: Option<&str>) -> Response {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    url.append_pair("user", user).append_pair("peer", peer);
    if let Some(note) = note {
        url.append_pair("note", note);
    }
    let location = format!("/_sim/teams?{}", url.finish());
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn send(State(sim): State<Sim>, body: Bytes) -> Response {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (user, peer, text) = (field("user"), field("peer"), field("message"));
    if user.is_empty() || peer.is_empty() {
        return back_to(&user, &peer, Some("Pick both people first."));
    }
    if text.is_empty() {
        return back_to(&user, &peer, None);
    }
    let normalized = text.replace("\r\n", "\n");
    let html = match (TypedMessage {
        lines: normalized.split('\n').collect(),
    })
    .render()
    {
        Ok(html) => html,
        Err(error) => {
            return back_to(
                &user,
                &peer,
                Some(&format!("Could not compose the message: {error}")),
            );
        }
    };
    let outcome = sim
        .one_on_one_chat_id(&user, &peer)
        .and_then(|chat| sim.post_as_user(&chat, &user, UserPost::Html(html)));
    match outcome {
        Ok(PostOutcome::Delivered(_)) => back_to(&user, &peer, None),
        Ok(PostOutcome::Dropped { reason }) => back_to(&user, &peer, Some(&reason)),
        Err(error) => back_to(&user, &peer, Some(&error.to_string())),
    }
}
