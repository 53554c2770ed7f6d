//! The technician's day in the browser, as form posts and page reads: create a client, see
//! tickets created through the API, filter, add a note, reply, change status, assign a tenant.

use scraper::{Html, Selector};

use crate::helpers::{TestApp, location};

const CONTOSO_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const FABRIKAM_TENANT: &str = "99999999-8888-4777-8666-555555555555";

fn select<'a>(html: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    html.select(&Selector::parse(css).unwrap()).collect()
}

fn text_of(html: &Html, css: &str) -> String {
    select(html, css)
        .first()
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .unwrap_or_default()
}

fn attr_of(html: &Html, css: &str, attr: &str) -> String {
    select(html, css)
        .first()
        .and_then(|e| e.value().attr(attr))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn technician_creates_a_client_sees_api_tickets_adds_a_note_and_changes_status() {
    for app in TestApp::spawn_all().await {
        app.login_as_technician().await;

        // Create a client through the form.
        let response = app
            .post_form(
                "/clients",
                &[
                    ("name", "Contoso"),
                    ("entra_tenant_id", CONTOSO_TENANT),
                    ("domains", "contoso.com, contoso.co.uk"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "{}", app.label);
        let clients = Html::parse_document(&app.get_html("/clients").await);
        assert_eq!(text_of(&clients, "#flash"), "Client Contoso added.");
        assert_eq!(select(&clients, ".client-row").len(), 1);
        assert_eq!(text_of(&clients, ".client-name"), "Contoso");
        assert_eq!(text_of(&clients, ".client-tenant"), CONTOSO_TENANT);
        assert_eq!(
            text_of(&clients, ".client-domains"),
            "contoso.com, contoso.co.uk"
        );
        // Verify Client Federation has not run for the new client yet.
        assert_eq!(text_of(&clients, ".client-federation"), "Not checked");
        let client_id = attr_of(&clients, ".client-row", "data-client-id");

        // Tickets created through the API show up in the list.
        let ticket = app
            .create_ticket("Printer on floor 2 is down", Some(&client_id))
            .await;
        app.create_ticket("New starter needs a laptop", None).await;
        let ticket_id = ticket["id"].as_str().unwrap().to_owned();
        let list = Html::parse_document(&app.get_html("/tickets").await);
        let rows = select(&list, ".ticket-row");
        assert_eq!(rows.len(), 2, "{}", app.label);
        assert_eq!(text_of(&list, "#ticket-total"), "2 tickets");

        let filtered = Html::parse_document(
            &app.get_html(&format!("/tickets?status=active&client={client_id}"))
                .await,
        );
        assert_eq!(select(&filtered, ".ticket-row").len(), 1);
        assert_eq!(
            text_of(&filtered, ".ticket-link"),
            "Printer on floor 2 is down"
        );
        let unassigned = Html::parse_document(&app.get_html("/tickets?client=unassigned").await);
        assert_eq!(
            text_of(&unassigned, ".ticket-link"),
            "New starter needs a laptop"
        );

        // Add an internal note with the "Internal note" button.
        let response = app
            .post_form(
                &format!("/tickets/{ticket_id}/replies"),
                &[
                    ("text", "Ordered a new toner <b>cartridge</b>"),
                    ("kind", "note"),
                ],
            )
            .await;
        assert_eq!(response.status(), 303);
        assert_eq!(
            location(&response),
            format!("/tickets/{ticket_id}#reply-box")
        );
        let raw = app.get_html(&format!("/tickets/{ticket_id}")).await;
        assert!(
            !raw.contains("<b>cartridge</b>"),
            "technician text is escaped"
        );
        let page = Html::parse_document(&raw);
        assert_eq!(text_of(&page, "#flash"), "Internal note added.");
        let notes = select(&page, ".entry.entry-note");
        assert_eq!(
            notes.len(),
            2,
            "the creation note and the new one ({})",
            app.label
        );
        assert!(
            notes[1]
                .text()
                .collect::<String>()
                .contains("Ordered a new toner <b>cartridge</b>")
        );
        assert_eq!(text_of(&page, "#ticket-client strong"), "Contoso");
        assert!(
            select(&page, "#reply-send[disabled]").len() == 1,
            "a manual ticket has no Teams chat to reply in"
        );

        // Change the status.
        let response = app
            .post_form(
                &format!("/tickets/{ticket_id}/status"),
                &[("status", "resolved")],
            )
            .await;
        assert_eq!(response.status(), 303);
        let page = Html::parse_document(&app.get_html(&format!("/tickets/{ticket_id}")).await);
        assert_eq!(text_of(&page, "#flash"), "Status changed to Resolved.");
        assert_eq!(attr_of(&page, "#ticket-status", "data-status"), "resolved");
        assert_eq!(
            attr_of(&page, "#status-select option[selected]", "value"),
            "resolved"
        );
        assert!(select(&page, ".entry-event").iter().any(|e| {
            e.text()
                .collect::<String>()
                .contains("changed the status from New to Resolved")
        }));

        // A refused transition is explained on the ticket, not as an error page.
        app.post_form(
            &format!("/tickets/{ticket_id}/status"),
            &[("status", "closed")],
        )
        .await;
        app.post_form(
            &format!("/tickets/{ticket_id}/status"),
            &[("status", "open")],
        )
        .await;
        let page = Html::parse_document(&app.get_html(&format!("/tickets/{ticket_id}")).await);
        assert!(
            text_of(&page, "#flash").starts_with("Status not changed: ticket is closed"),
            "{}",
            text_of(&page, "#flash")
        );
        assert_eq!(attr_of(&page, "#ticket-status", "data-status"), "closed");

        // Resolved/closed tickets leave the default (active) list.
        let active = Html::parse_document(&app.get_html("/tickets").await);
        assert_eq!(select(&active, ".ticket-row").len(), 1);
        let all = Html::parse_document(&app.get_html("/tickets?status=all").await);
        assert_eq!(select(&all, ".ticket-row").len(), 2);
    }
}

#[tokio::test]
async fn teams_ticket_shows_the_conversation_and_reply_delivery_state() {
    let app = TestApp::spawn().await;
    app.create_client("Contoso", Some(CONTOSO_TENANT)).await;
    let ticket_id = app
        .receive_teams_message(
            "19:chat@unq.gbl.spaces",
            "1700000000001",
            CONTOSO_TENANT,
            "Megan Bowen",
            "My screen is black",
        )
        .await;
    app.login_as_technician().await;

    let response = app
        .post_form(
            &format!("/tickets/{ticket_id}/replies"),
            &[("text", "Try the power button"), ("kind", "reply")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = Html::parse_document(&app.get_html(&format!("/tickets/{ticket_id}")).await);
    assert_eq!(text_of(&page, "#flash"), "Reply queued for Teams.");
    let entries = select(&page, "#conversation .entry");
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e.value().attr("data-kind").unwrap())
        .collect();
    assert_eq!(kinds, ["client_message", "reply"]);
    assert!(
        entries[0]
            .text()
            .collect::<String>()
            .contains("My screen is black")
    );
    assert!(
        entries[0]
            .text()
            .collect::<String>()
            .contains("Megan Bowen")
    );
    assert_eq!(
        attr_of(&page, ".entry-reply .delivery-state", "data-state"),
        "queued"
    );
    assert_eq!(text_of(&page, ".entry-reply .delivery-state"), "Queued");
    assert_eq!(attr_of(&page, "#ticket-status", "data-status"), "open");
    assert_eq!(select(&page, "#reply-send[disabled]").len(), 0);

    // The htmx refresh endpoint returns only the timeline.
    let fragment = app
        .get_html(&format!("/tickets/{ticket_id}/conversation"))
        .await;
    assert!(
        fragment
            .trim_start()
            .starts_with("<div id=\"conversation\""),
        "{fragment}"
    );
    assert!(!fragment.contains("<html"));
    assert_eq!(
        Html::parse_fragment(&fragment)
            .select(&Selector::parse(".entry").unwrap())
            .count(),
        2
    );
}

#[tokio::test]
async fn unassigned_ticket_shows_its_tenant_and_can_be_assigned_to_a_client() {
    for app in TestApp::spawn_all().await {
        app.create_client("Fabrikam", None).await;
        let ticket_id = app
            .receive_teams_message(
                "19:fab@unq.gbl.spaces",
                "1700000000002",
                FABRIKAM_TENANT,
                "Diego Siciliani",
                "Need a new mailbox",
            )
            .await;
        app.login_as_technician().await;

        let page = Html::parse_document(&app.get_html(&format!("/tickets/{ticket_id}")).await);
        assert_eq!(
            text_of(&page, "#ticket-client .unassigned"),
            format!("Unassigned (tenant {FABRIKAM_TENANT})")
        );
        let options = select(&page, "#assign-client option");
        let fabrikam = options
            .iter()
            .find(|o| o.text().collect::<String>() == "Fabrikam")
            .expect("Fabrikam is offered");
        let fabrikam_id = fabrikam.value().attr("value").unwrap().to_owned();

        let response = app
            .post_form(
                &format!("/tickets/{ticket_id}/assign-tenant"),
                &[("client_id", &fabrikam_id)],
            )
            .await;
        assert_eq!(response.status(), 303, "{}", app.label);
        let page = Html::parse_document(&app.get_html(&format!("/tickets/{ticket_id}")).await);
        assert_eq!(
            text_of(&page, "#flash"),
            format!("Tenant {FABRIKAM_TENANT} now belongs to Fabrikam; 1 ticket moved to it.")
        );
        assert_eq!(
            text_of(&page, "#ticket-client strong"),
            "Fabrikam",
            "{}",
            app.label
        );
        assert!(select(&page, "#assign-tenant").is_empty());

        // Future messages from that tenant go straight to the client.
        let next = app
            .receive_teams_message(
                "19:fab2@unq.gbl.spaces",
                "1700000000003",
                FABRIKAM_TENANT,
                "Diego Siciliani",
                "Another one",
            )
            .await;
        let detail: serde_json::Value = app
            .api_get(&format!("/api/v1/tickets/{next}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(detail["client"]["name"], "Fabrikam");
    }
}

#[tokio::test]
async fn client_edit_form_shows_validation_errors_with_the_typed_values() {
    let app = TestApp::spawn().await;
    let client = app.create_client("Contoso", None).await;
    let id = client["id"].as_str().unwrap();
    app.login_as_technician().await;

    let form = Html::parse_document(&app.get_html(&format!("/clients/{id}/edit")).await);
    assert_eq!(attr_of(&form, "#client-name", "value"), "Contoso");

    let response = app
        .post_form(
            &format!("/clients/{id}"),
            &[
                ("name", "Contoso Ltd"),
                ("entra_tenant_id", "contoso.onmicrosoft.com"),
                ("domains", "contoso.com"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let page = Html::parse_document(&response.text().await.unwrap());
    assert!(text_of(&page, "#client-form-error").starts_with("entra_tenant_id must be a GUID"));
    assert_eq!(
        attr_of(&page, "#client-tenant", "value"),
        "contoso.onmicrosoft.com"
    );
    assert_eq!(attr_of(&page, "#client-name", "value"), "Contoso Ltd");

    let response = app
        .post_form(
            &format!("/clients/{id}"),
            &[
                ("name", "Contoso Ltd"),
                ("entra_tenant_id", CONTOSO_TENANT.to_uppercase().as_str()),
                ("domains", "contoso.com"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let stored: serde_json::Value = app
        .api_get(&format!("/api/v1/clients/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["name"], "Contoso Ltd");
    assert_eq!(stored["entra_tenant_id"], CONTOSO_TENANT);
    assert_eq!(stored["domains"], serde_json::json!(["contoso.com"]));
}

#[tokio::test]
async fn integrations_page_shows_the_teams_card_not_connected() {
    let app = TestApp::spawn().await;
    app.login_as_technician().await;
    let response = app.get_page("/settings").await;
    assert_eq!(location(&response), "/settings/integrations");
    let page = Html::parse_document(&app.get_html("/settings/integrations").await);
    assert_eq!(text_of(&page, "#chat-platforms"), "Chat Platforms");
    assert_eq!(attr_of(&page, "#teams-card", "data-state"), "disconnected");
    assert_eq!(text_of(&page, "#teams-state"), "Not connected");
    assert!(text_of(&page, "#teams-card h3").starts_with("Teams Chat Bridge"));
    assert_eq!(attr_of(&page, "#nav-settings", "class"), "active");
}
