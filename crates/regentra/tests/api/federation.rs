//! Verify Client Federation end to end (issue 8, ARCHITECTURE §9) against the Microsoft 365
//! simulator: tenant lookups through its OIDC discovery document, evidence from real polls and
//! real (refused) replies, the MSP's imported Teams settings through the web form and the API,
//! the card, the clients page, the API and `regentra federation verify --json`.

use std::time::Duration;

use m365_sim::demo::{
    CONTOSO_DOMAIN, CONTOSO_TENANT_ID, CONTOSO_USER_1_ID, FABRIKAM_DOMAIN, FABRIKAM_TENANT_ID,
    FABRIKAM_USER_ID, MSP_DOMAIN, SUPPORT_UPN, SUPPORT_USER_ID, UNKNOWN_CLIENT_TENANT_ID,
};
use reqwest::Method;
use scraper::{Html, Selector};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::helpers::{TestApp, location};

const VERIFY: &str = "/api/v1/integrations/teams/federation/verify";
const SETTINGS: &str = "/api/v1/integrations/teams/federation/settings";

/// `Get-CsTenantFederationConfiguration | ConvertTo-Json` of a tenant that allows only
/// fabrikam.example (as printed at ConvertTo-Json's default depth).
const ALLOW_ONLY_FABRIKAM: &str = r#"{
    "Identity": "Global",
    "AllowedDomains": {
        "AllowedDomain": [ "Domain=fabrikam.example" ]
    },
    "BlockedDomains": [],
    "AllowFederatedUsers": true,
    "AllowPublicUsers": true,
    "AllowTeamsConsumer": true,
    "BlockAllSubdomains": false
}"#;

/// …of a tenant that blocks all external domains.
const BLOCK_ALL: &str = r#"[{"Identity":"Global","AllowedDomains":{},"BlockedDomains":[],"AllowFederatedUsers":false}]"#;

/// …of a tenant that allows all external domains.
const ALLOW_ALL: &str = r#"{"Identity":"Global","AllowedDomains":"AllowAllKnownDomains","BlockedDomains":[],"AllowFederatedUsers":true}"#;

async fn create_client(
    app: &TestApp,
    name: &str,
    tenant: Option<&str>,
    domains: &[&str],
) -> String {
    let response = app
        .api_post(
            "/api/v1/clients",
            &json!({"name": name, "entra_tenant_id": tenant, "domains": domains}),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", app.label);
    let client: Value = response.json().await.unwrap();
    client["id"].as_str().unwrap().to_owned()
}

/// Runs the check through the API; returns the rows.
async fn verify(app: &TestApp) -> Vec<Value> {
    let response = app.api_post(VERIFY, &json!({})).await;
    assert_eq!(response.status(), 200, "{}", app.label);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total"], body["items"].as_array().unwrap().len());
    body["items"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], client_id: &str) -> &'a Value {
    rows.iter()
        .find(|row| row["client_id"] == client_id)
        .unwrap_or_else(|| panic!("no row for {client_id}: {rows:?}"))
}

fn reasons(row: &Value) -> Vec<String> {
    row["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reason| reason.as_str().unwrap().to_owned())
        .collect()
}

/// The PowerShell offered to `side` (`client` / `msp`) in an API row.
fn powershell_for(row: &Value, side: &str) -> Option<String> {
    row["remediation"]["actions"]
        .as_array()?
        .iter()
        .find(|action| action["side"] == side)
        .and_then(|action| action["powershell"].as_str())
        .map(str::to_owned)
}

/// How the UI and the reasons show a time: `2026-03-10 12:00 UTC`.
fn shown(time: OffsetDateTime) -> String {
    time.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap()
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client user starts a 1:1 chat with the support account in Teams and writes; returns the
/// chat id and the message's creation time as Teams recorded it.
async fn client_writes(app: &TestApp, user_id: &str, text: &str) -> (String, OffsetDateTime) {
    let chat = app
        .sim_call(
            Method::POST,
            "/_sim/chats",
            Some(json!({"chatType": "oneOnOne", "members": [SUPPORT_USER_ID, user_id]})),
        )
        .await;
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    let message = app
        .sim_call(
            Method::POST,
            &format!("/_sim/chats/{chat_id}/messages"),
            Some(json!({"from": user_id, "html": format!("<p>{text}</p>")})),
        )
        .await;
    let created =
        OffsetDateTime::parse(message["createdDateTime"].as_str().unwrap(), &Rfc3339).unwrap();
    (chat_id, created)
}

/// Polls through the API (as the scheduler would) until the client's chat has made its ticket;
/// returns the ticket id. A scheduled cycle may be running at the same moment, so one API cycle
/// alone is not guaranteed to be the one that picks the message up.
async fn poll_until_ticket(app: &TestApp, client_id: &str) -> String {
    eventually(
        "the poll to make the client's ticket",
        Duration::from_secs(20),
        || async {
            let response = app
                .api_post("/api/v1/integrations/teams/poll", &json!({}))
                .await;
            let status = response.status();
            let report = response.text().await.unwrap();
            assert!(
                status == 200 || status == 409,
                "poll answered {status}: {report}"
            );
            let list: Value = app
                .api_get(&format!("/api/v1/tickets?client={client_id}"))
                .await
                .json()
                .await
                .unwrap();
            let items = list["items"].as_array().unwrap();
            assert!(items.len() <= 1, "{list}");
            items
                .first()
                .map(|ticket| ticket["id"].as_str().unwrap().to_owned())
        },
    )
    .await
}

/// A browser form post to a UI route; returns where it redirected.
async fn post_ui(app: &TestApp, path: &str, form: &[(&str, &str)]) -> String {
    let response = app.post_form(path, form).await;
    assert_eq!(response.status(), 303, "POST {path} ({})", app.label);
    location(&response)
}

fn select_text(document: &Html, selector: &str) -> Vec<String> {
    let selector = Selector::parse(selector).unwrap();
    document
        .select(&selector)
        .map(|element| element.text().collect::<String>().trim().to_owned())
        .collect()
}

fn select_attr(document: &Html, selector: &str, attr: &str) -> Vec<String> {
    let selector = Selector::parse(selector).unwrap();
    document
        .select(&selector)
        .filter_map(|element| element.value().attr(attr).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn missing_and_unknown_tenant_ids_are_unknown_and_say_why() {
    let app = TestApp::with_simulator().await;
    let tailspin = create_client(&app, "Tailspin Toys", Some(UNKNOWN_CLIENT_TENANT_ID), &[]).await;
    let no_tenant = create_client(&app, "No Tenant Ltd", None, &["notenant.example"]).await;
    let contoso = create_client(&app, "Contoso", Some(CONTOSO_TENANT_ID), &[CONTOSO_DOMAIN]).await;

    let rows = verify(&app).await;
    assert_eq!(rows.len(), 3);

    let tailspin_row = row(&rows, &tailspin);
    assert_eq!(tailspin_row["status"], "unknown", "{tailspin_row}");
    assert_eq!(tailspin_row["tenant_id"], UNKNOWN_CLIENT_TENANT_ID);
    assert_eq!(
        reasons(tailspin_row),
        [format!(
            "The tenant ID of Tailspin Toys is wrong: Microsoft's sign-in service does not know \
             the tenant {UNKNOWN_CLIENT_TENANT_ID}. Check it in the client's Microsoft Entra \
             admin center (Overview → Tenant ID) and correct it."
        )]
    );

    let no_tenant_row = row(&rows, &no_tenant);
    assert_eq!(no_tenant_row["status"], "unknown", "{no_tenant_row}");
    assert_eq!(no_tenant_row["tenant_id"], Value::Null);
    assert!(
        reasons(no_tenant_row)[0]
            .starts_with("No Entra tenant ID is set for No Tenant Ltd: set the tenant ID"),
        "{no_tenant_row}"
    );

    // The tenant exists, but nothing proves anything yet: Unknown with the test steps.
    let contoso_row = row(&rows, &contoso);
    assert_eq!(contoso_row["status"], "unknown", "{contoso_row}");
    assert!(
        reasons(contoso_row)[0].starts_with("No chat with Contoso yet"),
        "{contoso_row}"
    );
    assert!(
        contoso_row["remediation"]["test_steps"][0]
            .as_str()
            .unwrap()
            .starts_with("Ask someone at Contoso to start a new Teams chat")
    );
    let checked_at =
        OffsetDateTime::parse(contoso_row["checked_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!((OffsetDateTime::now_utc() - checked_at).whole_minutes() < 5);

    // Both tenant IDs were asked of the identity platform (the simulator); the client without
    // one was not.
    let lookups: Vec<String> = app
        .sim_requests()
        .await
        .into_iter()
        .filter(|(_, path)| path.ends_with("/v2.0/.well-known/openid-configuration"))
        .map(|(_, path)| path)
        .collect();
    assert_eq!(lookups.len(), 2, "{lookups:?}");

    // Stored: the clients page shows each client's last status.
    app.login_as_technician().await;
    let page = Html::parse_document(&app.get_html("/clients").await);
    let statuses = select_attr(&page, ".client-federation", "data-status");
    assert_eq!(statuses, ["unknown", "unknown", "unknown"]);
    let labels = select_text(&page, ".client-federation .state");
    assert!(
        labels.iter().all(|label| label.starts_with("Unknown · ")),
        "{labels:?}"
    );
    let first_reasons = select_text(&page, ".client-federation-reason");
    assert!(
        first_reasons
            .iter()
            .any(|reason| reason.contains("tenant ID of Tailspin Toys is wrong"))
    );
}

#[tokio::test]
async fn a_client_who_messaged_us_is_connected_with_the_date() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let contoso = create_client(&app, "Contoso", Some(CONTOSO_TENANT_ID), &[CONTOSO_DOMAIN]).await;

    let (_, sent_at) = client_writes(&app, CONTOSO_USER_1_ID, "The printer is on fire").await;
    poll_until_ticket(&app, &contoso).await;

    let rows = verify(&app).await;
    let contoso_row = row(&rows, &contoso);
    assert_eq!(contoso_row["status"], "connected", "{contoso_row}");
    assert_eq!(
        reasons(contoso_row)[0],
        format!(
            "Last message from Contoso received on {}, so Teams chat between the two tenants \
             works: a message only gets through when both sides allow it.",
            shown(sent_at)
        )
    );
    assert_eq!(contoso_row["remediation"], Value::Null);

    // The card shows the row with its badge; the clients page the last status with its time.
    let card = Html::parse_document(&app.get_html("/settings/integrations").await);
    assert_eq!(
        select_attr(&card, ".federation-row", "data-status"),
        ["connected"]
    );
    assert_eq!(
        select_text(&card, ".federation-row .federation-status"),
        ["Connected"]
    );
    let clients = Html::parse_document(&app.get_html("/clients").await);
    let label = select_text(&clients, ".client-federation .state");
    assert_eq!(label.len(), 1);
    assert!(label[0].starts_with("Connected · "), "{label:?}");
}

#[tokio::test]
async fn a_send_refused_by_a_blocked_tenant_is_blocked_with_the_side() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let fabrikam = create_client(
        &app,
        "Fabrikam",
        Some(FABRIKAM_TENANT_ID),
        &[FABRIKAM_DOMAIN],
    )
    .await;

    // Fabrikam used to allow us: Sam writes, the poll makes a ticket.
    app.sim_call(
        Method::POST,
        &format!("/_sim/tenants/{FABRIKAM_TENANT_ID}/federation"),
        Some(json!({"external_access": "allowed"})),
    )
    .await;
    client_writes(&app, FABRIKAM_USER_ID, "VPN is down").await;
    let ticket = poll_until_ticket(&app, &fabrikam).await;

    // Then Fabrikam's admin blocks external access, and Teams refuses our reply.
    app.sim_call(
        Method::POST,
        &format!("/_sim/tenants/{FABRIKAM_TENANT_ID}/federation"),
        Some(json!({"external_access": "blocked"})),
    )
    .await;
    let response = app
        .api_post(
            &format!("/api/v1/tickets/{ticket}/replies"),
            &json!({"text": "We are on it", "internal": false}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let reply: Value = response.json().await.unwrap();
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    let error = eventually(
        "the reply to be refused",
        Duration::from_secs(20),
        || async {
            let detail: Value = app
                .api_get(&format!("/api/v1/tickets/{ticket}"))
                .await
                .json()
                .await
                .unwrap();
            let entry = detail["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|entry| entry["id"] == reply_id.as_str())?
                .clone();
            (entry["delivery"]["state"] == "failed").then(|| {
                entry["delivery"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
        },
    )
    .await;

    // Without the MSP's own settings Regentra cannot tell which side refused.
    let rows = verify(&app).await;
    let fabrikam_row = row(&rows, &fabrikam);
    assert_eq!(fabrikam_row["status"], "blocked", "{fabrikam_row}");
    assert_eq!(fabrikam_row["blocking_side"], Value::Null);
    let why = reasons(fabrikam_row);
    assert!(
        why[0].starts_with("Teams refused the last reply to Fabrikam"),
        "{why:?}"
    );
    assert!(why[0].contains(&error), "{why:?} / {error}");
    assert!(
        why.iter()
            .any(|reason| reason.starts_with("One of the two tenants blocks Teams chat")),
        "{why:?}"
    );

    // With settings that allow everyone, the MSP side is ruled out: the client's side blocks,
    // and its admin gets PowerShell allowing the MSP's real domain.
    let response = app
        .api
        .put(app.url(SETTINGS))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&app.api_token))
        .body(ALLOW_ALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rows = verify(&app).await;
    let fabrikam_row = row(&rows, &fabrikam);
    assert_eq!(fabrikam_row["status"], "blocked", "{fabrikam_row}");
    assert_eq!(fabrikam_row["blocking_side"], "client", "{fabrikam_row}");
    let script = powershell_for(fabrikam_row, "client").expect("PowerShell for Fabrikam's admin");
    assert!(
        script.contains(&format!("$domains.Add('{MSP_DOMAIN}')")),
        "{script}"
    );
    assert!(
        script.contains("Set-CsTenantFederationConfiguration"),
        "{script}"
    );
    let message = fabrikam_row["remediation"]["client_admin_message"]
        .as_str()
        .expect("instructions for Fabrikam's admin");
    assert!(message.contains(SUPPORT_UPN), "{message}");
    assert!(message.contains(MSP_DOMAIN), "{message}");

    // The card shows the same, ready to copy: the client's PowerShell with the real domain,
    // the Teams admin center path, and the instructions for the client's admin.
    let card = Html::parse_document(&app.get_html("/settings/integrations").await);
    assert_eq!(
        select_attr(&card, ".federation-row", "data-status"),
        ["blocked"]
    );
    let scripts = select_text(&card, ".federation-powershell[data-side=client]");
    assert_eq!(scripts, [script.trim().to_owned()]);
    let admin_center = select_text(&card, ".federation-admin-center");
    assert!(
        admin_center
            .iter()
            .any(|steps| steps.contains("Teams admin center → Users → External access")),
        "{admin_center:?}"
    );
    assert_eq!(
        select_text(&card, ".federation-client-message"),
        [message.trim().to_owned()]
    );
    assert_eq!(
        select_text(&card, ".copy-client-instructions"),
        ["Copy instructions for the client's admin"]
    );
}

#[tokio::test]
async fn an_imported_allow_list_without_the_client_domain_blocks_naming_the_list() {
    let app = TestApp::with_simulator().await;
    app.login_as_technician().await;
    let contoso = create_client(&app, "Contoso", Some(CONTOSO_TENANT_ID), &[CONTOSO_DOMAIN]).await;
    let fabrikam = create_client(
        &app,
        "Fabrikam",
        Some(FABRIKAM_TENANT_ID),
        &[FABRIKAM_DOMAIN],
    )
    .await;

    // Import through the card's form, then press Verify on the card.
    let back = post_ui(
        &app,
        "/settings/integrations/teams/federation/settings",
        &[("configuration", ALLOW_ONLY_FABRIKAM)],
    )
    .await;
    assert_eq!(back, "/settings/integrations#federation-card");
    let page = Html::parse_document(&app.get_html("/settings/integrations").await);
    let flash = select_text(&page, "#flash");
    assert_eq!(
        flash,
        [
            "Imported the MSP's Teams settings: Allow only specific external domains: \
          fabrikam.example. Run Verify Client Federation to apply them."
        ]
    );
    post_ui(&app, "/settings/integrations/teams/federation/verify", &[]).await;
    let page = Html::parse_document(&app.get_html("/settings/integrations").await);
    assert_eq!(
        select_text(&page, "#flash"),
        ["2 clients checked: 0 connected, 1 blocked, 1 unknown."]
    );

    let contoso_row = Selector::parse(&format!("#federation-{contoso}")).unwrap();
    let contoso_row = page.select(&contoso_row).next().expect("Contoso's row");
    assert_eq!(contoso_row.value().attr("data-status"), Some("blocked"));
    let row_text: String = contoso_row.text().collect();
    assert!(
        row_text.contains(
            "contoso.example is not in the MSP's AllowedDomains list: the MSP's Teams settings"
        ),
        "{row_text}"
    );
    // The fix is for the MSP's own admin: add contoso.example to the allow list.
    let script_selector = Selector::parse(".federation-powershell[data-side=msp]").unwrap();
    let script: String = contoso_row
        .select(&script_selector)
        .next()
        .expect("PowerShell for the MSP")
        .text()
        .collect();
    assert!(
        script.contains(
            "$domains.Add('contoso.example')\nSet-CsTenantFederationConfiguration -AllowedDomainsAsAList @{Add=$domains}"
        ),
        "{script}"
    );

    // The API says the same, with the side; Fabrikam is on the list, so not blocked.
    let rows = verify(&app).await;
    let contoso_json = row(&rows, &contoso);
    assert_eq!(contoso_json["status"], "blocked");
    assert_eq!(contoso_json["blocking_side"], "msp");
    assert_eq!(row(&rows, &fabrikam)["status"], "unknown");
}

#[tokio::test]
async fn an_imported_block_all_blocks_every_client() {
    // On PostgreSQL too (when configured): the whole path from import to stored verdicts.
    for app in TestApp::all_with_simulator().await {
        block_all_blocks_every_client(&app).await;
    }
}

async fn block_all_blocks_every_client(app: &TestApp) {
    let clients = [
        create_client(app, "Contoso", Some(CONTOSO_TENANT_ID), &[CONTOSO_DOMAIN]).await,
        create_client(
            app,
            "Fabrikam",
            Some(FABRIKAM_TENANT_ID),
            &[FABRIKAM_DOMAIN],
        )
        .await,
        create_client(app, "Tailspin Toys", Some(UNKNOWN_CLIENT_TENANT_ID), &[]).await,
    ];
    let response = app
        .api
        .put(app.url(SETTINGS))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&app.api_token))
        .body(BLOCK_ALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let settings: Value = response.json().await.unwrap();
    assert_eq!(
        settings["summary"],
        "Block all external domains (AllowFederatedUsers is False)"
    );

    let rows = verify(app).await;
    // Contoso and Fabrikam exist: blocked by the MSP's own setting. Tailspin's tenant does not
    // exist, which decides first.
    for client in &clients[..2] {
        let client_row = row(&rows, client);
        assert_eq!(client_row["status"], "blocked", "{client_row}");
        assert_eq!(client_row["blocking_side"], "msp");
        assert!(
            reasons(client_row)[0]
                .contains("block all external domains (AllowFederatedUsers is False)"),
            "{client_row}"
        );
        let script = powershell_for(client_row, "msp").unwrap();
        assert!(script.contains("Set-CsTenantFederationConfiguration -AllowFederatedUsers $true"));
    }
    assert_eq!(row(&rows, &clients[2])["status"], "unknown");
}

#[tokio::test]
async fn malformed_settings_are_refused_and_the_previous_ones_kept() {
    let app = TestApp::with_simulator().await;
    app.login_as_technician().await;
    let contoso = create_client(&app, "Contoso", Some(CONTOSO_TENANT_ID), &[CONTOSO_DOMAIN]).await;
    post_ui(
        &app,
        "/settings/integrations/teams/federation/settings",
        &[("configuration", ALLOW_ONLY_FABRIKAM)],
    )
    .await;
    let before: Value = app
        .api_get("/api/v1/integrations/teams/federation")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        before["msp_settings"]["allowed_domains"],
        json!(["fabrikam.example"])
    );

    // A cut-off paste through the card's form: a clear error, nothing replaced.
    post_ui(
        &app,
        "/settings/integrations/teams/federation/settings",
        &[(
            "configuration",
            r#"{"Identity": "Global", "AllowFederatedUsers": tr"#,
        )],
    )
    .await;
    let page = Html::parse_document(&app.get_html("/settings/integrations").await);
    let flash = select_text(&page, "#flash.error");
    assert_eq!(flash.len(), 1, "{flash:?}");
    assert!(
        flash[0].starts_with("The Teams settings were not imported: the text is not valid JSON"),
        "{flash:?}"
    );
    assert!(
        flash[0].ends_with("The previous settings were kept."),
        "{flash:?}"
    );
    assert_eq!(
        select_text(&page, "#federation-settings strong"),
        ["Allow only specific external domains: fabrikam.example"]
    );

    // Valid JSON of another command, through the API: 400 naming the missing key.
    let response = app
        .api
        .put(app.url(SETTINGS))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&app.api_token))
        .body(r#"{"Identity": "Global", "EnableFederationAccess": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_federation_configuration");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the key `AllowFederatedUsers` is missing"),
        "{message}"
    );
    assert!(
        message.ends_with("The previous settings were kept."),
        "{message}"
    );

    // An empty paste is refused too.
    post_ui(
        &app,
        "/settings/integrations/teams/federation/settings",
        &[("configuration", "  ")],
    )
    .await;
    let page = Html::parse_document(&app.get_html("/settings/integrations").await);
    assert!(select_text(&page, "#flash.error")[0].starts_with("Nothing was pasted"));

    let after: Value = app
        .api_get("/api/v1/integrations/teams/federation")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["msp_settings"], before["msp_settings"]);
    // …and the verdict still uses them.
    let rows = verify(&app).await;
    assert_eq!(row(&rows, &contoso)["status"], "blocked");
}

#[tokio::test]
async fn the_cli_prints_the_verdicts_as_json_and_stores_them() {
    let app = TestApp::with_simulator().await;
    let data_dir = app.test_db.data_dir.clone().expect("a SQLite data dir");
    let tailspin = create_client(&app, "Tailspin Toys", Some(UNKNOWN_CLIENT_TENANT_ID), &[]).await;
    let authority = app.sim().base_url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        crate::secrets::regentra(&data_dir)
            .env("REGENTRA_MS_AUTHORITY", authority)
            .args(["federation", "verify", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let body: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(body["total"], 1);
    let tailspin_row = row(body["items"].as_array().unwrap(), &tailspin);
    assert_eq!(tailspin_row["status"], "unknown");
    assert!(reasons(tailspin_row)[0].contains("tenant ID of Tailspin Toys is wrong"));
    assert!(
        stderr.contains("1 client checked: 0 connected, 0 blocked, 1 unknown."),
        "{stderr}"
    );

    // Stored for the web UI too.
    let last: Value = app
        .api_get("/api/v1/integrations/teams/federation")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["items"][0]["client_id"], tailspin.as_str());
    assert_eq!(last["items"][0]["status"], "unknown");
}
