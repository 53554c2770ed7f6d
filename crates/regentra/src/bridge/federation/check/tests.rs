//! Tenant lookups against a stand-in identity platform (wiremock on 127.0.0.1) and the pieces of
//! the orchestration that need no database. The end-to-end runs against the simulator live in
//! `tests/api/federation.rs`.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const KNOWN: &str = "c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a41";
const UNKNOWN: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a94";
const SLOW: &str = "f0b1c2d3-e4f5-4a06-9b7c-8d9e0f1a2b33";

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn discovery_path(id: &str) -> String {
    format!("/{id}/v2.0/.well-known/openid-configuration")
}

fn not_found_body(id: &str) -> serde_json::Value {
    json!({
        "error": "invalid_tenant",
        "error_description": format!("AADSTS90002: Tenant '{id}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        "error_codes": [90002],
        "timestamp": "2026-03-02 09:00:00Z",
        "trace_id": "0e4c5b1a-0000-4000-8000-000000000000",
        "correlation_id": "6b1f0a3c-0000-4000-8000-000000000000",
        "error_uri": "https://login.microsoftonline.com/error?code=90002"
    })
}

async fn identity_platform() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(discovery_path(KNOWN)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": format!("https://login.microsoftonline.com/{KNOWN}/v2.0"),
            "token_endpoint": format!("https://login.microsoftonline.com/{KNOWN}/oauth2/v2.0/token"),
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(discovery_path(UNKNOWN)))
        .respond_with(ResponseTemplate::new(400).set_body_json(not_found_body(UNKNOWN)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(discovery_path(SLOW)))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": "x"}))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    server
}

fn directory(server: &MockServer, timeout: Duration) -> TenantDirectory {
    // A trailing slash on the authority must not double the slash in the path.
    let authority = Url::parse(&format!("{}/", server.uri())).unwrap();
    TenantDirectory::new(&authority, timeout).unwrap()
}

#[test]
fn the_discovery_url_follows_the_authority() {
    let authority = Url::parse("https://login.microsoftonline.com/").unwrap();
    let directory = TenantDirectory::new(&authority, Duration::from_secs(1)).unwrap();
    assert_eq!(
        directory.discovery_url(&tenant(KNOWN)),
        format!("https://login.microsoftonline.com/{KNOWN}/v2.0/.well-known/openid-configuration")
    );
}

#[tokio::test]
async fn an_existing_tenant_exists_and_an_unknown_one_is_not_found() {
    let server = identity_platform().await;
    let directory = directory(&server, Duration::from_secs(5));
    assert_eq!(directory.lookup(&tenant(KNOWN)).await, TenantLookup::Exists);
    assert_eq!(
        directory.lookup(&tenant(UNKNOWN)).await,
        TenantLookup::NotFound
    );
}

#[tokio::test]
async fn a_slow_lookup_fails_alone_while_the_others_answer() {
    let server = identity_platform().await;
    let directory = directory(&server, Duration::from_millis(300));
    let lookups = lookup_all(
        &directory,
        vec![tenant(SLOW), tenant(KNOWN), tenant(UNKNOWN)],
        2,
    )
    .await;
    assert_eq!(lookups.len(), 3);
    assert_eq!(
        lookups[&tenant(SLOW)],
        TenantLookup::Failed("the sign-in service did not answer in time".into())
    );
    assert_eq!(lookups[&tenant(KNOWN)], TenantLookup::Exists);
    assert_eq!(lookups[&tenant(UNKNOWN)], TenantLookup::NotFound);
}

#[tokio::test]
async fn an_unreachable_service_is_a_failed_lookup() {
    // Bind a port, then free it: nothing listens there any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let authority = Url::parse(&format!("http://{address}")).unwrap();
    let directory = TenantDirectory::new(&authority, Duration::from_secs(2)).unwrap();
    assert_eq!(
        directory.lookup(&tenant(KNOWN)).await,
        TenantLookup::Failed("the sign-in service could not be reached".into())
    );
}

#[test]
fn other_answers_are_failed_lookups_that_say_what_came_back() {
    use reqwest::StatusCode;
    assert_eq!(
        classify_discovery_answer(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_request","error_description":"AADSTS900023: Specified tenant identifier 'x' is neither a valid DNS name, nor a valid external domain.","error_codes":[900023]}"#
        ),
        TenantLookup::Failed(
            "the sign-in service answered with an error (HTTP 400, AADSTS900023)".into()
        )
    );
    assert_eq!(
        classify_discovery_answer(StatusCode::SERVICE_UNAVAILABLE, b"<html>busy</html>"),
        TenantLookup::Failed("the sign-in service answered with an error (HTTP 503)".into())
    );
    assert_eq!(
        classify_discovery_answer(StatusCode::FOUND, b""),
        TenantLookup::Failed(
            "the sign-in service answered with a redirect instead of the OpenID configuration \
             (HTTP 302)"
                .into()
        )
    );
    assert_eq!(
        classify_discovery_answer(StatusCode::OK, b"<html>captive portal</html>"),
        TenantLookup::Failed(
            "the sign-in service answered, but not with an OpenID configuration".into()
        )
    );
    // Only the description carrying the code (older answers without error_codes).
    assert_eq!(
        classify_discovery_answer(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant 'x' not found."}"#
        ),
        TenantLookup::NotFound
    );
}

#[test]
fn federation_refusals_are_told_from_other_send_failures() {
    assert!(is_federation_refusal(
        "Teams refused: this client's organisation blocks external chat with us (or the support \
         user is no longer in this chat). Run Verify Client Federation, then press Retry"
    ));
    // The demo's seeded history (regentra::demo).
    assert!(is_federation_refusal(
        "Teams refused the message (403 Forbidden): this client's organisation blocks external \
         chat (Teams external access / federation). Ask their Teams administrator to allow your \
         domain, then press Retry."
    ));
    assert!(!is_federation_refusal(
        "Teams refused: the support account lacks the permission to send chat messages \
         (ChatMessage.Send). Reconnect it under Settings → Integrations and accept the \
         permissions, then press Retry"
    ));
    assert!(!is_federation_refusal(
        "Teams could not find this chat: it was deleted or the support user lost access to it"
    ));
    assert!(!is_federation_refusal(
        "gave up after 8 attempts (Microsoft Teams could not be reached; trying again shortly); \
         press Retry to try again"
    ));
}

/// The outbox words a plain 403 on a send (what a federation block looks like) so that this
/// module recognises it, and words other 403s so that it does not.
#[test]
fn the_outbox_words_a_federation_403_the_way_this_module_recognises() {
    use crate::bridge::outbox::{Verdict, classify};
    let reason = |message: &str| match classify(&msgraph::Error::Forbidden {
        code: "Forbidden".into(),
        message: message.into(),
        ids: msgraph::RequestIds::default(),
    }) {
        Verdict::Fail { reason } => reason,
        other => panic!("a 403 is not retried: {other:?}"),
    };
    assert!(is_federation_refusal(&reason("Forbidden")));
    assert!(!is_federation_refusal(&reason(
        "Missing scope permissions on the request. API requires one of 'ChatMessage.Send'."
    )));
}
