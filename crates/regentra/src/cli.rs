//! The command line of the one `regentra` binary: argument definitions (clap derive) and one
//! function per subcommand. `main.rs` only parses, sets up logging and calls [`run`].
//!
//! Adding a subcommand = one variant in [`Command`] (with its `Args` struct) + one `async fn`
//! below + one match arm in [`run`]. Every subcommand here works; nothing is a placeholder.
//! This module must never echo a password, print a token anywhere but stdout (once, when it is
//! created), or log a secret.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

mod federation;
mod keys;

mod poll;

use crate::app::App;
use crate::config::{Config, ConfigFlags, StorageFlags};
use crate::store;
use crate::tickets::TechnicianEmail;

/// Regentra: a self-hosted MSP helpdesk with the Teams Chat Bridge.
///
/// Every flag also reads a REGENTRA_* environment variable (shown in brackets); flags win.
/// Secrets (REGENTRA_MS_CLIENT_SECRET, REGENTRA_ENCRYPTION_KEY, database passwords inside
/// REGENTRA_DATABASE_URL) are read from the environment only.
#[derive(Debug, Parser)]
#[command(
    name = "regentra",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web UI, the JSON API and the background workers until Ctrl-C / SIGTERM.
    Serve(ServeArgs),
    /// Administration: technicians and API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run one Teams poll cycle now (`--once`) and print its summary (`--json` for JSON).
    Poll(poll::PollArgs),
    /// Verify Client Federation: per client Connected / Blocked / Unknown, and why.
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Encryption keys of stored secrets (Teams tokens): `keys rotate`.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Try everything with a simulated Microsoft 365: the helpdesk, the Teams Chat Bridge and a
    /// Teams page to play the client, seeded and ready, in one process. Ctrl-C stops it.
    Demo(DemoArgs),
    /// Run the Microsoft 365 simulator alone (sign-in, Graph chats, /_sim control API, Teams page).
    Sim(SimArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port of the web UI and API on 127.0.0.1; 0 picks a free port
    #[arg(long, value_name = "PORT", default_value_t = crate::demo::DEFAULT_APP_PORT)]
    pub port: u16,
    /// Port of the Microsoft 365 simulator on 127.0.0.1; 0 picks a free port
    #[arg(long, value_name = "PORT", default_value_t = crate::demo::DEFAULT_SIM_PORT)]
    pub sim_port: u16,
    /// Keep the demo data in this directory [default: a temporary directory, removed on exit]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Use this API token (rgt_ followed by at least 20 characters) instead of a generated one
    #[arg(
        long,
        value_name = "TOKEN",
        env = "REGENTRA_DEMO_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Connect the Teams support account at start, without a browser
    #[arg(long)]
    pub auto_connect: bool,
    /// Load this simulator scenario (JSON, see the m365-sim README) instead of the built-in world
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<std::path::PathBuf>,
    /// Log filter, e.g. debug or info,regentra=debug [env: REGENTRA_LOG] [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free port
    #[arg(long, value_name = "PORT", default_value_t = crate::demo::DEFAULT_SIM_PORT)]
    pub port: u16,
    /// Scenario file (JSON, see the m365-sim README) [default: the demo world]
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<std::path::PathBuf>,
    /// Regentra's address: the demo world's app registration accepts its OAuth callback
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080/")]
    pub app_url: url::Url,
    /// Log filter, e.g. debug [env: REGENTRA_LOG] [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigFlags,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a technician who can sign in to the web UI.
    ///
    /// The password is never a plain flag (it would show up in `ps` and shell history): pipe it
    /// in with --password-stdin, or name an environment variable with --password-env.
    CreateTechnician(CreateTechnicianArgs),
    /// Create an API token for a technician; prints the token once, to stdout.
    ///
    /// Use it as `Authorization: Bearer <token>` on /api/v1. Only a hash is stored: a lost
    /// token cannot be shown again; create a new one.
    CreateApiToken(CreateApiTokenArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("password_source").required(true).args(["password_stdin", "password_env"])))]
pub struct CreateTechnicianArgs {
    /// Sign-in e-mail address
    #[arg(long)]
    pub email: String,
    /// Name shown on tickets and replies
    #[arg(long)]
    pub name: String,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Read the password from this environment variable (e.g. --password-env REGENTRA_ADMIN_PASSWORD)
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    #[command(flatten)]
    pub storage: StorageFlags,
}

#[derive(Debug, Args)]
pub struct CreateApiTokenArgs {
    /// E-mail address of the technician the token acts as
    #[arg(long)]
    pub email: String,
    /// A label for the token, e.g. "monitoring script"
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub storage: StorageFlags,
}

impl Command {
    /// The log filter to start with, from flags or env, before the full config is validated.
    /// (Validation errors are printed to stderr directly, not through logging.)
    pub fn config_flags(&self) -> ConfigFlags {
        match self {
            Command::Serve(args) => args.config.clone(),
            Command::Poll(args) => args.config.clone(),
            Command::Federation(command) => command.config_flags(),
            Command::Keys(command) => command.config_flags(),
            Command::Admin(AdminCommand::CreateTechnician(args)) => ConfigFlags {
                storage: args.storage.clone(),
                ..Default::default()
            },
            Command::Admin(AdminCommand::CreateApiToken(args)) => ConfigFlags {
                storage: args.storage.clone(),
                ..Default::default()
            },
            // The demo builds its own configuration (crate::demo); only the log filter counts.
            Command::Demo(DemoArgs { log, .. }) | Command::Sim(SimArgs { log, .. }) => {
                ConfigFlags {
                    storage: StorageFlags {
                        log: log.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                }
            }
        }
    }
}

/// Runs a parsed command with a validated config.
pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(_) => serve(config).await,
        Command::Poll(args) => poll::run(config, args).await,
        Command::Federation(command) => federation::run(config, command).await,
        Command::Keys(command) => keys::run(config, command).await,
        Command::Admin(AdminCommand::CreateTechnician(args)) => {
            create_technician(config, args).await
        }
        Command::Admin(AdminCommand::CreateApiToken(args)) => create_api_token(config, args).await,
        Command::Demo(args) => demo(args).await,
        Command::Sim(args) => sim(args).await,
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let options = crate::demo::DemoOptions {
        port: args.port,
        sim_port: args.sim_port,
        data_dir: args.data_dir,
        api_token: args.api_token.map(SecretString::from),
        auto_connect: args.auto_connect,
        scenario: args.scenario,
    };
    let demo = crate::demo::Demo::start(options)
        .await
        .context("starting the demo")?;
    // stdout, so scripts (and the browser test) can read the login and token.
    println!("{}", demo.banner());
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_shutdown_signal().await;
        tracing::info!("shutdown requested; stopping the demo");
        on_signal.cancel();
    });
    demo.run_until_shutdown(shutdown)
        .await
        .context("running the demo")?;
    eprintln!("Regentra demo stopped.");
    Ok(ExitCode::SUCCESS)
}

async fn sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let scenario = match &args.scenario {
        Some(path) => m365_sim::Scenario::from_file(path)?,
        None => m365_sim::demo::demo_scenario(
            crate::bridge::connection::redirect_uri_for(&args.app_url).as_str(),
        ),
    };
    let config = m365_sim::SimConfig {
        port: args.port,
        ..Default::default()
    };
    let running = m365_sim::Simulator::start(config, scenario)
        .await
        .context("starting the Microsoft 365 simulator")?;
    let base = running.base_url();
    println!(
        "Microsoft 365 simulator on {base}\n  authority and Graph URL: {base}\n  Teams page: {}\n  control API: {}\nPress Ctrl-C to stop.",
        base.join("_sim/teams").unwrap_or_else(|_| base.clone()),
        base.join("_sim/state").unwrap_or_else(|_| base.clone()),
    );
    wait_for_shutdown_signal().await;
    running.shutdown().await.context("stopping the simulator")?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let app = App::build(config).await.context("starting Regentra")?;
    tracing::info!(http.address = %app.address(), "Regentra is listening on {}", app.base_url());
    let technicians = store::technicians::count(&mut *app.db().acquire().await?)
        .await
        .context("counting technicians")?;
    if technicians == 0 {
        // Printed (not just logged) so that a first-time user sees it regardless of REGENTRA_LOG.
        eprintln!("{}", first_technician_hint());
    }
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        on_signal.cancel();
    });
    app.run_until_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("Regentra stopped");
    Ok(ExitCode::SUCCESS)
}

/// What to do on the first start with an empty database.
pub fn first_technician_hint() -> String {
    "No technician exists yet, so nobody can sign in. Create the first one with:\n\n    \
     printf '%s\\n' 'a-long-password' | regentra admin create-technician --email you@example.com --name \"Your Name\" --password-stdin\n\n\
     (use the same REGENTRA_DATA_DIR / REGENTRA_DATABASE_URL as this server)."
        .to_owned()
}

async fn wait_for_shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(err) => {
                    tracing::warn!(
                        "cannot listen for SIGTERM ({err}); only Ctrl-C stops the server"
                    );
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

use crate::store::technicians::MIN_PASSWORD_CHARS;

async fn create_technician(config: Config, args: CreateTechnicianArgs) -> anyhow::Result<ExitCode> {
    let email =
        TechnicianEmail::parse(&args.email).map_err(|err| anyhow::anyhow!("--email: {err}"))?;
    let name = args.name.trim().to_owned();
    if name.is_empty() {
        bail!(
            "--name must not be empty; give the name shown on replies, e.g. --name \"Alex Smith\""
        );
    }
    let password = read_password(&args)?;
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password is too short: use at least {MIN_PASSWORD_CHARS} characters");
    }
    let db = crate::app::open_database(&config)
        .await
        .context("opening the database")?;
    let new = store::technicians::NewTechnician {
        email: email.clone(),
        display_name: name,
        password,
    };
    let technician =
        store::technicians::create(&mut *db.acquire().await?, new, OffsetDateTime::now_utc())
            .await
            .with_context(|| format!("creating technician {email}"))?;
    eprintln!(
        "Created technician {} <{}>. They can now sign in to the web UI.",
        technician.display_name, technician.email
    );
    Ok(ExitCode::SUCCESS)
}

fn read_password(args: &CreateTechnicianArgs) -> anyhow::Result<SecretString> {
    if let Some(var) = &args.password_env {
        let value = std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "--password-env {var}: that environment variable is not set (or not UTF-8)"
            )
        })?;
        return Ok(SecretString::from(value));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // A terminal would echo what is typed; refuse rather than show the password.
        bail!(
            "--password-stdin expects the password piped in, not typed (the terminal would show it). \
             For example: read -rs PW && printf '%s\\n' \"$PW\" | regentra admin create-technician … --password-stdin"
        );
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!(
            "--password-stdin: standard input was empty; pipe the password in, e.g. printf '%s\\n' \"$PASSWORD\" | regentra admin create-technician …"
        );
    }
    Ok(SecretString::from(password))
}

async fn create_api_token(config: Config, args: CreateApiTokenArgs) -> anyhow::Result<ExitCode> {
    let email =
        TechnicianEmail::parse(&args.email).map_err(|err| anyhow::anyhow!("--email: {err}"))?;
    let label = args.name.trim();
    if label.is_empty() {
        bail!("--name must not be empty; give the token a label such as --name \"monitoring\"");
    }
    let db = crate::app::open_database(&config)
        .await
        .context("opening the database")?;
    let mut conn = db.acquire().await?;
    let technician = store::technicians::find_by_email(&mut conn, email.as_str())
        .await
        .context("looking up the technician")?
        .ok_or_else(|| {
            anyhow::anyhow!("no technician with e-mail {email}; create one first with `regentra admin create-technician`")
        })?;
    let (token_row, token) =
        store::api_tokens::create(&mut conn, technician.id, label, OffsetDateTime::now_utc())
            .await
            .context("creating the API token")?;
    eprintln!(
        "Created API token \"{}\" for {}. It is shown once, below; store it now (only its hash is kept).",
        token_row.name, technician.email
    );
    // The one place a token is printed: stdout, so `TOKEN=$(regentra admin create-api-token …)` works.
    println!("{}", token.expose_secret());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create_technician_requires_a_password_source() {
        let err = Cli::try_parse_from([
            "regentra",
            "admin",
            "create-technician",
            "--email",
            "a@example.com",
            "--name",
            "A",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let ok = Cli::try_parse_from([
            "regentra",
            "admin",
            "create-technician",
            "--email",
            "a@example.com",
            "--name",
            "A",
            "--password-env",
            "PW",
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn there_is_no_password_flag() {
        let err = Cli::try_parse_from([
            "regentra",
            "admin",
            "create-technician",
            "--email",
            "a@example.com",
            "--name",
            "A",
            "--password",
            "x",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn serve_flags_reach_the_config() {
        let cli = Cli::try_parse_from([
            "regentra",
            "serve",
            "--port",
            "0",
            "--data-dir",
            "/tmp/r",
            "--poll-interval",
            "10s",
        ])
        .unwrap();
        let flags = cli.command.config_flags();
        let config = Config::load_from(&flags, |_| None).unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.data_dir, std::path::PathBuf::from("/tmp/r"));
        assert_eq!(
            config.microsoft.poll_interval,
            std::time::Duration::from_secs(10)
        );
    }

    #[test]
    fn demo_flags_default_to_8080_and_8081_and_parse_the_script_options() {
        let cli = Cli::try_parse_from(["regentra", "demo"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("not the demo command");
        };
        assert_eq!((args.port, args.sim_port), (8080, 8081));
        assert!(!args.auto_connect && args.data_dir.is_none() && args.scenario.is_none());

        let cli = Cli::try_parse_from([
            "regentra",
            "demo",
            "--port",
            "0",
            "--sim-port",
            "0",
            "--data-dir",
            "/tmp/d",
            "--api-token",
            "rgt_script_token_0123456789",
            "--auto-connect",
            "--scenario",
            "world.json",
        ])
        .unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("not the demo command");
        };
        assert_eq!((args.port, args.sim_port), (0, 0));
        assert_eq!(
            args.api_token.as_deref(),
            Some("rgt_script_token_0123456789")
        );
        assert!(args.auto_connect);
        assert_eq!(args.scenario, Some(std::path::PathBuf::from("world.json")));
    }

    #[test]
    fn first_start_hint_names_the_command() {
        assert!(first_technician_hint().contains("regentra admin create-technician --email"));
    }
}
