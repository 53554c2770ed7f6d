//! Token endpoint behaviour against a scripted fake: redemption, rotation, AADSTS classes,
//! transient failures and redirects that must not be followed.

use msgraph::oauth::{OAuthClient, OAuthConfig, TokenErrorClass};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use url::Url;
use wiremock::matchers::{any, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN_PATH: &str = "/tenant-1/oauth2/v2.0/token";

fn client_for(server: &MockServer) -> OAuthClient {
    OAuthClient::new(OAuthConfig {
        authority: Url::parse(&server.uri()).unwrap(),
        tenant: "tenant-1".into(),
        client_id: "client-1".into(),
        client_secret: SecretString::from("s3cret"),
        redirect_uri: Url::parse("https://desk.example.test/connect/callback").unwrap(),
        scopes: vec![
            "offline_access".into(),
            "User.Read".into(),
            "Chat.Read".into(),
        ],
    })
    .unwrap()
}

fn aad_error(error: &str, code: u32) -> serde_json::Value {
    serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: something.\r\nTrace ID: t-{code}\r\nCorrelation ID: c-{code}\r\nTimestamp: 2025-01-01 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2025-01-01 00:00:00Z",
        "trace_id": format!("t-{code}"),
        "correlation_id": format!("c-{code}")
    })
}

#[tokio::test]
async fn code_redemption_sends_verifier_secret_and_redirect_uri() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=the-code"))
        .and(body_string_contains("code_verifier=the-verifier"))
        .and(body_string_contains("client_secret=s3cret"))
        .and(body_string_contains("client_id=client-1"))
        .and(body_string_contains(
            "redirect_uri=https%3A%2F%2Fdesk.example.test%2Fconnect%2Fcallback",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "scope": "User.Read Chat.Read", "expires_in": 3736,
            "access_token": "access-1", "refresh_token": "refresh-1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let oauth = client_for(&server);
    let before = OffsetDateTime::now_utc();

    let tokens = oauth
        .redeem_code(
            &SecretString::from("the-code"),
            &SecretString::from("the-verifier"),
        )
        .await
        .unwrap();

    assert_eq!(tokens.access_token.expose_secret(), "access-1");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "refresh-1");
    assert_eq!(tokens.scopes, vec!["User.Read", "Chat.Read"]);
    let after = OffsetDateTime::now_utc();
    let lifetime = time::Duration::seconds(3736);
    assert!(before + lifetime <= tokens.expires_at && tokens.expires_at <= after + lifetime);
}

#[tokio::test]
async fn refresh_returns_the_rotated_token_or_keeps_the_old_one() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("refresh_token=old-refresh"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("client_secret=s3cret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "access-2", "refresh_token": "new-refresh", "expires_in": 3599
        })))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("refresh_token=no-rotation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "access-3", "expires_in": 3599
        })))
        .mount(&server)
        .await;
    let oauth = client_for(&server);

    let rotated = oauth
        .refresh(&SecretString::from("old-refresh"))
        .await
        .unwrap();
    let kept = oauth
        .refresh(&SecretString::from("no-rotation"))
        .await
        .unwrap();

    assert_eq!(
        rotated.refresh_token.unwrap().expose_secret(),
        "new-refresh"
    );
    assert_eq!(rotated.access_token.expose_secret(), "access-2");
    assert_eq!(kept.refresh_token.unwrap().expose_secret(), "no-rotation");
    // Requested scopes stand in when Microsoft does not echo them.
    assert_eq!(
        kept.scopes,
        vec!["offline_access", "User.Read", "Chat.Read"]
    );
}

#[tokio::test]
async fn each_aadsts_class_is_derived_from_error_codes() {
    let server = MockServer::start().await;
    let cases: &[(&str, u32, u16, TokenErrorClass)] = &[
        (
            "invalid_grant",
            65001,
            400,
            TokenErrorClass::ConsentRequired,
        ),
        (
            "invalid_grant",
            65004,
            400,
            TokenErrorClass::ConsentRequired,
        ),
        (
            "invalid_request",
            90094,
            400,
            TokenErrorClass::ConsentRequired,
        ),
        (
            "invalid_request",
            90095,
            400,
            TokenErrorClass::ConsentRequired,
        ),
        (
            "invalid_grant",
            70008,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            700082,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            700084,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            50173,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            70043,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            50057,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            50034,
            400,
            TokenErrorClass::ReconnectRequired,
        ),
        (
            "invalid_grant",
            50076,
            400,
            TokenErrorClass::InteractionRequired,
        ),
        (
            "interaction_required",
            50079,
            400,
            TokenErrorClass::InteractionRequired,
        ),
        (
            "invalid_grant",
            50078,
            400,
            TokenErrorClass::InteractionRequired,
        ),
        (
            "invalid_grant",
            53003,
            400,
            TokenErrorClass::InteractionRequired,
        ),
        (
            "invalid_client",
            7000215,
            401,
            TokenErrorClass::Configuration,
        ),
        (
            "invalid_client",
            7000222,
            401,
            TokenErrorClass::Configuration,
        ),
        (
            "unauthorized_client",
            700016,
            400,
            TokenErrorClass::Configuration,
        ),
        (
            "invalid_request",
            50011,
            400,
            TokenErrorClass::Configuration,
        ),
        (
            "temporarily_unavailable",
            90033,
            503,
            TokenErrorClass::Transient,
        ),
    ];
    for (error, code, status, _) in cases {
        Mock::given(body_string_contains(format!("refresh_token=rt-{code}&")))
            .respond_with(ResponseTemplate::new(*status).set_body_json(aad_error(error, *code)))
            .mount(&server)
            .await;
    }
    let oauth = client_for(&server);

    for (_, code, status, class) in cases {
        let error = oauth
            .refresh(&SecretString::from(format!("rt-{code}")))
            .await
            .unwrap_err();
        assert_eq!(error.class, *class, "AADSTS{code}");
        assert_eq!(error.error_codes, vec![*code]);
        assert_eq!(error.http_status, Some(*status));
        assert_eq!(
            error.trace_id.as_deref(),
            Some(format!("t-{code}").as_str())
        );
        assert_eq!(
            error.correlation_id.as_deref(),
            Some(format!("c-{code}").as_str())
        );
    }
}

#[tokio::test]
async fn server_error_without_json_is_transient() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
        )
        .mount(&server)
        .await;

    let error = client_for(&server)
        .refresh(&SecretString::from("r"))
        .await
        .unwrap_err();

    assert_eq!(error.class, TokenErrorClass::Transient);
    assert_eq!(error.http_status, Some(503));
    let graph_error: msgraph::Error = error.into();
    assert!(graph_error.is_retryable_later());
    assert!(!graph_error.needs_reconnect());
}

#[tokio::test]
async fn unreachable_token_endpoint_is_transient() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let oauth = OAuthClient::new(OAuthConfig {
        authority: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        tenant: "tenant-1".into(),
        client_id: "client-1".into(),
        client_secret: SecretString::from("s3cret"),
        redirect_uri: Url::parse("https://desk.example.test/cb").unwrap(),
        scopes: vec![],
    })
    .unwrap();

    let error = oauth.refresh(&SecretString::from("r")).await.unwrap_err();

    assert_eq!(error.class, TokenErrorClass::Transient);
    assert_eq!(error.error, "network");
}

#[tokio::test]
async fn token_endpoint_redirects_are_never_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/elsewhere", server.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = client_for(&server)
        .refresh(&SecretString::from("r"))
        .await
        .unwrap_err();

    assert_eq!(error.class, TokenErrorClass::Configuration);
    assert_eq!(error.http_status, Some(302));
}

#[tokio::test]
async fn token_errors_never_echo_the_refresh_token_or_secret() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).set_body_json(aad_error("invalid_grant", 700082)))
        .mount(&server)
        .await;

    let error = client_for(&server)
        .refresh(&SecretString::from("super-private-refresh"))
        .await
        .unwrap_err();

    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("super-private-refresh") && !shown.contains("s3cret"),
        "{shown}"
    );
}
