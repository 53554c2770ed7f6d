//! The retry policy and the 401 path (field reports B9, B10; throttling facts §5).

use std::time::Duration;

use msgraph::Error;
use msgraph::oauth::{TokenError, TokenErrorClass};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::{FakeGraph, odata_error};

fn me() -> serde_json::Value {
    serde_json::json!({"id": "5de4ab0a-bb23-5032-9e5d-5f5747ab2d2b", "displayName": "Support Desk",
        "mail": "support@msp.example", "userPrincipalName": "support@msp.example"})
}

fn throttled() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("request-id", "req-429")
        .insert_header("client-request-id", "req-429")
        .set_body_json(odata_error(
            "TooManyRequests",
            "Please retry again later.",
            "req-429",
        ))
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off_exponentially_with_jitter() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(throttled())
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&graph.server)
        .await;

    let user = graph.client.me().await.unwrap();

    assert_eq!(user.display_name.as_deref(), Some("Support Desk"));
    assert_eq!(graph.requests().await.len(), 4);
    let waits = graph.sleeper.waits();
    assert_eq!(waits.len(), 3);
    // Full jitter under a doubling ceiling (base 100 ms): [0,100], [0,200], [0,400] ms.
    for (retry, wait) in waits.iter().enumerate() {
        let ceiling = Duration::from_millis(100 * 2u64.pow(retry as u32));
        assert!(
            *wait <= ceiling,
            "retry {retry} waited {wait:?} > {ceiling:?}"
        );
    }
}

#[tokio::test]
async fn fractional_retry_after_is_honoured_exactly() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(throttled().insert_header("Retry-After", "2.128"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&graph.server)
        .await;

    graph.client.me().await.unwrap();

    assert_eq!(graph.sleeper.waits(), vec![Duration::from_millis(2128)]);
}

#[tokio::test]
async fn persistent_throttling_ends_typed_with_the_request_id() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(throttled().insert_header("Retry-After", "1"))
        .mount(&graph.server)
        .await;

    let error = graph.client.me().await.unwrap_err();

    match &error {
        Error::Throttled { retry_after, ids } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(1)));
            assert_eq!(ids.request_id.as_deref(), Some("req-429"));
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert!(error.is_retryable_later());
    assert_eq!(
        graph.requests().await.len(),
        4,
        "max_attempts bounds the retries"
    );
}

#[tokio::test]
async fn retry_after_longer_than_the_policy_allows_is_returned_not_waited() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(throttled().insert_header("Retry-After", "3600"))
        .mount(&graph.server)
        .await;

    let error = graph.client.me().await.unwrap_err();

    assert!(
        matches!(error, Error::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(3600))
    );
    assert_eq!(graph.requests().await.len(), 1);
    assert!(graph.sleeper.waits().is_empty());
}

#[tokio::test]
async fn service_unavailable_on_a_read_is_retried() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0.5"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&graph.server)
        .await;

    graph.client.me().await.unwrap();

    assert_eq!(graph.sleeper.waits(), vec![Duration::from_millis(500)]);
}

#[tokio::test]
async fn server_error_on_send_is_an_unknown_outcome_and_not_repeated() {
    let graph = FakeGraph::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(504).insert_header("request-id", "req-504"))
        .expect(1)
        .mount(&graph.server)
        .await;

    let error = graph
        .client
        .send_message("19:a_b@unq.gbl.spaces", "<p>hi</p>")
        .await
        .unwrap_err();

    match &error {
        Error::OutcomeUnknown {
            method, path, ids, ..
        } => {
            assert_eq!(method, "POST");
            assert_eq!(path, "/v1.0/chats/19:a_b@unq.gbl.spaces/messages");
            assert_eq!(ids.request_id.as_deref(), Some("req-504"));
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    assert!(error.to_string().contains("check whether it arrived"));
}

#[tokio::test]
async fn send_that_times_out_is_an_unknown_outcome_and_sent_once() {
    let graph = FakeGraph::start_with(|config| config.timeout = Duration::from_millis(300)).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(5)))
        .expect(1)
        .mount(&graph.server)
        .await;

    let error = graph
        .client
        .send_message("19:a_b@unq.gbl.spaces", "<p>hi</p>")
        .await
        .unwrap_err();

    assert!(
        matches!(error, Error::OutcomeUnknown { .. }),
        "got {error:?}"
    );
    assert_eq!(graph.requests().await.len(), 1);
    assert!(graph.sleeper.waits().is_empty());
}

#[tokio::test]
async fn throttled_send_is_repeated_because_it_was_not_processed() {
    let graph = FakeGraph::start().await;
    let sent = serde_json::json!({"id": "1616990032035", "messageType": "message",
        "body": {"contentType": "html", "content": "<p>hi</p>"}});
    Mock::given(method("POST"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(sent))
        .mount(&graph.server)
        .await;

    let message = graph
        .client
        .send_message("19:a_b@unq.gbl.spaces", "<p>hi</p>")
        .await
        .unwrap();

    assert_eq!(message.id, "1616990032035");
    assert_eq!(graph.requests().await.len(), 2);
}

#[tokio::test]
async fn send_posts_html_body_to_the_chat_messages_collection() {
    let graph = FakeGraph::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/chats/19:a_b@unq.gbl.spaces/messages"))
        .and(wiremock::matchers::body_json(serde_json::json!({"body": {"contentType": "html", "content": "Tom &amp; Jerry<br>ok"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": "42"})))
        .expect(1)
        .mount(&graph.server)
        .await;

    let message = graph
        .client
        .send_message("19:a_b@unq.gbl.spaces", "Tom &amp; Jerry<br>ok")
        .await
        .unwrap();

    assert_eq!(message.id, "42");
}

#[tokio::test]
async fn unauthorized_refreshes_once_and_retries_with_the_new_token() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(odata_error(
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
            "req-401",
        )))
        .expect(1)
        .mount(&graph.server)
        .await;
    Mock::given(path("/v1.0/me"))
        .and(header("authorization", "Bearer token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .expect(1)
        .mount(&graph.server)
        .await;

    let user = graph.client.me().await.unwrap();

    assert_eq!(user.id, "5de4ab0a-bb23-5032-9e5d-5f5747ab2d2b");
    assert_eq!(graph.refreshes(), 1);
    assert_eq!(
        *graph.tokens.rejected_seen.lock().unwrap(),
        vec!["token-1".to_owned()]
    );
}

#[tokio::test]
async fn second_unauthorized_is_final_after_exactly_one_refresh() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(401).set_body_json(odata_error(
            "InvalidAuthenticationToken",
            "nope",
            "req-401",
        )))
        .expect(2)
        .mount(&graph.server)
        .await;

    let error = graph.client.me().await.unwrap_err();

    match error {
        Error::Unauthorized { code, ids, .. } => {
            assert_eq!(code, "InvalidAuthenticationToken");
            assert_eq!(ids.request_id.as_deref(), Some("req-401"));
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(graph.refreshes(), 1);
}

#[tokio::test]
async fn dead_refresh_token_during_401_means_reconnect() {
    let graph = FakeGraph::start().await;
    *graph.tokens.refused_with.lock().unwrap() = Some(TokenError {
        class: TokenErrorClass::ReconnectRequired,
        error: "invalid_grant".into(),
        error_codes: vec![50173],
        description: None,
        suberror: None,
        trace_id: Some("trace-1".into()),
        correlation_id: Some("corr-1".into()),
        http_status: Some(400),
    });
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(401).set_body_json(odata_error(
            "InvalidAuthenticationToken",
            "nope",
            "req-401",
        )))
        .expect(1)
        .mount(&graph.server)
        .await;

    let error = graph.client.me().await.unwrap_err();

    assert!(error.needs_reconnect(), "got {error:?}");
    let text = error.to_string();
    assert!(
        text.contains("AADSTS50173") && text.contains("trace-1") && text.contains("corr-1"),
        "{text}"
    );
}

#[tokio::test]
async fn prefer_header_and_bearer_token_are_sent_on_every_call() {
    let graph = FakeGraph::start().await;
    Mock::given(header("prefer", "include-unknown-enum-members"))
        .and(header("authorization", "Bearer token-1"))
        .and(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&graph.server)
        .await;
    Mock::given(header("prefer", "include-unknown-enum-members"))
        .and(path("/v1.0/organization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": [
            {"id": "mmmm-tenant", "displayName": "MSP", "verifiedDomains": [{"name": "msp.example", "isDefault": true}]}
        ]})))
        .mount(&graph.server)
        .await;
    Mock::given(header("prefer", "include-unknown-enum-members"))
        .and(method("GET"))
        .and(path("/v1.0/chats/c1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": []})))
        .mount(&graph.server)
        .await;
    Mock::given(header("prefer", "include-unknown-enum-members"))
        .and(path("/v1.0/chats/c1/members"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": [
            {"@odata.type": "#microsoft.graph.aadUserConversationMember", "id": "m", "userId": "u1", "tenantId": "t1", "roles": []}
        ]})))
        .mount(&graph.server)
        .await;
    Mock::given(header("prefer", "include-unknown-enum-members"))
        .and(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": "1"})))
        .mount(&graph.server)
        .await;

    graph.client.me().await.unwrap();
    let organization = graph.client.organization().await.unwrap();
    graph.client.list_messages_since("c1", None).await.unwrap();
    let members = graph.client.list_chat_members("c1").await.unwrap();
    graph.client.send_message("c1", "hi").await.unwrap();

    assert_eq!(organization.id, "mmmm-tenant");
    assert_eq!(
        organization.verified_domains[0].name.as_deref(),
        Some("msp.example")
    );
    assert_eq!(members.members[0].tenant_id.as_deref(), Some("t1"));
    assert!(members.complete);
    let requests = graph.requests().await;
    assert_eq!(requests.len(), 5);
    assert!(requests.iter().all(|r| {
        r.headers
            .get("prefer")
            .is_some_and(|v| v == "include-unknown-enum-members")
    }));
}
