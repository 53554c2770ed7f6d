//! Inbound (issue 6): client messages posted in the simulated Teams become exactly one ticket
//! entry each, through the real poller, the real Graph client and the real HTTP API.
//!
//! Each test connects the demo support account (the app's scheduler then runs its first cycle at
//! once; `connected_app` waits for it so the test's own cycles are the only ones), posts as
//! Teams users through the simulator, runs cycles with `POST /api/v1/integrations/teams/poll`
//! and checks what a technician would see through the API.

use std::time::Duration;

use m365_sim::demo;
use m365_sim::{PostOutcome, Sim, UserPost};
use regentra::store;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Fixture bodies shared with the Graph client's tests (read-only `shared/` next to the checkout).
pub fn fixture(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/graph")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} is missing ({e})", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A connected app whose scheduler has finished its first (empty) cycle.
pub async fn connected_app() -> TestApp {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    wait_for_first_cycle(&app).await;
    app
}

/// [`connected_app`] on SQLite and, when `REGENTRA_TEST_POSTGRES_URL` is set, on PostgreSQL.
pub async fn connected_apps() -> Vec<TestApp> {
    let apps = TestApp::all_with_simulator().await;
    for app in &apps {
        app.connect_support_user().await;
        wait_for_first_cycle(app).await;
    }
    apps
}

/// Waits until the scheduler's first cycle after connecting is recorded.
pub async fn wait_for_first_cycle(app: &TestApp) {
    let account = account_id(app).await;
    for _ in 0..200 {
        let mut conn = app.db.acquire().await.unwrap();
        let done = store::poller::last_cycle(&mut conn, &account)
            .await
            .unwrap()
            .is_some_and(|c| c.finished_at.is_some());
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scheduler did not run its first cycle after connecting");
}

pub async fn account_id(app: &TestApp) -> String {
    app.state
        .teams
        .active()
        .await
        .unwrap()
        .expect("connected")
        .connection_id
        .to_string()
}

pub fn sim(app: &TestApp) -> &Sim {
    app.sim.as_ref().expect("simulator").sim()
}

/// One cycle through the API. The simulator clock moves 2 s first so Teams' one-read-per-
/// second-per-chat limit never turns a test's back-to-back cycles into retries.
pub async fn poll(app: &TestApp) -> Value {
    poll_mode(app, None).await
}

pub async fn poll_mode(app: &TestApp, mode: Option<&str>) -> Value {
    sim(app).advance_clock(2);
    let path = match mode {
        Some(mode) => format!("/api/v1/integrations/teams/poll?mode={mode}"),
        None => "/api/v1/integrations/teams/poll".to_owned(),
    };
    let response = app.api_post(&path, &json!({})).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "poll answered {status}: {body}");
    body
}

/// A oneOnOne chat between the support user and `user`.
pub fn chat_with(app: &TestApp, user: &str) -> String {
    let (_, chat) = sim(app)
        .create_chat(
            "oneOnOne",
            &[demo::SUPPORT_USER_ID.to_owned(), user.to_owned()],
            None,
        )
        .unwrap();
    chat["id"].as_str().unwrap().to_owned()
}

/// `user` types `html` in `chat`; returns the Graph message.
pub fn say(app: &TestApp, chat: &str, user: &str, html: &str) -> Value {
    match sim(app)
        .post_as_user(chat, user, UserPost::Html(html.to_owned()))
        .unwrap()
    {
        PostOutcome::Delivered(message) => message,
        PostOutcome::Dropped { reason } => panic!("the simulator dropped the message: {reason}"),
    }
}

/// `user` posts a raw chatMessage (fixture bodies); missing id/times/from are filled in.
pub fn say_raw(app: &TestApp, chat: &str, user: &str, message: Value) -> Value {
    let Value::Object(map) = message else {
        panic!("a raw message must be an object")
    };
    match sim(app)
        .post_as_user(chat, user, UserPost::Raw(map))
        .unwrap()
    {
        PostOutcome::Delivered(message) => message,
        PostOutcome::Dropped { reason } => panic!("the simulator dropped the message: {reason}"),
    }
}

pub async fn tickets(app: &TestApp) -> Vec<Value> {
    let body: Value = app
        .api_get("/api/v1/tickets?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    body["items"].as_array().unwrap().clone()
}

pub async fn ticket(app: &TestApp, id: &str) -> Value {
    app.api_get(&format!("/api/v1/tickets/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The one ticket of `chat` (asserts there is exactly one).
pub async fn only_ticket_of(app: &TestApp, chat: &str) -> Value {
    let of_chat: Vec<Value> = tickets(app)
        .await
        .into_iter()
        .filter(|t| t["chat_id"] == chat)
        .collect();
    assert_eq!(of_chat.len(), 1, "tickets of {chat}: {of_chat:#?}");
    ticket(app, of_chat[0]["id"].as_str().unwrap()).await
}

pub fn client_entries(ticket: &Value) -> Vec<Value> {
    ticket["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "client_message")
        .cloned()
        .collect()
}

pub fn summary(report: &Value) -> &Value {
    &report["summary"]
}

#[tokio::test]
async fn client_message_in_new_chat_opens_ticket_for_matching_tenant_and_the_next_appends() {
    for app in connected_apps().await {
        new_chat_opens_ticket_and_next_message_appends(&app).await;
    }
}

async fn new_chat_opens_ticket_and_next_message_appends(app: &TestApp) {
    let contoso = app
        .create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(app, demo::CONTOSO_USER_1_ID);
    say(
        app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        "<p>Printer is down again</p><p>Since this morning.</p>",
    );

    let first = poll(app).await;
    assert_eq!(first["result"], "ok", "{}: {first}", app.label);
    let s = summary(&first);
    assert_eq!(s["chats_listed"], 1);
    assert_eq!(s["chats_changed"], 1);
    assert_eq!(s["messages_ingested"], 1);
    assert_eq!(s["tickets_created"], 1);
    assert_eq!(s["graph_requests"], 2, "chat list + one chat: {s}");

    let ticket = only_ticket_of(app, &chat).await;
    assert_eq!(ticket["subject"], "Printer is down again");
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["client"]["id"], contoso["id"]);
    assert_eq!(ticket["requester"]["name"], "Pat Lee");
    let entries = client_entries(&ticket);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["text"],
        "Printer is down again\nSince this morning."
    );
    assert_eq!(entries[0]["author"]["name"], "Pat Lee");

    say(app, &chat, demo::CONTOSO_USER_1_ID, "It shows error E-42");
    let second = poll(app).await;
    assert_eq!(summary(&second)["entries_appended"], 1, "{second}");
    assert_eq!(summary(&second)["tickets_created"], 0);
    let ticket = only_ticket_of(app, &chat).await;
    let texts: Vec<String> = client_entries(&ticket)
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "Printer is down again\nSince this morning.",
            "It shows error E-42"
        ]
    );

    // Nothing new: a quiet cycle is exactly one Graph request and stores nothing.
    let quiet = poll(app).await;
    let s = summary(&quiet);
    assert_eq!(s["graph_requests"], 1, "{s}");
    assert_eq!(s["chats_changed"], 0);
    assert_eq!(s["messages_ingested"], 0);
    assert_eq!(client_entries(&only_ticket_of(app, &chat).await).len(), 2);
}

#[tokio::test]
async fn group_chat_with_two_client_users_is_one_ticket_with_each_sender() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let (_, chat) = sim(&app)
        .create_chat(
            "group",
            &[
                demo::SUPPORT_USER_ID.to_owned(),
                demo::CONTOSO_USER_1_ID.to_owned(),
                demo::CONTOSO_USER_2_ID.to_owned(),
            ],
            Some("Contoso IT"),
        )
        .unwrap();
    let chat = chat["id"].as_str().unwrap().to_owned();
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "VPN drops every hour");
    say(
        &app,
        &chat,
        demo::CONTOSO_USER_2_ID,
        "Same for me since Monday",
    );

    let report = poll(&app).await;
    assert_eq!(summary(&report)["tickets_created"], 1, "{report}");
    assert_eq!(summary(&report)["entries_appended"], 1);
    let ticket = only_ticket_of(&app, &chat).await;
    assert_eq!(ticket["subject"], "VPN drops every hour");
    assert_eq!(ticket["requester"]["name"], "Pat Lee");
    let authors: Vec<String> = client_entries(&ticket)
        .iter()
        .map(|e| e["author"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(authors, ["Pat Lee", "Robin Diaz"]);
}

#[tokio::test]
async fn unknown_tenant_goes_to_unassigned_and_assigning_the_tenant_moves_it_and_later_tickets() {
    let app = connected_app().await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    say(
        &app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        "Who do I talk to about licences?",
    );
    poll(&app).await;
    let unassigned = only_ticket_of(&app, &chat).await;
    assert_eq!(unassigned["client"], Value::Null);
    assert_eq!(unassigned["unassigned_tenant_id"], demo::CONTOSO_TENANT_ID);
    let ticket_id = unassigned["id"].as_str().unwrap().to_owned();

    // The technician sees the tenant on the ticket and assigns it to a new client in one click.
    let client = app.create_client("Contoso", None).await;
    app.login_as_technician().await;
    let page = app.get_html(&format!("/tickets/{ticket_id}")).await;
    assert!(page.contains(demo::CONTOSO_TENANT_ID), "tenant shown");
    assert!(page.contains("id=\"assign-form\""), "assign form shown");
    let response = app
        .post_form(
            &format!("/tickets/{ticket_id}/assign-tenant"),
            &[("client_id", client["id"].as_str().unwrap())],
        )
        .await;
    assert!(
        response.status().is_redirection() || response.status().is_success(),
        "assign answered {}",
        response.status()
    );
    let assigned = ticket(&app, &ticket_id).await;
    assert_eq!(assigned["client"]["id"], client["id"]);
    assert_eq!(assigned["unassigned_tenant_id"], Value::Null);

    // Future matching: another Contoso user in a new chat lands on Contoso directly.
    let other_chat = chat_with(&app, demo::CONTOSO_USER_2_ID);
    say(
        &app,
        &other_chat,
        demo::CONTOSO_USER_2_ID,
        "My mailbox is full",
    );
    poll(&app).await;
    let other = only_ticket_of(&app, &other_chat).await;
    assert_eq!(other["client"]["id"], client["id"]);
}

#[tokio::test]
async fn resolved_ticket_reopens_within_the_window_and_follows_up_after_it_and_after_close() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "Laptop will not boot");
    poll(&app).await;
    let first = only_ticket_of(&app, &chat).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    let set_status = |status: &'static str| {
        let app = &app;
        let id = first_id.clone();
        async move {
            let response = app
                .api_patch(&format!("/api/v1/tickets/{id}"), &json!({"status": status}))
                .await;
            assert_eq!(response.status(), 200);
        }
    };

    // Resolved, client answers within REGENTRA_REOPEN_DAYS: the same ticket opens again.
    set_status("resolved").await;
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "It broke again");
    poll(&app).await;
    let reopened = only_ticket_of(&app, &chat).await;
    assert_eq!(reopened["id"], first_id.as_str());
    assert_eq!(reopened["status"], "open");

    // Resolved, client answers eight days later: a follow-up ticket linked to the first.
    set_status("resolved").await;
    sim(&app).advance_clock(8 * 24 * 3600);
    say(
        &app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        "New problem: the dock",
    );
    let report = poll(&app).await;
    assert_eq!(summary(&report)["tickets_created"], 1, "{report}");
    let of_chat: Vec<Value> = tickets(&app)
        .await
        .into_iter()
        .filter(|t| t["chat_id"] == chat.as_str())
        .collect();
    assert_eq!(of_chat.len(), 2);
    let follow_up = of_chat
        .iter()
        .find(|t| t["id"] != first_id.as_str())
        .unwrap();
    assert_eq!(follow_up["follow_up_of"], first_id.as_str());
    assert_eq!(follow_up["subject"], "New problem: the dock");

    // Closed: always a follow-up, however soon.
    let follow_up_id = follow_up["id"].as_str().unwrap().to_owned();
    let response = app
        .api_patch(
            &format!("/api/v1/tickets/{follow_up_id}"),
            &json!({"status": "closed"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "One more thing");
    poll(&app).await;
    let all: Vec<Value> = tickets(&app)
        .await
        .into_iter()
        .filter(|t| t["chat_id"] == chat.as_str())
        .collect();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .any(|t| t["follow_up_of"] == follow_up_id.as_str())
    );
}

#[tokio::test]
async fn edits_and_deletions_update_the_entry_keep_the_old_text_and_never_add_entries() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    let first = say(&app, &chat, demo::CONTOSO_USER_1_ID, "Teh server is slow");
    let second = say(&app, &chat, demo::CONTOSO_USER_1_ID, "Ignore this");
    poll(&app).await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();

    // An edit does not move the chat in Teams' list, so a changed-chats-only cycle cannot see
    // it; the sweep re-reads recently active chats and finds it.
    sim(&app).advance_clock(5);
    sim(&app)
        .edit_message(&chat, first_id, "The server is slow")
        .unwrap();
    sim(&app).delete_message(&chat, second_id).unwrap();
    let incremental = poll(&app).await;
    assert_eq!(summary(&incremental)["edits"], 0);
    let sweep = poll_mode(&app, Some("sweep")).await;
    assert_eq!(sweep["mode"], "sweep");
    assert_eq!(summary(&sweep)["edits"], 1, "{sweep}");
    assert_eq!(summary(&sweep)["deletes"], 1);
    assert_eq!(summary(&sweep)["messages_ingested"], 0);

    let ticket = only_ticket_of(&app, &chat).await;
    let entries = client_entries(&ticket);
    assert_eq!(entries.len(), 2, "no new entries for edits or deletes");
    let edited = entries
        .iter()
        .find(|e| e["graph_message_id"] == first_id)
        .unwrap();
    assert_eq!(edited["text"], "The server is slow");
    assert!(edited["edited_at"].is_string());
    let deleted = entries
        .iter()
        .find(|e| e["graph_message_id"] == second_id)
        .unwrap();
    assert!(deleted["deleted_at"].is_string());

    let mut conn = app.db.acquire().await.unwrap();
    let entry_id = regentra::tickets::EntryId::parse(edited["id"].as_str().unwrap()).unwrap();
    let revisions = store::entries::revisions(&mut conn, entry_id)
        .await
        .unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].previous_text, "Teh server is slow");

    // An edit in a chat that also has a new message is caught by the normal cycle.
    sim(&app).advance_clock(5);
    sim(&app)
        .edit_message(&chat, first_id, "The server is very slow")
        .unwrap();
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "Still slow");
    let both = poll(&app).await;
    assert_eq!(summary(&both)["edits"], 1, "{both}");
    assert_eq!(summary(&both)["entries_appended"], 1);
}

#[tokio::test]
async fn system_events_bots_null_senders_own_tenant_and_meeting_chats_are_skipped_and_counted() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    // A system event as Graph lists it (fixture 26, with a readable timestamp).
    let mut event = fixture("26-sys-chat-renamed.json");
    for key in [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "chatId",
        "@odata.context",
    ] {
        event.as_object_mut().unwrap().remove(key);
    }
    event["from"] = Value::Null;
    say_raw(&app, &chat, demo::CONTOSO_USER_1_ID, event);
    // A connector card (field report B11) and a message with `from: null`.
    say_raw(
        &app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        json!({
            "messageType": "message",
            "from": {"user": null, "application": {"id": "app-1", "displayName": "Syncro", "applicationIdentityType": "bot"}},
            "body": {"contentType": "html", "content": "<attachment id=\"x\"></attachment>"},
            "attachments": [{"id": "x", "contentType": "application/vnd.microsoft.card.adaptive", "content": "{}"}]
        }),
    );
    say_raw(
        &app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        json!({"messageType": "message", "from": null, "body": {"contentType": "html", "content": "<p>ghost</p>"}}),
    );
    // A colleague from the MSP's own tenant.
    let staff_chat = chat_with(&app, demo::STAFF_USER_ID);
    say(&app, &staff_chat, demo::STAFF_USER_ID, "Lunch at noon?");
    // A meeting chat.
    let (_, meeting) = sim(&app)
        .create_chat(
            "meeting",
            &[
                demo::SUPPORT_USER_ID.to_owned(),
                demo::CONTOSO_USER_1_ID.to_owned(),
            ],
            Some("Quarterly review"),
        )
        .unwrap();
    let meeting = meeting["id"].as_str().unwrap().to_owned();
    say(&app, &meeting, demo::CONTOSO_USER_1_ID, "Slides attached");

    let report = poll(&app).await;
    let skipped = &summary(&report)["skipped"];
    assert_eq!(skipped["system_event"], 1, "{report}");
    assert_eq!(skipped["bot_or_app"], 1);
    assert_eq!(skipped["no_sender"], 1);
    assert_eq!(skipped["own_tenant"], 1);
    assert_eq!(skipped["meeting_chat"], 1);
    assert_eq!(summary(&report)["messages_ingested"], 0);
    assert!(
        tickets(&app).await.is_empty(),
        "no ticket from skipped messages"
    );

    // The same messages are not counted again by later cycles.
    let again = poll(&app).await;
    assert_eq!(summary(&again)["skipped"], json!({}), "{again}");
}

#[tokio::test]
async fn support_users_own_messages_are_replies_sent_from_teams_never_client_content() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    // Support writes first: no ticket to attach it to, and no ticket is opened by it.
    say(
        &app,
        &chat,
        demo::SUPPORT_USER_ID,
        "Hi Pat, anything we can help with?",
    );
    poll(&app).await;
    assert!(tickets(&app).await.is_empty());
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "Yes, Outlook crashes");
    poll(&app).await;
    say(
        &app,
        &chat,
        demo::SUPPORT_USER_ID,
        "Restart it in safe mode please",
    );
    let report = poll(&app).await;
    assert_eq!(summary(&report)["entries_appended"], 1, "{report}");
    let ticket = only_ticket_of(&app, &chat).await;
    let entries = ticket["entries"].as_array().unwrap();
    let reply = entries
        .iter()
        .find(|e| e["kind"] == "reply")
        .expect("reply");
    assert_eq!(reply["text"], "Restart it in safe mode please");
    assert_eq!(reply["sent_from_teams"], true);
    assert_eq!(client_entries(&ticket).len(), 1);
}

#[tokio::test]
async fn thirty_messages_posted_while_regentra_was_down_all_land_once_in_the_next_cycle() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let users = [
        demo::CONTOSO_USER_1_ID,
        demo::CONTOSO_USER_2_ID,
        demo::CONTOSO_USER_1_ID,
    ];
    let mut chats = Vec::new();
    let (_, group) = sim(&app)
        .create_chat(
            "group",
            &[
                demo::SUPPORT_USER_ID.to_owned(),
                demo::CONTOSO_USER_1_ID.to_owned(),
                demo::CONTOSO_USER_2_ID.to_owned(),
            ],
            Some("Contoso office move"),
        )
        .unwrap();
    chats.push(chat_with(&app, demo::CONTOSO_USER_1_ID));
    chats.push(chat_with(&app, demo::CONTOSO_USER_2_ID));
    chats.push(group["id"].as_str().unwrap().to_owned());
    for n in 0..30 {
        let chat = &chats[n % 3];
        sim(&app).advance_clock(60);
        say(&app, chat, users[n % 3], &format!("message {n}"));
    }
    let report = poll(&app).await;
    assert_eq!(report["result"], "ok", "{report}");
    assert_eq!(summary(&report)["messages_ingested"], 30);
    assert_eq!(summary(&report)["tickets_created"], 3);
    assert_eq!(
        summary(&report)["graph_requests"],
        4,
        "1 list + 3 changed chats"
    );
    let again = poll(&app).await;
    assert_eq!(summary(&again)["messages_ingested"], 0);
    let mut texts = Vec::new();
    for chat in &chats {
        let ticket = only_ticket_of(&app, chat).await;
        texts.extend(
            client_entries(&ticket)
                .iter()
                .map(|e| e["text"].as_str().unwrap().to_owned()),
        );
    }
    texts.sort_by_key(|t| t.trim_start_matches("message ").parse::<u32>().unwrap());
    let expected: Vec<String> = (0..30).map(|n| format!("message {n}")).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn metrics_expose_cycles_messages_and_graph_requests() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "Hello");
    poll(&app).await;
    let response = app.api.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let ok_cycles = text
        .lines()
        .find_map(|l| l.strip_prefix("regentra_poll_cycles_total{result=\"ok\"} "))
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(
        ok_cycles >= 2,
        "the scheduler's first cycle and ours: {text}"
    );
    assert!(
        text.contains("regentra_poll_messages_ingested_total 1"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "regentra_poll_last_success_timestamp_seconds{{account=\"{}\"}}",
        account_id(&app).await
    )));
    assert!(text.contains("regentra_poll_graph_requests_total"));
}

#[tokio::test]
async fn teams_card_and_status_show_the_last_and_next_poll() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "Hello");
    poll(&app).await;

    // The scheduler records its next cycle right after its own first one.
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app
            .api_get("/api/v1/integrations/teams")
            .await
            .json()
            .await
            .unwrap();
        if status["next_poll"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status["next_poll"].is_string(), "{status}");
    assert_eq!(status["last_poll"]["last_result"], "ok", "{status}");
    assert_eq!(
        status["last_poll"]["last_summary"]["messages_ingested"], 1,
        "{status}"
    );

    let html = app.get_html("/settings/integrations").await;
    assert!(
        html.contains("Last poll:") && html.contains("1 message(s) stored"),
        "{html}"
    );
    assert!(html.contains("Next poll: about"), "{html}");
}
