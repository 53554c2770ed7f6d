use serde_json::{Value, json};

use crate::helpers::TestApp;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

#[tokio::test]
async fn malformed_tenant_id_is_a_400_naming_entra_tenant_id() {
    for app in TestApp::spawn_all().await {
        for bad in [
            "contoso.com",
            "72f988bf86f141af91ab2d7cd011db47",
            "00000000-0000-0000-0000-000000000000",
            "72f988bf-86f1-41af-91ab",
        ] {
            let response = app
                .api_post(
                    "/api/v1/clients",
                    &json!({"name": "Contoso", "entra_tenant_id": bad}),
                )
                .await;
            assert_eq!(response.status(), 400, "{bad} ({})", app.label);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_field", "{bad}");
            assert_eq!(body["error"]["field"], "entra_tenant_id", "{bad}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("entra_tenant_id"),
                "{body}"
            );
        }
        let list: Value = app.api_get("/api/v1/clients").await.json().await.unwrap();
        assert_eq!(list["total"], 0, "nothing was created ({})", app.label);
    }
}

#[tokio::test]
async fn clients_are_created_listed_and_patched() {
    for app in TestApp::spawn_all().await {
        let response = app
            .api_post("/api/v1/clients", &json!({"name": " Contoso Ltd ", "entra_tenant_id": TENANT.to_uppercase(), "domains": ["Contoso.com", "contoso.co.uk"]}))
            .await;
        assert_eq!(response.status(), 201, "{}", app.label);
        let client: Value = response.json().await.unwrap();
        assert_eq!(client["name"], "Contoso Ltd");
        assert_eq!(
            client["entra_tenant_id"], TENANT,
            "tenant IDs are stored lower-case"
        );
        assert_eq!(client["domains"], json!(["contoso.com", "contoso.co.uk"]));
        let id = client["id"].as_str().unwrap();

        let list: Value = app.api_get("/api/v1/clients").await.json().await.unwrap();
        assert_eq!(list["total"], 1);
        assert_eq!(list["items"][0]["id"], id);

        // PATCH: only the given fields change.
        let patched: Value = app
            .api_patch(
                &format!("/api/v1/clients/{id}"),
                &json!({"name": "Contoso"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(patched["name"], "Contoso");
        assert_eq!(patched["entra_tenant_id"], TENANT);

        let response = app
            .api_patch(
                &format!("/api/v1/clients/{id}"),
                &json!({"entra_tenant_id": "not-a-guid"}),
            )
            .await;
        assert_eq!(response.status(), 400, "{}", app.label);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "entra_tenant_id");

        // null removes the tenant.
        let cleared: Value = app
            .api_patch(
                &format!("/api/v1/clients/{id}"),
                &json!({"entra_tenant_id": null}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(cleared["entra_tenant_id"], Value::Null);
        assert_eq!(cleared["domains"], json!(["contoso.com", "contoso.co.uk"]));
    }
}

#[tokio::test]
async fn a_tenant_belongs_to_one_client_compared_case_insensitively() {
    let app = TestApp::spawn().await;
    app.create_client("Contoso", Some(TENANT)).await;
    let response = app
        .api_post(
            "/api/v1/clients",
            &json!({"name": "Copycat", "entra_tenant_id": TENANT.to_uppercase()}),
        )
        .await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");
}

#[tokio::test]
async fn bad_domain_and_unknown_fields_are_rejected() {
    let app = TestApp::spawn().await;
    let response = app
        .api_post(
            "/api/v1/clients",
            &json!({"name": "Contoso", "domains": ["https://contoso.com"]}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "domains");

    let response = app
        .api_post(
            "/api/v1/clients",
            &json!({"name": "Contoso", "tenant_id": TENANT}),
        )
        .await;
    assert_eq!(
        response.status(),
        422,
        "a misspelt field is not silently ignored"
    );

    let response = app
        .api_patch(
            "/api/v1/clients/01890a5d-ac96-774b-bcce-b302099a8057",
            &json!({"name": "X"}),
        )
        .await;
    assert_eq!(response.status(), 404);
}
