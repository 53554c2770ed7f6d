use serde_json::json;

use crate::helpers::TestApp;

async fn assert_unauthorized(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"regentra\"",
        "{what}"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{what}"
    );
}

#[tokio::test]
async fn api_without_token_is_401_json() {
    for app in TestApp::spawn_all().await {
        let response = app
            .api
            .get(app.url("/api/v1/tickets"))
            .send()
            .await
            .unwrap();
        assert_unauthorized(response, "no Authorization header").await;
    }
}

#[tokio::test]
async fn api_with_invalid_or_malformed_token_is_401_json() {
    let app = TestApp::spawn().await;
    let cases = [
        ("Bearer rgt_not-a-real-token", "unknown token"),
        ("Bearer ", "empty token"),
        ("Basic YWxleDpwYXNzd29yZA==", "basic auth"),
        ("rgt_token-without-scheme", "no scheme"),
    ];
    for (header, what) in cases {
        let response = app
            .api
            .get(app.url("/api/v1/tickets"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_unauthorized(response, what).await;
    }
    // Writes are refused the same way.
    let response = app
        .api
        .post(app.url("/api/v1/clients"))
        .json(&json!({"name": "X"}))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response, "POST without token").await;
}

#[tokio::test]
async fn api_ignores_the_browser_session_cookie() {
    let app = TestApp::spawn().await;
    app.login_as_technician().await;
    let response = app
        .browser
        .get(app.url("/api/v1/tickets"))
        .send()
        .await
        .unwrap();
    assert_unauthorized(response, "session cookie only").await;
}

#[tokio::test]
async fn api_with_the_seeded_token_works() {
    let app = TestApp::spawn().await;
    let response = app.api_get("/api/v1/tickets").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({"items": [], "total": 0}));
}
