//! Control API: federation drops, scripted faults, request log, token list, scenario files.

use std::time::Duration;

use m365_sim::{Scenario, demo};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestSim;

#[tokio::test]
async fn a_blocked_tenants_message_never_reaches_the_chat() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::FABRIKAM_USER_ID).await;
    let dropped = sim
        .user_says(&chat, demo::FABRIKAM_USER_ID, "<p>Is anyone there?</p>")
        .await;
    assert_eq!(dropped.status, StatusCode::ACCEPTED);
    assert_eq!(dropped.body["delivered"], false);
    assert!(dropped.body["reason"].as_str().unwrap().contains("blocked"));
    let listed = sim
        .graph_get(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            "microsoft.graph.chatMessageCollectionResponse",
        )
        .await;
    assert_eq!(listed.body["value"], json!([]));
    let chats = sim
        .graph_get(
            "/v1.0/me/chats?$expand=lastMessagePreview",
            &token,
            "microsoft.graph.chatCollectionResponse",
        )
        .await;
    assert!(chats.body["value"][0]["lastMessagePreview"].is_null());
}

#[tokio::test]
async fn a_scripted_429_carries_retry_after_and_is_used_up() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let fault = sim.control_post("/_sim/faults", &json!({"method": "GET", "path_prefix": "/v1.0/me/chats", "status": 429, "retry_after": 2.128, "times": 1})).await;
    assert_eq!(fault.status, StatusCode::CREATED, "{}", fault.text);
    let throttled = sim.graph_get("/v1.0/me/chats", &token, "").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers["retry-after"], "2.128");
    assert_eq!(throttled.body["error"]["code"], "TooManyRequests");
    assert_eq!(
        throttled.headers["request-id"].to_str().unwrap(),
        throttled.body["error"]["innerError"]["request-id"]
    );
    assert_eq!(
        sim.graph_get(
            "/v1.0/me/chats",
            &token,
            "microsoft.graph.chatCollectionResponse"
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_delay_fault_stores_the_message_before_the_client_times_out() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    sim.control_post(
        "/_sim/faults",
        &json!({"method": "POST", "path_prefix": "/v1.0/chats/", "delay_ms": 5000, "times": 1}),
    )
    .await;
    let timed_out = sim
        .http
        .post(sim.url(&format!("/v1.0/chats/{chat}/messages")))
        .bearer_auth(&token)
        .json(&json!({"body": {"content": "did it arrive?"}}))
        .timeout(Duration::from_millis(1000))
        .send()
        .await;
    assert!(timed_out.is_err_and(|e| e.is_timeout()));
    let shown = sim.control_get(&format!("/_sim/chats/{chat}")).await;
    assert_eq!(
        shown.body["messages"][0]["body"]["content"],
        "did it arrive?"
    );
}

#[tokio::test]
async fn a_run_handler_fault_answers_504_after_storing_the_message() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    sim.control_post("/_sim/faults", &json!({"method": "POST", "path_prefix": "/v1.0/chats/", "status": 504, "run_handler": true})).await;
    let answer = sim
        .graph_post(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            &json!({"body": {"content": "ambiguous"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    let shown = sim.control_get(&format!("/_sim/chats/{chat}")).await;
    assert_eq!(shown.body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_request_log_records_graph_and_identity_calls_but_not_control_calls() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let cleared = sim.send(sim.http.delete(sim.url("/_sim/requests"))).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    sim.graph_get(
        "/v1.0/me/chats?$top=5",
        &token,
        "microsoft.graph.chatCollectionResponse",
    )
    .await;
    sim.graph_get("/v1.0/chats/19:missing@thread.v2/messages", &token, "")
        .await;
    let log = sim.control_get("/_sim/requests").await;
    let entries = log.body["requests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["path"], "/v1.0/me/chats?$top=5");
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[1]["status"], 404);
    assert_eq!(entries[0]["time"], "2026-03-02T09:00:00Z");
}

#[tokio::test]
async fn the_token_list_shows_every_issued_token_with_user_and_expiry() {
    let sim = TestSim::start().await;
    let tokens = sim.connect(demo::SUPPORT_UPN).await;
    let listed = sim.control_get("/_sim/tokens").await;
    let access = &listed.body["accessTokens"][0];
    assert_eq!(access["token"], tokens["access_token"]);
    assert_eq!(access["userId"], demo::SUPPORT_USER_ID);
    assert_eq!(access["expiresAt"], "2026-03-02T10:00:00Z");
    assert_eq!(
        listed.body["refreshTokens"][0]["token"],
        tokens["refresh_token"]
    );
    assert_eq!(listed.body["refreshTokens"][0]["revoked"], false);
}

#[tokio::test]
async fn state_lists_tenants_users_and_chats() {
    let sim = TestSim::start().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    let again = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    assert_eq!(
        chat, again,
        "a oneOnOne chat between the same people keeps its id"
    );
    let state = sim.control_get("/_sim/state").await;
    assert_eq!(state.body["tenants"].as_array().unwrap().len(), 3);
    assert_eq!(state.body["users"].as_array().unwrap().len(), 5);
    assert_eq!(state.body["chats"][0]["id"], chat.as_str());
    assert_eq!(
        state.body["chats"][0]["members"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn a_scenario_file_loads_and_errors_name_the_problem() {
    let dir = std::env::temp_dir().join(format!("m365-sim-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        serde_json::to_string(&crate::support::demo_world()).unwrap(),
    )
    .unwrap();
    assert_eq!(Scenario::from_file(&good).unwrap().users.len(), 5);

    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"tenants": [], "users": [{"id": "u1", "tenantId": "t-missing", "userPrincipalName": "a@b.example", "displayName": "A"}]}"#).unwrap();
    let error = Scenario::from_file(&bad).unwrap_err().to_string();
    assert!(
        error.contains("t-missing") && error.contains("not in `tenants`"),
        "{error}"
    );
    let missing = Scenario::from_file(dir.join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.json"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let running =
        m365_sim::Simulator::start(crate::support::test_config(), crate::support::demo_world())
            .await
            .unwrap();
    let url = running.base_url().join("/_sim/state").unwrap();
    assert_eq!(
        reqwest::get(url.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    running.shutdown().await.unwrap();
    assert!(reqwest::get(url).await.is_err());
}

#[tokio::test]
async fn in_process_callers_see_the_same_world_as_the_control_api() {
    let running =
        m365_sim::Simulator::start(crate::support::test_config(), crate::support::demo_world())
            .await
            .unwrap();
    let sim = running.sim();
    let (created, chat) = sim
        .create_chat(
            "oneOnOne",
            &[
                demo::CONTOSO_USER_2_ID.to_owned(),
                demo::SUPPORT_USER_ID.to_owned(),
            ],
            None,
        )
        .unwrap();
    assert!(created);
    let chat_id = chat["id"].as_str().unwrap();
    let outcome = sim
        .post_as_user(
            chat_id,
            demo::CONTOSO_USER_2_ID,
            m365_sim::UserPost::Html("<p>hi</p>".into()),
        )
        .unwrap();
    assert!(matches!(outcome, m365_sim::PostOutcome::Delivered(_)));
    let over_http = reqwest::get(
        running
            .base_url()
            .join(&format!("/_sim/chats/{chat_id}"))
            .unwrap(),
    )
    .await
    .unwrap()
    .json::<serde_json::Value>()
    .await
    .unwrap();
    assert_eq!(over_http["messages"][0]["body"]["content"], "<p>hi</p>");
    running.shutdown().await.unwrap();
}
