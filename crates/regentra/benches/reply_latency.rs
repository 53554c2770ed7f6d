//! Reply latency: how soon a technician's reply reaches Teams after the reply API call returns.
//!
//! Runs the real application on loopback against the in-process Microsoft 365 simulator (default
//! settings, Teams throttling limits on), connects the demo support account through the real
//! consent flow, opens 20 chats with a ticket each, then writes 200 replies through
//! `POST /api/v1/tickets/{id}/replies` — round-robin over the chats at 15 replies per second,
//! so neither Teams' one-post-per-second-per-chat rule nor its 20 requests per second per app
//! and tenant delays them. For each reply it takes the instant the API call returned and the
//! time the simulator logged the matching `POST /chats/{id}/messages` (`GET /_sim/requests`;
//! replies to one chat arrive in order, so the k-th reply to a chat is its k-th post), and
//! prints the median and p99 of the difference. A negative value means Teams had the message
//! before the technician's browser had the API's answer.
//!
//! `cargo bench -p regentra --bench reply_latency` (a plain binary: `harness = false`).

use std::collections::HashMap;
use std::time::Duration;

use m365_sim::{SimConfig, Simulator, demo};
use regentra::app::App;
use regentra::config::Config;
use regentra::store::{self, Db};
use regentra::tickets::lifecycle::ReopenWindow;
use regentra::tickets::{
    ChatId, EntraObjectId, GraphMessageId, NewContact, TechnicianEmail, TenantId,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const CHATS: usize = 20;
const REPLIES: usize = 200;
/// 15 replies per second overall: each chat gets one every 1.33 s.
const SPACING: Duration = Duration::from_millis(66);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let simulator = Simulator::start(
        SimConfig::default(),
        demo::demo_scenario("http://127.0.0.1:1/integrations/teams/callback"),
    )
    .await
    .expect("starting the simulator");
    let sim_url = simulator.base_url();

    let db = Db::open_sqlite_in(dir.path()).await.expect("the database");
    let now = OffsetDateTime::now_utc();
    let technician = store::technicians::create(
        &mut db.acquire().await.unwrap(),
        store::technicians::NewTechnician {
            email: TechnicianEmail::parse("bench@msp.example").unwrap(),
            display_name: "Bench Technician".into(),
            password: SecretString::from("a long bench password"),
        },
        now,
    )
    .await
    .unwrap();
    let (_, api_token) = store::api_tokens::create(
        &mut db.acquire().await.unwrap(),
        technician.id,
        "bench",
        now,
    )
    .await
    .unwrap();

    let mut config = Config::for_tests(dir.path());
    config.microsoft.client_id = Some(demo::REGENTRA_CLIENT_ID.to_owned());
    config.microsoft.client_secret = Some(SecretString::from(demo::REGENTRA_CLIENT_SECRET));
    config.microsoft.authority = sim_url.clone();
    config.microsoft.graph_url = sim_url.clone();
    // One poll right after connecting, then quiet: the bench measures sending only.
    config.microsoft.poll_interval = Duration::from_secs(24 * 3600);
    let app = App::build_with_db(config, db.clone())
        .await
        .expect("the app");
    let app_url = app.base_url().to_string();
    simulator
        .sim()
        .load_scenario(&demo::demo_scenario(&format!(
            "{app_url}integrations/teams/callback"
        )))
        .unwrap();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_shutdown(shutdown.clone()));

    regentra::demo::auto_connect::connect(&state.teams, technician.id, demo::SUPPORT_UPN)
        .await
        .expect("the support account connects through the simulator");
    // Let the poll that follows connecting finish before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut conversations = Vec::new();
    for n in 0..CHATS {
        let (_, chat) = simulator
            .sim()
            .create_chat(
                "group",
                &[
                    demo::SUPPORT_USER_ID.to_owned(),
                    demo::CONTOSO_USER_1_ID.to_owned(),
                ],
                Some(&format!("Bench chat {n}")),
            )
            .unwrap();
        let chat_id = chat["id"].as_str().unwrap().to_owned();
        let ticket = open_ticket(&db, &chat_id, n).await;
        conversations.push((chat_id, ticket));
    }
    simulator.sim().clear_requests();

    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", api_token.expose_secret());
    let mut returned: HashMap<String, Vec<(OffsetDateTime, OffsetDateTime)>> = HashMap::new();
    let mut ticker = tokio::time::interval(SPACING);
    for n in 0..REPLIES {
        ticker.tick().await;
        let (chat_id, ticket) = &conversations[n % CHATS];
        let called = OffsetDateTime::now_utc();
        let response = http
            .post(format!("{app_url}api/v1/tickets/{ticket}/replies"))
            .header("authorization", &bearer)
            .json(&json!({"text": format!("Reply {n}: we are on it"), "internal": false}))
            .send()
            .await
            .expect("the reply API answers");
        let status = response.status();
        let body = response.bytes().await.expect("the reply API's body");
        let done = OffsetDateTime::now_utc();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        returned
            .entry(chat_id.clone())
            .or_default()
            .push((called, done));
    }

    // Wait until every reply is in its chat.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let posts = loop {
        let posts = accepted_posts(simulator.sim());
        if posts.values().map(Vec::len).sum::<usize>() >= REPLIES {
            break posts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {REPLIES} replies arrived",
            posts.values().map(Vec::len).sum::<usize>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let throttled = simulator.sim().requests_json()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" && r["status"] == 429)
        .count();

    let mut after_return = Vec::new();
    let mut after_call = Vec::new();
    for (chat_id, calls) in &returned {
        let received = &posts[&format!("/v1.0/chats/{chat_id}/messages")];
        assert_eq!(
            received.len(),
            calls.len(),
            "one post per reply in {chat_id}"
        );
        for ((called, done), at) in calls.iter().zip(received) {
            after_return.push(millis(*at - *done));
            after_call.push(millis(*at - *called));
        }
    }
    shutdown.cancel();
    let _ = server.await;
    let _ = simulator.shutdown().await;

    println!(
        "reply_latency: {REPLIES} replies across {CHATS} chats on loopback (SQLite, simulator with Teams throttling on; {throttled} POSTs answered 429)"
    );
    report(
        "reply API returned -> simulator received the POST",
        after_return,
    );
    report(
        "reply API called   -> simulator received the POST",
        after_call,
    );
}

/// Milliseconds (fractional) of a time difference.
fn millis(duration: time::Duration) -> f64 {
    duration.as_seconds_f64() * 1000.0
}

fn report(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  {label}: median {:.2} ms, p99 {:.2} ms (min {:.2}, max {:.2})",
        at(0.5),
        at(0.99),
        samples[0],
        samples[samples.len() - 1]
    );
}

/// The times the simulator logged each accepted `POST …/messages`, per path, in order.
fn accepted_posts(sim: &m365_sim::Sim) -> HashMap<String, Vec<OffsetDateTime>> {
    let mut posts: HashMap<String, Vec<OffsetDateTime>> = HashMap::new();
    for request in sim.requests_json()["requests"].as_array().unwrap() {
        if request["method"] == "POST" && request["status"] == 201 {
            let time = OffsetDateTime::parse(
                request["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            posts
                .entry(request["path"].as_str().unwrap().to_owned())
                .or_default()
                .push(time);
        }
    }
    for times in posts.values_mut() {
        times.sort();
    }
    posts
}

/// A client message on `chat_id` (what the poller would store): the chat gets its ticket.
async fn open_ticket(db: &Db, chat_id: &str, n: usize) -> String {
    let now = OffsetDateTime::now_utc();
    let message = store::tickets::InboundClientMessage {
        chat_id: ChatId::parse(chat_id).unwrap(),
        graph_message_id: GraphMessageId::parse(&format!("bench-client-{n}")).unwrap(),
        sender: NewContact {
            entra_object_id: EntraObjectId::parse(demo::CONTOSO_USER_1_ID).unwrap(),
            entra_tenant_id: TenantId::parse(demo::CONTOSO_TENANT_ID).unwrap(),
            display_name: "Pat Lee".into(),
            email: None,
        },
        text: format!("Problem number {n}"),
        html: format!("<p>Problem number {n}</p>"),
        sent_at: now,
        last_modified: now,
        attachments: Vec::new(),
    };
    store::tickets::receive_client_message(
        &mut db.acquire().await.unwrap(),
        &message,
        ReopenWindow::default(),
        now,
    )
    .await
    .unwrap()
    .ticket_id
    .to_string()
}

