//! Graph: /me, /organization, listing chats (paging, ordering, expand, member cap).

use m365_sim::{ScenarioUser, demo};
use reqwest::StatusCode;
use serde_json::{Map, json};

use crate::support::{TestSim, demo_world, test_config};

#[tokio::test]
async fn me_and_organization_describe_the_signed_in_support_user_and_its_tenant() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let me = sim
        .graph_get("/v1.0/me", &token, "microsoft.graph.user")
        .await;
    assert_eq!(me.body["id"], demo::SUPPORT_USER_ID);
    assert_eq!(me.body["userPrincipalName"], demo::SUPPORT_UPN);
    assert_eq!(me.body["mail"], demo::SUPPORT_UPN);
    assert!(me.body.get("tenantId").is_none(), "/me has no tenant id");
    let org = sim.graph_get("/v1.0/organization", &token, "").await;
    assert_eq!(org.body["value"][0]["id"], demo::MSP_TENANT_ID);
    assert_eq!(org.body["value"][0]["displayName"], demo::MSP_TENANT_NAME);
    assert_eq!(
        org.body["value"][0]["verifiedDomains"][0]["name"],
        demo::MSP_DOMAIN
    );
    assert_eq!(
        org.body["value"][0]["verifiedDomains"][0]["isDefault"],
        true
    );
}

#[tokio::test]
async fn chats_page_newest_preview_first_with_opaque_skiptokens() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let mut expected = Vec::new();
    for (user, text) in [
        (demo::CONTOSO_USER_1_ID, "first"),
        (demo::CONTOSO_USER_2_ID, "second"),
        (demo::STAFF_USER_ID, "third"),
    ] {
        let chat = sim.chat_with_support(user).await;
        sim.advance(60).await;
        assert_eq!(
            sim.user_says(&chat, user, text).await.status,
            StatusCode::CREATED
        );
        expected.insert(0, chat);
    }
    let mut url = "/v1.0/me/chats?$expand=members,lastMessagePreview&$orderby=lastMessagePreview/createdDateTime%20desc&$top=2".to_owned();
    let mut seen = Vec::new();
    loop {
        let page = sim
            .graph_get(&url, &token, "microsoft.graph.chatCollectionResponse")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for chat in page.body["value"].as_array().unwrap() {
            assert_eq!(chat["members"].as_array().unwrap().len(), 2);
            assert!(chat["lastMessagePreview"]["body"]["content"].is_string());
            seen.push(chat["id"].as_str().unwrap().to_owned());
        }
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.contains("$skiptoken=") && next.ends_with("%3d%3d"),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let latest = sim.graph_get("/v1.0/chats?$expand=lastMessagePreview&$orderby=lastMessagePreview/createdDateTime desc&$top=1", &token, "microsoft.graph.chatCollectionResponse").await;
    assert_eq!(
        latest.body["value"][0]["lastMessagePreview"]["body"]["content"],
        "third"
    );
}

#[tokio::test]
async fn top_above_fifty_is_refused_with_the_real_400() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let answer = sim.graph_get("/v1.0/me/chats?$top=51", &token, "").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"]["code"], "BadRequest");
    assert_eq!(
        answer.body["error"]["message"],
        "Invalid page size specified: '51'. Must be between 1 and 50 inclusive."
    );
}

#[tokio::test]
async fn expanded_members_stop_at_twenty_five_but_the_members_route_lists_all() {
    let mut world = demo_world();
    let mut member_ids = vec![demo::SUPPORT_USER_ID.to_owned()];
    for n in 0..29 {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        world.users.push(ScenarioUser {
            id: id.clone(),
            tenant_id: demo::CONTOSO_TENANT_ID.into(),
            user_principal_name: format!("user{n}@contoso.example"),
            display_name: format!("User {n}"),
            mail: None,
            extra: Map::new(),
        });
        member_ids.push(id);
    }
    let sim = TestSim::start_with(test_config(), world).await;
    let token = sim.support_token().await;
    let chat = sim
        .control_post(
            "/_sim/chats",
            &json!({"chatType": "group", "members": member_ids, "topic": "Big"}),
        )
        .await;
    let chat_id = chat.body["id"].as_str().unwrap();
    let listed = sim
        .graph_get(
            "/v1.0/chats?$expand=members",
            &token,
            "microsoft.graph.chatCollectionResponse",
        )
        .await;
    assert_eq!(
        listed.body["value"][0]["members"].as_array().unwrap().len(),
        25
    );
    assert_eq!(listed.body["value"][0]["topic"], "Big");
    let members = sim
        .graph_get(
            &format!("/v1.0/chats/{chat_id}/members"),
            &token,
            "microsoft.graph.conversationMemberCollectionResponse",
        )
        .await;
    assert_eq!(members.body["value"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn a_chat_the_caller_is_not_in_is_invisible_and_forbidden() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let other = sim
        .control_post("/_sim/chats", &json!({"chatType": "oneOnOne", "members": [demo::CONTOSO_USER_1_ID, demo::CONTOSO_USER_2_ID]}))
        .await;
    let chat_id = other.body["id"].as_str().unwrap();
    let listed = sim
        .graph_get(
            "/v1.0/me/chats",
            &token,
            "microsoft.graph.chatCollectionResponse",
        )
        .await;
    assert!(
        listed.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != chat_id)
    );
    let forbidden = sim
        .graph_get(&format!("/v1.0/chats/{chat_id}/messages"), &token, "")
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let missing = sim
        .graph_get("/v1.0/chats/19:nope@thread.v2", &token, "")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
