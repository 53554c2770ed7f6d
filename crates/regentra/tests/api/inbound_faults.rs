//! Inbound under Graph's known failure modes (field reports Part B), scripted with the
//! simulator's `POST /_sim/faults`: throttling without `Retry-After` on one chat, a repeated
//! `@odata.nextLink`, an empty page in the middle, a rejected `$filter`, a chat answering 403 or
//! 404 — and the real `regentra` binary killed mid-cycle and started again.

use std::process::Stdio;
use std::time::Duration;

use m365_sim::demo;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::inbound::{
    account_id, chat_with, client_entries, connected_app, only_ticket_of, poll, say, sim, summary,
    tickets,
};

fn sim_url(app: &TestApp, path: &str) -> String {
    let base = app.sim.as_ref().unwrap().base_url();
    format!("{}{}", base.as_str().trim_end_matches('/'), path)
}

async fn add_fault(app: &TestApp, fault: Value) {
    let response = app
        .api
        .post(sim_url(app, "/_sim/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "fault {fault} refused");
}

fn messages_path(chat: &str) -> String {
    format!("/v1.0/chats/{chat}/messages")
}

async fn contoso_app() -> TestApp {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    app
}

#[tokio::test]
async fn chat_throttled_without_retry_after_is_retried_next_cycle_while_other_chats_flow() {
    let app = contoso_app().await;
    let throttled_chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    let flowing_chat = chat_with(&app, demo::CONTOSO_USER_2_ID);
    say(
        &app,
        &throttled_chat,
        demo::CONTOSO_USER_1_ID,
        "Chat A message",
    );
    say(
        &app,
        &flowing_chat,
        demo::CONTOSO_USER_2_ID,
        "Chat B message",
    );
    // Four 429s without Retry-After: more than the client's retry budget for one call.
    add_fault(
        &app,
        json!({"method": "GET", "path_prefix": messages_path(&throttled_chat), "status": 429, "times": 4}),
    )
    .await;

    let first = poll(&app).await;
    assert_eq!(first["result"], "partial", "{first}");
    assert_eq!(summary(&first)["throttled"], 4);
    assert_eq!(summary(&first)["errors"], 1);
    assert_eq!(summary(&first)["messages_ingested"], 1, "chat B flowed");
    assert_eq!(
        client_entries(&only_ticket_of(&app, &flowing_chat).await).len(),
        1
    );
    let chat_id = regentra::tickets::ChatId::parse(&throttled_chat).unwrap();
    let states = regentra::bridge::poller::chat_states(
        &app.db,
        &account_id(&app).await,
        std::slice::from_ref(&chat_id),
    )
    .await
    .unwrap();
    assert_eq!(states[&chat_id].failure.as_deref(), Some("throttled"));
    assert_eq!(states[&chat_id].message_cursor, None, "the cursor stays");

    let second = poll(&app).await;
    assert_eq!(second["result"], "ok", "{second}");
    assert_eq!(summary(&second)["messages_ingested"], 1);
    assert_eq!(
        client_entries(&only_ticket_of(&app, &throttled_chat).await).len(),
        1
    );
    assert_eq!(
        client_entries(&only_ticket_of(&app, &flowing_chat).await).len(),
        1
    );
}

#[tokio::test]
async fn repeated_next_link_stops_paging_and_the_message_is_stored_once() {
    let app = contoso_app().await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    let m1 = say(&app, &chat, demo::CONTOSO_USER_1_ID, "Only once please");
    // Graph bug (field report B4): every page links to the same next page with the same message.
    let stuck_link = sim_url(&app, &format!("{}?$skiptoken=same", messages_path(&chat)));
    add_fault(
        &app,
        json!({"method": "GET", "path_prefix": messages_path(&chat), "status": 200, "times": 2,
               "body": {"value": [m1], "@odata.nextLink": stuck_link}}),
    )
    .await;
    let first = poll(&app).await;
    assert_eq!(first["result"], "partial", "{first}");
    assert_eq!(summary(&first)["messages_ingested"], 1);
    assert_eq!(
        summary(&first)["graph_requests"],
        3,
        "list + two pages, then it stopped"
    );

    say(&app, &chat, demo::CONTOSO_USER_1_ID, "And a second one");
    let second = poll(&app).await;
    assert_eq!(second["result"], "ok", "{second}");
    let texts: Vec<String> = client_entries(&only_ticket_of(&app, &chat).await)
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["Only once please", "And a second one"]);
}

#[tokio::test]
async fn empty_page_in_the_middle_does_not_end_paging() {
    let app = contoso_app().await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "first");
    sim(&app).advance_clock(1);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "second");
    sim(&app).advance_clock(1);
    let newest = say(&app, &chat, demo::CONTOSO_USER_1_ID, "third");
    let middle = sim_url(&app, &format!("{}?$skiptoken=middle", messages_path(&chat)));
    let last = sim_url(&app, &format!("{}?$top=49", messages_path(&chat)));
    add_fault(
        &app,
        json!({"method": "GET", "path_prefix": messages_path(&chat), "status": 200, "times": 1,
               "body": {"value": [newest], "@odata.nextLink": middle}}),
    )
    .await;
    add_fault(
        &app,
        json!({"method": "GET", "path_prefix": messages_path(&chat), "status": 200, "times": 1,
               "body": {"value": [], "@odata.nextLink": last}}),
    )
    .await;
    let report = poll(&app).await;
    assert_eq!(report["result"], "ok", "{report}");
    assert_eq!(summary(&report)["messages_ingested"], 3);
    let texts: Vec<String> = client_entries(&only_ticket_of(&app, &chat).await)
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
}

#[tokio::test]
async fn rejected_filter_falls_back_to_unfiltered_reading_up_to_the_cursor() {
    let app = contoso_app().await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "before");
    poll(&app).await;
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "after one");
    say(&app, &chat, demo::CONTOSO_USER_1_ID, "after two");
    add_fault(
        &app,
        json!({"method": "GET", "path_prefix": messages_path(&chat), "status": 400, "times": 1,
               "body": {"error": {"code": "BadRequest", "message": "Invalid $filter query."}}}),
    )
    .await;
    let report = poll(&app).await;
    assert_eq!(report["result"], "ok", "{report}");
    assert_eq!(summary(&report)["messages_ingested"], 2);
    let texts: Vec<String> = client_entries(&only_ticket_of(&app, &chat).await)
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["before", "after one", "after two"]);
}

#[tokio::test]
async fn chat_answering_403_or_404_is_marked_keeps_its_ticket_and_recovers() {
    for status in [403, 404] {
        let app = contoso_app().await;
        let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
        say(&app, &chat, demo::CONTOSO_USER_1_ID, "hello");
        poll(&app).await;
        say(&app, &chat, demo::CONTOSO_USER_1_ID, "are you there?");
        add_fault(
            &app,
            json!({"method": "GET", "path_prefix": messages_path(&chat), "status": status, "times": 1}),
        )
        .await;
        let failed = poll(&app).await;
        assert_eq!(failed["result"], "partial", "{status}: {failed}");
        assert_eq!(summary(&failed)["errors"], 1);
        let ticket = only_ticket_of(&app, &chat).await;
        assert_eq!(
            client_entries(&ticket).len(),
            1,
            "the ticket stays as it was"
        );
        let chat_id = regentra::tickets::ChatId::parse(&chat).unwrap();
        let state = &regentra::bridge::poller::chat_states(
            &app.db,
            &account_id(&app).await,
            std::slice::from_ref(&chat_id),
        )
        .await
        .unwrap()[&chat_id];
        let expected = if status == 403 {
            "forbidden"
        } else {
            "not_found"
        };
        assert_eq!(state.failure.as_deref(), Some(expected));
        assert!(state.message_cursor.is_some(), "the cursor is kept");

        let recovered = poll(&app).await;
        assert_eq!(recovered["result"], "ok", "{status}: {recovered}");
        assert_eq!(client_entries(&only_ticket_of(&app, &chat).await).len(), 2);
    }
}

/// `regentra poll --once --json` against the test app's data directory and simulator.
fn poll_command(app: &TestApp) -> tokio::process::Command {
    let data_dir = app.test_db.data_dir.clone().expect("SQLite data dir");
    let sim = app.sim.as_ref().unwrap().base_url();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_regentra"));
    command
        .args(["poll", "--once", "--json", "--lease-ttl", "2s"])
        .env_clear()
        .env("REGENTRA_DATA_DIR", &data_dir)
        .env("REGENTRA_MS_CLIENT_ID", demo::REGENTRA_CLIENT_ID)
        .env("REGENTRA_MS_CLIENT_SECRET", demo::REGENTRA_CLIENT_SECRET)
        .env("REGENTRA_MS_AUTHORITY", sim.as_str())
        .env("REGENTRA_GRAPH_URL", sim.as_str())
        .env("REGENTRA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn process_killed_mid_cycle_and_restarted_loses_nothing_and_doubles_nothing() {
    let app = contoso_app().await;
    // Three chats, newest activity last: the cycle reads them newest first.
    let mut chats = vec![
        chat_with(&app, demo::CONTOSO_USER_1_ID),
        chat_with(&app, demo::CONTOSO_USER_2_ID),
    ];
    let (_, group) = sim(&app)
        .create_chat(
            "group",
            &[
                demo::SUPPORT_USER_ID.to_owned(),
                demo::CONTOSO_USER_1_ID.to_owned(),
                demo::CONTOSO_USER_2_ID.to_owned(),
            ],
            Some("Contoso"),
        )
        .unwrap();
    chats.push(group["id"].as_str().unwrap().to_owned());
    let senders = [
        demo::CONTOSO_USER_1_ID,
        demo::CONTOSO_USER_2_ID,
        demo::CONTOSO_USER_1_ID,
    ];
    for (index, chat) in chats.iter().enumerate() {
        for n in 0..3 {
            sim(&app).advance_clock(10);
            say(
                &app,
                chat,
                senders[index],
                &format!("chat {index} message {n}"),
            );
        }
    }
    // Listed order: chat 2 (newest), chat 1, chat 0. Hold the process inside chat 1's page.
    sim(&app).advance_clock(2);
    add_fault(
        &app,
        json!({"method": "GET", "path_prefix": messages_path(&chats[1]), "delay_ms": 60_000, "times": 1}),
    )
    .await;
    let mut child = poll_command(&app).spawn().expect("starting regentra poll");
    let held = messages_path(&chats[1]);
    let mut inside = false;
    for _ in 0..400 {
        let log = sim(&app).requests_json();
        inside = log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.starts_with(&held)));
        if inside {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let output = child.wait_with_output().await.unwrap();
            panic!(
                "regentra poll exited ({status}) before reaching the held page: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(inside, "the process never reached chat 1's messages");
    child.start_kill().unwrap(); // SIGKILL: no cleanup, the lease stays until it expires
    child.wait().await.unwrap();

    let stored_before: usize = count_client_entries(&app).await;
    assert_eq!(
        stored_before, 3,
        "chat 2 was committed before the kill, nothing else"
    );

    let clear = app
        .api
        .delete(sim_url(&app, "/_sim/faults"))
        .send()
        .await
        .unwrap();
    assert!(clear.status().is_success());
    let output = poll_command(&app).output().await.unwrap();
    assert!(
        output.status.success(),
        "second run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["result"], "ok", "{report}");
    assert_eq!(summary(&report)["messages_ingested"], 6, "{report}");

    assert_eq!(tickets(&app).await.len(), 3, "one ticket per chat");
    for (index, chat) in chats.iter().enumerate() {
        let texts: Vec<String> = client_entries(&only_ticket_of(&app, chat).await)
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..3)
            .map(|n| format!("chat {index} message {n}"))
            .collect();
        assert_eq!(texts, expected);
    }
}

async fn count_client_entries(app: &TestApp) -> usize {
    let mut conn = app.db.acquire().await.unwrap();
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ticket_entries WHERE kind = 'client_message'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    usize::try_from(count).unwrap()
}
