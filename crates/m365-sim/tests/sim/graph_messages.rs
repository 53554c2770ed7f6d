//! Graph: chat messages — paging, $orderby/$filter rules, enum handling, edits/deletes/reactions,
//! posting (201, size, throttling, federation) and hosted contents.

use base64::Engine as _;
use m365_sim::{RateLimit, ThrottleLimits, demo};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestSim, demo_world, test_config};

const PAGE: &str = "microsoft.graph.chatMessageCollectionResponse";

async fn chat_with_five_messages(sim: &TestSim) -> (String, Vec<String>) {
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        sim.advance(10).await;
        let posted = sim
            .user_says(
                &chat,
                demo::CONTOSO_USER_1_ID,
                &format!("<p>message {n}</p>"),
            )
            .await;
        assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
        ids.push(posted.body["id"].as_str().unwrap().to_owned());
    }
    (chat, ids)
}

async fn all_pages(sim: &TestSim, token: &str, first: &str) -> Vec<String> {
    let mut url = first.to_owned();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let page = sim.graph_get(&url, token, PAGE).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        ids.extend(
            page.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return ids,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn paging_with_top_two_over_five_messages_returns_each_once_newest_first() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let (chat, mut ids) = chat_with_five_messages(&sim).await;
    ids.reverse();
    assert_eq!(
        all_pages(&sim, &token, &format!("/v1.0/chats/{chat}/messages?$top=2")).await,
        ids
    );
    let by_created = all_pages(
        &sim,
        &token,
        &format!("/v1.0/chats/{chat}/messages?$top=2&$orderby=createdDateTime%20desc"),
    )
    .await;
    assert_eq!(by_created, ids);
}

#[tokio::test]
async fn a_next_link_whose_skiptoken_was_decoded_is_rejected() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let (chat, _) = chat_with_five_messages(&sim).await;
    let page = sim
        .graph_get(&format!("/v1.0/chats/{chat}/messages?$top=2"), &token, PAGE)
        .await;
    let next = page.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/v1.0/chats/{chat}/messages?", sim.base)),
        "{next}"
    );
    assert!(next.ends_with("%3d%3d"), "{next}");
    let decoded = next.replace("%3d", "=");
    let answer = sim.graph_get(&decoded, &token, "").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"]["code"], "BadRequest");
}

#[tokio::test]
async fn filter_without_orderby_is_ignored_and_with_it_is_honoured() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let (chat, ids) = chat_with_five_messages(&sim).await;
    // Message 3 was created at 09:00:30 (five posts, 10 s apart, after the 09:00 start).
    let filter = "lastModifiedDateTime%20gt%202026-03-02T09:00:30.000Z";
    let ignored = sim
        .graph_get(
            &format!("/v1.0/chats/{chat}/messages?$filter={filter}"),
            &token,
            PAGE,
        )
        .await;
    assert_eq!(ignored.body["value"].as_array().unwrap().len(), 5);
    let honoured = sim
        .graph_get(
            &format!(
                "/v1.0/chats/{chat}/messages?$orderby=lastModifiedDateTime%20desc&$filter={filter}"
            ),
            &token,
            PAGE,
        )
        .await;
    let got: Vec<&str> = honoured.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    // A filter on the other property than $orderby is ignored too.
    let mismatched = sim
        .graph_get(
            &format!(
                "/v1.0/chats/{chat}/messages?$orderby=createdDateTime%20desc&$filter={filter}"
            ),
            &token,
            PAGE,
        )
        .await;
    assert_eq!(mismatched.body["value"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn ge_and_le_and_created_gt_are_refused_with_the_real_400() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    for (orderby, clause, kind) in [
        (
            "lastModifiedDateTime",
            "lastModifiedDateTime ge 2026-03-02T09:00:00Z",
            "GreaterThanOrEqual",
        ),
        (
            "lastModifiedDateTime",
            "lastModifiedDateTime le 2026-03-02T09:00:00Z",
            "LessThanOrEqual",
        ),
        (
            "createdDateTime",
            "createdDateTime gt 2026-03-02T09:00:00Z",
            "GreaterThan",
        ),
    ] {
        let url = format!(
            "/v1.0/chats/{chat}/messages?$orderby={orderby}%20desc&$filter={}",
            clause.replace(' ', "%20")
        );
        let answer = sim.graph_get(&url, &token, "").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{clause}");
        assert_eq!(
            answer.body["error"]["message"],
            format!("operationKind '{kind}' is not allowed")
        );
    }
    let allowed = sim
        .graph_get(&format!("/v1.0/chats/{chat}/messages?$orderby=createdDateTime%20desc&$filter=createdDateTime%20lt%202026-03-02T09:00:00Z"), &token, PAGE)
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
}

#[tokio::test]
async fn edits_deletes_and_reactions_move_last_modified_and_resurface_old_messages() {
    let sim = TestSim::start().await;
    let (chat, ids) = chat_with_five_messages(&sim).await;
    sim.advance(3600).await;
    let token = sim.support_token().await;
    let cursor = "2026-03-02T09:30:00.000Z";
    let url = format!(
        "/v1.0/chats/{chat}/messages?$orderby=lastModifiedDateTime%20desc&$filter=lastModifiedDateTime%20gt%20{cursor}"
    );
    let newer = async |sim: &TestSim| {
        sim.graph_get(&url, &token, PAGE).await.body["value"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(newer(&sim).await.is_empty());

    let edited = sim
        .send(
            sim.http
                .patch(sim.url(&format!("/_sim/chats/{chat}/messages/{}", ids[0])))
                .json(&json!({"html": "<p>edited</p>"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);
    let after_edit = newer(&sim).await;
    assert_eq!(after_edit.len(), 1);
    assert_eq!(after_edit[0]["id"], ids[0].as_str());
    assert_eq!(
        after_edit[0]["lastEditedDateTime"],
        "2026-03-02T10:00:50.000Z"
    );
    assert_eq!(
        after_edit[0]["lastModifiedDateTime"],
        "2026-03-02T10:00:50.000Z"
    );
    assert_eq!(after_edit[0]["body"]["content"], "<p>edited</p>");

    sim.advance(5).await;
    let reacted = sim
        .control_post(
            &format!("/_sim/chats/{chat}/messages/{}/reactions", ids[1]),
            &json!({"user": demo::SUPPORT_USER_ID, "reactionType": "like"}),
        )
        .await;
    assert_eq!(reacted.status, StatusCode::OK, "{}", reacted.text);
    sim.advance(5).await;
    let deleted = sim
        .send(
            sim.http
                .delete(sim.url(&format!("/_sim/chats/{chat}/messages/{}", ids[2]))),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK);

    let changed = newer(&sim).await;
    let order: Vec<&str> = changed.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()],
        "newest modification first"
    );
    let reaction = &changed[1];
    assert_eq!(reaction["lastModifiedDateTime"], "2026-03-02T10:00:55.000Z");
    assert!(
        reaction["lastEditedDateTime"].is_null(),
        "a reaction is not an edit"
    );
    assert_eq!(reaction["reactions"][0]["reactionType"], "like");
    assert_eq!(reaction["messageHistory"][0]["actions"], "reactionAdded");
    assert_eq!(changed[0]["deletedDateTime"], "2026-03-02T10:01:00.000Z");
}

#[tokio::test]
async fn system_messages_are_unknown_future_value_unless_the_prefer_header_asks() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let system = json!({"messageType": "systemEventMessage", "from": null, "body": {"contentType": "html", "content": "<systemEventMessage/>"},
        "eventDetail": {"@odata.type": "#microsoft.graph.chatRenamedEventMessageDetail", "chatId": chat, "chatDisplayName": "Renamed", "initiator": null}});
    let posted = sim
        .control_post(
            &format!("/_sim/chats/{chat}/messages"),
            &json!({"from": demo::CONTOSO_USER_1_ID, "message": system}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
    let plain = sim
        .graph_get(&format!("/v1.0/chats/{chat}/messages"), &token, PAGE)
        .await;
    assert_eq!(plain.body["value"][0]["messageType"], "unknownFutureValue");
    assert!(plain.body["value"][0]["from"].is_null());
    let preferred = sim
        .graph_get_with(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            PAGE,
            &[("Prefer", "include-unknown-enum-members")],
        )
        .await;
    assert_eq!(
        preferred.body["value"][0]["messageType"],
        "systemEventMessage"
    );
}

#[tokio::test]
async fn posting_answers_201_with_the_caller_as_sender_and_the_message_is_listed() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let posted = sim
        .graph_post(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            &json!({"body": {"content": "Hello world"}}),
        )
        .await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.text);
    assert_eq!(posted.body["from"]["user"]["id"], demo::SUPPORT_USER_ID);
    assert_eq!(posted.body["from"]["user"]["tenantId"], demo::MSP_TENANT_ID);
    assert_eq!(
        posted.body["body"],
        json!({"contentType": "text", "content": "Hello world"})
    );
    assert_eq!(posted.body["chatId"], chat.as_str());
    assert_eq!(posted.body["createdDateTime"], "2026-03-02T09:00:00.000Z");
    let single = sim
        .graph_get(
            &format!(
                "/v1.0/chats/{chat}/messages/{}",
                posted.body["id"].as_str().unwrap()
            ),
            &token,
            "microsoft.graph.chatMessage",
        )
        .await;
    assert_eq!(single.body["body"]["content"], "Hello world");
    let shown = sim.control_get(&format!("/_sim/chats/{chat}")).await;
    assert_eq!(shown.body["messages"][0]["id"], posted.body["id"]);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_413() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let big = "x".repeat(28 * 1024 + 1);
    let answer = sim
        .graph_post(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            &json!({"body": {"contentType": "html", "content": big}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body["error"]["code"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn a_second_post_in_the_same_second_is_throttled_with_retry_after() {
    let config = m365_sim::SimConfig {
        throttling: ThrottleLimits {
            post_message_per_user_per_chat: Some(RateLimit::per_second(1)),
            ..ThrottleLimits::disabled()
        },
        ..test_config()
    };
    let sim = TestSim::start_with(config, demo_world()).await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let path = format!("/v1.0/chats/{chat}/messages");
    assert_eq!(
        sim.graph_post(&path, &token, &json!({"body": {"content": "one"}}))
            .await
            .status,
        StatusCode::CREATED
    );
    let throttled = sim
        .graph_post(&path, &token, &json!({"body": {"content": "two"}}))
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers["retry-after"], "1");
    assert_eq!(throttled.body["error"]["code"], "TooManyRequests");
    assert_eq!(throttled.body["error"]["innerError"]["status"], "429");
    sim.advance(1).await;
    assert_eq!(
        sim.graph_post(&path, &token, &json!({"body": {"content": "two"}}))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn posting_into_a_chat_whose_federation_is_now_blocked_is_403() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let blocked = sim
        .control_post(
            &format!("/_sim/tenants/{}/federation", demo::CONTOSO_TENANT_ID),
            &json!({"external_access": "blocked"}),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::OK);
    let answer = sim
        .graph_post(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            &json!({"body": {"content": "hi"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["error"]["code"], "Forbidden");
    // An allow-list naming the MSP's domain lets it through again.
    sim.control_post(
        &format!("/_sim/tenants/{}/federation", demo::CONTOSO_TENANT_ID),
        &json!({"external_access": "allowed", "allowed_domains": [demo::MSP_DOMAIN]}),
    )
    .await;
    let again = sim
        .graph_post(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            &json!({"body": {"content": "hi"}}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
}

#[tokio::test]
async fn posted_hosted_content_is_served_as_bytes() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let png = b"\x89PNG\r\n\x1a\nfake";
    let body = json!({
        "body": {"contentType": "html", "content": "<p>see</p><img src=\"../hostedContents/1/$value\">"},
        "hostedContents": [{"@microsoft.graph.temporaryId": "1", "contentBytes": base64::engine::general_purpose::STANDARD.encode(png), "contentType": "image/png"}],
    });
    let posted = sim
        .graph_post(&format!("/v1.0/chats/{chat}/messages"), &token, &body)
        .await;
    let message_id = posted.body["id"].as_str().unwrap();
    let listed = sim
        .graph_get(
            &format!("/v1.0/chats/{chat}/messages/{message_id}/hostedContents"),
            &token,
            "microsoft.graph.chatMessageHostedContentCollectionResponse",
        )
        .await;
    let hosted_id = listed.body["value"][0]["id"].as_str().unwrap();
    assert!(listed.body["value"][0]["contentBytes"].is_null());
    let content = posted.body["body"]["content"].as_str().unwrap();
    let src = format!(
        "{}/v1.0/chats/{chat}/messages/{message_id}/hostedContents/{hosted_id}/$value",
        sim.base
    );
    assert!(content.contains(&src), "{content}");
    let bytes = sim.http.get(&src).bearer_auth(&token).send().await.unwrap();
    assert_eq!(bytes.headers()["content-type"], "image/png");
    assert_eq!(bytes.bytes().await.unwrap().as_ref(), png);
}

#[tokio::test]
async fn posting_through_me_chats_is_refused_as_graph_does() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let answer = sim
        .graph_post(
            &format!("/v1.0/me/chats/{chat}/messages"),
            &token,
            &json!({"body": {"content": "x"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.body["error"]["message"],
        Value::from("Write requests are only supported on contained entities")
    );
}
