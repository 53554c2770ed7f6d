use crate::helpers::{TestApp, location};

async fn client_names(app: &TestApp) -> Vec<String> {
    let body: serde_json::Value = app.api_get("/api/v1/clients").await.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn cross_site_form_post_is_refused_and_changes_nothing() {
    for app in TestApp::spawn_all().await {
        app.login_as_technician().await;
        let response = app
            .browser
            .post(app.url("/clients"))
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .form(&[
                ("name", "Evil Corp"),
                ("entra_tenant_id", ""),
                ("domains", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{}", app.label);
        let html = response.text().await.unwrap();
        assert!(html.contains("submitted from another site"), "{html}");
        assert!(client_names(&app).await.is_empty(), "{}", app.label);
    }
}

#[tokio::test]
async fn foreign_origin_without_fetch_metadata_is_refused() {
    let app = TestApp::spawn().await;
    app.login_as_technician().await;
    let response = app
        .browser
        .post(app.url("/clients"))
        .header("origin", "https://evil.example")
        .form(&[("name", "Evil Corp")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Fetch Metadata says same-origin but the Origin is foreign: our own check refuses it.
    let response = app
        .browser
        .post(app.url("/clients"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", "https://evil.example")
        .form(&[("name", "Evil Corp")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(client_names(&app).await.is_empty());
}

#[tokio::test]
async fn cross_site_login_and_logout_are_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .browser
        .post(app.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("email", crate::helpers::TECH_EMAIL),
            ("password", crate::helpers::TECH_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    app.login_as_technician().await;
    let response = app
        .browser
        .post(app.url("/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        app.get_page("/tickets").await.status(),
        200,
        "still signed in"
    );
}

#[tokio::test]
async fn same_origin_form_post_is_accepted() {
    for app in TestApp::spawn_all().await {
        app.login_as_technician().await;
        let response = app
            .post_form(
                "/clients",
                &[
                    ("name", "Contoso"),
                    ("entra_tenant_id", ""),
                    ("domains", "contoso.com"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "{}", app.label);
        assert_eq!(location(&response), "/clients");
        assert_eq!(client_names(&app).await, ["Contoso"], "{}", app.label);
    }
}
