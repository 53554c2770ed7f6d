//! `regentra federation verify [--json]`: runs Verify Client Federation (ARCHITECTURE §9) for
//! every client, stores the verdicts (the clients page shows them) and prints them as a table or
//! as the same JSON as `POST /api/v1/integrations/teams/federation/verify`.
//!
//! It uses the same database and Microsoft settings (`REGENTRA_MS_AUTHORITY`) as `serve`; no
//! token is needed, the tenant lookups use the public OIDC discovery document. Exit code 0 when
//! the check ran, whatever the verdicts; 1 only when it could not run.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use crate::bridge::federation::check::{self, CheckOptions, ClientVerdict};
use crate::config::{Config, ConfigFlags};
use crate::web::federation::{VerifyJson, status_label, summary_sentence};

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Check every client's Teams federation (Connected / Blocked / Unknown, and why) and print
    /// the verdicts.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print the verdicts as JSON (the API's shape, with the remediation) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Lookups in flight at once
    #[arg(long, value_name = "N", default_value_t = check::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Time limit of one tenant lookup, e.g. 5s
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub lookup_timeout: humantime::Duration,
    #[command(flatten)]
    pub config: ConfigFlags,
}

impl FederationCommand {
    /// The settings flags of the subcommand.
    pub fn config_flags(&self) -> ConfigFlags {
        match self {
            FederationCommand::Verify(args) => args.config.clone(),
        }
    }
}

/// Runs `regentra federation …`.
pub async fn run(config: Config, command: FederationCommand) -> anyhow::Result<ExitCode> {
    let FederationCommand::Verify(args) = command;
    let db = crate::app::open_database(&config)
        .await
        .context("opening the database")?;
    let options = CheckOptions {
        concurrency: args.concurrency.max(1),
        lookup_timeout: args.lookup_timeout.into(),
    };
    let verdicts = check::verify_all_clients(
        &db,
        &config.microsoft.authority,
        options,
        OffsetDateTime::now_utc(),
    )
    .await
    .context("running Verify Client Federation")?;
    db.close().await;
    // The summary goes to stderr so that stdout stays pure JSON with --json.
    eprintln!("{}", summary_sentence(&verdicts));
    if args.json {
        let body = VerifyJson {
            total: verdicts.len(),
            items: verdicts,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&body).context("encoding the verdicts as JSON")?
        );
    } else {
        print!("{}", table(&verdicts));
    }
    Ok(ExitCode::SUCCESS)
}

/// The verdicts as a plain-text table: one line per client (name, tenant, status, checked at),
/// then its reasons indented below.
pub fn table(verdicts: &[ClientVerdict]) -> String {
    let name_width = verdicts
        .iter()
        .map(|row| row.name.chars().count())
        .chain(["CLIENT".len()])
        .max()
        .unwrap_or(6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<name_width$}  {:<36}  {:<9}  CHECKED AT",
        "CLIENT", "TENANT", "STATUS"
    );
    for row in verdicts {
        let tenant = row
            .tenant_id
            .as_ref()
            .map_or_else(|| "(not set)".to_owned(), ToString::to_string);
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<36}  {:<9}  {}",
            row.name,
            tenant,
            status_label(row.result.status),
            crate::web::ui::display_time(row.checked_at)
        );
        for reason in &row.result.reasons {
            let _ = writeln!(out, "    - {reason}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::federation::{FederationResult, FederationStatus};
    use crate::tickets::{ClientId, TenantId};
    use time::macros::datetime;

    #[test]
    fn the_table_lists_each_client_with_its_reasons() {
        let rows = [
            ClientVerdict {
                client_id: ClientId::new(),
                name: "Contoso".into(),
                tenant_id: Some(TenantId::parse("c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a41").unwrap()),
                domains: vec!["contoso.example".into()],
                result: FederationResult {
                    status: FederationStatus::Connected,
                    reasons: vec!["Last message from Contoso received on 2026-03-02.".into()],
                    blocking_side: None,
                    remediation: None,
                },
                checked_at: datetime!(2026-03-02 09:00 UTC),
            },
            ClientVerdict {
                client_id: ClientId::new(),
                name: "No Tenant Ltd".into(),
                tenant_id: None,
                domains: Vec::new(),
                result: FederationResult {
                    status: FederationStatus::Unknown,
                    reasons: vec!["No Entra tenant ID is set.".into()],
                    blocking_side: None,
                    remediation: None,
                },
                checked_at: datetime!(2026-03-02 09:00 UTC),
            },
        ];
        assert_eq!(
            table(&rows),
            "CLIENT         TENANT                                STATUS     CHECKED AT\n\
             Contoso        c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a41  Connected  2026-03-02 09:00 UTC\n\
             \x20   - Last message from Contoso received on 2026-03-02.\n\
             No Tenant Ltd  (not set)                             Unknown    2026-03-02 09:00 UTC\n\
             \x20   - No Entra tenant ID is set.\n"
        );
    }

    #[test]
    fn verify_takes_json_and_the_server_settings() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "regentra",
            "federation",
            "verify",
            "--json",
            "--lookup-timeout",
            "2s",
            "--ms-authority",
            "http://127.0.0.1:9/",
        ])
        .unwrap();
        let flags = cli.command.config_flags();
        let config = Config::load_from(&flags, |_| None).unwrap();
        assert_eq!(config.microsoft.authority.as_str(), "http://127.0.0.1:9/");
        let crate::cli::Command::Federation(FederationCommand::Verify(args)) = cli.command else {
            panic!("not federation verify");
        };
        assert!(args.json);
        assert_eq!(
            std::time::Duration::from(args.lookup_timeout),
            std::time::Duration::from_secs(2)
        );
    }
}
