//! Replays every recorded list/single payload in `fixtures/graph/` through a scenario and reads it
//! back through the Graph routes: the served objects must equal the recordings field for field.
//! (The simulator adds `@odata.context` to entities recorded without one; nothing else differs.)

use m365_sim::{Scenario, demo};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestSim, demo_world, test_config};

const PREFER: (&str, &str) = ("Prefer", "include-unknown-enum-members");
const REPLAY_TENANT: &str = "d95beecc-ea5b-5387-b6f4-0f590c4b915e";
const CALLER: &str = "aaaaaaaa-0000-4000-8000-00000000c0de";
const CALLER_UPN: &str = "replay.caller@replay.example";

/// Recordings whose own dates are malformed (fixture INDEX: "Schema check: fails (expected)").
const KNOWN_SCHEMA_FAILURES: [&str; 3] = ["10-", "26-", "32-"];

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/graph/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn definition(name: &str, definition: &'static str) -> &'static str {
    if KNOWN_SCHEMA_FAILURES
        .iter()
        .any(|prefix| name.starts_with(prefix))
    {
        ""
    } else {
        definition
    }
}

/// The demo world plus the recordings' tenant, a caller who may see every replayed chat, and `chats`.
async fn replay_sim(chats: Vec<Value>, extra_users: Vec<Value>) -> (TestSim, String) {
    let mut world = serde_json::to_value(demo_world()).unwrap();
    world["tenants"].as_array_mut().unwrap().push(json!({"id": REPLAY_TENANT, "displayName": "Replay", "verifiedDomains": ["replay.example", "contoso.com"]}));
    let users = world["users"].as_array_mut().unwrap();
    users.push(json!({"id": CALLER, "tenantId": REPLAY_TENANT, "userPrincipalName": CALLER_UPN, "displayName": "Replay Caller"}));
    users.extend(extra_users);
    world["chats"] = Value::Array(
        chats
            .into_iter()
            .map(|mut chat| {
                chat["@sim.visibleTo"] = json!([CALLER]);
                chat
            })
            .collect(),
    );
    let scenario: Scenario = serde_json::from_value(world).unwrap();
    let sim = TestSim::start_with(test_config(), scenario).await;
    let token = sim.connect(CALLER_UPN).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (sim, token)
}

fn without_members(chat: &Value) -> (Value, Value) {
    let mut object = chat.clone();
    let members = object
        .as_object_mut()
        .unwrap()
        .remove("members")
        .unwrap_or(json!([]));
    (object, members)
}

async fn replay_chat_list(name: &str, query: &str) {
    let recorded = fixture(name);
    let chats = recorded["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|chat| {
            let (mut object, members) = without_members(chat);
            object["members"] = members;
            object
        })
        .collect();
    let (sim, token) = replay_sim(chats, vec![]).await;
    let served = sim
        .graph_get_with(
            &format!("/v1.0/chats{query}"),
            &token,
            definition(name, "microsoft.graph.chatCollectionResponse"),
            &[PREFER],
        )
        .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
    assert_eq!(served.body["value"], recorded["value"], "{name}");
    assert_eq!(
        served.body["@odata.count"], recorded["@odata.count"],
        "{name}"
    );
}

#[tokio::test]
async fn chat_lists_replay_unchanged() {
    replay_chat_list("01-chats-list-basic-viewpoint.json", "").await;
    replay_chat_list("02-chats-list-expand-members.json", "?$expand=members").await;
    replay_chat_list(
        "04-chats-list-expand-lastmessagepreview-bot-system.json",
        "?$expand=lastMessagePreview",
    )
    .await;
}

#[tokio::test]
async fn a_single_chat_with_members_replays_unchanged() {
    let name = "05-chat-get-group-expand-members.json";
    let recorded = fixture(name);
    let (object, members) = without_members(&recorded);
    let mut chat = object;
    chat["members"] = members;
    let id = recorded["id"].as_str().unwrap().to_owned();
    let (sim, token) = replay_sim(vec![chat], vec![]).await;
    let served = sim
        .graph_get_with(
            &format!("/v1.0/chats/{id}?$expand=members"),
            &token,
            definition(name, "microsoft.graph.chat"),
            &[PREFER],
        )
        .await;
    assert_eq!(served.body, recorded);
}

#[tokio::test]
async fn chat_members_replay_unchanged() {
    let name = "08-chat-members-cli-recorded.json";
    let recorded = fixture(name);
    let chat =
        json!({"id": "19:replay-members@thread.v2", "chatType": "oneOnOne", "members": recorded});
    let (sim, token) = replay_sim(vec![chat], vec![]).await;
    let served = sim
        .graph_get(
            "/v1.0/chats/19:replay-members@thread.v2/members",
            &token,
            definition(name, "microsoft.graph.conversationMemberCollectionResponse"),
        )
        .await;
    assert_eq!(served.body["value"], recorded);
}

async fn replay_message_page(name: &str, recorded_page: Vec<Value>, stored: Vec<Value>) {
    let chat_id = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2";
    let chat = json!({"id": chat_id, "chatType": "group", "messages": stored});
    let (sim, token) = replay_sim(vec![chat], vec![]).await;
    let served = sim
        .graph_get_with(
            &format!("/v1.0/chats/{chat_id}/messages?$top=50"),
            &token,
            definition(name, "microsoft.graph.chatMessageCollectionResponse"),
            &[PREFER],
        )
        .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
    assert_eq!(served.body["value"], Value::Array(recorded_page), "{name}");
}

#[tokio::test]
async fn message_pages_replay_unchanged_newest_first() {
    let page = fixture("10-messages-page-prefer-include-unknown-enum-members.json")["value"]
        .as_array()
        .unwrap()
        .clone();
    replay_message_page(
        "10-messages-page-prefer-include-unknown-enum-members.json",
        page.clone(),
        page,
    )
    .await;
    let page = fixture("13-messages-page-cli-recorded-new-client-html.json")
        .as_array()
        .unwrap()
        .clone();
    replay_message_page(
        "13-messages-page-cli-recorded-new-client-html.json",
        page.clone(),
        page,
    )
    .await;
    // 14 was stored oldest→newest by its recorder; Graph serves newest first.
    let stored = fixture("14-replies-recorded-abridged-bot-cards.json")
        .as_array()
        .unwrap()
        .clone();
    let mut newest_first = stored.clone();
    newest_first.reverse();
    replay_message_page(
        "14-replies-recorded-abridged-bot-cards.json",
        newest_first,
        stored,
    )
    .await;
}

#[tokio::test]
async fn the_same_page_without_the_prefer_header_hides_system_event_message() {
    let page = fixture("10-messages-page-prefer-include-unknown-enum-members.json")["value"]
        .as_array()
        .unwrap()
        .clone();
    let chat_id = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2";
    let (sim, token) = replay_sim(
        vec![json!({"id": chat_id, "chatType": "group", "messages": page})],
        vec![],
    )
    .await;
    let served = sim
        .graph_get(&format!("/v1.0/chats/{chat_id}/messages"), &token, "")
        .await;
    assert_eq!(served.body["value"][2]["messageType"], "unknownFutureValue");
    assert_eq!(served.body["value"][0]["messageType"], "message");
}

#[tokio::test]
async fn hosted_contents_replay_unchanged() {
    let name = "15-hostedcontents-list-chat-message.json";
    let recorded = fixture(name);
    let page = fixture("10-messages-page-prefer-include-unknown-enum-members.json")["value"]
        .as_array()
        .unwrap()
        .clone();
    let mut with_image = page[1].clone();
    assert_eq!(with_image["id"], "1615971548136");
    with_image["hostedContents"] = json!([{"id": recorded["value"][0]["id"], "contentType": "image/png", "contentBytes": "iVBORw0KGgo="}]);
    let chat_id = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2";
    let (sim, token) = replay_sim(
        vec![json!({"id": chat_id, "chatType": "group", "messages": [with_image]})],
        vec![],
    )
    .await;
    let served = sim
        .graph_get(
            &format!("/v1.0/chats/{chat_id}/messages/1615971548136/hostedContents"),
            &token,
            "microsoft.graph.chatMessageHostedContentCollectionResponse",
        )
        .await;
    assert_eq!(served.body["value"], recorded["value"]);
    assert_eq!(served.body["@odata.count"], recorded["@odata.count"]);
    // The stored message itself is served without the simulator-only hostedContents key.
    let message = sim
        .graph_get_with(
            &format!("/v1.0/chats/{chat_id}/messages/1615971548136"),
            &token,
            "microsoft.graph.chatMessage",
            &[PREFER],
        )
        .await;
    let mut expected = page[1].clone();
    expected.as_object_mut().unwrap().insert(
        "@odata.context".into(),
        message.body["@odata.context"].clone(),
    );
    assert_eq!(message.body, expected);
}

#[tokio::test]
async fn single_messages_replay_unchanged() {
    let names = [
        "17-message-recorded-mention-of-bot.json",
        "18-message-channel-edited-cli-recorded.json",
        "19-send-chat-text-201.json",
        "21-send-channel-mention-user-201.json",
        "22-send-channel-thumbnail-card-201.json",
        "23-send-channel-file-reference-201.json",
        "25-send-channel-mention-channel-conversation-201.json",
        "26-sys-chat-renamed.json",
        "28-sys-members-deleted.json",
        "29-sys-members-joined-meeting-guest.json",
        "31-sys-meeting-policy-updated.json",
        "32-sys-call-started.json",
        "34-sys-call-recording.json",
        "36-sys-message-pinned.json",
        "38-sys-teams-app-installed.json",
    ];
    let chats: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(n, name)| json!({"id": format!("19:replay-{n}@thread.v2"), "chatType": "group", "messages": [fixture(name)]}))
        .collect();
    let (sim, token) = replay_sim(chats, vec![]).await;
    for (n, name) in names.iter().enumerate() {
        let recorded = fixture(name);
        let id = recorded["id"].as_str().unwrap();
        let served = sim
            .graph_get_with(
                &format!("/v1.0/chats/19:replay-{n}@thread.v2/messages/{id}"),
                &token,
                definition(name, "microsoft.graph.chatMessage"),
                &[PREFER],
            )
            .await;
        assert_eq!(served.status, StatusCode::OK, "{name}: {}", served.text);
        let mut served = served.body;
        if recorded.get("@odata.context").is_none() {
            assert!(
                served
                    .as_object_mut()
                    .unwrap()
                    .remove("@odata.context")
                    .is_some()
            );
        }
        assert_eq!(served, recorded, "{name}");
    }
}

#[tokio::test]
async fn me_replays_the_recorded_default_projection() {
    let recorded = fixture("42-me-default-properties.json");
    let mut user = recorded.clone();
    user["tenantId"] = json!(REPLAY_TENANT);
    let (sim, _) = replay_sim(vec![], vec![user]).await;
    let token = sim.connect("CaseyL@contoso.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut served = sim
        .graph_get("/v1.0/me", &token, "microsoft.graph.user")
        .await
        .body;
    assert!(
        served
            .as_object_mut()
            .unwrap()
            .remove("@odata.context")
            .is_some()
    );
    assert_eq!(served, recorded);
    let _ = demo::SUPPORT_UPN;
}
