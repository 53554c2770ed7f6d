//! `Sim`: the shared handle behind every route. It owns the configuration, the clock and the
//! locked `World`, and offers the operations the control API, the Teams page and in-process
//! callers (tests, the demo) use: create chats, post as a user (federation applies), edit,
//! delete, react, change federation, revoke tokens, move the clock.
//!
//! It must never hold the world lock across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::config::{ClockStart, SimConfig};
use crate::error::SimError;
use crate::model::{Chat, Fault, StoredMessage, User, World, member_json};
use crate::scenario::{ExternalAccess, ExternalAccessMode, Scenario};
use crate::timefmt;

/// Cheap-to-clone handle to one running simulated world.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<SimInner>,
}

struct SimInner {
    config: SimConfig,
    clock_offset: Mutex<time::Duration>,
    world: Mutex<World>,
}

/// Why a control operation was refused. Rendered as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
}

/// What happened to a message a user typed (Teams client semantics).
#[derive(Debug, Clone, PartialEq)]
pub enum PostOutcome {
    /// Stored in the chat; the Graph chatMessage.
    Delivered(Value),
    /// Teams federation blocked it; nothing was stored (Teams drops it silently for the others).
    Dropped { reason: String },
}

/// What a user posts through the control API or the Teams page.
#[derive(Debug, Clone)]
pub enum UserPost {
    /// HTML body, as the Teams client sends it.
    Html(String),
    /// A raw chatMessage, stored as given; missing id/times/from/chatId are filled in.
    Raw(Map<String, Value>),
}

impl Sim {
    /// Builds a world from a scenario (checked first).
    pub fn new(config: SimConfig, scenario: &Scenario) -> Result<Sim, SimError> {
        scenario.check()?;
        let mut world = World::default();
        world.load(scenario);
        Ok(Sim {
            inner: Arc::new(SimInner {
                config,
                clock_offset: Mutex::new(time::Duration::ZERO),
                world: Mutex::new(world),
            }),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The simulator's current time (wall clock or frozen start, plus `/_sim/clock` advances).
    pub fn now(&self) -> OffsetDateTime {
        let offset = *self
            .inner
            .clock_offset
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let base = match self.inner.config.clock {
            ClockStart::Now => OffsetDateTime::now_utc(),
            ClockStart::FrozenAt(start) => start,
        };
        base + offset
    }

    /// Moves the clock forward (token expiry, message times, throttling windows).
    pub fn advance_clock(&self, seconds: i64) -> OffsetDateTime {
        let mut offset = self
            .inner
            .clock_offset
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *offset += time::Duration::seconds(seconds);
        drop(offset);
        self.now()
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces by id) the scenario's objects.
    pub fn load_scenario(&self, scenario: &Scenario) -> Result<(), SimError> {
        scenario.check()?;
        self.world().load(scenario);
        Ok(())
    }

    /// `GET /_sim/state`: tenants, users, apps and chats (ids, members).
    pub fn state_json(&self) -> Value {
        let world = self.world();
        let tenants: Vec<Value> = world
            .tenants
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "displayName": t.display_name,
                    "domains": t.domains,
                    "teamsExternalAccess": t.external_access,
                    "adminConsentRequired": t.admin_consent_required,
                })
            })
            .collect();
        let users: Vec<Value> = world
            .users
            .iter()
            .map(|u| {
                json!({
                    "id": u.id, "tenantId": u.tenant_id, "userPrincipalName": u.upn,
                    "mail": u.mail, "displayName": u.display_name,
                })
            })
            .collect();
        let apps: Vec<Value> = world
            .apps
            .iter()
            .map(|a| json!({"clientId": a.client_id, "redirectUris": a.redirect_uris, "displayName": a.display_name}))
            .collect();
        let chats: Vec<Value> = world
            .chats
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "chatType": c.chat_type(),
                    "topic": c.object.get("topic").cloned().unwrap_or(Value::Null),
                    "members": c.member_user_ids().collect::<Vec<_>>(),
                    "messageCount": c.messages.len(),
                })
            })
            .collect();
        json!({ "now": timefmt::rfc3339(self.now()), "tenants": tenants, "users": users, "appRegistrations": apps, "chats": chats })
    }

    /// Creates a chat the way Teams does. A oneOnOne chat between the same two users is
    /// returned again instead of created twice (same id every time, microsoft-graph-docs#16077).
    /// Returns `(created, chat)`.
    pub fn create_chat(
        &self,
        chat_type: &str,
        member_ids: &[String],
        topic: Option<&str>,
    ) -> Result<(bool, Value), ControlError> {
        let now = self.now();
        let mut world = self.world();
        let mut members: Vec<User> = Vec::new();
        for id in member_ids {
            let user = world.user(id).ok_or_else(|| {
                ControlError::NotFound(format!("user {id} does not exist in the simulator"))
            })?;
            if !members.iter().any(|m| m.id == user.id) {
                members.push(user.clone());
            }
        }
        let Some(creator) = members.first().cloned() else {
            return Err(ControlError::BadRequest(
                "a chat needs at least one member".into(),
            ));
        };
        let chat_id = match chat_type {
            "oneOnOne" => {
                let [a, b] = members.as_slice() else {
                    return Err(ControlError::BadRequest(
                        "a oneOnOne chat needs exactly two members".into(),
                    ));
                };
                let mut pair = [a.id.to_ascii_lowercase(), b.id.to_ascii_lowercase()];
                pair.sort();
                let id = format!("19:{}_{}@unq.gbl.spaces", pair[0], pair[1]);
                if let Some(existing) = world.chat(&id) {
                    return Ok((false, Value::Object(existing.graph_json(true, false, true))));
                }
                id
            }
            "group" => format!("19:{}@thread.v2", uuid::Uuid::new_v4().simple()),
            "meeting" => {
                use base64::Engine as _;
                let raw = uuid::Uuid::new_v4().to_string();
                format!(
                    "19:meeting_{}@thread.v2",
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
                )
            }
            other => {
                return Err(ControlError::BadRequest(format!(
                    "chatType {other:?} is not one of oneOnOne, group, meeting"
                )));
            }
        };
        let created = timefmt::graph(now);
        let web_url = format!(
            "https://teams.microsoft.com/l/chat/{}/0?tenantId={}",
            percent_encoding::utf8_percent_encode(&chat_id, percent_encoding::NON_ALPHANUMERIC),
            creator.tenant_id
        );
        let object = json!({
            "id": chat_id,
            "topic": if chat_type == "oneOnOne" { Value::Null } else { json!(topic) },
            "createdDateTime": created,
            "lastUpdatedDateTime": created,
            "chatType": chat_type,
            "webUrl": web_url,
            "tenantId": creator.tenant_id,
            "onlineMeetingInfo": null,
            "viewpoint": { "isHidden": false, "lastMessageReadDateTime": "0001-01-01T00:00:00Z" },
            "isHiddenForAllMembers": false,
        });
        let Value::Object(object) = object else {
            return Err(ControlError::BadRequest("internal: chat object".into()));
        };
        let seq = world.next_chat_seq;
        world.next_chat_seq += 1;
        let chat = Chat {
            seq,
            id: chat_id.clone(),
            object,
            members: members.iter().map(|u| member_json(u, &chat_id)).collect(),
            messages: Vec::new(),
            given_preview: None,
            visible_to: Vec::new(),
        };
        let json = Value::Object(chat.graph_json(true, false, true));
        world.chats.push(chat);
        Ok((true, json))
    }

    /// A user types a message in Teams. Federation applies: a blocked sender's message never
    /// reaches the chat (`PostOutcome::Dropped`), as Teams drops it.
    pub fn post_as_user(
        &self,
        chat_id: &str,
        user_id: &str,
        post: UserPost,
    ) -> Result<PostOutcome, ControlError> {
        let now = self.now();
        let mut world = self.world();
        let sender = world.user(user_id).cloned().ok_or_else(|| {
            ControlError::NotFound(format!("user {user_id} does not exist in the simulator"))
        })?;
        let chat = world
            .chat(chat_id)
            .ok_or_else(|| ControlError::NotFound(format!("chat {chat_id} does not exist")))?;
        if !chat.has_member(&sender.id) {
            return Err(ControlError::BadRequest(format!(
                "user {} is not a member of chat {chat_id}; add them when creating the chat",
                sender.upn
            )));
        }
        if let Some(reason) = world.federation_block(chat, &sender) {
            return Ok(PostOutcome::Dropped { reason });
        }
        let id = World::new_message_id(chat, now);
        let object = match post {
            UserPost::Html(html) => build_message(
                chat_id,
                &id,
                &sender,
                now,
                &json!({"body": {"contentType": "html", "content": html}}),
            ),
            UserPost::Raw(mut raw) => {
                let stamp = json!(timefmt::graph(now));
                raw.entry("id").or_insert_with(|| json!(id));
                raw.entry("chatId").or_insert_with(|| json!(chat_id));
                raw.entry("messageType").or_insert_with(|| json!("message"));
                raw.entry("createdDateTime")
                    .or_insert_with(|| stamp.clone());
                raw.entry("lastModifiedDateTime").or_insert(stamp);
                raw.entry("from").or_insert_with(
                    || json!({"application": null, "device": null, "user": sender.identity_json()}),
                );
                raw
            }
        };
        // A raw message may carry `hostedContents` (images), kept apart as in a scenario.
        let message = crate::model::stored_message_from_scenario(object);
        let json = Value::Object(message.object.clone());
        if let Some(chat) = world.chat_mut(chat_id) {
            if chat.message(message.id()).is_some() {
                return Err(ControlError::BadRequest(format!(
                    "chat {chat_id} already has a message {}",
                    message.id()
                )));
            }
            chat.messages.push(message);
        }
        Ok(PostOutcome::Delivered(json))
    }

    /// The sender edits a message: body replaced, lastEditedDateTime and lastModifiedDateTime move.
    pub fn edit_message(
        &self,
        chat_id: &str,
        message_id: &str,
        html: &str,
    ) -> Result<Value, ControlError> {
        let now = timefmt::graph(self.now());
        self.update_message(chat_id, message_id, |object| {
            object.insert(
                "body".into(),
                json!({"contentType": "html", "content": html}),
            );
            object.insert("lastEditedDateTime".into(), json!(now));
            object.insert("lastModifiedDateTime".into(), json!(now));
        })
    }

    /// The sender deletes a message: deletedDateTime and lastModifiedDateTime move, the body empties.
    pub fn delete_message(&self, chat_id: &str, message_id: &str) -> Result<Value, ControlError> {
        let now = timefmt::graph(self.now());
        self.update_message(chat_id, message_id, |object| {
            object.insert("deletedDateTime".into(), json!(now));
            object.insert("lastModifiedDateTime".into(), json!(now));
            object.insert("body".into(), json!({"contentType": "html", "content": ""}));
        })
    }

    /// A user reacts: the reaction and a messageHistory item are added and lastModifiedDateTime
    /// moves ("including when a reaction is added or removed"); lastEditedDateTime does not.
    pub fn add_reaction(
        &self,
        chat_id: &str,
        message_id: &str,
        user_id: &str,
        reaction_type: &str,
    ) -> Result<Value, ControlError> {
        let now = timefmt::graph(self.now());
        let user = self.user_json(user_id)?;
        let reaction = json!({
            "reactionType": reaction_type,
            "displayName": null,
            "reactionContentUrl": null,
            "createdDateTime": now,
            "user": {"application": null, "device": null, "user": user},
        });
        self.update_message(chat_id, message_id, |object| {
            push_array(object, "reactions", reaction.clone());
            push_array(
                object,
                "messageHistory",
                json!({"modifiedDateTime": now, "actions": "reactionAdded", "reaction": reaction}),
            );
            object.insert("lastModifiedDateTime".into(), json!(now));
        })
    }

    /// Removes `user_id`'s reactions from a message (lastModifiedDateTime moves).
    pub fn remove_reactions(
        &self,
        chat_id: &str,
        message_id: &str,
        user_id: &str,
    ) -> Result<Value, ControlError> {
        let now = timefmt::graph(self.now());
        self.user_json(user_id)?;
        self.update_message(chat_id, message_id, |object| {
            let mut removed = Vec::new();
            if let Some(Value::Array(reactions)) = object.get_mut("reactions") {
                reactions.retain(|r| {
                    let mine = r.pointer("/user/user/id").and_then(Value::as_str).is_some_and(|id| id.eq_ignore_ascii_case(user_id));
                    if mine {
                        removed.push(r.clone());
                    }
                    !mine
                });
            }
            for reaction in removed {
                push_array(object, "messageHistory", json!({"modifiedDateTime": now, "actions": "reactionRemoved", "reaction": reaction}));
            }
            object.insert("lastModifiedDateTime".into(), json!(now));
        })
    }

    fn user_json(&self, user_id: &str) -> Result<Value, ControlError> {
        let world = self.world();
        let user = world.user(user_id).ok_or_else(|| {
            ControlError::NotFound(format!("user {user_id} does not exist in the simulator"))
        })?;
        Ok(json!({"id": user.id, "displayName": null, "userIdentityType": "aadUser"}))
    }

    fn update_message(
        &self,
        chat_id: &str,
        message_id: &str,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<Value, ControlError> {
        let now = self.now();
        let mut world = self.world();
        let chat = world
            .chat_mut(chat_id)
            .ok_or_else(|| ControlError::NotFound(format!("chat {chat_id} does not exist")))?;
        let message = chat.message_mut(message_id).ok_or_else(|| {
            ControlError::NotFound(format!("chat {chat_id} has no message {message_id}"))
        })?;
        change(&mut message.object);
        // etag is the message's version number; Teams writes the modification time in ms.
        message.object.insert(
            "etag".into(),
            json!(((now.unix_timestamp_nanos() / 1_000_000) as i64).to_string()),
        );
        Ok(Value::Object(message.object.clone()))
    }

    /// `GET /_sim/chats/{chat}`: the chat with members and every message, as Graph objects.
    pub fn chat_json(&self, chat_id: &str) -> Result<Value, ControlError> {
        let world = self.world();
        let chat = world
            .chat(chat_id)
            .ok_or_else(|| ControlError::NotFound(format!("chat {chat_id} does not exist")))?;
        let mut object = chat.graph_json(true, true, true);
        object.insert("members".into(), Value::Array(chat.members.clone()));
        let mut messages: Vec<&StoredMessage> = chat.messages.iter().collect();
        messages.sort_by_key(|m| (m.created_key(), crate::model::id_order_key(m.id())));
        object.insert(
            "messages".into(),
            Value::Array(
                messages
                    .iter()
                    .map(|m| Value::Object(m.object.clone()))
                    .collect(),
            ),
        );
        Ok(Value::Object(object))
    }

    /// Sets a tenant's Teams external access (`POST /_sim/tenants/{tenant}/federation`).
    pub fn set_external_access(
        &self,
        tenant_id: &str,
        access: ExternalAccess,
    ) -> Result<Value, ControlError> {
        let mut world = self.world();
        let tenant = world.tenant_mut(tenant_id).ok_or_else(|| {
            ControlError::NotFound(format!(
                "tenant {tenant_id} does not exist in the simulator"
            ))
        })?;
        tenant.external_access = access;
        Ok(json!({"id": tenant.id, "teamsExternalAccess": tenant.external_access}))
    }

    /// Revokes a user's refresh tokens: the next refresh fails with AADSTS50173.
    /// Access tokens already issued stay valid until they expire, as in Entra.
    pub fn revoke_user(&self, user_id: &str) -> Result<Value, ControlError> {
        let now = self.now();
        let mut world = self.world();
        let user = world.user_mut(user_id).ok_or_else(|| {
            ControlError::NotFound(format!("user {user_id} does not exist in the simulator"))
        })?;
        user.tokens_valid_from = Some(now);
        let id = user.id.clone();
        let serial = world.next_token_serial;
        if let Some(user) = world.user_mut(&id) {
            user.revoked_below_serial = serial;
        }
        world
            .grants
            .retain(|(user, _), _| !user.eq_ignore_ascii_case(&id));
        Ok(json!({"userId": id, "tokensValidFrom": timefmt::rfc3339(now)}))
    }

    /// Grants tenant-wide admin consent for an app (what "Grant admin consent" does in Entra).
    pub fn grant_admin_consent(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<(), ControlError> {
        let mut world = self.world();
        let tenant = world.tenant_mut(tenant_id).ok_or_else(|| {
            ControlError::NotFound(format!(
                "tenant {tenant_id} does not exist in the simulator"
            ))
        })?;
        if !tenant
            .admin_consent_granted
            .iter()
            .any(|c| c.eq_ignore_ascii_case(client_id))
        {
            tenant.admin_consent_granted.push(client_id.to_owned());
        }
        Ok(())
    }

    /// `GET /_sim/tokens`: every token issued so far with user and expiry.
    pub fn tokens_json(&self) -> Value {
        let world = self.world();
        let access: Vec<Value> = world
            .access_tokens
            .iter()
            .map(|t| json!({
                "kind": "access_token", "token": t.token, "userId": t.user_id, "tenantId": t.tenant_id,
                "clientId": t.client_id, "scopes": t.scopes, "issuedAt": timefmt::rfc3339(t.issued_at),
                "expiresAt": timefmt::rfc3339(t.expires_at),
            }))
            .collect();
        let refresh: Vec<Value> = world
            .refresh_tokens
            .iter()
            .map(|t| {
                let revoked = world.user(&t.user_id).is_some_and(|u| t.serial < u.revoked_below_serial);
                let expires = t.last_used_at + time::Duration::try_from(self.inner.config.refresh_token_inactivity).unwrap_or(time::Duration::ZERO);
                json!({
                    "kind": "refresh_token", "token": t.token, "userId": t.user_id, "tenantId": t.tenant_id,
                    "clientId": t.client_id, "scopes": t.scopes, "issuedAt": timefmt::rfc3339(t.issued_at),
                    "expiresAt": timefmt::rfc3339(expires), "revoked": revoked,
                })
            })
            .collect();
        json!({"accessTokens": access, "refreshTokens": refresh})
    }

    /// `GET /_sim/requests`.
    pub fn requests_json(&self) -> Value {
        let world = self.world();
        let entries: Vec<Value> = world
            .requests
            .iter()
            .map(|r| json!({
                "method": r.method, "path": r.path, "status": r.status, "time": timefmt::rfc3339(r.time),
                "requestId": r.request_id, "clientRequestId": r.client_request_id,
            }))
            .collect();
        json!({"requests": entries})
    }

    pub fn clear_requests(&self) {
        self.world().requests.clear();
    }

    pub(crate) fn add_fault(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// Finds or creates the oneOnOne chat between two users (Teams page).
    pub fn one_on_one_chat_id(&self, a: &str, b: &str) -> Result<String, ControlError> {
        let (_, chat) = self.create_chat("oneOnOne", &[a.to_owned(), b.to_owned()], None)?;
        chat.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ControlError::BadRequest("internal: chat without id".into()))
    }
}

impl ExternalAccess {
    /// Maps the control API body `{external_access: allowed|blocked, allowed_domains?, blocked_domains?}`.
    pub fn from_control(
        external_access: &str,
        allowed: Option<Vec<String>>,
        blocked: Option<Vec<String>>,
    ) -> Result<ExternalAccess, ControlError> {
        let mode = match (external_access, &allowed, &blocked) {
            ("blocked", _, _) => ExternalAccessMode::BlockAll,
            ("allowed", Some(_), _) => ExternalAccessMode::AllowList,
            ("allowed", None, Some(_)) => ExternalAccessMode::BlockList,
            ("allowed", None, None) => ExternalAccessMode::AllowAll,
            (other, _, _) => {
                return Err(ControlError::BadRequest(format!(
                    "external_access must be \"allowed\" or \"blocked\", not {other:?}"
                )));
            }
        };
        Ok(ExternalAccess {
            mode,
            allowed_domains: allowed.unwrap_or_default(),
            blocked_domains: blocked.unwrap_or_default(),
        })
    }
}

fn push_array(object: &mut Map<String, Value>, key: &str, item: Value) {
    match object.get_mut(key) {
        Some(Value::Array(items)) => items.push(item),
        _ => {
            object.insert(key.into(), Value::Array(vec![item]));
        }
    }
}

/// A new chatMessage in the key order of the recorded 201 response (fixture 19).
pub(crate) fn build_message(
    chat_id: &str,
    id: &str,
    sender: &User,
    now: OffsetDateTime,
    request: &Value,
) -> Map<String, Value> {
    let stamp = timefmt::graph(now);
    let body = request.get("body").cloned().unwrap_or(Value::Null);
    let content_type = body
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("text")
        .to_owned();
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let field = |key: &str, default: Value| request.get(key).cloned().unwrap_or(default);
    let message = json!({
        "id": id,
        "replyToId": null,
        "etag": id,
        "messageType": "message",
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "lastEditedDateTime": null,
        "deletedDateTime": null,
        "subject": field("subject", Value::Null),
        "summary": null,
        "chatId": chat_id,
        "importance": field("importance", json!("normal")),
        "locale": "en-us",
        "webUrl": null,
        "channelIdentity": null,
        "policyViolation": null,
        "eventDetail": null,
        "from": {"application": null, "device": null, "user": sender.identity_json()},
        "body": {"contentType": content_type, "content": content},
        "attachments": field("attachments", json!([])),
        "mentions": field("mentions", json!([])),
        "reactions": [],
        "messageHistory": [],
    });
    match message {
        Value::Object(object) => object,
        _ => Map::new(),
    }
}
