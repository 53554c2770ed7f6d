//! Serde models for the Graph resources the Teams Chat Bridge reads and writes.
//!
//! These types are deliberately *tolerant*: unknown fields are ignored, every enum has an
//! `Unknown(String)` variant for values Microsoft adds later, and anything Graph may leave out or
//! send as `null` is an `Option` (lists default to empty). What they must never do is guess: an
//! item whose timestamp does not parse or whose `id` is missing fails on its own, and the list
//! readers in [`crate::client`] report it as a [`SkippedItem`] instead of failing the page.
//!
//! Field names follow Graph (camelCase on the wire, snake_case here). Message and chat values
//! keep their original JSON in `raw` so callers can store exactly what Microsoft sent.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

/// Declares a Graph enum that accepts values it has never heard of (`Unknown(String)`), so a new
/// value from Microsoft never fails the whole page.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know yet, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The value as Graph spells it on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(wire: &str) -> Self {
                match wire {
                    $($wire => Self::$variant,)+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let wire = String::deserialize(deserializer)?;
                Ok(Self::from(wire.as_str()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// `chat.chatType`.
    ChatType {
        OneOnOne => "oneOnOne",
        Group => "group",
        Meeting => "meeting",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `chatMessage.messageType` / `chatMessageInfo.messageType`.
    ChatMessageType {
        /// A real message typed by a person, bot or app.
        Message => "message",
        ChatEvent => "chatEvent",
        Typing => "typing",
        /// Only named like this when `Prefer: include-unknown-enum-members` is sent.
        SystemEventMessage => "systemEventMessage",
        /// What system events look like without the `Prefer` header.
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `itemBody.contentType`.
    BodyContentType {
        Text => "text",
        Html => "html",
    }
}

open_enum! {
    /// `chatMessage.importance`.
    ChatMessageImportance {
        Normal => "normal",
        High => "high",
        Urgent => "urgent",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `teamworkUserIdentity.userIdentityType`.
    UserIdentityType {
        AadUser => "aadUser",
        OnPremiseAadUser => "onPremiseAadUser",
        AnonymousGuest => "anonymousGuest",
        FederatedUser => "federatedUser",
        PersonalMicrosoftAccountUser => "personalMicrosoftAccountUser",
        SkypeUser => "skypeUser",
        PhoneUser => "phoneUser",
        EmailUser => "emailUser",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `teamworkApplicationIdentity.applicationIdentityType`.
    ApplicationIdentityType {
        AadApplication => "aadApplication",
        Bot => "bot",
        TenantBot => "tenantBot",
        Office365Connector => "office365Connector",
        OutgoingWebhook => "outgoingWebhook",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `teamworkConversationIdentity.conversationIdentityType`.
    ConversationIdentityType {
        Team => "team",
        Channel => "channel",
        Chat => "chat",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `chatMessagePolicyViolation.dlpAction` (Graph spells these in PascalCase).
    DlpAction {
        None => "None",
        NotifySender => "NotifySender",
        BlockAccess => "BlockAccess",
        BlockAccessExternal => "BlockAccessExternal",
    }
}

/// `null` and absent both become the type's default (used for lists Graph sometimes sends as
/// `null`).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Attachment `content` is documented as a JSON *string*; if some producer sends an object we
/// keep it as its JSON text rather than failing the message.
fn string_or_json_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    })
}

/// Mention ids are integers on the wire, but accept a numeric string too.
fn lenient_i64<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    use serde::de::Error as _;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("mention id {number} is not an integer"))),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("mention id {text:?} is not an integer"))),
        Some(other) => Err(D::Error::custom(format!(
            "mention id {other} is not an integer"
        ))),
    }
}

/// A Graph collection page (`{"@odata.nextLink": …, "value": [...]}`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ODataCollection<T> {
    #[serde(
        rename = "@odata.context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub context: Option<String>,
    #[serde(
        rename = "@odata.count",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub count: Option<u64>,
    /// Opaque URL of the next page; must be followed verbatim.
    #[serde(
        rename = "@odata.nextLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_link: Option<String>,
    pub value: Vec<T>,
}

/// The OData error envelope `{"error": {"code", "message", "innerError": {...}}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ODataError {
    pub error: ODataErrorDetail,
}

/// Body of [`ODataError`]. Branch on `code`, never on `message` (Microsoft's own rule).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ODataErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, alias = "innererror")]
    pub inner_error: Option<InnerError>,
}

/// `innerError`: ids for support cases. `date` has no timezone in real bodies, so it stays text.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InnerError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(rename = "request-id", default)]
    pub request_id: Option<String>,
    #[serde(rename = "client-request-id", default)]
    pub client_request_id: Option<String>,
    #[serde(rename = "innerError", alias = "innererror", default)]
    pub inner_error: Option<Box<InnerError>>,
}

/// `identity` / `teamworkUserIdentity` / `teamworkApplicationIdentity` /
/// `teamworkConversationIdentity` / `teamworkTagIdentity`: one shape for all of them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Home tenant of a user identity ("Optional" per the docs; absent in older payloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identity_type: Option<UserIdentityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_identity_type: Option<ApplicationIdentityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_identity_type: Option<ConversationIdentityType>,
}

/// `chatMessageFromIdentitySet` (also used for `onBehalfOf`, `eventDetail.initiator`, mention
/// targets and reaction authors). At most one of the members is normally set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageFromIdentitySet {
    #[serde(default)]
    pub application: Option<Identity>,
    #[serde(default)]
    pub device: Option<Identity>,
    #[serde(default)]
    pub user: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Identity>,
    /// Mentions of a tag (`teamworkTagIdentity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Identity>,
}

/// `itemBody`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageBody {
    /// Absent means text (the send API's default).
    #[serde(default)]
    pub content_type: Option<BodyContentType>,
    #[serde(default)]
    pub content: Option<String>,
}

/// `chatMessageAttachment`. `content_type` is open text: `reference`, `messageReference`, card
/// MIME types, `tabReference`, …
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_url: Option<String>,
    /// JSON text for cards and references (never evaluated here).
    #[serde(default, deserialize_with = "string_or_json_text")]
    pub content: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    #[serde(default)]
    pub teams_app_id: Option<String>,
}

/// `chatMessageMention`. `id` matches `<at id="N">` in the body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mention {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    #[serde(default)]
    pub mention_text: Option<String>,
    #[serde(default)]
    pub mentioned: Option<ChatMessageFromIdentitySet>,
}

/// `chatMessageReaction`. `reaction_type` is a Unicode emoji, `custom`, or a legacy name
/// (`like`, `heart`, …), so it stays text.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    #[serde(default)]
    pub reaction_type: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub reaction_content_url: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub user: Option<ChatMessageFromIdentitySet>,
}

/// `chatMessageHistoryItem`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageHistoryItem {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub modified_date_time: Option<OffsetDateTime>,
    /// Flags enum on the wire (`reactionAdded`, `reactionRemoved`, …), kept as text.
    #[serde(default)]
    pub actions: Option<String>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
}

/// `chatMessageHostedContent` as listed (bytes and type are write-only: `null` when read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct HostedContent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "contentBytes", default)]
    pub content_bytes: Option<String>,
    #[serde(rename = "contentType", default)]
    pub content_type: Option<String>,
    #[serde(
        rename = "@microsoft.graph.temporaryId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub temporary_id: Option<String>,
}

/// `eventMessageDetail`: dozens of derived types whose shapes drift from the docs, so it is kept
/// as raw JSON with the `@odata.type` readable.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct EventDetail(pub Value);

impl EventDetail {
    /// e.g. `#microsoft.graph.chatRenamedEventMessageDetail`.
    pub fn odata_type(&self) -> Option<&str> {
        self.0.get("@odata.type").and_then(Value::as_str)
    }

    /// The raw JSON object.
    pub fn raw(&self) -> &Value {
        &self.0
    }
}

/// `chatMessagePolicyViolation` (DLP).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyViolation {
    #[serde(default)]
    pub dlp_action: Option<DlpAction>,
    #[serde(default)]
    pub justification_text: Option<String>,
    #[serde(default)]
    pub policy_tip: Option<Value>,
    #[serde(default)]
    pub user_action: Option<String>,
    #[serde(default)]
    pub verdict_details: Option<String>,
}

/// `channelIdentity` (channel messages only; `null` for chats).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelIdentity {
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// `chatMessage`, every field of the v1.0 resource. Only `id` is required; timestamps that are
/// present must be valid RFC 3339.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Unique only within its chat: key storage on `(chat id, message id)`.
    pub id: String,
    #[serde(default)]
    pub reply_to_id: Option<String>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub message_type: Option<ChatMessageType>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_modified_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_edited_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deleted_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub chat_id: Option<String>,
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    #[serde(default)]
    pub importance: Option<ChatMessageImportance>,
    #[serde(default)]
    pub locale: Option<String>,
    /// Opaque; never parse it.
    #[serde(default)]
    pub web_url: Option<String>,
    /// `null` for system events and deleted messages.
    #[serde(default)]
    pub from: Option<ChatMessageFromIdentitySet>,
    #[serde(default)]
    pub body: Option<ChatMessageBody>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: Vec<Attachment>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub mentions: Vec<Mention>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub reactions: Vec<Reaction>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub message_history: Vec<MessageHistoryItem>,
    /// Only present when expanded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub hosted_contents: Vec<HostedContent>,
    #[serde(default)]
    pub event_detail: Option<EventDetail>,
    #[serde(default)]
    pub policy_violation: Option<PolicyViolation>,
    #[serde(default)]
    pub on_behalf_of: Option<ChatMessageFromIdentitySet>,
    /// The JSON exactly as Graph sent it (unknown fields included), for storage.
    #[serde(skip)]
    pub raw: Value,
}

impl ChatMessage {
    /// Parses one message and keeps its raw JSON.
    pub fn from_json(raw: Value) -> Result<Self, serde_json::Error> {
        let mut message: ChatMessage = serde_json::from_value(raw.clone())?;
        message.raw = raw;
        Ok(message)
    }

    /// The human sender, if the message was sent by a user (not an app, bot or the system).
    pub fn sender_user(&self) -> Option<&Identity> {
        self.from.as_ref().and_then(|from| from.user.as_ref())
    }

    /// True for the system events that Graph names `unknownFutureValue` without the `Prefer`
    /// header, or `systemEventMessage`/`chatEvent` with it.
    pub fn is_system_event(&self) -> bool {
        matches!(
            self.message_type,
            Some(ChatMessageType::SystemEventMessage)
                | Some(ChatMessageType::ChatEvent)
                | Some(ChatMessageType::UnknownFutureValue)
        ) || self.event_detail.is_some()
    }
}

/// `chatMessageInfo` (`chat.lastMessagePreview`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageInfo {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub is_deleted: Option<bool>,
    #[serde(default)]
    pub message_type: Option<ChatMessageType>,
    #[serde(default)]
    pub event_detail: Option<EventDetail>,
    #[serde(default)]
    pub from: Option<ChatMessageFromIdentitySet>,
    #[serde(default)]
    pub body: Option<ChatMessageBody>,
}

/// `chatViewpoint` (delegated calls only).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatViewpoint {
    #[serde(default)]
    pub is_hidden: Option<bool>,
    /// `0001-01-01T00:00:00Z` means "never read".
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_message_read_date_time: Option<OffsetDateTime>,
}

/// `conversationMember` / `aadUserConversationMember`. Key people by `user_id` (+ `tenant_id`),
/// never by the opaque membership `id`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMember {
    #[serde(
        rename = "@odata.type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// `0001-01-01T00:00:00Z` means the whole history is visible.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub visible_history_start_date_time: Option<OffsetDateTime>,
}

/// `chat`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    /// Opaque (`19:…@thread.v2`, `19:{a}_{b}@unq.gbl.spaces`, …).
    pub id: String,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub chat_type: Option<ChatType>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_date_time: Option<OffsetDateTime>,
    /// Rename or membership change, *not* the last message time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_updated_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub online_meeting_info: Option<Value>,
    #[serde(default)]
    pub viewpoint: Option<ChatViewpoint>,
    #[serde(default)]
    pub is_hidden_for_all_members: Option<bool>,
    /// Only when `$expand=members` (capped at 25 by Graph).
    #[serde(default, deserialize_with = "null_as_default")]
    pub members: Vec<ConversationMember>,
    /// Only when `$expand=lastMessagePreview`; `null` if no message was ever sent.
    #[serde(default)]
    pub last_message_preview: Option<ChatMessageInfo>,
    /// The JSON exactly as Graph sent it.
    #[serde(skip)]
    pub raw: Value,
}

impl Chat {
    /// Parses one chat and keeps its raw JSON.
    pub fn from_json(raw: Value) -> Result<Self, serde_json::Error> {
        let mut chat: Chat = serde_json::from_value(raw.clone())?;
        chat.raw = raw;
        Ok(chat)
    }
}

/// `user` (`GET /me` default projection).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Entra object id (`oid`); Graph `from.user.id` of this user's messages.
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    /// May be `null`; fall back to `user_principal_name`.
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub preferred_language: Option<String>,
}

/// `verifiedDomain`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_default: Option<bool>,
    #[serde(default)]
    pub is_initial: Option<bool>,
    #[serde(default)]
    pub capabilities: Option<String>,
    #[serde(rename = "type", default)]
    pub domain_type: Option<String>,
}

/// `organization`: the signed-in user's tenant.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The tenant id.
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub verified_domains: Vec<VerifiedDomain>,
}

/// An item of a list response that could not be read; the rest of the page was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedItem {
    /// The item's `id`, if it had a readable one.
    pub id: Option<String>,
    /// Why it was skipped (the parse error), for logs and cycle summaries.
    pub reason: String,
}

/// Splits raw list items into parsed ones and [`SkippedItem`]s.
pub(crate) fn parse_items<T>(
    values: Vec<Value>,
    parse: impl Fn(Value) -> Result<T, serde_json::Error>,
) -> (Vec<T>, Vec<SkippedItem>) {
    let mut parsed = Vec::with_capacity(values.len());
    let mut skipped = Vec::new();
    for value in values {
        let probe_for_id = value.get("id").cloned();
        match parse(value) {
            Ok(item) => parsed.push(item),
            Err(error) => skipped.push(SkippedItem {
                id: probe_for_id
                    .as_ref()
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                reason: error.to_string(),
            }),
        }
    }
    (parsed, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_enum_values_are_kept_not_rejected() {
        let message = ChatMessage::from_json(json!({
            "id": "1", "messageType": "brandNewKind", "importance": "critical",
            "body": {"contentType": "markdown", "content": "x"}
        }))
        .unwrap();
        assert_eq!(
            message.message_type,
            Some(ChatMessageType::Unknown("brandNewKind".into()))
        );
        assert_eq!(
            message.importance,
            Some(ChatMessageImportance::Unknown("critical".into()))
        );
        assert_eq!(
            message.body.unwrap().content_type,
            Some(BodyContentType::Unknown("markdown".into()))
        );
    }

    #[test]
    fn null_lists_and_absent_fields_are_empty() {
        let message = ChatMessage::from_json(json!({
            "id": "1", "attachments": null, "mentions": null, "from": null
        }))
        .unwrap();
        assert!(message.attachments.is_empty());
        assert!(message.mentions.is_empty());
        assert!(message.reactions.is_empty());
        assert!(message.from.is_none());
        assert!(message.created_date_time.is_none());
    }

    #[test]
    fn bad_timestamp_and_missing_id_are_skipped_alone() {
        let values = vec![
            json!({"id": "good", "createdDateTime": "2021-03-17T06:47:05.123Z"}),
            json!({"id": "bad-time", "createdDateTime": "2021-03-1706:47:05.123Z"}),
            json!({"createdDateTime": "2021-03-17T06:47:05.123Z"}),
        ];
        let (messages, skipped) = parse_items(values, ChatMessage::from_json);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].id, "good");
        assert_eq!(skipped.len(), 2);
        assert_eq!(skipped[0].id.as_deref(), Some("bad-time"));
        assert!(skipped[1].id.is_none());
        assert!(
            skipped[1].reason.contains("id"),
            "reason was {}",
            skipped[1].reason
        );
    }

    #[test]
    fn raw_json_keeps_unknown_fields() {
        let raw = json!({"id": "1", "someFutureField": {"a": 1}});
        let message = ChatMessage::from_json(raw.clone()).unwrap();
        assert_eq!(message.raw, raw);
    }

    #[test]
    fn seven_digit_fractions_and_year_one_parse() {
        let message = ChatMessage::from_json(json!({
            "id": "1",
            "createdDateTime": "2021-03-17T08:59:08.1366667Z",
            "lastModifiedDateTime": "0001-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(message.created_date_time.unwrap().nanosecond(), 136_666_700);
        assert_eq!(message.last_modified_date_time.unwrap().year(), 1);
    }

    #[test]
    fn event_detail_exposes_its_odata_type() {
        let message = ChatMessage::from_json(json!({
            "id": "1657661644786", "messageType": "unknownFutureValue", "from": null,
            "body": {"contentType": "html", "content": "<systemEventMessage/>"},
            "eventDetail": {"@odata.type": "#microsoft.graph.callEndedEventMessageDetail"}
        }))
        .unwrap();
        assert!(message.is_system_event());
        assert_eq!(
            message.event_detail.unwrap().odata_type(),
            Some("#microsoft.graph.callEndedEventMessageDetail")
        );
    }

    #[test]
    fn application_sender_has_no_user() {
        let message = ChatMessage::from_json(json!({
            "id": "1", "messageType": "message",
            "from": {"user": null, "application": {"id": "app-1", "displayName": "Syncro"}},
            "attachments": [{"id": "x", "contentType": "application/vnd.microsoft.card.adaptive", "content": "{}"}]
        }))
        .unwrap();
        assert!(message.sender_user().is_none());
        assert_eq!(
            message
                .from
                .unwrap()
                .application
                .unwrap()
                .display_name
                .as_deref(),
            Some("Syncro")
        );
        assert_eq!(message.attachments[0].content.as_deref(), Some("{}"));
    }
}
