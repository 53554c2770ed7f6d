//! `regentra poll --once [--json] [--sweep]`: one Teams poll cycle for the connected account,
//! now, with the cycle summary printed as text or JSON.
//!
//! It uses the same database, key and Microsoft settings as `serve` and shares the account lease
//! with running servers: if one of them is polling right now, this waits for it (at most the
//! lease time) rather than polling the same account twice. Exit code 0 for `ok` and `partial`
//! (what failed is retried next cycle), 1 when nothing could be polled.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::bridge::connection::{ConnectionSettings, TeamsConnections};
use crate::bridge::metrics::PollMetrics;
use crate::bridge::poller::{CycleMode, CycleReport, CycleResult, Poller, PollerSettings};
use crate::config::{Config, ConfigFlags};

#[derive(Debug, Args)]
pub struct PollArgs {
    /// Run exactly one cycle and exit (the continuous poller runs inside `regentra serve`)
    #[arg(long)]
    pub once: bool,
    /// Print the cycle report as JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Re-read every chat active in the last week (catches edits and deletions), not only
    /// changed chats
    #[arg(long)]
    pub sweep: bool,
    /// How long this process reserves the account if it dies mid-cycle, e.g. 60s [default: 60s]
    #[arg(long, value_name = "DURATION")]
    pub lease_ttl: Option<humantime::Duration>,
    #[command(flatten)]
    pub config: ConfigFlags,
}

/// Runs `regentra poll`.
pub async fn run(config: Config, args: PollArgs) -> anyhow::Result<ExitCode> {
    if !args.once {
        bail!(
            "`regentra poll` needs --once: it runs one cycle and exits. The continuous poller runs inside `regentra serve`."
        );
    }
    let db = crate::app::open_database(&config)
        .await
        .context("opening the database")?;
    let keys =
        crate::bridge::vault::KeyRing::load(config.encryption_key.as_ref(), &config.data_dir)
            .context("loading the key that decrypts the stored Microsoft tokens")?;
    let base_url = match &config.public_url {
        Some(url) => url.clone(),
        None => url::Url::parse(&format!("http://{}/", config.listen))
            .context("building the local URL")?,
    };
    let teams = TeamsConnections::new(
        db.clone(),
        Arc::new(keys),
        ConnectionSettings::from_config(&config, &base_url),
    );
    let Some(account) = teams
        .active()
        .await
        .context("reading the Teams connection")?
    else {
        bail!(
            "the Teams support account is not connected (or needs a reconnect), so there is nothing to poll; connect it under Settings → Integrations in the web UI"
        );
    };
    let mut settings = PollerSettings::from_config(&config);
    if let Some(ttl) = args.lease_ttl {
        settings.lease_ttl =
            time::Duration::try_from(Duration::from(ttl)).context("--lease-ttl is too long")?;
    }
    let wait_limit = Duration::try_from(settings.lease_ttl).unwrap_or(Duration::from_secs(60))
        + Duration::from_secs(5);
    let poller = Poller::new(
        db.clone(),
        Some(teams),
        settings,
        Arc::new(PollMetrics::new()),
    );
    let mode = if args.sweep {
        CycleMode::Sweep
    } else {
        CycleMode::Incremental
    };
    let waiting_since = Instant::now();
    let report = loop {
        let report = poller
            .poll_once(&account, mode)
            .await
            .context("running the poll cycle")?;
        if report.result != CycleResult::Busy || waiting_since.elapsed() >= wait_limit {
            break report;
        }
        if waiting_since.elapsed() < Duration::from_secs(1) {
            eprintln!(
                "Another Regentra process is polling this account; waiting for it to finish…"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    db.close().await;
    print_report(&report, args.json)?;
    Ok(match report.result {
        CycleResult::Ok | CycleResult::Partial => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn print_report(report: &CycleReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).context("encoding the report")?
        );
        return Ok(());
    }
    let s = &report.summary;
    println!(
        "Poll cycle ({:?}) for account {}: {}",
        report.mode,
        report.account_id,
        report.result.as_str()
    );
    if let Some(error) = &report.error {
        println!("  problem:           {error}");
    }
    println!("  chats listed:      {}", s.chats_listed);
    println!("  chats changed:     {}", s.chats_changed);
    println!("  messages seen:     {}", s.messages_seen);
    println!("  messages ingested: {}", s.messages_ingested);
    println!("  tickets created:   {}", s.tickets_created);
    println!("  entries appended:  {}", s.entries_appended);
    println!("  edits:             {}", s.edits);
    println!("  deletes:           {}", s.deletes);
    if s.skipped.is_empty() {
        println!("  skipped:           0");
    } else {
        let parts: Vec<String> = s.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("  skipped:           {}", parts.join(", "));
    }
    println!("  graph requests:    {}", s.graph_requests);
    println!("  throttled:         {}", s.throttled);
    println!("  errors:            {}", s.errors);
    println!("  duration:          {} ms", s.duration_ms);
    Ok(())
}
