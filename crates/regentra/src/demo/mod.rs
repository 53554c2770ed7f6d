//! `regentra demo`: the whole product in one process, for a newcomer without a Microsoft tenant.
//!
//! [`Demo::start`] starts the in-process Microsoft 365 simulator (`m365_sim`, the demo world of
//! `m365_sim::demo` or a `--scenario` file), then the real application pointed at it
//! (`REGENTRA_MS_AUTHORITY` and `REGENTRA_GRAPH_URL` = the simulator, the demo app registration,
//! SQLite in a temporary or given data directory, polling every 10 s), seeds it ([`seed`]) and,
//! with `--auto-connect`, connects the support account without a browser ([`auto_connect`]).
//! [`Demo::run_until_shutdown`] serves both until a [`CancellationToken`] fires.
//!
//! Tests use the same function on random ports (`tests/api/demo_story.rs`); the browser test
//! starts the real binary.
//!
//! This module must never read the operator's real Microsoft or database settings (a demo
//! must not write into a production database or talk to a real tenant: only `REGENTRA_LOG` is
//! taken from the environment), bind anything but 127.0.0.1, or print a secret other than the
//! demo's own technician password and API token, which it prints once on purpose.

pub mod auto_connect;
mod seed;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use m365_sim::{RunningSimulator, Scenario, ScenarioApp, SimConfig, SimError, Simulator};
use secrecy::{ExposeSecret as _, SecretString};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::app::{App, AppError, AppState};
use crate::bridge::connection::{TeamsConnections, redirect_uri_for};
use crate::config::{
    Config, ConfigError, ConfigFlags, ENV_LOG, ENV_MS_CLIENT_SECRET, StorageFlags,
};

pub use auto_connect::AutoConnectError;
pub use seed::{
    DEMO_TECHNICIAN_EMAIL, DEMO_TECHNICIAN_NAME, FABRIKAM_HISTORY_REPLY, FABRIKAM_HISTORY_REQUEST,
    PRINTER_MESSAGE, SeedError, Seeded, TAILSPIN_DOMAIN,
};

/// Web UI port when `--port` is not given.
pub const DEFAULT_APP_PORT: u16 = 8080;
/// Simulator port when `--sim-port` is not given.
pub const DEFAULT_SIM_PORT: u16 = 8081;
/// The demo polls Teams every 10 seconds, so a message shows up while one watches.
pub const DEMO_POLL_INTERVAL: &str = "10s";

/// What `regentra demo` was asked for.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Port of the web UI and API on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// Port of the simulator on 127.0.0.1 (0 = any free port).
    pub sim_port: u16,
    /// Keep the data here instead of in a temporary directory removed on exit.
    pub data_dir: Option<PathBuf>,
    /// Use this API token instead of a generated one (scripts know it in advance).
    pub api_token: Option<SecretString>,
    /// Connect the support account at start, without a browser.
    pub auto_connect: bool,
    /// Load this simulator scenario instead of the built-in demo world.
    pub scenario: Option<PathBuf>,
}

/// Why the demo could not start or stopped with an error. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create a temporary data directory; pass --data-dir DIR")]
    TempDir(#[source] std::io::Error),
    #[error(
        "the simulator cannot listen on 127.0.0.1:{port} (is another program using it?); pass \
         --sim-port with another port, or 0 for any free one"
    )]
    SimPort {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Simulator(SimError),
    #[error("the demo settings are invalid")]
    Config(#[source] ConfigError),
    #[error(
        "cannot start Regentra on 127.0.0.1:{port}; if another program uses that port, pass \
         --port with another one, or 0 for any free one"
    )]
    App {
        port: u16,
        #[source]
        source: AppError,
    },
    #[error("seeding the demo data failed")]
    Seed(#[source] SeedError),
    #[error("--auto-connect could not connect the support account")]
    AutoConnect(#[source] Box<AutoConnectError>),
    #[error("the web server stopped with an error")]
    Serve(#[source] AppError),
}

/// Where the demo keeps its data.
#[derive(Debug)]
enum DataDir {
    /// Removed when the demo ends.
    Temporary(tempfile::TempDir),
    /// Given with `--data-dir`: kept.
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temporary(dir) => dir.path(),
            DataDir::Given(path) => path,
        }
    }
}

/// What a person (or script) needs to use the running demo.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The web UI, e.g. `http://127.0.0.1:8080/`.
    pub app_url: Url,
    /// The simulator's base URL (identity platform, Graph and `/_sim/…`).
    pub sim_url: Url,
    /// The simulator's Teams page, where one plays a client user.
    pub teams_page_url: Url,
    /// The technician login.
    pub technician_email: String,
    pub technician_password: SecretString,
    /// A JSON API token for that technician.
    pub api_token: SecretString,
    /// The support account, when `--auto-connect` connected it.
    pub connected_account: Option<String>,
    /// Where the data lives, and whether it is removed on exit.
    pub data_dir: PathBuf,
    pub data_dir_is_temporary: bool,
    /// True for the built-in demo world (the "what to try" steps refer to it).
    pub builtin_scenario: bool,
}

/// A started demo: the simulator serving, the application built and seeded, not yet serving.
pub struct Demo {
    app: App,
    simulator: RunningSimulator,
    info: DemoInfo,
    // Dropped last: the database file lives in it.
    data_dir: DataDir,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("app_url", &self.info.app_url.as_str())
            .field("sim_url", &self.info.sim_url.as_str())
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Starts the simulator, builds and seeds the application, and (with `auto_connect`)
    /// connects the support account. Nothing is served by the application yet.
    pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
        let data_dir = match &options.data_dir {
            Some(path) => DataDir::Given(path.clone()),
            None => DataDir::Temporary(
                tempfile::Builder::new()
                    .prefix("regentra-demo-")
                    .tempdir()
                    .map_err(DemoError::TempDir)?,
            ),
        };

        // The app's redirect URI must be registered in the simulator, but with port 0 the app's
        // port is known only after it binds, and the app needs the simulator's URL first. So
        // the simulator starts with the expected redirect URI and is corrected after binding.
        let expected_redirect = redirect_uri_for(&loopback_url(options.port));
        let scenario = match &options.scenario {
            None => m365_sim::demo::demo_scenario(expected_redirect.as_str()),
            Some(path) => with_demo_app(
                Scenario::from_file(path).map_err(DemoError::Simulator)?,
                expected_redirect.as_str(),
            ),
        };
        let simulator = Simulator::start(
            SimConfig {
                port: options.sim_port,
                ..SimConfig::default()
            },
            scenario.clone(),
        )
        .await
        .map_err(|error| match error {
            SimError::Bind { port, source } => DemoError::SimPort { port, source },
            other => DemoError::Simulator(other),
        })?;
        match assemble(
            &options,
            &scenario,
            &expected_redirect,
            &simulator,
            &data_dir,
        )
        .await
        {
            Ok((app, info)) => Ok(Demo {
                app,
                simulator,
                info,
                data_dir,
            }),
            Err(error) => {
                // Do not leave the simulator serving behind a failed start.
                if let Err(stop_error) = simulator.shutdown().await {
                    tracing::warn!(
                        "the Microsoft 365 simulator did not stop cleanly: {stop_error}"
                    );
                }
                Err(error)
            }
        }
    }

    /// URLs, login, token.
    pub fn info(&self) -> &DemoInfo {
        &self.info
    }

    /// The application's shared state (tests drive workers through it).
    pub fn app_state(&self) -> &AppState {
        self.app.state()
    }

    /// The simulated Microsoft 365 world (same operations as its control API).
    pub fn sim(&self) -> &m365_sim::Sim {
        self.simulator.sim()
    }

    /// Serves the application (UI, API, poller, outbox) until `shutdown` fires, then stops the
    /// simulator and removes a temporary data directory.
    pub async fn run_until_shutdown(self, shutdown: CancellationToken) -> Result<(), DemoError> {
        let Demo {
            app,
            simulator,
            info: _,
            data_dir,
        } = self;
        let served = app.run_until_shutdown(shutdown).await;
        if let Err(error) = simulator.shutdown().await {
            tracing::warn!("the Microsoft 365 simulator did not stop cleanly: {error}");
        }
        drop(data_dir);
        served.map_err(DemoError::Serve)
    }

    /// What `regentra demo` prints at start: where to go, how to sign in, what to try.
    pub fn banner(&self) -> String {
        banner(&self.info)
    }
}

/// Builds the application against the running simulator, seeds it and (if asked) connects the
/// support account.
async fn assemble(
    options: &DemoOptions,
    scenario: &Scenario,
    expected_redirect: &Url,
    simulator: &RunningSimulator,
    data_dir: &DataDir,
) -> Result<(App, DemoInfo), DemoError> {
    let builtin_scenario = options.scenario.is_none();
    let sim_url = simulator.base_url();
    let config = demo_config(options.port, data_dir.path(), &sim_url)?;
    let app = App::build(config).await.map_err(|source| DemoError::App {
        port: options.port,
        source,
    })?;
    let redirect = redirect_uri_for(app.base_url());
    if &redirect != expected_redirect {
        let mut correction = Scenario {
            app_registrations: scenario.app_registrations.clone(),
            ..Scenario::default()
        };
        for registration in &mut correction.app_registrations {
            if registration.client_id == m365_sim::demo::REGENTRA_CLIENT_ID {
                registration.redirect_uris = vec![redirect.to_string()];
            }
        }
        simulator
            .sim()
            .load_scenario(&correction)
            .map_err(DemoError::Simulator)?;
    }

    let seeded = seed::seed(
        app.state(),
        simulator.sim(),
        options.api_token.clone(),
        (!builtin_scenario).then_some(scenario),
    )
    .await
    .map_err(DemoError::Seed)?;

    let connected_account = if options.auto_connect {
        let support_login = support_login(scenario);
        let account = auto_connect::connect(
            teams_connections(app.state()),
            seeded.technician_id,
            &support_login,
        )
        .await
        .map_err(|error| DemoError::AutoConnect(Box::new(error)))?;
        Some(account)
    } else {
        None
    };

    let mut teams_page_url = sim_url.clone();
    teams_page_url.set_path("/_sim/teams");
    let info = DemoInfo {
        app_url: app.base_url().clone(),
        sim_url,
        teams_page_url,
        technician_email: DEMO_TECHNICIAN_EMAIL.to_owned(),
        technician_password: seeded.technician_password,
        api_token: seeded.api_token,
        connected_account,
        data_dir: data_dir.path().to_path_buf(),
        data_dir_is_temporary: matches!(data_dir, DataDir::Temporary(_)),
        builtin_scenario,
    };
    Ok((app, info))
}

/// The application's Teams connection service (the one its workers and handlers use).
fn teams_connections(state: &AppState) -> &TeamsConnections {
    &state.teams
}

/// `http://127.0.0.1:{port}/` (the port the app is asked for; 0 until it binds).
fn loopback_url(port: u16) -> Url {
    let text = format!("http://127.0.0.1:{port}/");
    // A loopback IP with a u16 port is always a valid URL.
    Url::parse(&text).unwrap_or_else(|_| unreachable!("{text} is a valid URL"))
}

/// The app's configuration: the simulator as Microsoft, the demo app registration, SQLite in
/// the data directory, 10 s polling. Only `REGENTRA_LOG` comes from the environment.
fn demo_config(port: u16, data_dir: &Path, sim_url: &Url) -> Result<Config, DemoError> {
    let flags = ConfigFlags {
        storage: StorageFlags {
            data_dir: Some(data_dir.display().to_string()),
            database_url: None,
            log: None,
        },
        bind: Some("127.0.0.1".to_owned()),
        port: Some(port.to_string()),
        ms_client_id: Some(m365_sim::demo::REGENTRA_CLIENT_ID.to_owned()),
        ms_tenant: Some("organizations".to_owned()),
        ms_authority: Some(sim_url.to_string()),
        graph_url: Some(sim_url.to_string()),
        poll_interval: Some(DEMO_POLL_INTERVAL.to_owned()),
        ..ConfigFlags::default()
    };
    let environment = |name: &str| -> Option<OsString> {
        match name {
            ENV_MS_CLIENT_SECRET => Some(OsString::from(m365_sim::demo::REGENTRA_CLIENT_SECRET)),
            ENV_LOG => std::env::var_os(ENV_LOG),
            _ => None,
        }
    };
    Config::load_from(&flags, environment).map_err(DemoError::Config)
}

/// A custom scenario plus the demo's app registration, unless the scenario registers the demo
/// client id itself (then its redirect URIs get the app's too).
fn with_demo_app(mut scenario: Scenario, redirect_uri: &str) -> Scenario {
    let registered = scenario
        .app_registrations
        .iter_mut()
        .find(|app| app.client_id == m365_sim::demo::REGENTRA_CLIENT_ID);
    match registered {
        Some(app) => {
            if !app.redirect_uris.iter().any(|uri| uri == redirect_uri) {
                app.redirect_uris.push(redirect_uri.to_owned());
            }
            // The demo signs in with its own secret.
            app.client_secret = m365_sim::demo::REGENTRA_CLIENT_SECRET.to_owned();
        }
        None => scenario.app_registrations.push(ScenarioApp {
            client_id: m365_sim::demo::REGENTRA_CLIENT_ID.to_owned(),
            client_secret: m365_sim::demo::REGENTRA_CLIENT_SECRET.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            display_name: Some(m365_sim::demo::REGENTRA_APP_NAME.to_owned()),
            allow_any_loopback_port: false,
        }),
    }
    scenario
}

/// The account `--auto-connect` signs in as: the demo's support user, or in a custom scenario
/// the first user of the first tenant (the same convention as the simulator's Teams page).
fn support_login(scenario: &Scenario) -> String {
    let has_demo_support = scenario
        .users
        .iter()
        .any(|user| user.id == m365_sim::demo::SUPPORT_USER_ID);
    if has_demo_support {
        return m365_sim::demo::SUPPORT_UPN.to_owned();
    }
    scenario
        .tenants
        .first()
        .and_then(|tenant| {
            scenario
                .users
                .iter()
                .find(|user| user.tenant_id.eq_ignore_ascii_case(&tenant.id))
        })
        .or_else(|| scenario.users.first())
        .map(|user| user.user_principal_name.clone())
        .unwrap_or_else(|| m365_sim::demo::SUPPORT_UPN.to_owned())
}

/// The start-up text: URLs, login, token, and five things to try.
fn banner(info: &DemoInfo) -> String {
    let app = info.app_url.as_str().trim_end_matches('/');
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        text,
        "\nRegentra demo is running (with a simulated Microsoft 365; nothing leaves this machine).\n"
    );
    let _ = writeln!(text, "  Helpdesk:      {app}/");
    let _ = writeln!(
        text,
        "  Sign in as:    {} / {}",
        info.technician_email,
        info.technician_password.expose_secret()
    );
    let _ = writeln!(
        text,
        "  API token:     {}   (e.g. curl -H \"Authorization: Bearer $TOKEN\" {app}/api/v1/tickets)",
        info.api_token.expose_secret()
    );
    let _ = writeln!(text, "  Teams (sim):   {}", info.teams_page_url);
    match &info.connected_account {
        Some(account) => {
            let _ = writeln!(text, "  Teams Chat:    connected as {account}");
        }
        None => {
            let _ = writeln!(text, "  Teams Chat:    not connected yet (step 1)");
        }
    }
    let _ = writeln!(
        text,
        "  Data:          {}{}",
        info.data_dir.display(),
        if info.data_dir_is_temporary {
            " (temporary, removed on exit)"
        } else {
            ""
        }
    );
    let _ = writeln!(text, "\nWhat to try:");
    if info.builtin_scenario {
        if info.connected_account.is_some() {
            let _ = writeln!(
                text,
                "  1. Sign in and open Settings → Integrations: the Teams Chat Bridge card shows Connected."
            );
        } else {
            let _ = writeln!(
                text,
                "  1. Sign in, open Settings → Integrations and click Connect Teams Chat; sign in as {} and accept.",
                m365_sim::demo::SUPPORT_UPN
            );
        }
        let _ = writeln!(
            text,
            "  2. Open the Teams page, chat as Pat Lee (Contoso) and write \"{PRINTER_MESSAGE}\"."
        );
        let _ = writeln!(
            text,
            "  3. Within 10 seconds (the demo polls Teams that often) the ticket appears under Contoso in Tickets."
        );
        let _ = writeln!(
            text,
            "  4. Open it, write a reply and click Reply in Teams: it shows up on the Teams page as the support account."
        );
        let _ = writeln!(
            text,
            "  5. Settings → Integrations → Verify Client Federation: Contoso connected, Fabrikam blocked, Tailspin Toys unknown."
        );
    } else {
        let _ = writeln!(
            text,
            "  1. Sign in, open Settings → Integrations and click Connect Teams Chat; sign in as the support user of your scenario."
        );
        let _ = writeln!(
            text,
            "  2. Open the Teams page, pick a client user and write a message to the support account."
        );
        let _ = writeln!(
            text,
            "  3. Within 10 seconds it becomes a ticket under the client with that tenant ID."
        );
        let _ = writeln!(
            text,
            "  4. Reply on the ticket with Reply in Teams and watch it arrive on the Teams page."
        );
        let _ = writeln!(
            text,
            "  5. Settings → Integrations → Verify Client Federation shows what is known per client."
        );
    }
    let _ = writeln!(text, "\nPress Ctrl-C to stop.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_points_microsoft_at_the_simulator_and_polls_every_ten_seconds() {
        let sim = Url::parse("http://127.0.0.1:45678").unwrap();
        let config = demo_config(0, Path::new("/tmp/demo-data"), &sim).unwrap();
        assert_eq!(
            config.microsoft.authority.as_str(),
            "http://127.0.0.1:45678/"
        );
        assert_eq!(
            config.microsoft.graph_url.as_str(),
            "http://127.0.0.1:45678/"
        );
        assert_eq!(
            config.microsoft.client_id.as_deref(),
            Some(m365_sim::demo::REGENTRA_CLIENT_ID)
        );
        assert_eq!(
            config
                .microsoft
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
                .as_deref(),
            Some(m365_sim::demo::REGENTRA_CLIENT_SECRET)
        );
        assert_eq!(
            config.microsoft.poll_interval,
            std::time::Duration::from_secs(10)
        );
        assert_eq!(config.data_dir, PathBuf::from("/tmp/demo-data"));
        assert!(config.listen.ip().is_loopback());
        assert!(matches!(
            &config.database,
            crate::config::DatabaseLocation::Sqlite { path } if path.starts_with("/tmp/demo-data")
        ));
    }

    #[test]
    fn custom_scenario_gets_the_demo_app_registration() {
        let scenario = with_demo_app(Scenario::default(), "http://127.0.0.1:9/cb");
        assert_eq!(scenario.app_registrations.len(), 1);
        assert_eq!(
            scenario.app_registrations[0].redirect_uris,
            vec!["http://127.0.0.1:9/cb".to_owned()]
        );
        let again = with_demo_app(scenario, "http://127.0.0.1:10/cb");
        assert_eq!(again.app_registrations.len(), 1);
        assert_eq!(again.app_registrations[0].redirect_uris.len(), 2);
    }

    #[test]
    fn auto_connect_signs_in_as_the_demo_support_user() {
        let scenario = m365_sim::demo::demo_scenario("http://127.0.0.1:8080/cb");
        assert_eq!(support_login(&scenario), m365_sim::demo::SUPPORT_UPN);
    }

    #[test]
    fn banner_shows_urls_login_token_and_five_steps() {
        let info = DemoInfo {
            app_url: Url::parse("http://127.0.0.1:8080/").unwrap(),
            sim_url: Url::parse("http://127.0.0.1:8081").unwrap(),
            teams_page_url: Url::parse("http://127.0.0.1:8081/_sim/teams").unwrap(),
            technician_email: DEMO_TECHNICIAN_EMAIL.to_owned(),
            technician_password: SecretString::from("demo-password-123"),
            api_token: SecretString::from("rgt_demo_token_value_abcdef"),
            connected_account: None,
            data_dir: PathBuf::from("/tmp/x"),
            data_dir_is_temporary: true,
            builtin_scenario: true,
        };
        let text = banner(&info);
        assert!(
            text.contains("Helpdesk:      http://127.0.0.1:8080/"),
            "{text}"
        );
        assert!(text.contains("admin@northwind-it.example / demo-password-123"));
        assert!(text.contains("API token:     rgt_demo_token_value_abcdef"));
        assert!(text.contains("Teams (sim):   http://127.0.0.1:8081/_sim/teams"));
        for step in 1..=5 {
            assert!(text.contains(&format!("  {step}. ")), "step {step}: {text}");
        }
        assert!(!text.contains("  6. "));
    }
}
