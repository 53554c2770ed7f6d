//! Every real payload in `shared/fixtures/graph/` goes through the model it belongs to.

use std::path::PathBuf;

use msgraph::model::{
    ApplicationIdentityType, Attachment, Chat, ChatMessage, ChatMessageType, ChatType,
    ConversationMember, HostedContent, ODataCollection, ODataError, User,
};
use msgraph::oauth::{AadErrorBody, TokenErrorClass, parse_token_response};
use serde_json::Value;
use time::OffsetDateTime;

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/graph");
    assert!(
        dir.is_dir(),
        "the Graph fixtures folder {} is missing: these tests need the read-only `shared` folder next to the checkout",
        dir.display()
    );
    dir
}

fn load(name_prefix: &str) -> Value {
    let dir = fixtures_dir();
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(name_prefix)
        })
        .unwrap_or_else(|| panic!("no fixture starting with {name_prefix}"));
    serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap()
}

/// A messages page may be an OData envelope or (CLI recordings) a bare array.
fn items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("value") {
            Some(Value::Array(items)) => items,
            _ => panic!("expected a value array"),
        },
        other => panic!("expected a list, got {other}"),
    }
}

/// Files whose doc sample carries the invalid `2021-03-1706:47:05.123Z` timestamp: those items
/// must be rejected alone.
const BAD_TIMESTAMP_MESSAGES: &[&str] = &["26-", "32-"];

/// Parses one fixture with the model its name says it is; returns what was checked.
fn check(name: &str, value: Value) -> Result<String, String> {
    let fail = |what: &str, error: &dyn std::fmt::Display| Err(format!("{what}: {error}"));
    if name.contains("token-success") {
        let bytes = serde_json::to_vec(&value).unwrap();
        return match parse_token_response(&bytes, &[], OffsetDateTime::UNIX_EPOCH) {
            Ok(tokens) if tokens.scopes.is_empty() => Err("no scopes parsed".into()),
            Ok(_) => Ok("token response".into()),
            Err(error) => fail("token response", &error),
        };
    }
    if name.contains("token-error") {
        return match serde_json::from_value::<AadErrorBody>(value) {
            Ok(body) if body.error_codes.is_empty() => Err("no error_codes".into()),
            Ok(_) => Ok("token error".into()),
            Err(error) => fail("token error", &error),
        };
    }
    if name.contains("-graph-4") {
        return match serde_json::from_value::<ODataError>(value) {
            Ok(body) if body.error.code.is_empty() => Err("empty code".into()),
            Ok(_) => Ok("graph error".into()),
            Err(error) => fail("graph error", &error),
        };
    }
    if name.contains("chats-list") {
        let page: ODataCollection<Value> =
            serde_json::from_value(value).map_err(|e| e.to_string())?;
        for chat in page.value {
            Chat::from_json(chat).map_err(|e| format!("chat: {e}"))?;
        }
        return Ok("chat page".into());
    }
    if name.contains("chat-get") {
        return Chat::from_json(value)
            .map(|_| "chat".into())
            .map_err(|e| e.to_string());
    }
    if name.contains("chat-members") {
        for member in items(value) {
            serde_json::from_value::<ConversationMember>(member).map_err(|e| e.to_string())?;
        }
        return Ok("members".into());
    }
    if name.contains("messages-page") || name.contains("replies") {
        let mut skipped = 0;
        for message in items(value) {
            if ChatMessage::from_json(message).is_err() {
                skipped += 1;
            }
        }
        // Only the documented bad-timestamp item of file 10 may be rejected.
        let allowed = if name.starts_with("10-") { 1 } else { 0 };
        return if skipped == allowed {
            Ok("message page".into())
        } else {
            Err(format!("{skipped} items rejected"))
        };
    }
    if name.contains("hostedcontents") {
        let page: ODataCollection<HostedContent> =
            serde_json::from_value(value).map_err(|e| e.to_string())?;
        return if page.value.iter().all(|h| h.id.is_some()) {
            Ok("hosted contents".into())
        } else {
            Err("no id".into())
        };
    }
    if name.contains("-message-") || name.contains("-send-") || name.contains("-sys-") {
        let must_fail = BAD_TIMESTAMP_MESSAGES
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if must_fail {
            // Rejected because of the timestamp and nothing else: repaired, it parses.
            let repaired: Value = serde_json::from_str(
                &value
                    .to_string()
                    .replace("2021-03-1706:47:05.123Z", "2021-03-17T06:47:05.123Z"),
            )
            .unwrap();
            return match (
                ChatMessage::from_json(value),
                ChatMessage::from_json(repaired),
            ) {
                (Err(_), Ok(_)) => Ok("message rejected for its timestamp".into()),
                (Ok(_), _) => Err("a message with an invalid timestamp was accepted".into()),
                (Err(_), Err(error)) => Err(format!("message: {error}")),
            };
        }
        return ChatMessage::from_json(value)
            .map(|_| "message".into())
            .map_err(|e| format!("message: {e}"));
    }
    if name.contains("fragment-attachment") {
        let Value::Object(groups) = value else {
            return Err("not an object".into());
        };
        for (label, attachments) in groups {
            serde_json::from_value::<Vec<Attachment>>(attachments)
                .map_err(|e| format!("{label}: {e}"))?;
        }
        return Ok("attachments".into());
    }
    if name.contains("-me-") {
        return serde_json::from_value::<User>(value)
            .map(|_| "user".into())
            .map_err(|e| e.to_string());
    }
    Err("no model is known for this fixture: add it to the fixture test".into())
}

#[test]
fn every_fixture_parses_through_its_model() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let value: Value = match serde_json::from_slice(&std::fs::read(&path).unwrap()) {
            Ok(value) => value,
            Err(error) => {
                failures.push(format!("{name}: not JSON: {error}"));
                continue;
            }
        };
        match check(&name, value) {
            Ok(_) => checked += 1,
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures that did not parse:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 40, "only {checked} fixtures were checked");
}

#[test]
fn bad_timestamp_item_is_skipped_and_the_rest_of_the_page_kept() {
    let values = items(load("10-"));
    let (ok, bad): (Vec<_>, Vec<_>) = values
        .into_iter()
        .map(ChatMessage::from_json)
        .partition(Result::is_ok);
    assert_eq!(ok.len(), 2);
    assert_eq!(bad.len(), 1);
    let system = items(load("10-")).remove(2);
    assert_eq!(system["messageType"], "systemEventMessage");
}

#[test]
fn chat_list_with_previews_reads_bot_and_system_senders() {
    let page: ODataCollection<Value> = serde_json::from_value(load("04-")).unwrap();
    assert!(page.next_link.as_deref().unwrap().ends_with("%3d"));
    let chats: Vec<Chat> = page
        .value
        .into_iter()
        .map(|c| Chat::from_json(c).unwrap())
        .collect();
    assert_eq!(chats[0].chat_type, Some(ChatType::OneOnOne));
    let bot_preview = chats[1].last_message_preview.as_ref().unwrap();
    let from = bot_preview.from.as_ref().unwrap();
    assert!(from.user.is_none());
    assert_eq!(
        from.application.as_ref().unwrap().application_identity_type,
        Some(ApplicationIdentityType::Bot)
    );
    let system = chats
        .iter()
        .filter_map(|chat| chat.last_message_preview.as_ref())
        .find(|preview| preview.event_detail.is_some())
        .expect("a system-event preview");
    assert!(system.from.is_none());
    assert_eq!(
        system.event_detail.as_ref().unwrap().odata_type(),
        Some("#microsoft.graph.membersAddedEventMessageDetail")
    );
}

#[test]
fn sent_message_mentions_and_channel_conversation_targets() {
    let user_mention = ChatMessage::from_json(load("21-")).unwrap();
    assert_eq!(user_mention.mentions[0].id, Some(0));
    assert_eq!(
        user_mention.mentions[0].mention_text.as_deref(),
        Some("Harper Quinlan")
    );
    let channel_mention = ChatMessage::from_json(load("25-")).unwrap();
    let mentioned = channel_mention.mentions[0].mentioned.as_ref().unwrap();
    assert!(mentioned.user.is_none());
    assert!(mentioned.conversation.is_some());
    let sent = ChatMessage::from_json(load("19-")).unwrap();
    assert_eq!(sent.message_type, Some(ChatMessageType::Message));
    assert_eq!(sent.raw, load("19-"), "the raw JSON is kept for storage");
}

#[test]
fn quoted_reply_and_file_reference_fragments() {
    let fragments = load("39-");
    let quoted: Vec<Attachment> =
        serde_json::from_value(fragments["messageReference"].clone()).unwrap();
    assert_eq!(quoted[0].content_type.as_deref(), Some("messageReference"));
    let content: Value = serde_json::from_str(quoted[0].content.as_deref().unwrap()).unwrap();
    assert!(content.get("messagePreview").is_some());
    let file: Vec<Attachment> = serde_json::from_value(fragments["fileReference"].clone()).unwrap();
    assert_eq!(file[0].content_type.as_deref(), Some("reference"));
    assert!(
        file[0]
            .content_url
            .as_deref()
            .unwrap()
            .contains("Shared Documents")
    );
}

#[test]
fn token_error_fixtures_classify_from_codes() {
    let class = |prefix: &str, status: u16| {
        serde_json::from_value::<AadErrorBody>(load(prefix))
            .unwrap()
            .into_token_error(Some(status))
    };
    let expired = class("50-", 400);
    assert_eq!(expired.class, TokenErrorClass::ReconnectRequired);
    assert_eq!(expired.error_codes, vec![700082]);
    assert!(expired.trace_id.is_some() && expired.correlation_id.is_some());
    assert_eq!(class("51-", 401).class, TokenErrorClass::Configuration);
    // `invalid_grant` paired with an MFA code is interaction, not reconnect.
    let mfa = class("53-", 400);
    assert_eq!(mfa.class, TokenErrorClass::InteractionRequired);
    assert_eq!(mfa.suberror.as_deref(), Some("basic_action"));
    assert_eq!(class("47-", 400).class, TokenErrorClass::Configuration);
    assert_eq!(class("54-", 400).class, TokenErrorClass::Other);
    let text = expired.to_string();
    assert!(
        text.contains("AADSTS700082") && text.contains("reconnect"),
        "{text}"
    );
}

#[test]
fn token_success_fixtures_keep_refresh_tokens_when_given() {
    let parse = |prefix: &str| {
        parse_token_response(
            &serde_json::to_vec(&load(prefix)).unwrap(),
            &[],
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
    };
    let with_refresh = parse("43-");
    assert!(with_refresh.refresh_token.is_some());
    assert_eq!(
        with_refresh.expires_at,
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(3736)
    );
    assert_eq!(with_refresh.scopes, vec!["Mail.Read", "User.Read"]);
    let encoded = parse("44-");
    assert_eq!(
        encoded.scopes,
        vec!["https://graph.microsoft.com/mail.read"]
    );
    assert!(encoded.id_token.is_some());
    assert!(parse("46-").refresh_token.is_none());
}

#[test]
fn graph_error_bodies_keep_their_request_ids() {
    let throttled: ODataError = serde_json::from_value(load("62-")).unwrap();
    assert_eq!(throttled.error.code, "TooManyRequests");
    let inner = throttled.error.inner_error.unwrap();
    assert_eq!(
        inner.request_id.as_deref(),
        Some("22777855-304a-5c52-9a4a-dca70ff3d298")
    );
    assert_eq!(inner.date.as_deref(), Some("2020-08-18T12:51:51"));
}
