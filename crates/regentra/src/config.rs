//! Runtime configuration: every `REGENTRA_*` setting, read once from the environment and the
//! command line, validated once, then passed by value into [`crate::app::App::build`].
//!
//! There is deliberately no global config: tests build a [`Config`] directly (see
//! [`Config::for_tests`]) and the CLI builds one with [`Config::load`]. A bad value fails with a
//! [`ConfigError`] that names the variable or flag it came from and says what is expected.
//! This module must never print or log a secret value: secrets are [`SecretString`]s and error
//! messages about them never repeat the value.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::store::SQLITE_FILE_NAME;

/// Documentation of one setting: used for `--help` texts and the README configuration table.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// Environment variable name.
    pub env: &'static str,
    /// Equivalent `regentra serve` flag, if any (secrets have none: flags show up in `ps`).
    pub flag: Option<&'static str>,
    /// Default value as shown to humans.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every setting Regentra reads, in the order the README lists them.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        env: ENV_BIND,
        flag: Some("--bind"),
        default: "127.0.0.1",
        doc: "IP address the web server listens on",
    },
    SettingDoc {
        env: ENV_PORT,
        flag: Some("--port"),
        default: "8080",
        doc: "TCP port of the web UI and API (0 = any free port)",
    },
    SettingDoc {
        env: ENV_DATA_DIR,
        flag: Some("--data-dir"),
        default: "./regentra-data",
        doc: "Directory for the SQLite database and key files",
    },
    SettingDoc {
        env: ENV_DATABASE_URL,
        flag: Some("--database-url"),
        default: "SQLite file in the data directory",
        doc: "postgres://… for PostgreSQL or sqlite://… for another SQLite file",
    },
    SettingDoc {
        env: ENV_PUBLIC_URL,
        flag: Some("--public-url"),
        default: "http://127.0.0.1:PORT",
        doc: "URL users reach Regentra at (cookies get `Secure` when https; trusted CSRF origin; OAuth redirect base)",
    },
    SettingDoc {
        env: ENV_REOPEN_DAYS,
        flag: Some("--reopen-days"),
        default: "7",
        doc: "A client message reopens a resolved ticket within this many days, else opens a follow-up",
    },
    SettingDoc {
        env: ENV_LOG,
        flag: Some("--log"),
        default: DEFAULT_LOG_FILTER,
        doc: "tracing filter (e.g. `debug`, `info,regentra=debug`)",
    },
    SettingDoc {
        env: ENV_MS_CLIENT_ID,
        flag: Some("--ms-client-id"),
        default: "(none)",
        doc: "Entra app registration (client) ID used to connect the support user",
    },
    SettingDoc {
        env: ENV_MS_CLIENT_SECRET,
        flag: None,
        default: "(none)",
        doc: "Client secret of that app registration (secret; env only)",
    },
    SettingDoc {
        env: ENV_MS_TENANT,
        flag: Some("--ms-tenant"),
        default: "organizations",
        doc: "Tenant segment of the sign-in URL",
    },
    SettingDoc {
        env: ENV_MS_AUTHORITY,
        flag: Some("--ms-authority"),
        default: "https://login.microsoftonline.com",
        doc: "Microsoft identity platform base URL (the simulator in demo/tests)",
    },
    SettingDoc {
        env: ENV_GRAPH_URL,
        flag: Some("--graph-url"),
        default: "https://graph.microsoft.com",
        doc: "Microsoft Graph base URL (the simulator in demo/tests)",
    },
    SettingDoc {
        env: ENV_GRAPH_TIMEOUT,
        flag: Some("--graph-timeout"),
        default: "30s",
        doc: "Longest wait for one Microsoft Graph request; a send that times out is checked in the chat before it is retried",
    },
    SettingDoc {
        env: ENV_POLL_INTERVAL,
        flag: Some("--poll-interval"),
        default: "5m",
        doc: "Time between Teams poll cycles (`10s`, `5m`, `1h`)",
    },
    SettingDoc {
        env: ENV_BACKFILL_HOURS,
        flag: Some("--backfill-hours"),
        default: "0",
        doc: "On connect, also import chats this many hours old",
    },
    SettingDoc {
        env: ENV_IGNORE_OWN_TENANT,
        flag: Some("--ignore-own-tenant"),
        default: "true",
        doc: "Ignore Teams messages from the MSP's own tenant",
    },
    SettingDoc {
        env: ENV_ENCRYPTION_KEY,
        flag: None,
        default: "key file in the data directory",
        doc: "base64 of 32 bytes: AES-256-GCM key for stored Microsoft tokens (secret; env only)",
    },
];

pub const ENV_BIND: &str = "REGENTRA_BIND";
pub const ENV_PORT: &str = "REGENTRA_PORT";
pub const ENV_DATA_DIR: &str = "REGENTRA_DATA_DIR";
pub const ENV_DATABASE_URL: &str = "REGENTRA_DATABASE_URL";
pub const ENV_PUBLIC_URL: &str = "REGENTRA_PUBLIC_URL";
pub const ENV_REOPEN_DAYS: &str = "REGENTRA_REOPEN_DAYS";
pub const ENV_LOG: &str = "REGENTRA_LOG";
pub const ENV_MS_CLIENT_ID: &str = "REGENTRA_MS_CLIENT_ID";
pub const ENV_MS_CLIENT_SECRET: &str = "REGENTRA_MS_CLIENT_SECRET";
pub const ENV_MS_TENANT: &str = "REGENTRA_MS_TENANT";
pub const ENV_MS_AUTHORITY: &str = "REGENTRA_MS_AUTHORITY";
pub const ENV_GRAPH_URL: &str = "REGENTRA_GRAPH_URL";
pub const ENV_POLL_INTERVAL: &str = "REGENTRA_POLL_INTERVAL";
pub const ENV_GRAPH_TIMEOUT: &str = "REGENTRA_GRAPH_TIMEOUT";
pub const ENV_BACKFILL_HOURS: &str = "REGENTRA_BACKFILL_HOURS";
pub const ENV_IGNORE_OWN_TENANT: &str = "REGENTRA_IGNORE_OWN_TENANT";
/// The vault owns the name of its key variable; config only validates the value.
pub const ENV_ENCRYPTION_KEY: &str = crate::bridge::vault::ENV_KEY_VAR;

/// Default tracing filter: our own info logs, quiet libraries.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,tower_sessions=warn";
const DEFAULT_PORT: u16 = 8080;
const DEFAULT_DATA_DIR: &str = "./regentra-data";
const DEFAULT_REOPEN_DAYS: u32 = 7;
const DEFAULT_MS_TENANT: &str = "organizations";
const DEFAULT_MS_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_GRAPH_TIMEOUT: Duration = Duration::from_secs(30);

/// Validated configuration of one Regentra process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the web server binds to (port 0 = pick a free port; see `App::address`).
    pub listen: SocketAddr,
    /// Root of on-disk state (SQLite file, key file).
    pub data_dir: PathBuf,
    /// Where the database lives.
    pub database: DatabaseLocation,
    /// The public URL as configured; `None` = derive `http://<bind>:<bound port>` after binding
    /// (use `App::base_url()` for the effective value).
    pub public_url: Option<Url>,
    /// ARCHITECTURE §6: a resolved ticket is reopened by a client message within this many days.
    pub reopen_days: u32,
    /// tracing-subscriber `EnvFilter` directive string (validated).
    pub log_filter: String,
    /// Microsoft 365 / Teams Chat Bridge settings (used by the bridge issues).
    pub microsoft: MicrosoftConfig,
    /// `REGENTRA_ENCRYPTION_KEY`: base64 of exactly 32 bytes (checked); `None` = key file.
    pub encryption_key: Option<SecretString>,
}

/// Where the database lives. The URL may contain a password, so it is a secret.
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    /// A SQLite database file (created if missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL server: `postgres://` or `postgresql://` URL.
    Postgres { url: SecretString },
}

impl DatabaseLocation {
    /// A description safe for logs and messages (no credentials).
    pub fn describe(&self) -> String {
        match self {
            DatabaseLocation::Sqlite { path } => format!("SQLite file {}", path.display()),
            DatabaseLocation::Postgres { url } => match Url::parse(url.expose_secret()) {
                Ok(parsed) => format!(
                    "PostgreSQL at {}:{}{}",
                    parsed.host_str().unwrap_or("localhost"),
                    parsed.port().unwrap_or(5432),
                    parsed.path()
                ),
                Err(_) => "PostgreSQL".to_owned(),
            },
        }
    }
}

/// Settings for the Microsoft side of the Teams Chat Bridge.
#[derive(Debug, Clone)]
pub struct MicrosoftConfig {
    /// App registration (client) ID; `None` until the MSP configures one.
    pub client_id: Option<String>,
    /// App registration secret.
    pub client_secret: Option<SecretString>,
    /// Tenant path segment for sign-in (`organizations`, a tenant GUID or domain).
    pub tenant: String,
    /// Identity platform base URL (no trailing slash semantics: use `Url::join` carefully).
    pub authority: Url,
    /// Graph base URL.
    pub graph_url: Url,
    /// Whole-request timeout of one Graph call.
    pub graph_timeout: Duration,
    /// Time between poll cycles.
    pub poll_interval: Duration,
    /// Hours of chat history imported on connect (0 = none, ARCHITECTURE §5.3).
    pub backfill_hours: u32,
    /// Ignore senders from the MSP's own tenant (ARCHITECTURE §5.5).
    pub ignore_own_tenant: bool,
}

/// Values given on the command line; `None` = not given (fall back to env, then default).
/// Kept as text so that one validator produces one kind of error for flags and env alike.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigFlags {
    #[command(flatten)]
    pub storage: StorageFlags,
    /// IP address to listen on [env: REGENTRA_BIND] [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    pub bind: Option<String>,
    /// TCP port for the web UI and API; 0 picks a free port [env: REGENTRA_PORT] [default: 8080]
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// URL users reach Regentra at [env: REGENTRA_PUBLIC_URL] [default: http://127.0.0.1:PORT]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Days within which a client message reopens a resolved ticket [env: REGENTRA_REOPEN_DAYS] [default: 7]
    #[arg(long, value_name = "DAYS")]
    pub reopen_days: Option<String>,
    /// Entra app registration (client) ID [env: REGENTRA_MS_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub ms_client_id: Option<String>,
    /// Tenant segment of the Microsoft sign-in URL [env: REGENTRA_MS_TENANT] [default: organizations]
    #[arg(long, value_name = "TENANT")]
    pub ms_tenant: Option<String>,
    /// Microsoft identity platform base URL [env: REGENTRA_MS_AUTHORITY] [default: https://login.microsoftonline.com]
    #[arg(long, value_name = "URL")]
    pub ms_authority: Option<String>,
    /// Microsoft Graph base URL [env: REGENTRA_GRAPH_URL] [default: https://graph.microsoft.com]
    #[arg(long, value_name = "URL")]
    pub graph_url: Option<String>,
    /// Longest wait for one Microsoft Graph request, e.g. 30s [env: REGENTRA_GRAPH_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub graph_timeout: Option<String>,
    /// Time between Teams poll cycles, e.g. 10s, 5m [env: REGENTRA_POLL_INTERVAL] [default: 5m]
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// Hours of chat history to import on connect [env: REGENTRA_BACKFILL_HOURS] [default: 0]
    #[arg(long, value_name = "HOURS")]
    pub backfill_hours: Option<String>,
    /// Ignore Teams senders from the MSP's own tenant: true/false [env: REGENTRA_IGNORE_OWN_TENANT] [default: true]
    #[arg(long, value_name = "BOOL")]
    pub ignore_own_tenant: Option<String>,
}

/// Flags every database-using command shares (`serve`, `admin …`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StorageFlags {
    /// Directory for the SQLite database and key files [env: REGENTRA_DATA_DIR] [default: ./regentra-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// postgres://… or sqlite://… instead of the SQLite file in the data directory [env: REGENTRA_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log filter, e.g. debug or info,regentra=debug [env: REGENTRA_LOG] [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

/// A setting had a value Regentra cannot use. The message names the variable or flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name} has an invalid value {shown_value}: {expected}")]
    Invalid {
        /// `REGENTRA_PORT` or `--port`.
        source_name: String,
        /// The value, quoted, or `(hidden)` for secrets.
        shown_value: String,
        /// What would be accepted.
        expected: String,
    },
    #[error("{env} is not valid UTF-8 text; set it to plain text")]
    NotUnicode { env: &'static str },
}

/// Where a raw value came from, so errors can name it.
struct Raw {
    source_name: String,
    value: String,
}

/// Gathers raw values: flag first, then environment; empty values count as unset.
struct Sources<'a, E: Fn(&str) -> Option<OsString>> {
    env: &'a E,
}

impl<E: Fn(&str) -> Option<OsString>> Sources<'_, E> {
    fn get(
        &self,
        flag_name: Option<&str>,
        flag: &Option<String>,
        env: &'static str,
    ) -> Result<Option<Raw>, ConfigError> {
        if let (Some(name), Some(value)) = (flag_name, flag)
            && !value.trim().is_empty()
        {
            return Ok(Some(Raw {
                source_name: name.to_owned(),
                value: value.trim().to_owned(),
            }));
        }
        match (self.env)(env) {
            None => Ok(None),
            Some(os) => {
                let value = os
                    .into_string()
                    .map_err(|_| ConfigError::NotUnicode { env })?;
                if value.trim().is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(Raw {
                        source_name: env.to_owned(),
                        value: value.trim().to_owned(),
                    }))
                }
            }
        }
    }
}

impl Raw {
    fn invalid(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.source_name.clone(),
            shown_value: format!("{:?}", self.value),
            expected: expected.into(),
        }
    }

    fn invalid_secret(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.source_name.clone(),
            shown_value: "(hidden)".to_owned(),
            expected: expected.into(),
        }
    }

    fn parse_url(&self) -> Result<Url, ConfigError> {
        let url = Url::parse(&self.value)
            .map_err(|err| self.invalid(format!("expected an absolute http(s) URL ({err})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(self.invalid("expected an absolute http:// or https:// URL"));
        }
        Ok(url)
    }

    fn parse_bool(&self) -> Result<bool, ConfigError> {
        match self.value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(self.invalid("expected true or false")),
        }
    }
}

impl Config {
    /// Builds the configuration from flags and the process environment.
    pub fn load(flags: &ConfigFlags) -> Result<Config, ConfigError> {
        Config::load_from(flags, |name| std::env::var_os(name))
    }

    /// Builds the configuration from flags and an environment lookup (tests pass a map).
    /// Precedence: flag, then environment variable, then default. Empty values count as unset.
    pub fn load_from(
        flags: &ConfigFlags,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        let sources = Sources { env: &env };

        let bind = match sources.get(Some("--bind"), &flags.bind, ENV_BIND)? {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(raw) => raw
                .value
                .parse::<IpAddr>()
                .map_err(|_| raw.invalid("expected an IP address such as 127.0.0.1 or 0.0.0.0"))?,
        };
        let port = match sources.get(Some("--port"), &flags.port, ENV_PORT)? {
            None => DEFAULT_PORT,
            Some(raw) => raw
                .value
                .parse::<u16>()
                .map_err(|_| raw.invalid("expected a port number from 0 to 65535"))?,
        };
        let data_dir =
            match sources.get(Some("--data-dir"), &flags.storage.data_dir, ENV_DATA_DIR)? {
                None => PathBuf::from(DEFAULT_DATA_DIR),
                Some(raw) => PathBuf::from(raw.value),
            };
        let database = match sources.get(
            Some("--database-url"),
            &flags.storage.database_url,
            ENV_DATABASE_URL,
        )? {
            None => DatabaseLocation::Sqlite {
                path: data_dir.join(SQLITE_FILE_NAME),
            },
            Some(raw) => parse_database_url(&raw)?,
        };
        let public_url = match sources.get(
            Some("--public-url"),
            &flags.public_url,
            ENV_PUBLIC_URL,
        )? {
            None => None,
            Some(raw) => {
                let url = raw.parse_url()?;
                if url.path() != "/" || url.query().is_some() {
                    return Err(raw.invalid(
                        "expected scheme://host[:port] without a path (Regentra must be served at the root)",
                    ));
                }
                Some(url)
            }
        };
        let reopen_days =
            match sources.get(Some("--reopen-days"), &flags.reopen_days, ENV_REOPEN_DAYS)? {
                None => DEFAULT_REOPEN_DAYS,
                Some(raw) => raw
                    .value
                    .parse::<u32>()
                    .ok()
                    .filter(|days| *days <= 3650)
                    .ok_or_else(|| raw.invalid("expected a whole number of days from 0 to 3650"))?,
            };
        let log_filter = match sources.get(Some("--log"), &flags.storage.log, ENV_LOG)? {
            None => DEFAULT_LOG_FILTER.to_owned(),
            Some(raw) => {
                tracing_subscriber::EnvFilter::try_new(&raw.value).map_err(|err| {
                    raw.invalid(format!(
                        "expected a log filter such as info or info,regentra=debug ({err})"
                    ))
                })?;
                raw.value
            }
        };

        let client_id = sources
            .get(
                Some("--ms-client-id"),
                &flags.ms_client_id,
                ENV_MS_CLIENT_ID,
            )?
            .map(|raw| raw.value);
        let client_secret = sources
            .get(None, &None, ENV_MS_CLIENT_SECRET)?
            .map(|raw| SecretString::from(raw.value));
        let tenant = match sources.get(Some("--ms-tenant"), &flags.ms_tenant, ENV_MS_TENANT)? {
            None => DEFAULT_MS_TENANT.to_owned(),
            Some(raw) => {
                let ok = raw
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                if !ok {
                    return Err(raw.invalid(
                        "expected organizations, common, a tenant ID (GUID) or a domain like contoso.onmicrosoft.com",
                    ));
                }
                raw.value
            }
        };
        let authority = match sources.get(
            Some("--ms-authority"),
            &flags.ms_authority,
            ENV_MS_AUTHORITY,
        )? {
            None => default_url(DEFAULT_MS_AUTHORITY),
            Some(raw) => raw.parse_url()?,
        };
        let graph_url = match sources.get(Some("--graph-url"), &flags.graph_url, ENV_GRAPH_URL)? {
            None => default_url(DEFAULT_GRAPH_URL),
            Some(raw) => raw.parse_url()?,
        };
        let graph_timeout = match sources.get(
            Some("--graph-timeout"),
            &flags.graph_timeout,
            ENV_GRAPH_TIMEOUT,
        )? {
            None => DEFAULT_GRAPH_TIMEOUT,
            Some(raw) => parse_graph_timeout(&raw)?,
        };
        let poll_interval = match sources.get(
            Some("--poll-interval"),
            &flags.poll_interval,
            ENV_POLL_INTERVAL,
        )? {
            None => DEFAULT_POLL_INTERVAL,
            Some(raw) => parse_poll_interval(&raw)?,
        };
        let backfill_hours = match sources.get(
            Some("--backfill-hours"),
            &flags.backfill_hours,
            ENV_BACKFILL_HOURS,
        )? {
            None => 0,
            Some(raw) => raw
                .value
                .parse::<u32>()
                .ok()
                .filter(|hours| *hours <= 24 * 365)
                .ok_or_else(|| raw.invalid("expected a whole number of hours from 0 to 8760"))?,
        };
        let ignore_own_tenant = match sources.get(
            Some("--ignore-own-tenant"),
            &flags.ignore_own_tenant,
            ENV_IGNORE_OWN_TENANT,
        )? {
            None => true,
            Some(raw) => raw.parse_bool()?,
        };
        let encryption_key = match sources.get(None, &None, ENV_ENCRYPTION_KEY)? {
            None => None,
            Some(raw) => {
                let decoded =
                    base64::engine::general_purpose::STANDARD.decode(raw.value.as_bytes());
                match decoded {
                    Ok(bytes) if bytes.len() == 32 => Some(SecretString::from(raw.value)),
                    _ => {
                        return Err(raw.invalid_secret(
                            "expected base64 of exactly 32 random bytes (e.g. `openssl rand -base64 32`)",
                        ));
                    }
                }
            }
        };

        Ok(Config {
            listen: SocketAddr::new(bind, port),
            data_dir,
            database,
            public_url,
            reopen_days,
            log_filter,
            microsoft: MicrosoftConfig {
                client_id,
                client_secret,
                tenant,
                authority,
                graph_url,
                graph_timeout,
                poll_interval,
                backfill_hours,
                ignore_own_tenant,
            },
            encryption_key,
        })
    }

    /// A configuration for tests: listens on 127.0.0.1:0, data in `data_dir`, SQLite there
    /// unless `database` says otherwise, everything else at its default.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        // The empty environment cannot produce an invalid value, so this cannot fail; fall
        // back to a hand-built value anyway rather than panicking.
        let mut config =
            Config::load_from(&ConfigFlags::default(), |_| None).unwrap_or_else(|_| Config {
                listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                data_dir: data_dir.clone(),
                database: DatabaseLocation::Sqlite {
                    path: data_dir.join(SQLITE_FILE_NAME),
                },
                public_url: None,
                reopen_days: DEFAULT_REOPEN_DAYS,
                log_filter: DEFAULT_LOG_FILTER.to_owned(),
                microsoft: MicrosoftConfig {
                    client_id: None,
                    client_secret: None,
                    tenant: DEFAULT_MS_TENANT.to_owned(),
                    authority: default_url(DEFAULT_MS_AUTHORITY),
                    graph_url: default_url(DEFAULT_GRAPH_URL),
                    graph_timeout: DEFAULT_GRAPH_TIMEOUT,
                    poll_interval: DEFAULT_POLL_INTERVAL,
                    backfill_hours: 0,
                    ignore_own_tenant: true,
                },
                encryption_key: None,
            });
        config.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        config.database = DatabaseLocation::Sqlite {
            path: data_dir.join(SQLITE_FILE_NAME),
        };
        config.data_dir = data_dir;
        config
    }
}

fn default_url(text: &'static str) -> Url {
    // The defaults are compile-time constants that are valid URLs (covered by a unit test).
    Url::parse(text).unwrap_or_else(|_| unreachable!("default URL {text} is valid"))
}

fn parse_database_url(raw: &Raw) -> Result<DatabaseLocation, ConfigError> {
    let expected =
        "expected postgres://user:password@host:port/database or sqlite:///path/to/file.db";
    // Never echo a database URL: it may carry a password.
    let url = Url::parse(&raw.value).map_err(|_| raw.invalid_secret(expected))?;
    match url.scheme() {
        "postgres" | "postgresql" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(raw.invalid_secret("a postgres:// URL needs a host, e.g. postgres://regentra@127.0.0.1:5432/regentra"));
            }
            Ok(DatabaseLocation::Postgres {
                url: SecretString::from(raw.value.clone()),
            })
        }
        "sqlite" => {
            // sqlite://relative/file.db and sqlite:///absolute/file.db; options after `?` are ours.
            let without_scheme = raw
                .value
                .trim_start_matches("sqlite:")
                .trim_start_matches("//");
            let path = without_scheme.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(raw.invalid(
                    "expected a SQLite file path, e.g. sqlite:///var/lib/regentra/regentra.db",
                ));
            }
            Ok(DatabaseLocation::Sqlite {
                path: PathBuf::from(path),
            })
        }
        _ => Err(raw.invalid_secret(expected)),
    }
}

fn parse_poll_interval(raw: &Raw) -> Result<Duration, ConfigError> {
    let expected = "expected a duration such as 10s, 5m or 1h (from 1s to 24h)";
    // A bare number means seconds, as people often write `REGENTRA_POLL_INTERVAL=300`.
    let duration = match raw.value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(&raw.value).map_err(|_| raw.invalid(expected))?,
    };
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(24 * 3600) {
        return Err(raw.invalid(expected));
    }
    Ok(duration)
}

fn parse_graph_timeout(raw: &Raw) -> Result<Duration, ConfigError> {
    let expected = "expected a duration such as 30s or 1m (from 100ms to 10m)";
    let duration = match raw.value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(&raw.value).map_err(|_| raw.invalid(expected))?,
    };
    if duration < Duration::from_millis(100) || duration > Duration::from_secs(600) {
        return Err(raw.invalid(expected));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(flags: &ConfigFlags, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        Config::load_from(flags, |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = load(&ConfigFlags::default(), &[]).unwrap();
        assert_eq!(
            config.listen,
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.data_dir, PathBuf::from("./regentra-data"));
        assert!(
            matches!(&config.database, DatabaseLocation::Sqlite { path } if path == &PathBuf::from("./regentra-data/regentra.db"))
        );
        assert!(config.public_url.is_none());
        assert_eq!(config.reopen_days, 7);
        assert_eq!(config.microsoft.tenant, "organizations");
        assert_eq!(
            config.microsoft.authority.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(
            config.microsoft.graph_url.as_str(),
            "https://graph.microsoft.com/"
        );
        assert_eq!(config.microsoft.poll_interval, Duration::from_secs(300));
        assert_eq!(config.microsoft.backfill_hours, 0);
        assert!(config.microsoft.ignore_own_tenant);
        assert!(config.microsoft.client_secret.is_none());
        assert!(config.encryption_key.is_none());
    }

    #[test]
    fn flags_win_over_environment() {
        let flags = ConfigFlags {
            port: Some("9001".into()),
            ..Default::default()
        };
        let config = load(&flags, &[(ENV_PORT, "9000"), (ENV_BIND, "0.0.0.0")]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9001".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn bad_port_names_the_variable() {
        let err = load(&ConfigFlags::default(), &[(ENV_PORT, "eighty")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "REGENTRA_PORT has an invalid value \"eighty\": expected a port number from 0 to 65535"
        );
    }

    #[test]
    fn bad_flag_names_the_flag() {
        let flags = ConfigFlags {
            reopen_days: Some("-1".into()),
            ..Default::default()
        };
        let err = load(&flags, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("--reopen-days has an invalid value \"-1\""),
            "{err}"
        );
    }

    #[test]
    fn poll_interval_accepts_seconds_minutes_and_bare_numbers() {
        for (text, seconds) in [("10s", 10), ("5m", 300), ("1h", 3600), ("90", 90)] {
            let config = load(&ConfigFlags::default(), &[(ENV_POLL_INTERVAL, text)]).unwrap();
            assert_eq!(
                config.microsoft.poll_interval,
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        let err = load(&ConfigFlags::default(), &[(ENV_POLL_INTERVAL, "soon")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REGENTRA_POLL_INTERVAL has an invalid value \"soon\"")
        );
        assert!(load(&ConfigFlags::default(), &[(ENV_POLL_INTERVAL, "0s")]).is_err());
    }

    #[test]
    fn database_url_selects_backend_and_never_echoes_the_password() {
        let config = load(
            &ConfigFlags::default(),
            &[(
                ENV_DATABASE_URL,
                "postgres://regentra:hunter2@db.internal:5433/helpdesk",
            )],
        )
        .unwrap();
        assert!(matches!(config.database, DatabaseLocation::Postgres { .. }));
        assert_eq!(
            config.database.describe(),
            "PostgreSQL at db.internal:5433/helpdesk"
        );
        assert!(!format!("{config:?}").contains("hunter2"));

        let sqlite = load(
            &ConfigFlags::default(),
            &[(ENV_DATABASE_URL, "sqlite:///var/lib/r/r.db")],
        )
        .unwrap();
        assert!(
            matches!(&sqlite.database, DatabaseLocation::Sqlite { path } if path == &PathBuf::from("/var/lib/r/r.db"))
        );

        let err = load(
            &ConfigFlags::default(),
            &[(ENV_DATABASE_URL, "mysql://root:hunter2@db/x")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("REGENTRA_DATABASE_URL has an invalid value (hidden)"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn encryption_key_must_be_32_bytes_and_is_never_echoed() {
        let short = "c2hvcnQ="; // "short"
        let err = load(&ConfigFlags::default(), &[(ENV_ENCRYPTION_KEY, short)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("REGENTRA_ENCRYPTION_KEY"), "{err}");
        assert!(!err.contains(short));

        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let config = load(
            &ConfigFlags::default(),
            &[(ENV_ENCRYPTION_KEY, good.as_str())],
        )
        .unwrap();
        assert_eq!(
            config
                .encryption_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            Some(good.clone())
        );
        assert!(!format!("{config:?}").contains(&good));
    }

    #[test]
    fn client_secret_is_redacted_in_debug_output() {
        let config = load(
            &ConfigFlags::default(),
            &[(ENV_MS_CLIENT_SECRET, "very-secret-value")],
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret-value"));
    }

    #[test]
    fn public_url_must_be_an_origin() {
        let config = load(
            &ConfigFlags::default(),
            &[(ENV_PUBLIC_URL, "https://help.example.com")],
        )
        .unwrap();
        assert_eq!(
            config.public_url.unwrap().as_str(),
            "https://help.example.com/"
        );
        let err = load(
            &ConfigFlags::default(),
            &[(ENV_PUBLIC_URL, "https://help.example.com/desk")],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REGENTRA_PUBLIC_URL has an invalid value")
        );
        assert!(load(&ConfigFlags::default(), &[(ENV_PUBLIC_URL, "ftp://x")]).is_err());
    }

    #[test]
    fn booleans_and_empty_values() {
        let config = load(
            &ConfigFlags::default(),
            &[(ENV_IGNORE_OWN_TENANT, "false"), (ENV_PORT, "")],
        )
        .unwrap();
        assert!(!config.microsoft.ignore_own_tenant);
        assert_eq!(
            config.listen.port(),
            8080,
            "an empty variable counts as unset"
        );
        let err = load(&ConfigFlags::default(), &[(ENV_IGNORE_OWN_TENANT, "maybe")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "REGENTRA_IGNORE_OWN_TENANT has an invalid value \"maybe\": expected true or false"
        );
    }

    #[test]
    fn bad_log_filter_is_rejected() {
        let err = load(&ConfigFlags::default(), &[(ENV_LOG, "info,,=[")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REGENTRA_LOG has an invalid value"),
            "{err}"
        );
    }

    #[test]
    fn every_setting_is_documented_once() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.env).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        assert_eq!(SETTINGS.len(), 17);
    }

    #[test]
    fn graph_timeout_is_a_bounded_duration() {
        let config = load(&ConfigFlags::default(), &[(ENV_GRAPH_TIMEOUT, "750ms")]).unwrap();
        assert_eq!(config.microsoft.graph_timeout, Duration::from_millis(750));
        let default = load(&ConfigFlags::default(), &[]).unwrap();
        assert_eq!(default.microsoft.graph_timeout, Duration::from_secs(30));
        let err = load(&ConfigFlags::default(), &[(ENV_GRAPH_TIMEOUT, "2h")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "REGENTRA_GRAPH_TIMEOUT has an invalid value \"2h\": expected a duration such as 30s or 1m (from 100ms to 10m)"
        );
    }

    #[test]
    fn for_tests_listens_on_a_free_port_in_the_given_dir() {
        let config = Config::for_tests("/tmp/x");
        assert_eq!(config.listen.port(), 0);
        assert!(
            matches!(&config.database, DatabaseLocation::Sqlite { path } if path == &PathBuf::from("/tmp/x/regentra.db"))
        );
    }
}
