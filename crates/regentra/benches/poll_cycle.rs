//! Poll cycle cost: Graph requests per cycle and cycle time for a support user with 5,000 chats
//! of which 10 changed, and messages ingested per second for a 10,000-message backlog, on
//! SQLite.
//!
//! Runs the real poller and the real Graph client against the in-process Microsoft 365
//! simulator on loopback, connected through the real consent flow. Teams' own throttling limits
//! are switched off in the simulator: they would measure Microsoft's pacing, not Regentra's
//! cost (with them on, a 10,000-message backlog is bounded by Teams' 20 reads per second).
//!
//! `cargo bench -p regentra --bench poll_cycle` (a plain binary: `harness = false`). Prints the
//! figures and the machine they were measured on.

use std::sync::Arc;
use std::time::Instant;

use m365_sim::{ClockStart, SimConfig, Simulator, ThrottleLimits, UserPost, demo};
use regentra::bridge::connection::{ConnectionSettings, TeamsConnections};
use regentra::bridge::metrics::PollMetrics;
use regentra::bridge::poller::{CycleMode, CycleReport, PollTarget, Poller, PollerSettings};
use regentra::bridge::vault::KeyRing;
use regentra::config::Config;
use regentra::store::{self, Db};
use regentra::tickets::TechnicianEmail;
use secrecy::SecretString;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const CHATS: usize = 5_000;
const CHANGED: usize = 10;
const ROUNDS: usize = 5;
const BACKLOG_CHATS: usize = 100;
const BACKLOG_PER_CHAT: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let redirect = "http://127.0.0.1:1/integrations/teams/callback";
    // The simulator's clock starts an hour back so the chats' history is well before the
    // connection (and its two-minute overlap); it is moved to the present before connecting.
    let history_hours = 1;
    let simulator = Simulator::start(
        SimConfig {
            throttling: ThrottleLimits::disabled(),
            clock: ClockStart::FrozenAt(
                OffsetDateTime::now_utc() - time::Duration::hours(history_hours),
            ),
            ..SimConfig::default()
        },
        demo::demo_scenario(redirect),
    )
    .await
    .expect("starting the simulator");
    let sim = simulator.sim();
    let sim_url = simulator.base_url();

    // 5,000 chats with history, all older than the connection.
    let started = Instant::now();
    let mut chats = Vec::with_capacity(CHATS);
    for n in 0..CHATS {
        let (_, chat) = sim
            .create_chat(
                "group",
                &[
                    demo::SUPPORT_USER_ID.to_owned(),
                    demo::CONTOSO_USER_1_ID.to_owned(),
                ],
                Some(&format!("Chat {n}")),
            )
            .unwrap();
        let id = chat["id"].as_str().unwrap().to_owned();
        sim.post_as_user(
            &id,
            demo::CONTOSO_USER_1_ID,
            UserPost::Html(format!("old message {n}")),
        )
        .unwrap();
        chats.push(id);
    }
    eprintln!(
        "set up {CHATS} chats in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Back to the present (the frozen clock moves only when told to).
    let lag = OffsetDateTime::now_utc() - sim.now();
    sim.advance_clock(lag.whole_seconds() + 1);

    let db = Db::open_sqlite_in(dir.path()).await.expect("the database");
    let technician = store::technicians::create(
        &mut db.acquire().await.unwrap(),
        store::technicians::NewTechnician {
            email: TechnicianEmail::parse("bench@msp.example").unwrap(),
            display_name: "Bench Technician".into(),
            password: SecretString::from("a long bench password"),
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let mut config = Config::for_tests(dir.path());
    config.microsoft.client_id = Some(demo::REGENTRA_CLIENT_ID.to_owned());
    config.microsoft.client_secret = Some(SecretString::from(demo::REGENTRA_CLIENT_SECRET));
    config.microsoft.authority = sim_url.clone();
    config.microsoft.graph_url = sim_url.clone();
    let keys = KeyRing::load(None, dir.path()).expect("a key");
    let teams = TeamsConnections::new(
        db.clone(),
        Arc::new(keys),
        ConnectionSettings::from_config(&config, &url::Url::parse("http://127.0.0.1:1/").unwrap()),
    );
    regentra::demo::auto_connect::connect(&teams, technician.id, demo::SUPPORT_UPN)
        .await
        .expect("the support account connects through the simulator");
    let account = teams.active().await.unwrap().expect("connected");
    let target = PollTarget::from_account(&account);
    let poller = Poller::new(
        db.clone(),
        Some(teams.clone()),
        PollerSettings::from_config(&config),
        Arc::new(PollMetrics::new()),
    );
    let cycle = |mode| {
        let poller = poller.clone();
        let target = target.clone();
        async move {
            poller
                .poll_target(&target, mode, &CancellationToken::new())
                .await
                .expect("a cycle")
        }
    };

    sim.advance_clock(5);
    let first = cycle(CycleMode::Incremental).await;
    let quiet = cycle(CycleMode::Incremental).await;

    let mut changed_reports: Vec<CycleReport> = Vec::new();
    for round in 0..ROUNDS {
        sim.advance_clock(5);
        for k in 0..CHANGED {
            let chat = &chats[(round * 977 + k * 499) % CHATS];
            sim.post_as_user(
                chat,
                demo::CONTOSO_USER_1_ID,
                UserPost::Html(format!("round {round} change {k}")),
            )
            .unwrap();
        }
        sim.advance_clock(1);
        let report = cycle(CycleMode::Incremental).await;
        assert_eq!(
            report.summary.messages_ingested, CHANGED as u64,
            "{report:?}"
        );
        changed_reports.push(report);
    }

    // Backlog: 10,000 messages in 100 chats arrive while Regentra is not polling.
    sim.advance_clock(5);
    for c in 0..BACKLOG_CHATS {
        let (_, chat) = sim
            .create_chat(
                "group",
                &[
                    demo::SUPPORT_USER_ID.to_owned(),
                    demo::CONTOSO_USER_1_ID.to_owned(),
                ],
                Some(&format!("Backlog {c}")),
            )
            .unwrap();
        let id = chat["id"].as_str().unwrap().to_owned();
        for m in 0..BACKLOG_PER_CHAT {
            sim.post_as_user(
                &id,
                demo::CONTOSO_USER_1_ID,
                UserPost::Html(format!("<p>backlog chat {c} message {m}</p>")),
            )
            .unwrap();
        }
        sim.advance_clock(1);
    }
    let backlog = cycle(CycleMode::Incremental).await;
    assert_eq!(
        backlog.summary.messages_ingested,
        (BACKLOG_CHATS * BACKLOG_PER_CHAT) as u64,
        "{backlog:?}"
    );

    let mut durations: Vec<u64> = changed_reports
        .iter()
        .map(|r| r.summary.duration_ms)
        .collect();
    durations.sort_unstable();
    let requests: Vec<u64> = changed_reports
        .iter()
        .map(|r| r.summary.graph_requests)
        .collect();
    println!("poll_cycle bench on {}", machine());
    println!(
        "first cycle after connecting ({CHATS} chats, none changed): {} Graph requests, {} ms",
        first.summary.graph_requests, first.summary.duration_ms
    );
    println!(
        "quiet cycle ({CHATS} chats, none changed): {} Graph request(s), {} ms",
        quiet.summary.graph_requests, quiet.summary.duration_ms
    );
    println!(
        "{CHATS} chats, {CHANGED} changed: Graph requests per cycle {:?}; cycle time median {} ms, max {} ms ({ROUNDS} rounds)",
        requests,
        durations[durations.len() / 2],
        durations[durations.len() - 1]
    );
    let seconds = backlog.summary.duration_ms as f64 / 1000.0;
    println!(
        "backlog of {} messages in {BACKLOG_CHATS} chats on SQLite: {} Graph requests, {:.1} s, {:.0} messages ingested per second",
        backlog.summary.messages_ingested,
        backlog.summary.graph_requests,
        seconds,
        backlog.summary.messages_ingested as f64 / seconds.max(0.001)
    );
    drop(simulator);
}

/// CPU model and core count, for the README's figures.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores available")
}

