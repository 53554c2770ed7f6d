use serde_json::{Value, json};

use crate::helpers::{TECH_NAME, TestApp};

const CONTOSO_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const UNKNOWN_TENANT: &str = "99999999-8888-4777-8666-555555555555";

async fn patch_status(app: &TestApp, id: &str, status: &str) -> reqwest::Response {
    app.api_patch(&format!("/api/v1/tickets/{id}"), &json!({"status": status}))
        .await
}

#[tokio::test]
async fn manual_tickets_get_sequential_numbers_and_start_new_with_the_text_as_a_note() {
    for app in TestApp::spawn_all().await {
        let first = app.create_ticket("Printer on floor 2 is down", None).await;
        let second = app.create_ticket("VPN drops every hour", None).await;
        assert_eq!(first["number"], 1, "{}", app.label);
        assert_eq!(second["number"], 2, "{}", app.label);
        assert_eq!(first["status"], "new");
        assert_eq!(first["subject"], "Printer on floor 2 is down");
        assert_eq!(
            first["client"],
            Value::Null,
            "created without client = Unassigned"
        );
        assert_eq!(first["chat_id"], Value::Null);
        let entries = first["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["kind"], "note");
        assert_eq!(entries[0]["text"], "Created by a test");
        assert_eq!(entries[0]["author"]["name"], TECH_NAME);
        assert_eq!(entries[0]["delivery"], Value::Null);
    }
}

#[tokio::test]
async fn status_changes_follow_the_lifecycle_rules() {
    for app in TestApp::spawn_all().await {
        let ticket = app.create_ticket("Laptop will not boot", None).await;
        let id = ticket["id"].as_str().unwrap();

        for status in ["open", "pending", "resolved", "open", "resolved"] {
            let response = patch_status(&app, id, status).await;
            assert_eq!(response.status(), 200, "{status} ({})", app.label);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], status);
        }
        let resolved: Value = app
            .api_get(&format!("/api/v1/tickets/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert!(
            resolved["resolved_at"].is_string(),
            "resolved_at is set ({})",
            app.label
        );

        // Back to `new` is never allowed.
        let response = patch_status(&app, id, "new").await;
        assert_eq!(response.status(), 422, "{}", app.label);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot be set back to new"),
            "{body}"
        );

        // Closed is final.
        assert_eq!(patch_status(&app, id, "closed").await.status(), 200);
        let response = patch_status(&app, id, "open").await;
        assert_eq!(response.status(), 422, "{}", app.label);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("closed"),
            "{body}"
        );

        // Every change is on the timeline as an event.
        let detail: Value = app
            .api_get(&format!("/api/v1/tickets/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(detail["status"], "closed");
        let events: Vec<&str> = detail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "event")
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        assert_eq!(events.len(), 6, "{events:?}");
        assert_eq!(
            events[0],
            format!("{TECH_NAME} changed the status from New to Open")
        );
        assert_eq!(
            events[5],
            format!("{TECH_NAME} changed the status from Resolved to Closed")
        );
    }
}

#[tokio::test]
async fn unknown_status_is_a_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Mail is slow", None).await;
    let response = patch_status(&app, ticket["id"].as_str().unwrap(), "done").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_field");
    assert_eq!(body["error"]["field"], "status");
    assert_eq!(
        body["error"]["message"],
        "status must be one of new, open, pending, resolved, closed"
    );
}

#[tokio::test]
async fn notes_are_201_and_replies_need_a_teams_chat() {
    for app in TestApp::spawn_all().await {
        let ticket = app.create_ticket("Manual ticket", None).await;
        let id = ticket["id"].as_str().unwrap();

        let response = app
            .api_post(
                &format!("/api/v1/tickets/{id}/replies"),
                &json!({"text": "Called the user", "internal": true}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", app.label);
        let note: Value = response.json().await.unwrap();
        assert_eq!(note["kind"], "note");
        assert_eq!(note["text"], "Called the user");
        assert_eq!(note["delivery"], Value::Null, "notes are never delivered");

        let response = app
            .api_post(
                &format!("/api/v1/tickets/{id}/replies"),
                &json!({"text": "Hello", "internal": false}),
            )
            .await;
        assert_eq!(response.status(), 422, "{}", app.label);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "no_teams_chat");

        let response = app
            .api_post(
                &format!("/api/v1/tickets/{id}/replies"),
                &json!({"text": "   ", "internal": true}),
            )
            .await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], "text");

        let response = app
            .api_post(
                &format!("/api/v1/tickets/{id}/replies"),
                &json!({"text": "forgot the flag"}),
            )
            .await;
        assert_eq!(response.status(), 422, "`internal` is required");
    }
}

#[tokio::test]
async fn reply_to_a_teams_ticket_is_queued_and_opens_a_new_ticket() {
    for app in TestApp::spawn_all().await {
        let client = app.create_client("Contoso", Some(CONTOSO_TENANT)).await;
        let id = app
            .receive_teams_message(
                "19:chat-1@unq.gbl.spaces",
                "1700000000001",
                CONTOSO_TENANT,
                "Megan Bowen",
                "My screen is black",
            )
            .await;

        let detail: Value = app
            .api_get(&format!("/api/v1/tickets/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(detail["status"], "new");
        assert_eq!(
            detail["client"]["id"], client["id"],
            "matched by tenant ({})",
            app.label
        );
        assert_eq!(detail["client"]["name"], "Contoso");
        assert_eq!(detail["requester"]["name"], "Megan Bowen");
        assert_eq!(detail["chat_id"], "19:chat-1@unq.gbl.spaces");
        assert_eq!(detail["entries"][0]["kind"], "client_message");
        assert_eq!(detail["entries"][0]["graph_message_id"], "1700000000001");

        let response = app
            .api_post(
                &format!("/api/v1/tickets/{id}/replies"),
                &json!({"text": "Try the power button", "internal": false}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", app.label);
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["kind"], "reply");
        assert_eq!(reply["delivery"]["state"], "queued");
        assert_eq!(reply["delivery"]["attempts"], 0);

        let ticket: Value = app
            .api_get(&format!("/api/v1/tickets/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            ticket["status"], "open",
            "a reply opens a new ticket ({})",
            app.label
        );
    }
}

#[tokio::test]
async fn list_filters_by_status_and_client_and_pages() {
    for app in TestApp::spawn_all().await {
        let contoso = app.create_client("Contoso", Some(CONTOSO_TENANT)).await;
        let contoso_id = contoso["id"].as_str().unwrap();
        let a = app.create_ticket("A", Some(contoso_id)).await;
        app.create_ticket("B", None).await;
        app.receive_teams_message(
            "19:chat-2@unq.gbl.spaces",
            "1",
            UNKNOWN_TENANT,
            "Stranger",
            "C from an unknown tenant",
        )
        .await;
        patch_status(&app, a["id"].as_str().unwrap(), "pending").await;

        let all: Value = app.api_get("/api/v1/tickets").await.json().await.unwrap();
        assert_eq!(all["total"], 3, "{}", app.label);

        let pending: Value = app
            .api_get("/api/v1/tickets?status=pending")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(pending["total"], 1);
        assert_eq!(pending["items"][0]["subject"], "A");

        let several: Value = app
            .api_get("/api/v1/tickets?status=new,pending")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(several["total"], 3);

        let of_client: Value = app
            .api_get(&format!("/api/v1/tickets?client={contoso_id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(of_client["total"], 1);
        assert_eq!(of_client["items"][0]["client"]["name"], "Contoso");

        let unassigned: Value = app
            .api_get("/api/v1/tickets?client=unassigned")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(unassigned["total"], 2, "{}", app.label);
        let from_teams = unassigned["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["subject"] == "C from an unknown tenant")
            .unwrap();
        assert_eq!(from_teams["unassigned_tenant_id"], UNKNOWN_TENANT);

        let page: Value = app
            .api_get("/api/v1/tickets?limit=2&offset=2")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], 3);
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn bad_list_parameters_are_400s_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
        ("status=finished", "status"),
        ("client=acme", "client"),
    ] {
        let response = app.api_get(&format!("/api/v1/tickets?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{query}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{query}: {body}"
        );
    }
    let response = app.api_get("/api/v1/tickets?limit=many").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_or_malformed_ticket_ids_are_404() {
    let app = TestApp::spawn().await;
    for id in ["01890a5d-ac96-774b-bcce-b302099a8057", "not-an-id"] {
        let response = app.api_get(&format!("/api/v1/tickets/{id}")).await;
        assert_eq!(response.status(), 404, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn creating_a_ticket_for_an_unknown_client_is_404() {
    let app = TestApp::spawn().await;
    let response = app
        .api_post(
            "/api/v1/tickets",
            &json!({"subject": "X", "client_id": "01890a5d-ac96-774b-bcce-b302099a8057"}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let response = app
        .api_post("/api/v1/tickets", &json!({"subject": "  "}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "subject");
}
