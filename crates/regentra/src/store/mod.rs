//! Persistence: SQLite (embedded default) and PostgreSQL through one sqlx `Any` pool.
//!
//! This module owns the connection pool, the embedded migrations and the repository functions.
//! It must never contain HTTP, Graph or UI logic, and never log or return a secret (password
//! hashes and token hashes stay inside; a database URL is never printed because it may hold a
//! password).
//!
//! # The repository pattern (follow it in new modules: `store/teams.rs`, `store/outbox.rs`, …)
//!
//! * Repository functions are **free functions in one module per table group** whose first
//!   argument is `conn: &mut AnyConnection` and which return `Result<_, StoreError>`:
//!   ```ignore
//!   pub async fn get(conn: &mut AnyConnection, id: TicketId) -> Result<Ticket, StoreError>
//!   ```
//! * Callers pass either a pooled connection or a transaction — both deref to `AnyConnection`:
//!   ```ignore
//!   // one call, autocommit:
//!   let ticket = store::tickets::get(&mut db.acquire().await?, id).await?;
//!   // several calls that must commit together (e.g. reply + outbox row, ingest + cursor):
//!   let mut tx = db.begin().await?;
//!   let reply = store::entries::add_reply(&mut tx, ticket_id, technician_id, text, now).await?;
//!   store::outbox::enqueue(&mut tx, reply.id, now).await?;
//!   tx.commit().await?; // dropping `tx` without commit rolls everything back
//!   ```
//! * A function that writes more than one statement opens its own unit with [`write_tx`]:
//!   a real transaction on an autocommit connection, a savepoint inside a caller's transaction.
//!   So every function is atomic on its own *and* composes into a caller's transaction.
//! * Writers take `now: OffsetDateTime` as their last argument instead of reading the clock,
//!   so tests and the bridge (which has an injected clock) control time. Callers in `web` pass
//!   `OffsetDateTime::now_utc()`.
//! * SQL must run unchanged on both backends (see [`sql`] for the helpers): `$1…$n`
//!   placeholders, ids as TEXT, times as BIGINT unix milliseconds, flags as BIGINT 0/1 (never
//!   BOOLEAN), JSON as TEXT, bytes as BLOB/BYTEA; `ON CONFLICT … DO …` and `RETURNING` are fine;
//!   no `ILIKE`, arrays, `FOR UPDATE` or `sqlx::QueryBuilder` (its `Any` placeholders are `?`,
//!   which PostgreSQL rejects).
//! * SQLite has one writer at a time: [`Db::begin`] and [`write_tx`] start SQLite transactions
//!   with `BEGIN IMMEDIATE` (take the write lock up front, so read-then-write never deadlocks),
//!   and `busy_timeout` makes other writers wait up to 5 s. Never hold a transaction open while
//!   awaiting a second connection from the same pool to write, or across a network call.
//! * Migrations: `migrations/sqlite/NNNN_name.sql` and `migrations/postgres/NNNN_name.sql`, same
//!   numbers and names (a unit test checks). 0001 core (this module), 0002 Teams connection and
//!   vault, 0003 poller cursors, 0004 outbox, 0005 federation. They are embedded at build time
//!   (`build.rs` makes cargo rebuild when a file is added) and run by [`Db::connect`].
//! * Tests: [`testing::fresh_dbs`] gives a fresh migrated SQLite database and, when
//!   `REGENTRA_TEST_POSTGRES_URL` is set, a fresh PostgreSQL schema; run every repository test
//!   against each.

pub mod api_tokens;
pub mod clients;
pub mod contacts;
pub mod entries;
pub mod federation;
pub mod outbox;
pub mod poller;
pub mod sessions;
pub mod sql;
pub mod teams;
pub mod technicians;
#[doc(hidden)]
pub mod testing;
pub mod tickets;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Transaction};

pub use sqlx::AnyConnection;

use crate::tickets::ValidationError;

/// A transaction on the pool; derefs to [`AnyConnection`], so pass `&mut tx` to any repository
/// function. Commit with `tx.commit().await?`; dropping it rolls back.
pub type Tx = Transaction<'static, Any>;

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "regentra.db";

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Everything a repository function can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist; the payload names what was looked for ("ticket", "client" …).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change collides with existing data (duplicate e-mail, tenant id already used …).
    /// The message says what collided and what to do.
    #[error("{0}")]
    Conflict(String),
    /// The request is not allowed or not well-formed (validation, lifecycle rule …).
    /// The message is meant for the user.
    #[error("{0}")]
    Invalid(String),
    /// The database failed (connection, SQL, or a stored value this version cannot read).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Something outside the database failed (password hashing task, JSON encoding …).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationError> for StoreError {
    fn from(err: ValidationError) -> Self {
        StoreError::Invalid(err.to_string())
    }
}

impl StoreError {
    /// True when the database error is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
    }
}

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Short lower-case name ("sqlite", "postgres") for logs and test labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn of_connection(conn: &AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::Invalid(format!(
                "database URL must start with sqlite: or postgres:// (got scheme {scheme:?}); \
                 e.g. sqlite://./regentra-data/regentra.db or postgres://user@localhost/regentra"
            )))
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The database: a cheap-to-clone handle on one connection pool with migrations applied.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl fmt::Debug for Db {
    // Deliberately without the URL: it may contain a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`) and runs the
    /// embedded migrations. A SQLite file is created if missing; every SQLite connection gets
    /// WAL, `busy_timeout=5000`, `foreign_keys=ON` and `synchronous=NORMAL`.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let pool = match backend {
            Backend::Sqlite => sqlite_pool(url).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?
            }
        };
        let db = Db { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    /// Opens (creating if needed) `<data_dir>/regentra.db`, creating `data_dir` first.
    pub async fn open_sqlite_in(data_dir: &Path) -> Result<Db, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| {
            StoreError::Invalid(format!(
                "cannot create the data directory {}: {err}; check REGENTRA_DATA_DIR and its \
                 permissions",
                data_dir.display()
            ))
        })?;
        Db::connect(&sqlite_url_for_file(&data_dir.join(SQLITE_FILE_NAME))).await
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool (for `sqlx::query(..).fetch_*(db.pool())` one-offs).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A pooled connection (autocommit). Derefs to [`AnyConnection`].
    pub async fn acquire(&self) -> Result<PoolConnection<Any>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite). Pass `&mut tx` to repository
    /// functions, then `tx.commit().await?`.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }
}

/// Starts an atomic unit on `conn`: a savepoint if `conn` is already in a transaction,
/// otherwise a new transaction (`BEGIN IMMEDIATE` on SQLite). Use it in every repository
/// function that writes more than one statement, and `commit()` at the end.
pub async fn write_tx(conn: &mut AnyConnection) -> Result<Transaction<'_, Any>, StoreError> {
    if conn.is_in_transaction() {
        return Ok(conn.begin().await?);
    }
    Ok(match Backend::of_connection(conn) {
        Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => conn.begin().await?,
    })
}

/// The `sqlite://` URL of a database file: absolute, percent-encoded (spaces, `?`, `#`, `%`),
/// with `mode=rwc` so a missing file is created.
pub fn sqlite_url_for_file(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match url::Url::from_file_path(&absolute) {
        Ok(file_url) => format!("sqlite://{}?mode=rwc", file_url.path()),
        // Only non-absolute paths fail here, and `absolute` made it absolute.
        Err(()) => format!("sqlite://{}?mode=rwc", absolute.display()),
    }
}

async fn sqlite_pool(url: &str) -> Result<AnyPool, StoreError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    // A file URL without an explicit mode would fail on a missing file; create it instead.
    let url = if in_memory || url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    let options = AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // busy_timeout first, so switching to WAL waits for a concurrent writer.
                for pragma in [
                    "PRAGMA busy_timeout = 5000",
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA synchronous = NORMAL",
                ] {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        });
    let options = if in_memory {
        // Through `Any` every new connection to `:memory:` would open a different empty
        // database, so an in-memory pool is one connection kept forever.
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        options.max_connections(8)
    };
    Ok(options.connect(&url).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(migrator: &Migrator) -> Vec<(i64, String)> {
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    #[test]
    fn sqlite_and_postgres_migrations_list_the_same_versions() {
        let sqlite = versions(&SQLITE_MIGRATOR);
        let postgres = versions(&POSTGRES_MIGRATOR);
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
        assert_eq!(sqlite[0], (1, "core".to_owned()));
    }

    #[test]
    fn migration_files_on_disk_match_between_backends() {
        let names = |dir: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut names: Vec<String> = std::fs::read_dir(path)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names("sqlite"), names("postgres"));
    }

    #[test]
    fn unsupported_url_scheme_is_rejected_without_echoing_the_url() {
        let err = Backend::from_url("mysql://root:hunter2@localhost/db").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("sqlite: or postgres://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn sqlite_url_encodes_awkward_path_characters() {
        assert_eq!(
            sqlite_url_for_file(Path::new("/tmp/my data?#/regentra.db")),
            "sqlite:///tmp/my%20data%3F%23/regentra.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn sqlite_connections_use_wal_busy_timeout_and_foreign_keys() {
        let dir = testing::TempDir::new();
        let db = Db::open_sqlite_in(&dir.path().join("nested"))
            .await
            .unwrap();
        assert!(dir.path().join("nested").join(SQLITE_FILE_NAME).exists());
        let mut conn = db.acquire().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(busy, 5000);
        assert_eq!(foreign_keys, 1);
        assert_eq!(synchronous, 1, "NORMAL is 1");
    }

    #[tokio::test]
    async fn in_memory_sqlite_keeps_one_database_across_connections() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        for _ in 0..3 {
            sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'ticket_number'")
                .execute(db.pool())
                .await
                .unwrap();
        }
        let value: i64 =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'ticket_number'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn reconnecting_to_a_migrated_database_is_a_no_op() {
        let dir = testing::TempDir::new();
        let first = Db::open_sqlite_in(dir.path()).await.unwrap();
        first.close().await;
        let again = Db::open_sqlite_in(dir.path()).await.unwrap();
        assert_eq!(again.backend(), Backend::Sqlite);
    }

    #[tokio::test]
    async fn write_tx_nests_as_a_savepoint_and_rolls_back_alone() {
        for test_db in testing::fresh_dbs().await {
            let mut tx = test_db.db.begin().await.unwrap();
            sqlx::query("INSERT INTO counters (name, value) VALUES ('outer', 1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            {
                let mut inner = write_tx(&mut tx).await.unwrap();
                sqlx::query("INSERT INTO counters (name, value) VALUES ('inner', 1)")
                    .execute(&mut *inner)
                    .await
                    .unwrap();
                // dropped without commit: only the savepoint rolls back
            }
            tx.commit().await.unwrap();
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM counters WHERE name IN ('outer', 'inner')")
                    .fetch_all(test_db.db.pool())
                    .await
                    .unwrap();
            assert_eq!(names, ["outer"], "{}", test_db.label);
        }
    }
}
