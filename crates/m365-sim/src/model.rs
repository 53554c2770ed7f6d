//! The simulated world: tenants, users, app registrations, chats with members and messages,
//! grants, codes, tokens, faults, the request log and throttling windows.
//!
//! Pure data and rules, no HTTP: handlers lock the world, call these functions and turn the
//! result into a response. Stored Graph objects are kept as given so recorded payloads replay
//! unchanged; the simulator only adds or updates the fields the real service would.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::config::RateLimit;
use crate::scenario::{ExternalAccess, ExternalAccessMode, Scenario, ScenarioApp};
use crate::timefmt;

/// Key prefix for simulator-only directives inside scenario objects; never served.
pub(crate) const SIM_KEY_PREFIX: &str = "@sim.";
/// Teams returns at most this many members with `$expand=members` (chat-list known issue).
pub(crate) const EXPANDED_MEMBERS_CAP: usize = 25;

#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub id: String,
    pub display_name: String,
    /// Lower-case verified domain names, default first.
    pub domains: Vec<String>,
    /// Graph `verifiedDomain` objects as served by `/organization`.
    pub verified_domains: Vec<Value>,
    pub external_access: ExternalAccess,
    pub admin_consent_required: bool,
    pub admin_consent_granted: Vec<String>,
    pub extra: Map<String, Value>,
}

impl Tenant {
    /// Does this tenant's Teams external access let it talk to `domain`?
    pub fn allows_domain(&self, domain: &str) -> bool {
        let listed = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(domain));
        match self.external_access.mode {
            ExternalAccessMode::AllowAll => true,
            ExternalAccessMode::BlockAll => false,
            ExternalAccessMode::AllowList => listed(&self.external_access.allowed_domains),
            ExternalAccessMode::BlockList => !listed(&self.external_access.blocked_domains),
        }
    }

    /// The `organization` object served by Graph.
    pub fn organization_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), json!(self.id));
        object.insert("displayName".into(), json!(self.display_name));
        for (key, value) in &self.extra {
            if !key.starts_with(SIM_KEY_PREFIX) {
                object.insert(key.clone(), value.clone());
            }
        }
        object.insert(
            "verifiedDomains".into(),
            Value::Array(self.verified_domains.clone()),
        );
        Value::Object(object)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub tenant_id: String,
    pub upn: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub extra: Map<String, Value>,
    /// When the user's refresh tokens were last revoked (reported in AADSTS50173).
    pub tokens_valid_from: Option<OffsetDateTime>,
    /// Refresh tokens with a serial below this are revoked. A serial, not a time, so a revoke
    /// on a frozen clock still separates earlier tokens from later sign-ins.
    pub revoked_below_serial: u64,
}

impl User {
    /// The user's Teams (SIP) domain, taken from the UPN.
    pub fn domain(&self) -> String {
        self.upn
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    /// `GET /me` default projection (user-get.md example 2) plus any other given fields.
    pub fn me_json(&self) -> Value {
        let mut object = Map::new();
        let given = |key: &str, default: Value| self.extra.get(key).cloned().unwrap_or(default);
        object.insert("businessPhones".into(), given("businessPhones", json!([])));
        object.insert("displayName".into(), json!(self.display_name));
        object.insert("givenName".into(), given("givenName", Value::Null));
        object.insert("jobTitle".into(), given("jobTitle", Value::Null));
        object.insert("mail".into(), json!(self.mail));
        object.insert("mobilePhone".into(), given("mobilePhone", Value::Null));
        object.insert(
            "officeLocation".into(),
            given("officeLocation", Value::Null),
        );
        object.insert(
            "preferredLanguage".into(),
            given("preferredLanguage", Value::Null),
        );
        object.insert("surname".into(), given("surname", Value::Null));
        object.insert("userPrincipalName".into(), json!(self.upn));
        object.insert("id".into(), json!(self.id));
        for (key, value) in &self.extra {
            if !key.starts_with(SIM_KEY_PREFIX) && !object.contains_key(key) {
                object.insert(key.clone(), value.clone());
            }
        }
        Value::Object(object)
    }

    /// `from.user` of a message this user sends.
    pub fn identity_json(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
            "id": self.id,
            "displayName": self.display_name,
            "userIdentityType": "aadUser",
            "tenantId": self.tenant_id,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct HostedContent {
    pub id: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub object: Map<String, Value>,
    pub hosted: Vec<HostedContent>,
}

impl StoredMessage {
    pub fn id(&self) -> &str {
        self.object
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn time_field(&self, key: &str) -> Option<i128> {
        self.object
            .get(key)
            .and_then(Value::as_str)
            .and_then(timefmt::parse)
            .map(timefmt::nanos)
    }

    /// Sort key for `$orderby=lastModifiedDateTime` (falls back to createdDateTime when absent).
    pub fn last_modified_key(&self) -> Option<i128> {
        self.time_field("lastModifiedDateTime")
            .or_else(|| self.time_field("createdDateTime"))
    }

    pub fn created_key(&self) -> Option<i128> {
        self.time_field("createdDateTime")
    }

    pub fn is_deleted(&self) -> bool {
        self.object
            .get("deletedDateTime")
            .is_some_and(|v| !v.is_null())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Chat {
    /// Insertion order; the default list order and the chat paging key.
    pub seq: u64,
    pub id: String,
    /// The Graph chat object without members/messages/lastMessagePreview.
    pub object: Map<String, Value>,
    pub members: Vec<Value>,
    pub messages: Vec<StoredMessage>,
    /// `lastMessagePreview` as given in the scenario, served while the chat has no messages.
    pub given_preview: Option<Value>,
    pub visible_to: Vec<String>,
}

impl Chat {
    pub fn member_user_ids(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter_map(|m| m.get("userId").and_then(Value::as_str))
    }

    pub fn is_visible_to(&self, user_id: &str) -> bool {
        self.member_user_ids()
            .any(|id| id.eq_ignore_ascii_case(user_id))
            || self
                .visible_to
                .iter()
                .any(|id| id.eq_ignore_ascii_case(user_id))
    }

    pub fn has_member(&self, user_id: &str) -> bool {
        self.member_user_ids()
            .any(|id| id.eq_ignore_ascii_case(user_id))
    }

    pub fn chat_type(&self) -> &str {
        self.object
            .get("chatType")
            .and_then(Value::as_str)
            .unwrap_or("unknownFutureValue")
    }

    pub fn message(&self, message_id: &str) -> Option<&StoredMessage> {
        self.messages.iter().find(|m| m.id() == message_id)
    }

    pub fn message_mut(&mut self, message_id: &str) -> Option<&mut StoredMessage> {
        self.messages.iter_mut().find(|m| m.id() == message_id)
    }

    /// The newest message by creation time (what Teams previews).
    pub fn latest_message(&self) -> Option<&StoredMessage> {
        self.messages.iter().max_by(|a, b| {
            (a.created_key(), id_order_key(a.id())).cmp(&(b.created_key(), id_order_key(b.id())))
        })
    }

    /// `lastMessagePreview` (chatMessageInfo) or null.
    pub fn preview(&self, include_unknown_enums: bool) -> Value {
        let Some(latest) = self.latest_message() else {
            let mut given = self.given_preview.clone().unwrap_or(Value::Null);
            if !include_unknown_enums {
                hide_evolvable_enum_members(&mut given);
            }
            return given;
        };
        let field = |key: &str| latest.object.get(key).cloned().unwrap_or(Value::Null);
        let mut preview = json!({
            "id": latest.id(),
            "createdDateTime": field("createdDateTime"),
            "isDeleted": latest.is_deleted(),
            "messageType": field("messageType"),
            "from": field("from"),
            "body": field("body"),
            "eventDetail": field("eventDetail"),
        });
        if preview["messageType"].is_null() {
            preview["messageType"] = json!("message");
        }
        if !include_unknown_enums {
            hide_evolvable_enum_members(&mut preview);
        }
        preview
    }

    /// Preview creation time, the key of `$orderby=lastMessagePreview/createdDateTime desc`.
    pub fn preview_created_key(&self) -> Option<i128> {
        match self.latest_message() {
            Some(message) => message.created_key(),
            None => self
                .given_preview
                .as_ref()
                .and_then(|p| p.get("createdDateTime"))
                .and_then(Value::as_str)
                .and_then(timefmt::parse)
                .map(timefmt::nanos),
        }
    }

    /// The chat as Graph serves it. `single` keeps a given `@odata.context` (entity responses).
    pub fn graph_json(
        &self,
        expand_members: bool,
        expand_preview: bool,
        include_unknown_enums: bool,
    ) -> Map<String, Value> {
        let mut object = strip_sim_keys(&self.object);
        if expand_preview {
            object.insert(
                "lastMessagePreview".into(),
                self.preview(include_unknown_enums),
            );
        }
        if expand_members {
            let members: Vec<Value> = self
                .members
                .iter()
                .take(EXPANDED_MEMBERS_CAP)
                .cloned()
                .collect();
            object.insert("members".into(), Value::Array(members));
        }
        object
    }
}

/// Numeric ids (epoch milliseconds) compare as numbers, others as strings.
pub(crate) fn id_order_key(id: &str) -> (usize, String) {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        (id.len(), id.to_owned())
    } else {
        (usize::MAX, id.to_owned())
    }
}

/// Removes simulator directives (`@sim.*`) from a stored object.
pub(crate) fn strip_sim_keys(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(k, _)| !k.starts_with(SIM_KEY_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Without `Prefer: include-unknown-enum-members`, evolvable enum members added after
/// `unknownFutureValue` come back as `unknownFutureValue` (chatMessageType `systemEventMessage`,
/// teamworkUserIdentityType `emailUser`).
pub(crate) fn hide_evolvable_enum_members(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                let hidden = matches!(
                    (key.as_str(), inner.as_str()),
                    ("messageType", Some("systemEventMessage"))
                        | ("userIdentityType", Some("emailUser"))
                );
                if hidden {
                    *inner = json!("unknownFutureValue");
                } else {
                    hide_evolvable_enum_members(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_evolvable_enum_members),
        _ => {}
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub issued_at: OffsetDateTime,
    pub redeemed: bool,
}

/// An authorize request in progress between the sign-in page, the consent page and the redirect.
#[derive(Debug, Clone)]
pub(crate) struct AuthorizeFlow {
    pub tenant_segment: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub response_mode: String,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    pub user_id: Option<String>,
    /// Started at `/{tenant}/v2.0/adminconsent`: consent is for the whole tenant.
    pub admin_consent: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessTokenRecord {
    pub token: String,
    pub user_id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshTokenRecord {
    pub token: String,
    pub user_id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub issued_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    /// Issue order across all refresh tokens (see `User::revoked_below_serial`).
    pub serial: u64,
}

/// A scripted fault from `POST /_sim/faults`.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub method: Option<String>,
    pub path_prefix: String,
    /// `None`: the real handler answers (only `delay_ms` applies).
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub body: Option<Value>,
    pub delay_ms: u64,
    pub remaining: u32,
    /// Run the real handler first (side effects happen), then answer with `status`.
    pub run_handler: bool,
}

impl Fault {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RequestLogEntry {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub time: OffsetDateTime,
    pub request_id: String,
    pub client_request_id: String,
}

/// The request log keeps at most this many entries (a long demo run must not grow without bound).
pub(crate) const REQUEST_LOG_CAP: usize = 10_000;

/// Everything the simulator knows. One lock guards it; no handler awaits while holding it.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    pub apps: Vec<ScenarioApp>,
    pub chats: Vec<Chat>,
    pub next_chat_seq: u64,
    pub flows: HashMap<String, AuthorizeFlow>,
    pub codes: HashMap<String, AuthCode>,
    pub access_tokens: Vec<AccessTokenRecord>,
    pub refresh_tokens: Vec<RefreshTokenRecord>,
    pub next_token_serial: u64,
    /// (user id, client id) → consented scopes.
    pub grants: HashMap<(String, String), Vec<String>>,
    pub faults: Vec<Fault>,
    pub requests: Vec<RequestLogEntry>,
    pub throttle_windows: HashMap<String, VecDeque<OffsetDateTime>>,
}

impl World {
    /// Adds a scenario's objects (later objects with the same id replace earlier ones).
    pub fn load(&mut self, scenario: &Scenario) {
        for tenant in &scenario.tenants {
            let verified_domains: Vec<Value> = tenant
                .verified_domains
                .iter()
                .enumerate()
                .map(|(index, domain)| match domain {
                    Value::String(name) => json!({
                        "capabilities": "Email, OfficeCommunicationsOnline",
                        "isDefault": index == 0,
                        "isInitial": false,
                        "name": name,
                        "type": "Managed",
                    }),
                    other => other.clone(),
                })
                .collect();
            let domains = verified_domains
                .iter()
                .filter_map(|d| d.get("name").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect();
            let loaded = Tenant {
                id: tenant.id.clone(),
                display_name: tenant.display_name.clone(),
                domains,
                verified_domains,
                external_access: tenant.teams_external_access.clone(),
                admin_consent_required: tenant.admin_consent_required,
                admin_consent_granted: tenant.admin_consent_granted.clone(),
                extra: tenant.extra.clone(),
            };
            self.tenants
                .retain(|t| !t.id.eq_ignore_ascii_case(&loaded.id));
            self.tenants.push(loaded);
        }
        for user in &scenario.users {
            let loaded = User {
                id: user.id.clone(),
                tenant_id: user.tenant_id.clone(),
                upn: user.user_principal_name.clone(),
                display_name: user.display_name.clone(),
                mail: user.mail.clone(),
                extra: user.extra.clone(),
                tokens_valid_from: None,
                revoked_below_serial: 0,
            };
            self.users
                .retain(|u| !u.id.eq_ignore_ascii_case(&loaded.id));
            self.users.push(loaded);
        }
        for app in &scenario.app_registrations {
            self.apps.retain(|a| a.client_id != app.client_id);
            self.apps.push(app.clone());
        }
        for chat in &scenario.chats {
            let mut object = chat.chat.clone();
            let id = object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let given_preview = object.remove("lastMessagePreview");
            let visible_to = object
                .remove("@sim.visibleTo")
                .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                .unwrap_or_default();
            let messages = chat
                .messages
                .iter()
                .filter_map(|m| m.as_object().cloned())
                .map(stored_message_from_scenario)
                .collect();
            let seq = self.next_chat_seq;
            self.next_chat_seq += 1;
            self.chats.retain(|c| c.id != id);
            self.chats.push(Chat {
                seq,
                id,
                object,
                members: chat.members.clone(),
                messages,
                given_preview,
                visible_to,
            });
        }
    }

    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id.eq_ignore_ascii_case(id))
    }

    pub fn tenant_mut(&mut self, id: &str) -> Option<&mut Tenant> {
        self.tenants
            .iter_mut()
            .find(|t| t.id.eq_ignore_ascii_case(id))
    }

    /// Resolves the `{tenant}` path segment: a tenant id or one of its verified domains.
    pub fn tenant_by_segment(&self, segment: &str) -> Option<&Tenant> {
        self.tenant(segment).or_else(|| {
            self.tenants
                .iter()
                .find(|t| t.domains.iter().any(|d| d.eq_ignore_ascii_case(segment)))
        })
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id.eq_ignore_ascii_case(id))
    }

    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users
            .iter_mut()
            .find(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// Finds a user by object id, UPN or mail (sign-in page input).
    pub fn user_by_login(&self, login: &str) -> Option<&User> {
        let login = login.trim();
        self.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(login)
                || u.upn.eq_ignore_ascii_case(login)
                || u.mail
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(login))
        })
    }

    pub fn app(&self, client_id: &str) -> Option<&ScenarioApp> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn chat(&self, id: &str) -> Option<&Chat> {
        self.chats.iter().find(|c| c.id == id)
    }

    pub fn chat_mut(&mut self, id: &str) -> Option<&mut Chat> {
        self.chats.iter_mut().find(|c| c.id == id)
    }

    /// Teams federation is mutual: both tenants must allow the other's domain.
    /// Users of the same tenant always reach each other; unknown users are not judged.
    pub fn can_federate(&self, a: &User, b: &User) -> bool {
        if a.tenant_id.eq_ignore_ascii_case(&b.tenant_id) {
            return true;
        }
        let (Some(tenant_a), Some(tenant_b)) =
            (self.tenant(&a.tenant_id), self.tenant(&b.tenant_id))
        else {
            return true;
        };
        tenant_a.allows_domain(&b.domain()) && tenant_b.allows_domain(&a.domain())
    }

    /// The first chat member that `sender` cannot reach through Teams federation, if any.
    pub fn federation_block(&self, chat: &Chat, sender: &User) -> Option<String> {
        chat.member_user_ids()
            .filter(|id| !id.eq_ignore_ascii_case(&sender.id))
            .filter_map(|id| self.user(id))
            .find(|member| !self.can_federate(sender, member))
            .map(|member| {
                let (sender_tenant, member_tenant) = (
                    self.tenant(&sender.tenant_id).map(|t| t.display_name.clone()).unwrap_or_default(),
                    self.tenant(&member.tenant_id).map(|t| t.display_name.clone()).unwrap_or_default(),
                );
                format!(
                    "Teams external access between {} ({sender_tenant}) and {} ({member_tenant}) is blocked",
                    sender.upn, member.upn
                )
            })
    }

    /// Counts one request against `limit` for `key`; `Err(seconds)` when it must wait.
    pub fn throttle(
        &mut self,
        key: String,
        limit: Option<RateLimit>,
        now: OffsetDateTime,
    ) -> Result<(), u64> {
        let Some(limit) = limit else { return Ok(()) };
        let window = time::Duration::try_from(limit.window).unwrap_or(time::Duration::SECOND);
        let entries = self.throttle_windows.entry(key).or_default();
        while entries.front().is_some_and(|t| *t + window <= now) {
            entries.pop_front();
        }
        if entries.len() >= limit.max as usize {
            let oldest = entries.front().copied().unwrap_or(now);
            let wait = (oldest + window - now).as_seconds_f64().ceil().max(1.0);
            return Err(wait as u64);
        }
        entries.push_back(now);
        Ok(())
    }

    /// A message id Teams-style (epoch milliseconds), unique within the chat.
    pub fn new_message_id(chat: &Chat, now: OffsetDateTime) -> String {
        let mut millis = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        while chat.message(&millis.to_string()).is_some() {
            millis += 1;
        }
        millis.to_string()
    }
}

pub(crate) fn stored_message_from_scenario(mut object: Map<String, Value>) -> StoredMessage {
    let hosted = object
        .remove("hostedContents")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| {
            use base64::Engine as _;
            let id = item.get("id")?.as_str()?.to_owned();
            let content_type = item
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("image/png")
                .to_owned();
            let bytes = item
                .get("contentBytes")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .unwrap_or_default();
            Some(HostedContent {
                id,
                content_type,
                bytes,
            })
        })
        .collect();
    StoredMessage { object, hosted }
}

/// A conversationMember for a simulator-created chat; the id follows the layout of recorded
/// member ids (`0##<tenant>##<chat>##<user>`, base64), which clients must treat as opaque.
pub(crate) fn member_json(user: &User, chat_id: &str) -> Value {
    use base64::Engine as _;
    let raw = format!("0##{}##{}##{}", user.tenant_id, chat_id, user.id);
    json!({
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "id": base64::engine::general_purpose::STANDARD.encode(raw),
        "roles": ["owner"],
        "displayName": user.display_name,
        "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
        "userId": user.id,
        "email": user.mail.clone().unwrap_or_else(|| user.upn.clone()),
        "tenantId": user.tenant_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    fn world() -> World {
        let mut world = World::default();
        world.load(&demo::demo_scenario("http://127.0.0.1:1/cb"));
        world
    }

    fn federate(world: &World, a: &str, b: &str) -> bool {
        let (Some(a), Some(b)) = (world.user(a), world.user(b)) else {
            panic!("demo users exist")
        };
        world.can_federate(a, b)
    }

    #[test]
    fn federation_needs_both_tenants_to_allow_the_other_domain() {
        let mut world = world();
        assert!(federate(
            &world,
            demo::CONTOSO_USER_1_ID,
            demo::SUPPORT_USER_ID
        ));
        assert!(
            !federate(&world, demo::FABRIKAM_USER_ID, demo::SUPPORT_USER_ID),
            "Fabrikam blocks all"
        );
        assert!(
            federate(&world, demo::SUPPORT_USER_ID, demo::STAFF_USER_ID),
            "same tenant always"
        );

        let msp = world
            .tenant_mut(demo::MSP_TENANT_ID)
            .map(|t| &mut t.external_access);
        *msp.unwrap_or_else(|| panic!("MSP tenant")) = ExternalAccess {
            mode: ExternalAccessMode::BlockList,
            allowed_domains: vec![],
            blocked_domains: vec!["CONTOSO.example".into()],
        };
        assert!(
            !federate(&world, demo::CONTOSO_USER_1_ID, demo::SUPPORT_USER_ID),
            "block list, case-insensitive"
        );

        let msp = world
            .tenant_mut(demo::MSP_TENANT_ID)
            .map(|t| &mut t.external_access);
        *msp.unwrap_or_else(|| panic!("MSP tenant")) = ExternalAccess {
            mode: ExternalAccessMode::AllowList,
            allowed_domains: vec![demo::CONTOSO_DOMAIN.into()],
            blocked_domains: vec![],
        };
        assert!(federate(
            &world,
            demo::CONTOSO_USER_1_ID,
            demo::SUPPORT_USER_ID
        ));
        assert!(!federate(
            &world,
            demo::FABRIKAM_USER_ID,
            demo::SUPPORT_USER_ID
        ));
    }

    #[test]
    fn throttle_window_refuses_until_the_window_passes() {
        let mut world = World::default();
        let start = time::macros::datetime!(2026-03-02 09:00:00 UTC);
        let limit = Some(RateLimit::per_second(1));
        assert_eq!(world.throttle("k".into(), limit, start), Ok(()));
        assert_eq!(
            world.throttle("k".into(), limit, start + time::Duration::milliseconds(200)),
            Err(1)
        );
        assert_eq!(
            world.throttle("k".into(), limit, start + time::Duration::SECOND),
            Ok(())
        );
    }
}
