//! Outbound delivery end to end (issue 7, ARCHITECTURE §7): a technician's reply, written
//! through the real API or UI, reaches the simulator's Teams chat as the support user — at once,
//! exactly once, in order — or visibly fails; a crash or restart never loses or doubles it.
//!
//! Each test connects the demo support account through the real consent flow, opens a chat
//! with a client in the simulator and a ticket on it, then watches the chat through the
//! simulator's control API (`GET /_sim/chats/{chat}`, `GET /_sim/requests`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use m365_sim::demo;
use regentra::bridge::content;
use regentra::store;
use regentra::tickets::{EntryId, TicketId};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{TECH_EMAIL, TestApp};

/// Generous: a cold debug build on a busy two-core machine.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A chat between the support user and a client user, with the ticket it belongs to.
struct Conversation {
    chat_id: String,
    ticket_id: String,
}

async fn connected_app() -> TestApp {
    let app = TestApp::with_simulator().await;
    app.connect_support_user().await;
    app
}

/// A oneOnOne chat support ↔ Pat (Contoso) in the simulator and a ticket on it.
async fn open_conversation(app: &TestApp) -> Conversation {
    let chat = app
        .sim_call(
            Method::POST,
            "/_sim/chats",
            Some(json!({
                "chatType": "oneOnOne",
                "members": [demo::SUPPORT_USER_ID, demo::CONTOSO_USER_1_ID],
            })),
        )
        .await;
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    let ticket_id = app
        .receive_teams_message(
            &chat_id,
            &format!("client-{}", uuid::Uuid::now_v7().simple()),
            demo::CONTOSO_TENANT_ID,
            "Pat Lee",
            "The printer on floor 2 is jammed",
        )
        .await;
    Conversation { chat_id, ticket_id }
}

async fn post_reply(app: &TestApp, conversation: &Conversation, text: &str) -> Value {
    let response = app
        .api_post(
            &format!("/api/v1/tickets/{}/replies", conversation.ticket_id),
            &json!({"text": text, "internal": false}),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", app.label);
    response.json().await.unwrap()
}

/// The entry as the API shows it now.
async fn entry(app: &TestApp, conversation: &Conversation, entry_id: &str) -> Value {
    let ticket: Value = app
        .api_get(&format!("/api/v1/tickets/{}", conversation.ticket_id))
        .await
        .json()
        .await
        .unwrap();
    ticket["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == entry_id)
        .cloned()
        .unwrap_or_else(|| panic!("entry {entry_id} is on the ticket"))
}

/// Polls the API until the reply's delivery state is `state` (or the timeout passes).
async fn wait_for_state(
    app: &TestApp,
    conversation: &Conversation,
    entry_id: &str,
    state: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let current = entry(app, conversation, entry_id).await;
        if current["delivery"]["state"] == state {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reply {entry_id} never became {state}; last seen: {current:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of the chat as the simulator holds it.
async fn chat_messages(app: &TestApp, chat_id: &str) -> Vec<Value> {
    let chat = app
        .sim_call(Method::GET, &format!("/_sim/chats/{chat_id}"), None)
        .await;
    chat["messages"].as_array().unwrap().clone()
}

/// The chat's messages sent by the support user.
async fn support_messages(app: &TestApp, chat_id: &str) -> Vec<Value> {
    chat_messages(app, chat_id)
        .await
        .into_iter()
        .filter(|message| message["from"]["user"]["id"] == demo::SUPPORT_USER_ID)
        .collect()
}

/// `(method, status, time)` of the Graph requests the simulator saw on the chat's messages.
async fn message_requests(app: &TestApp, chat_id: &str) -> Vec<(String, u64, String)> {
    let prefix = format!("/v1.0/chats/{chat_id}/messages");
    let log = app.sim_call(Method::GET, "/_sim/requests", None).await;
    log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|request| {
            request["path"]
                .as_str()
                .is_some_and(|path| path.starts_with(&prefix))
        })
        .map(|request| {
            (
                request["method"].as_str().unwrap().to_owned(),
                request["status"].as_u64().unwrap(),
                request["time"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn posts(requests: &[(String, u64, String)]) -> Vec<(u64, String)> {
    requests
        .iter()
        .filter(|(method, ..)| method == "POST")
        .map(|(_, status, time)| (*status, time.clone()))
        .collect()
}

fn parse_time(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

fn messages_path(chat_id: &str) -> String {
    format!("/v1.0/chats/{chat_id}/messages")
}

#[tokio::test]
async fn reply_reaches_the_chat_as_the_support_user_with_the_exact_text() {
    for app in TestApp::all_with_simulator().await {
        app.connect_support_user().await;
        exact_text_arrives(&app).await;
    }
}

async fn exact_text_arrives(app: &TestApp) {
    let conversation = open_conversation(app).await;
    let text = "Hi Pat, <script>alert(\"x\")</script> & 'friends' 👋🏽\nSecond line\n\nThird & last <b>line</b>";

    let written = post_reply(app, &conversation, text).await;
    assert_eq!(written["kind"], "reply");
    assert_eq!(written["delivery"]["state"], "queued");
    let entry_id = written["id"].as_str().unwrap();
    let sent = wait_for_state(app, &conversation, entry_id, "sent").await;

    let in_chat = support_messages(app, &conversation.chat_id).await;
    assert_eq!(
        in_chat.len(),
        1,
        "exactly one message ({}): {in_chat:#?}",
        app.label
    );
    let message = &in_chat[0];
    assert_eq!(
        message["id"], sent["graph_message_id"],
        "the echo is recognisable as ours"
    );
    assert_eq!(
        message["from"]["user"]["displayName"],
        demo::SUPPORT_DISPLAY_NAME
    );
    assert_eq!(message["body"]["contentType"], "html");
    let html = message["body"]["content"].as_str().unwrap();
    assert_eq!(
        html,
        "Hi Pat, &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;friends&#39; 👋🏽<br>Second line<br><br>Third &amp; last &lt;b&gt;line&lt;/b&gt;"
    );
    assert_eq!(
        content::html_to_text(html),
        text,
        "Teams shows exactly what was typed"
    );
    assert_eq!(sent["delivery"]["attempts"], 1);
    assert!(sent["delivery"]["sent_at"].is_string());
    assert_eq!(sent["delivery"]["error"], Value::Null);
}

#[tokio::test]
async fn an_internal_note_is_never_sent() {
    let app = connected_app().await;
    let conversation = open_conversation(&app).await;
    let response = app
        .api_post(
            &format!("/api/v1/tickets/{}/replies", conversation.ticket_id),
            &json!({"text": "Client is on the old driver — do not tell them yet", "internal": true}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let note: Value = response.json().await.unwrap();
    assert_eq!(note["kind"], "note");
    assert_eq!(note["delivery"], Value::Null);
    let note_id = EntryId::parse(note["id"].as_str().unwrap()).unwrap();
    let outbox_row = store::outbox::get_by_entry(&mut app.db.acquire().await.unwrap(), note_id)
        .await
        .unwrap();
    assert_eq!(outbox_row, None, "a note never gets an outbox row");

    // A reply written after the note goes out alone: the note was not queued before it.
    let reply = post_reply(&app, &conversation, "We are on it.").await;
    wait_for_state(&app, &conversation, reply["id"].as_str().unwrap(), "sent").await;
    let texts: Vec<String> = support_messages(&app, &conversation.chat_id)
        .await
        .iter()
        .map(|message| content::html_to_text(message["body"]["content"].as_str().unwrap()))
        .collect();
    assert_eq!(texts, ["We are on it."]);
}

#[tokio::test]
async fn five_replies_to_one_chat_arrive_in_order_under_a_429_storm() {
    let app = connected_app().await;
    let conversation = open_conversation(&app).await;
    // Teams throttles the chat: the next six posts answer 429 with a short Retry-After.
    app.sim_call(
        Method::POST,
        "/_sim/faults",
        Some(json!({
            "method": "POST",
            "path_prefix": messages_path(&conversation.chat_id),
            "status": 429,
            "retry_after": "0.3",
            "times": 6,
        })),
    )
    .await;

    let mut written = Vec::new();
    for n in 1..=5 {
        written.push(post_reply(&app, &conversation, &format!("Reply {n} of 5")).await);
    }
    let mut sent = Vec::new();
    for reply in &written {
        sent.push(wait_for_state(&app, &conversation, reply["id"].as_str().unwrap(), "sent").await);
    }

    let in_chat = support_messages(&app, &conversation.chat_id).await;
    let texts: Vec<String> = in_chat
        .iter()
        .map(|message| content::html_to_text(message["body"]["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        texts,
        [
            "Reply 1 of 5",
            "Reply 2 of 5",
            "Reply 3 of 5",
            "Reply 4 of 5",
            "Reply 5 of 5"
        ],
        "in the order written, each once"
    );
    let ids: Vec<&Value> = in_chat.iter().map(|message| &message["id"]).collect();
    let recorded: Vec<&Value> = sent
        .iter()
        .map(|entry| &entry["graph_message_id"])
        .collect();
    assert_eq!(ids, recorded);

    let posts = posts(&message_requests(&app, &conversation.chat_id).await);
    let throttled = posts.iter().filter(|(status, _)| *status == 429).count();
    let accepted: Vec<time::OffsetDateTime> = posts
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, time)| parse_time(time))
        .collect();
    assert_eq!(
        throttled, 6,
        "the scripted storm happened, and our own pace never tripped Teams' limit: {posts:?}"
    );
    assert_eq!(accepted.len(), 5, "{posts:?}");
    for pair in accepted.windows(2) {
        assert!(
            pair[1] - pair[0] >= time::Duration::seconds(1),
            "at most one post per second per chat: {accepted:?}"
        );
    }
}

#[tokio::test]
async fn a_blocked_tenant_fails_the_reply_in_words_and_retry_sends_it_once_allowed() {
    let app = connected_app().await;
    let conversation = open_conversation(&app).await;
    app.sim_call(
        Method::POST,
        &format!("/_sim/tenants/{}/federation", demo::CONTOSO_TENANT_ID),
        Some(json!({"external_access": "blocked"})),
    )
    .await;

    let reply = post_reply(&app, &conversation, "Your new laptop is ready").await;
    let entry_id = reply["id"].as_str().unwrap();
    let failed = wait_for_state(&app, &conversation, entry_id, "failed").await;
    let reason = failed["delivery"]["error"].as_str().unwrap();
    assert!(
        reason.starts_with("Teams refused: this client's organisation blocks external chat"),
        "{reason}"
    );
    assert!(
        support_messages(&app, &conversation.chat_id)
            .await
            .is_empty()
    );

    // The technician sees the reason and a Retry button on the ticket.
    app.login_as_technician().await;
    let page = app
        .get_html(&format!("/tickets/{}", conversation.ticket_id))
        .await;
    let document = scraper::Html::parse_document(&page);
    let error = scraper::Selector::parse(&format!("#entry-{entry_id} .delivery-error")).unwrap();
    let shown: String = document
        .select(&error)
        .next()
        .expect("the failed reply shows why")
        .text()
        .collect();
    assert!(
        shown.contains("organisation blocks external chat"),
        "{shown}"
    );
    let button = scraper::Selector::parse(&format!("#retry-{entry_id}")).unwrap();
    assert!(document.select(&button).next().is_some(), "a Retry button");

    app.sim_call(
        Method::POST,
        &format!("/_sim/tenants/{}/federation", demo::CONTOSO_TENANT_ID),
        Some(json!({"external_access": "allowed"})),
    )
    .await;
    let retried = app
        .post_form(
            &format!(
                "/tickets/{}/replies/{entry_id}/retry",
                conversation.ticket_id
            ),
            &[],
        )
        .await;
    assert_eq!(retried.status(), 303);
    let sent = wait_for_state(&app, &conversation, entry_id, "sent").await;
    let in_chat = support_messages(&app, &conversation.chat_id).await;
    assert_eq!(in_chat.len(), 1, "{in_chat:#?}");
    assert_eq!(in_chat[0]["id"], sent["graph_message_id"]);
    assert_eq!(sent["delivery"]["error"], Value::Null);
}

#[tokio::test]
async fn a_send_that_times_out_after_teams_stored_it_is_not_posted_twice() {
    let app = TestApp::with_simulator_configured(|config| {
        config.microsoft.graph_timeout = Duration::from_millis(800);
    })
    .await;
    app.connect_support_user().await;
    let conversation = open_conversation(&app).await;
    // Teams stores the message, then answers only after the client gave up.
    app.sim_call(
        Method::POST,
        "/_sim/faults",
        Some(json!({
            "method": "POST",
            "path_prefix": messages_path(&conversation.chat_id),
            "delay_ms": 2500,
            "times": 1,
        })),
    )
    .await;

    let reply = post_reply(&app, &conversation, "Restarting the print server now").await;
    let sent = wait_for_state(&app, &conversation, reply["id"].as_str().unwrap(), "sent").await;

    let in_chat = support_messages(&app, &conversation.chat_id).await;
    assert_eq!(in_chat.len(), 1, "posted once: {in_chat:#?}");
    assert_eq!(in_chat[0]["id"], sent["graph_message_id"]);
    let requests = message_requests(&app, &conversation.chat_id).await;
    assert_eq!(
        posts(&requests).len(),
        1,
        "one POST, then a look: {requests:?}"
    );
    assert!(
        requests.iter().any(|(method, ..)| method == "GET"),
        "the chat was read before deciding: {requests:?}"
    );
    assert_eq!(
        sent["delivery"]["attempts"], 2,
        "the attempt and its reconciliation"
    );
}

#[tokio::test]
async fn a_revoked_account_keeps_replies_queued_and_sends_them_after_reconnecting() {
    let app = connected_app().await;
    let conversation = open_conversation(&app).await;
    // An admin revokes the support user's sessions and the access token runs out.
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

    let reply = post_reply(&app, &conversation, "Replacing the toner today").await;
    let entry_id = reply["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let status = app.state.teams.status().await.unwrap();
        if status.state == regentra::bridge::connection::ConnectionState::ReconnectRequired {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead grant was noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Whichever worker met the dead grant first, the reply waits, queued, unsent.
    let waiting = entry(&app, &conversation, entry_id).await;
    assert_eq!(waiting["delivery"]["state"], "queued", "{waiting:#}");
    let shown = &waiting["delivery"]["error"];
    assert!(
        shown.is_null() || shown == regentra::bridge::outbox::RECONNECT_REASON,
        "{shown}"
    );
    assert!(
        support_messages(&app, &conversation.chat_id)
            .await
            .is_empty()
    );

    app.connect_support_user().await;
    let sent = wait_for_state(&app, &conversation, entry_id, "sent").await;
    let in_chat = support_messages(&app, &conversation.chat_id).await;
    assert_eq!(in_chat.len(), 1, "{in_chat:#?}");
    assert_eq!(in_chat[0]["id"], sent["graph_message_id"]);
}

// ---------------------------------------------------------------- the real binary

/// `regentra serve` on the app's data directory and Microsoft settings, as a child process.
struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    url: String,
}

impl ServeProcess {
    async fn start(data_dir: &Path, sim_url: &str) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_regentra"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("REGENTRA_DATA_DIR", data_dir)
            .env("REGENTRA_PORT", "0")
            .env("REGENTRA_LOG", "warn,regentra=info")
            .env("REGENTRA_MS_CLIENT_ID", demo::REGENTRA_CLIENT_ID)
            .env("REGENTRA_MS_CLIENT_SECRET", demo::REGENTRA_CLIENT_SECRET)
            .env("REGENTRA_MS_AUTHORITY", sim_url)
            .env("REGENTRA_GRAPH_URL", sim_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting target/…/regentra serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let find_url = async {
            let mut seen = String::new();
            while let Some(line) = lines.next_line().await.expect("reading serve's log") {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches('/')
                        .to_owned();
                    return url;
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            panic!("regentra serve ended before listening; it logged:\n{seen}");
        };
        let url = tokio::time::timeout(Duration::from_secs(60), find_url)
            .await
            .expect("regentra serve starts within a minute");
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServeProcess { child, url }
    }

    /// SIGKILL: no shutdown code runs, like a power cut.
    async fn kill(mut self) {
        self.child.kill().await.expect("killing regentra serve");
    }
}

async fn wait_for_db_state(app: &TestApp, entry: EntryId, state: &str) -> regentra::tickets::Entry {
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let current = store::entries::get(&mut app.db.acquire().await.unwrap(), entry)
            .await
            .unwrap();
        if current
            .delivery
            .as_ref()
            .is_some_and(|delivery| delivery.state.as_str() == state)
        {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reply never became {state}: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reply_written_while_regentra_was_down_is_sent_once_by_the_next_serve() {
    let mut app = connected_app().await;
    let conversation = open_conversation(&app).await;
    // Regentra stops; a reply is written with no worker running (the reply and its outbox
    // row commit together, the wake-up reaches nobody).
    app.stop_server().await;
    let technician =
        store::technicians::find_by_email(&mut app.db.acquire().await.unwrap(), TECH_EMAIL)
            .await
            .unwrap()
            .unwrap();
    let reply = regentra::web::actions::add_entry(
        &app.state,
        TicketId::parse(&conversation.ticket_id).unwrap(),
        &technician,
        "Sorry for the wait — fixed now",
        false,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert!(
        support_messages(&app, &conversation.chat_id)
            .await
            .is_empty()
    );

    let data_dir = app.test_db.data_dir.clone().unwrap();
    let sim_url = app.sim().base_url().to_string();
    let serve = ServeProcess::start(&data_dir, &sim_url).await;
    let sent = wait_for_db_state(&app, reply.id, "sent").await;
    serve.kill().await;

    let in_chat = support_messages(&app, &conversation.chat_id).await;
    assert_eq!(in_chat.len(), 1, "{in_chat:#?}");
    assert_eq!(
        in_chat[0]["id"].as_str(),
        sent.graph_message_id.as_ref().map(|id| id.as_str())
    );
    assert_eq!(
        content::html_to_text(in_chat[0]["body"]["content"].as_str().unwrap()),
        "Sorry for the wait — fixed now"
    );
}

#[tokio::test]
async fn a_process_killed_while_its_post_was_in_flight_does_not_post_again_after_restart() {
    let mut app = connected_app().await;
    let conversation = open_conversation(&app).await;
    app.stop_server().await;
    let data_dir = app.test_db.data_dir.clone().unwrap();
    let sim_url = app.sim().base_url().to_string();

    // Teams stores the message but the answer never arrives before the process dies.
    app.sim_call(
        Method::POST,
        "/_sim/faults",
        Some(json!({
            "method": "POST",
            "path_prefix": messages_path(&conversation.chat_id),
            "delay_ms": 60_000,
            "times": 1,
        })),
    )
    .await;
    let first = ServeProcess::start(&data_dir, &sim_url).await;
    let response = app
        .api
        .post(format!(
            "{}/api/v1/tickets/{}/replies",
            first.url, conversation.ticket_id
        ))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&app.api_token))
        .json(&json!({"text": "Technician on the way", "internal": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let written: Value = response.json().await.unwrap();
    let entry_id = EntryId::parse(written["id"].as_str().unwrap()).unwrap();
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    while support_messages(&app, &conversation.chat_id)
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the POST reached Teams"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await;
    app.sim_call(Method::DELETE, "/_sim/faults", None).await;

    let row = store::outbox::get_by_entry(&mut app.db.acquire().await.unwrap(), entry_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.attempt_started_at.is_some(),
        "the attempt was recorded before the POST"
    );
    assert!(
        row.lease_owner.is_some(),
        "the killed process still holds the reply"
    );
    // The dead process's lease would run out by itself after `OutboxSettings::lease` (30 s);
    // move it into the past instead of waiting.
    sqlx::query("UPDATE outbox SET lease_until = 0 WHERE id = $1")
        .bind(row.id)
        .execute(app.db.pool())
        .await
        .unwrap();

    let second = ServeProcess::start(&data_dir, &sim_url).await;
    let sent = wait_for_db_state(&app, entry_id, "sent").await;
    second.kill().await;

    let in_chat = support_messages(&app, &conversation.chat_id).await;
    assert_eq!(in_chat.len(), 1, "not posted again: {in_chat:#?}");
    assert_eq!(
        in_chat[0]["id"].as_str(),
        sent.graph_message_id.as_ref().map(|id| id.as_str())
    );
    let requests = message_requests(&app, &conversation.chat_id).await;
    assert_eq!(posts(&requests).len(), 1, "{requests:?}");
}
