//! Connect Teams Chat (issue 5): the consent flow over HTTP against the simulator, refused and
//! foreign sign-ins, tokens never stored in clear, refresh (single-flight, rotation, revoked
//! grant → reconnect required once), disconnect and reconnecting another account, key rotation.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use m365_sim::demo;
use regentra::bridge::connection::{
    ConnectionSettings, ConnectionState, KeepAlive, ManualClock, TeamsConnections,
    reencrypt_all_secrets,
};
use regentra::bridge::vault::{KeyRing, SealedField};
use reqwest::Method;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::helpers::{TECH_EMAIL, TECH_PASSWORD, TestApp, location};
use crate::teams_flow::{Consent, parse_card};

const SCOPES: &str = "offline_access User.Read Chat.Read ChatMessage.Read ChatMessage.Send";

/// The key ring the app under test loaded (its key file in the data directory).
fn app_key_ring(app: &TestApp) -> KeyRing {
    KeyRing::load(None, &app.state.config.data_dir).unwrap()
}

/// Sealed tokens of the current connection, straight from the database.
async fn stored_blobs(app: &TestApp) -> (String, Option<Vec<u8>>, Option<Vec<u8>>) {
    sqlx::query_as(
        "SELECT id, access_token, refresh_token FROM teams_connections WHERE active_slot = 1",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

/// Counts POSTs to the token endpoint in a request log.
fn token_requests(log: &[(String, String)]) -> usize {
    log.iter()
        .filter(|(method, path)| method == "POST" && path.ends_with("/oauth2/v2.0/token"))
        .count()
}

// ---------------------------------------------------------------- the consent flow

#[tokio::test]
async fn consent_flow_over_http_connects_the_support_account() {
    for app in TestApp::all_with_simulator().await {
        // Arrange + act: technician clicks Connect, signs in at Microsoft, accepts.
        app.login_as_technician().await;
        let authorize = app.click_connect().await;
        let query: std::collections::HashMap<_, _> = url::Url::parse(&authorize)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(query["scope"], SCOPES, "exactly the five delegated scopes");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(
            query["redirect_uri"],
            app.url("/integrations/teams/callback")
        );
        let callback = app
            .sign_in_at_microsoft(&authorize, demo::SUPPORT_UPN, Consent::Accept)
            .await;
        let card = app.follow_callback(&callback).await;

        // Assert: the card, the API and the service all see the support account.
        assert_eq!(card.state, "connected", "{card:?} ({})", app.label);
        let account = card.account.unwrap();
        assert!(account.contains(demo::SUPPORT_UPN), "{account}");
        assert!(account.contains(demo::SUPPORT_DISPLAY_NAME), "{account}");
        assert!(account.contains(demo::MSP_TENANT_ID), "{account}");
        assert_eq!(card.hint, None, "a shared support mailbox gets no hint");
        assert_eq!(
            card.flash.as_deref(),
            Some(format!("Teams Chat Bridge connected as {}.", demo::SUPPORT_UPN).as_str())
        );
        assert!(card.actions.contains(&"teams-disconnect".to_owned()));

        let status: serde_json::Value = app
            .api_get("/api/v1/integrations/teams")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["state"], "connected");
        assert_eq!(status["account"]["email"], demo::SUPPORT_UPN);
        assert_eq!(
            status["account"]["display_name"],
            demo::SUPPORT_DISPLAY_NAME
        );
        assert_eq!(status["account"]["tenant_id"], demo::MSP_TENANT_ID);
        assert!(status["last_poll"].is_null() || status["last_poll"].is_object());
        assert_eq!(status["setup"]["ready"], true);

        let active = app.state.teams.active().await.unwrap().unwrap();
        assert_eq!(active.email, demo::SUPPORT_UPN);
        assert_eq!(active.user_id, demo::SUPPORT_USER_ID);
        assert_eq!(active.tenant_id.as_str(), demo::MSP_TENANT_ID);
        assert_eq!(active.tenant_domains, vec![demo::MSP_DOMAIN.to_owned()]);
        let me = active.graph.me().await.unwrap();
        assert_eq!(me.id, demo::SUPPORT_USER_ID);
    }
}

#[tokio::test]
async fn replayed_callback_is_refused() {
    let app = TestApp::with_simulator().await;
    app.login_as_technician().await;
    let authorize = app.click_connect().await;
    let callback = app
        .sign_in_at_microsoft(&authorize, demo::SUPPORT_UPN, Consent::Accept)
        .await;
    assert_eq!(app.follow_callback(&callback).await.state, "connected");
    let deleted = app
        .api
        .delete(app.url("/api/v1/integrations/teams"))
        .header(
            "authorization",
            format!("Bearer {}", app.api_token.expose_secret()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);

    // The same callback URL again (same browser, same state and code).
    let card = app.follow_callback(&callback).await;

    assert_eq!(card.state, "disconnected");
    let problem = card.problem.unwrap();
    assert!(
        problem.starts_with("This Microsoft sign-in response was refused"),
        "{problem}"
    );
}

#[tokio::test]
async fn state_from_another_browser_session_or_made_up_is_refused() {
    let app = TestApp::with_simulator().await;
    app.login_as_technician().await;
    let authorize = app.click_connect().await;
    let callback = app
        .sign_in_at_microsoft(&authorize, demo::SUPPORT_UPN, Consent::Accept)
        .await;

    // Another browser (its own session, same technician) delivers this browser's callback.
    let other_browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let login = other_browser
        .post(app.url("/login"))
        .headers(app.same_origin_headers())
        .form(&[
            ("email", TECH_EMAIL),
            ("password", TECH_PASSWORD),
            ("next", "/tickets"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let foreign = other_browser.get(&callback).send().await.unwrap();
    assert_eq!(location(&foreign), "/settings/integrations");
    let html = other_browser
        .get(app.url("/settings/integrations"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let card = parse_card(&html);
    assert_eq!(card.state, "disconnected");
    assert!(card.problem.unwrap().contains("was refused"));

    // A made-up state in the original browser is refused too …
    let made_up = app
        .follow_callback(&app.url("/integrations/teams/callback?code=abc&state=made-up"))
        .await;
    assert_eq!(made_up.state, "disconnected");
    assert!(made_up.problem.unwrap().contains("was refused"));
    assert!(app.state.teams.active().await.unwrap().is_none());
}

#[tokio::test]
async fn declined_consent_is_explained_on_the_card() {
    let app = TestApp::with_simulator().await;
    app.login_as_technician().await;
    let authorize = app.click_connect().await;

    let callback = app
        .sign_in_at_microsoft(&authorize, demo::SUPPORT_UPN, Consent::Cancel)
        .await;
    let card = app.follow_callback(&callback).await;

    assert_eq!(card.state, "disconnected");
    let problem = card.problem.unwrap();
    assert!(
        problem.starts_with("The permissions were not granted"),
        "{problem}"
    );
    assert!(problem.contains("AADSTS65004"), "{problem}");
    assert!(problem.contains("choose Accept"), "{problem}");
    assert!(card.actions.contains(&"teams-connect".to_owned()));
    // Shown once: the next visit no longer carries it.
    assert_eq!(app.teams_card().await.problem, None);
}

#[tokio::test]
async fn admin_consent_required_shows_the_admin_consent_link_and_works_once_granted() {
    let app = TestApp::with_simulator().await;
    let mut scenario = demo::demo_scenario(&app.url("/integrations/teams/callback"));
    scenario
        .tenants
        .iter_mut()
        .find(|tenant| tenant.id == demo::MSP_TENANT_ID)
        .unwrap()
        .admin_consent_required = true;
    app.sim().sim().load_scenario(&scenario).unwrap();

    app.login_as_technician().await;
    let authorize = app.click_connect().await;
    let callback = app
        .sign_in_at_microsoft(&authorize, demo::SUPPORT_UPN, Consent::Accept)
        .await;
    let card = app.follow_callback(&callback).await;

    assert_eq!(card.state, "disconnected");
    let problem = card.problem.unwrap();
    assert!(
        problem.contains("only lets administrators approve apps"),
        "{problem}"
    );
    assert!(problem.contains("AADSTS90094"), "{problem}");
    let link = url::Url::parse(&card.admin_consent_link.unwrap()).unwrap();
    assert!(
        link.as_str()
            .starts_with(&app.sim_url("/organizations/v2.0/adminconsent"))
    );
    let pairs: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    assert_eq!(pairs["client_id"], demo::REGENTRA_CLIENT_ID);
    assert_eq!(
        pairs["redirect_uri"],
        app.url("/integrations/teams/callback")
    );

    // An administrator grants consent for the tenant; connecting now works without a prompt.
    app.sim_call(
        Method::POST,
        &format!("/_sim/tenants/{}/admin-consent", demo::MSP_TENANT_ID),
        Some(json!({"client_id": demo::REGENTRA_CLIENT_ID})),
    )
    .await;
    app.connect_support_user().await;
}

#[tokio::test]
async fn missing_settings_name_the_variables_and_offer_no_connect_button() {
    let app = TestApp::spawn().await;
    app.login_as_technician().await;

    let card = app.teams_card().await;

    assert_eq!(card.state, "disconnected");
    let problem = card.problem.unwrap();
    assert!(
        problem.starts_with(
            "Teams Chat Bridge is not set up yet: REGENTRA_MS_CLIENT_ID and \
             REGENTRA_MS_CLIENT_SECRET are not set."
        ),
        "{problem}"
    );
    assert!(
        problem.contains(&app.url("/integrations/teams/callback")),
        "{problem}"
    );
    assert!(
        problem
            .contains("offline_access, User.Read, Chat.Read, ChatMessage.Read, ChatMessage.Send"),
        "{problem}"
    );
    assert!(card.actions.is_empty(), "{:?}", card.actions);

    let status: serde_json::Value = app
        .api_get("/api/v1/integrations/teams")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "disconnected");
    assert_eq!(status["account"], serde_json::Value::Null);
    assert_eq!(status["setup"]["ready"], false);
    assert_eq!(
        status["setup"]["missing"],
        json!(["REGENTRA_MS_CLIENT_ID", "REGENTRA_MS_CLIENT_SECRET"])
    );

    // Opening the connect URL anyway leads back to the card with the same explanation.
    let response = app.get_page("/settings/integrations/teams/connect").await;
    assert_eq!(location(&response), "/settings/integrations");
    assert!(
        app.teams_card()
            .await
            .problem
            .unwrap()
            .contains("REGENTRA_MS_CLIENT_ID")
    );
}

#[tokio::test]
async fn personal_looking_account_gets_a_hint_not_a_block() {
    let app = TestApp::with_simulator().await;

    let card = app.connect_as(demo::STAFF_UPN).await;

    assert_eq!(card.state, "connected");
    let hint = card.hint.unwrap();
    assert!(
        hint.starts_with(&format!(
            "{} looks like a person's own account",
            demo::STAFF_UPN
        )),
        "{hint}"
    );
}

// ---------------------------------------------------------------- tokens at rest

fn encodings(token: &str) -> Vec<String> {
    let bytes = token.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        token.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        hex.to_uppercase(),
        hex,
    ]
}

/// Every byte the database holds: the SQLite files, or every row of every table as text.
async fn raw_database(app: &TestApp) -> Vec<u8> {
    if let Some(dir) = &app.test_db.data_dir {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && name.starts_with("regentra.db") {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(!bytes.is_empty());
        return bytes;
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    let mut bytes = Vec::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {table} t"
        )))
        .fetch_all(app.db.pool())
        .await
        .unwrap();
        for row in rows {
            bytes.extend(row.into_bytes());
        }
    }
    bytes
}

#[tokio::test]
async fn no_token_issued_by_microsoft_is_stored_in_any_encoding() {
    for app in TestApp::all_with_simulator().await {
        app.connect_support_user().await;
        // A refresh too, so rotated tokens are in the set.
        let active = app.state.teams.active().await.unwrap().unwrap();
        app.state
            .teams
            .refresh_now(active.connection_id)
            .await
            .unwrap();

        let (access, refresh) = app.sim_tokens().await;
        assert!(access.len() >= 2 && refresh.len() >= 2, "{access:?}");
        let database = raw_database(&app).await;

        for token in access.iter().chain(refresh.iter()) {
            for encoded in encodings(token) {
                assert!(
                    !database
                        .windows(encoded.len())
                        .any(|window| window == encoded.as_bytes()),
                    "a token issued by the simulator is in the database ({})",
                    app.label
                );
            }
        }
        // … while the sealed blobs are there and open with the app's key.
        let (id, access_blob, refresh_blob) = stored_blobs(&app).await;
        let keys = app_key_ring(&app);
        let opened = keys
            .decrypt_secret(
                &refresh_blob.unwrap(),
                &SealedField::new("teams_connections", &id, "refresh_token"),
            )
            .unwrap();
        assert_eq!(
            opened.expose_secret(),
            refresh.last().unwrap(),
            "newest refresh token stored"
        );
        assert!(access_blob.is_some());
    }
}

#[tokio::test]
async fn tampered_refresh_token_is_an_error_naming_the_connection() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let (id, _, refresh_blob) = stored_blobs(&app).await;
    let mut tampered = refresh_blob.unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    sqlx::query("UPDATE teams_connections SET refresh_token = $1 WHERE id = $2")
        .bind(tampered)
        .bind(&id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let active = app.state.teams.active().await.unwrap().unwrap();

    let error = app
        .state
        .teams
        .refresh_now(active.connection_id)
        .await
        .unwrap_err()
        .to_string();

    assert!(
        error.contains(&format!(
            "the stored secret for teams_connections:{id}:refresh_token cannot be decrypted"
        )),
        "{error}"
    );
    // A vault failure is not Microsoft's refusal: the connection stays as it was.
    assert_eq!(
        app.state.teams.status().await.unwrap().state,
        ConnectionState::Connected
    );
}

// ---------------------------------------------------------------- refresh

#[tokio::test]
async fn concurrent_refreshes_redeem_the_refresh_token_once_even_across_processes() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    // A second "process": its own service, lock table and lease owner, same database and key.
    let other_process = TeamsConnections::new(
        app.db.clone(),
        Arc::new(app_key_ring(&app)),
        ConnectionSettings::from_config(&app.state.config, &app.state.base_url),
    );
    // The stored access token is about to expire.
    sqlx::query("UPDATE teams_connections SET access_token_expires_at = $1")
        .bind(time::OffsetDateTime::now_utc().unix_timestamp() * 1000)
        .execute(app.db.pool())
        .await
        .unwrap();
    app.sim_call(Method::DELETE, "/_sim/requests", None).await;
    let here = app.state.teams.active().await.unwrap().unwrap();
    let there = other_process.active().await.unwrap().unwrap();

    let (a, b, c) = tokio::join!(here.graph.me(), here.graph.me(), there.graph.me());

    for me in [a, b, c] {
        assert_eq!(me.unwrap().id, demo::SUPPORT_USER_ID);
    }
    let log = app.sim_requests().await;
    assert_eq!(
        token_requests(&log),
        1,
        "one refresh for three callers: {log:?}"
    );
}

#[tokio::test]
async fn access_token_is_refreshed_only_within_five_minutes_of_expiry() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let expires_ms: i64 =
        sqlx::query_scalar("SELECT access_token_expires_at FROM teams_connections")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    let expires_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires_ms) * 1_000_000)
            .unwrap();
    let clock = Arc::new(ManualClock::new(expires_at - time::Duration::minutes(6)));
    let connections = TeamsConnections::with_clock(
        app.db.clone(),
        Arc::new(app_key_ring(&app)),
        ConnectionSettings::from_config(&app.state.config, &app.state.base_url),
        clock.clone(),
    );
    let active = connections.active().await.unwrap().unwrap();
    app.sim_call(Method::DELETE, "/_sim/requests", None).await;

    // Six minutes before expiry: the stored token is used as is.
    active.graph.me().await.unwrap();
    assert_eq!(token_requests(&app.sim_requests().await), 0);

    // Four minutes before expiry: refreshed first, and the rotated tokens are stored.
    clock.advance(time::Duration::minutes(2));
    active.graph.me().await.unwrap();
    assert_eq!(token_requests(&app.sim_requests().await), 1);
    let (id, _, refresh_blob) = stored_blobs(&app).await;
    let (_, refresh) = app.sim_tokens().await;
    let stored = app_key_ring(&app)
        .decrypt_secret(
            &refresh_blob.unwrap(),
            &SealedField::new("teams_connections", &id, "refresh_token"),
        )
        .unwrap();
    assert_eq!(stored.expose_secret(), refresh.last().unwrap());
    active.graph.me().await.unwrap();
    assert_eq!(
        token_requests(&app.sim_requests().await),
        1,
        "the new token is fresh"
    );
}

#[tokio::test]
async fn keep_alive_refreshes_an_idle_connection_within_seven_days() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let connections = TeamsConnections::with_clock(
        app.db.clone(),
        Arc::new(app_key_ring(&app)),
        ConnectionSettings::from_config(&app.state.config, &app.state.base_url),
        clock.clone(),
    );
    assert!(!connections.keep_alive_due().await.unwrap());
    assert_eq!(connections.keep_alive().await.unwrap(), KeepAlive::NotDue);

    clock.advance(time::Duration::days(6) + time::Duration::minutes(1));
    assert!(connections.keep_alive_due().await.unwrap());
    app.sim_call(Method::DELETE, "/_sim/requests", None).await;
    assert_eq!(
        connections.keep_alive().await.unwrap(),
        KeepAlive::Refreshed
    );

    assert_eq!(token_requests(&app.sim_requests().await), 1);
    assert!(!connections.keep_alive_due().await.unwrap());
}

/// A `tracing` writer into a shared buffer, to count log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn lines_containing(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }
}

#[tokio::test]
async fn revoked_grant_means_reconnect_required_once_and_no_more_token_requests() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime is single-threaded: every task of the app runs on this thread.
    let _logging = tracing::subscriber::set_default(subscriber);

    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let active = app.state.teams.active().await.unwrap().unwrap();
    let mut changes = app.state.teams.subscribe_changes();
    changes.borrow_and_update();

    // Act: an admin revokes the support user's sessions; the access token expires.
    app.sim_call(
        Method::POST,
        &format!("/_sim/users/{}/revoke", demo::SUPPORT_USER_ID),
        None,
    )
    .await;
    app.sim_call(
        Method::POST,
        "/_sim/clock",
        Some(json!({"advance_secs": 2 * 3600})),
    )
    .await;
    app.sim_call(Method::DELETE, "/_sim/requests", None).await;
    let error = active.graph.me().await.unwrap_err();

    // Assert: the refresh was refused as reconnect-class, once. (If a background worker hit
    // the 401 first, this call finds the connection already stopped.)
    assert!(
        error.needs_reconnect() || matches!(error, msgraph::Error::TokenUnavailable { .. }),
        "{error}"
    );
    let status = app.state.teams.status().await.unwrap();
    assert_eq!(status.state, ConnectionState::ReconnectRequired);
    let reason = status.reason.unwrap();
    assert!(reason.contains("AADSTS50173"), "{reason}");
    assert!(changes.has_changed().unwrap(), "workers are told at once");
    assert!(app.state.teams.active().await.unwrap().is_none());
    assert_eq!(token_requests(&app.sim_requests().await), 1);

    // Nothing more goes to Microsoft: not the old Graph client, not a second mark.
    app.sim_call(Method::DELETE, "/_sim/requests", None).await;
    assert!(active.graph.me().await.is_err());
    assert!(active.graph.organization().await.is_err());
    app.state
        .teams
        .mark_reconnect_required(active.connection_id, "again")
        .await
        .unwrap();
    assert!(
        app.state
            .teams
            .refresh_now(active.connection_id)
            .await
            .is_err()
    );
    assert_eq!(app.sim_requests().await, Vec::<(String, String)>::new());
    assert_eq!(
        logs.lines_containing("needs to be reconnected"),
        1,
        "logged once"
    );

    // The card says why and offers to reconnect.
    app.login_as_technician().await;
    let card = app.teams_card().await;
    assert_eq!(card.state, "reconnect_required");
    assert!(card.problem.unwrap().contains("AADSTS50173"));
    assert_eq!(
        card.actions.first().map(String::as_str),
        Some("teams-connect")
    );

    // Reconnecting the same account resumes with the same connection id.
    let card = app.connect_as(demo::SUPPORT_UPN).await;
    assert_eq!(card.state, "connected");
    let resumed = app.state.teams.active().await.unwrap().unwrap();
    assert_eq!(resumed.connection_id, active.connection_id);
    assert_eq!(resumed.graph.me().await.unwrap().id, demo::SUPPORT_USER_ID);
}

// ---------------------------------------------------------------- disconnect

#[tokio::test]
async fn disconnect_stops_graph_requests_and_reconnecting_another_account_switches() {
    for app in TestApp::all_with_simulator().await {
        app.connect_support_user().await;
        let before = app.state.teams.active().await.unwrap().unwrap();
        let ticket = app
            .receive_teams_message(
                "19:contoso-pat_support@unq.gbl.spaces",
                "1700000000001",
                demo::CONTOSO_TENANT_ID,
                "Pat Lee",
                "Printer is offline",
            )
            .await;
        let mut changes = app.state.teams.subscribe_changes();
        changes.borrow_and_update();

        // Act: disconnect through the card.
        let response = app
            .post_form("/settings/integrations/teams/disconnect", &[])
            .await;
        assert_eq!(location(&response), "/settings/integrations");

        // Assert: polling is told at once, the tokens are gone, no Graph request is possible.
        assert!(changes.has_changed().unwrap());
        let card = app.teams_card().await;
        assert_eq!(card.state, "disconnected", "{}", app.label);
        assert!(card.flash.unwrap().contains("disconnected"));
        let erased: (Option<Vec<u8>>, Option<Vec<u8>>) = sqlx::query_as(
            "SELECT access_token, refresh_token FROM teams_connections WHERE id = $1",
        )
        .bind(before.connection_id.to_string())
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(erased, (None, None));
        assert!(app.state.teams.active().await.unwrap().is_none());
        app.sim_call(Method::DELETE, "/_sim/requests", None).await;
        let error = before.graph.me().await.unwrap_err();
        assert!(error.to_string().contains("disconnected"), "{error}");
        assert_eq!(app.sim_requests().await, Vec::<(String, String)>::new());
        // Tickets stay.
        assert_eq!(
            app.api_get(&format!("/api/v1/tickets/{ticket}"))
                .await
                .status(),
            200
        );

        // Reconnect as another account: active() is that account.
        let card = app.connect_as(demo::STAFF_UPN).await;
        assert_eq!(card.state, "connected");
        let after = app.state.teams.active().await.unwrap().unwrap();
        assert_eq!(after.email, demo::STAFF_UPN);
        assert_eq!(after.user_id, demo::STAFF_USER_ID);
        assert_ne!(after.connection_id, before.connection_id);
        assert_eq!(after.graph.me().await.unwrap().id, demo::STAFF_USER_ID);
        assert!(
            before.graph.me().await.is_err(),
            "the old account's client stays dead"
        );
    }
}

#[tokio::test]
async fn api_delete_disconnects_and_answers_the_new_state() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;

    let response = app
        .api
        .delete(app.url("/api/v1/integrations/teams"))
        .header(
            "authorization",
            format!("Bearer {}", app.api_token.expose_secret()),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["state"], "disconnected");
    assert_eq!(body["account"], serde_json::Value::Null);
    // Without a token the API refuses.
    let anonymous = app
        .api
        .delete(app.url("/api/v1/integrations/teams"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

// ---------------------------------------------------------------- key rotation

#[tokio::test]
async fn key_rotation_reencrypts_the_tokens_and_retires_the_old_key() {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    let data_dir = app.state.config.data_dir.clone();
    let old_key = app_key_ring(&app).active_key_id();
    // A sign-in in progress holds a sealed verifier too.
    app.click_connect().await;

    // Steps of `regentra keys rotate`, as a separate process would run them.
    let mut keys = app_key_ring(&app);
    let new_key = keys.generate_new_active(&data_dir).unwrap();
    assert!(
        data_dir
            .join(format!("encryption.key.old.{old_key}"))
            .exists()
    );
    let rewritten = reencrypt_all_secrets(&app.db, &keys).await.unwrap();
    assert_eq!(rewritten, 3, "access token, refresh token, PKCE verifier");
    keys.retire_old_keys(&data_dir).unwrap();
    assert!(
        !data_dir
            .join(format!("encryption.key.old.{old_key}"))
            .exists()
    );

    // A restarted process with only the new key reads the tokens and calls Graph.
    let restarted_keys = KeyRing::load(None, &data_dir).unwrap();
    assert_eq!(restarted_keys.active_key_id(), new_key);
    assert!(restarted_keys.old_key_ids().is_empty());
    let (_, access_blob, refresh_blob) = stored_blobs(&app).await;
    for blob in [access_blob.unwrap(), refresh_blob.unwrap()] {
        assert_eq!(KeyRing::key_id_of(&blob), Some(new_key));
    }
    let restarted = TeamsConnections::new(
        app.db.clone(),
        Arc::new(restarted_keys),
        ConnectionSettings::from_config(&app.state.config, &app.state.base_url),
    );
    let active = restarted.active().await.unwrap().unwrap();
    assert_eq!(active.graph.me().await.unwrap().id, demo::SUPPORT_USER_ID);
    restarted.refresh_now(active.connection_id).await.unwrap();
}

#[test]
fn keys_rotate_command_replaces_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = crate::secrets::regentra(dir.path())
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let key_before = std::fs::read_to_string(dir.path().join("encryption.key")).unwrap();

    let second = crate::secrets::regentra(dir.path())
        .args(["keys", "rotate"])
        .output()
        .unwrap();

    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stdout = String::from_utf8(second.stdout).unwrap();
    assert!(
        stdout.starts_with("Rotated the encryption key: 0 stored secret(s) re-encrypted"),
        "{stdout}"
    );
    let key_after = std::fs::read_to_string(dir.path().join("encryption.key")).unwrap();
    assert_ne!(key_before, key_after);
    assert!(
        !stdout.contains(key_after.trim()),
        "the key is never printed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("encryption.key.old."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn short_encryption_key_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = crate::secrets::regentra(dir.path())
        .env("REGENTRA_ENCRYPTION_KEY", "c2hvcnQ=")
        .args(["serve", "--port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("REGENTRA_ENCRYPTION_KEY"), "{stderr}");
    assert!(stderr.contains("32"), "{stderr}");
    assert!(
        !stderr.contains("c2hvcnQ="),
        "the value is never echoed: {stderr}"
    );
}
