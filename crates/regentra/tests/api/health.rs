use crate::helpers::TestApp;

#[tokio::test]
async fn healthz_reports_a_working_database_without_authentication() {
    for app in TestApp::spawn_all().await {
        let response = app.api.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", app.label);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": "ok", "database": "ok"}),
            "{}",
            app.label
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/login", "/healthz", "/api/v1/tickets", "/no-such-page"] {
        let response = app.api.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
    }
}

#[tokio::test]
async fn unknown_pages_get_an_html_404_and_unknown_api_routes_a_json_404() {
    let app = TestApp::spawn().await;
    let page = app.get_page("/no-such-page").await;
    assert_eq!(page.status(), 404);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("id=\"error-page\""));

    let api = app.api_get("/api/v1/no-such-route").await;
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn assets_are_served_with_long_cache_headers_for_versioned_urls() {
    let app = TestApp::spawn().await;
    let login = app.get_html("/login").await;
    let css_href = login
        .split("href=\"")
        .find_map(|rest| {
            rest.split('"')
                .next()
                .filter(|href| href.starts_with("/assets/app.css?v="))
        })
        .expect("login page links the versioned stylesheet")
        .to_owned();
    let response = app.get_page(&css_href).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();

    let again = app
        .browser
        .get(app.url("/assets/app.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let htmx = app.get_page("/assets/htmx.min.js").await;
    assert_eq!(htmx.status(), 200);
    assert!(htmx.text().await.unwrap().starts_with("/*! htmx 2."));
}
