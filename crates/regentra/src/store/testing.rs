//! Test support (public but hidden from docs, so integration tests in `tests/` can use it too):
//! fresh, migrated databases for repository and app tests.
//!
//! * SQLite: always, a new file in a new temporary directory removed when the [`TestDb`] drops.
//! * PostgreSQL: only when `REGENTRA_TEST_POSTGRES_URL` is set (CI: `postgres://postgres@127.0.0.1:5432/test`);
//!   each call creates its own schema `regentra_test_<uuid v7>` and connects with
//!   `search_path` pointing at it, so tests never see each other's rows. Schemas of earlier runs
//!   older than an hour are dropped on the way (the uuid v7 in the name carries its birth time).
//!   Without the variable a clear "skipped" line is printed.
//!
//! Never use this in production code paths: it prints to stderr and drops schemas.

use std::path::{Path, PathBuf};

use sqlx::{Connection, Row};
use uuid::Uuid;

use super::{Backend, Db, SQLITE_FILE_NAME, StoreError, sqlite_url_for_file};

/// The variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "REGENTRA_TEST_POSTGRES_URL";

const SCHEMA_PREFIX: &str = "regentra_test_";

/// A fresh migrated database for one test. Keep it alive for the whole test.
pub struct TestDb {
    /// "sqlite" or "postgres": put it in assertion messages.
    pub label: &'static str,
    /// The connected, migrated database.
    pub db: Db,
    /// A URL that connects to this same database (and schema), for code under test that
    /// connects on its own (e.g. `App::build` with `REGENTRA_DATABASE_URL`).
    pub url: String,
    /// For SQLite: the data directory holding `regentra.db` (usable as `REGENTRA_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
    // Dropped last: removes the SQLite directory.
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("label", &self.label)
            .finish()
    }
}

/// A fresh SQLite database, plus a fresh PostgreSQL schema when `REGENTRA_TEST_POSTGRES_URL`
/// is set (otherwise prints "skipped: REGENTRA_TEST_POSTGRES_URL not set").
///
/// Panics (it is test support) when a configured PostgreSQL cannot be reached, so a broken CI
/// database fails loudly instead of silently skipping.
pub async fn fresh_dbs() -> Vec<TestDb> {
    let mut dbs = vec![fresh_sqlite().await];
    if let Some(postgres) = fresh_postgres().await {
        dbs.push(postgres);
    }
    dbs
}

/// A fresh SQLite database in its own temporary directory.
pub async fn fresh_sqlite() -> TestDb {
    let dir = TempDir::new();
    let data_dir = dir.path().to_path_buf();
    let db = Db::open_sqlite_in(&data_dir)
        .await
        .unwrap_or_else(|err| panic!("creating a test SQLite database failed: {err}"));
    TestDb {
        label: Backend::Sqlite.as_str(),
        db,
        url: sqlite_url_for_file(&data_dir.join(SQLITE_FILE_NAME)),
        data_dir: Some(data_dir),
        _dir: Some(dir),
    }
}

/// A fresh PostgreSQL schema, or `None` (with a printed "skipped" line) when
/// `REGENTRA_TEST_POSTGRES_URL` is not set.
pub async fn fresh_postgres() -> Option<TestDb> {
    let Ok(base_url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("skipped: {POSTGRES_URL_VAR} not set (PostgreSQL half of this test not run)");
        return None;
    };
    let url = create_schema(&base_url).await.unwrap_or_else(|err| {
        panic!("{POSTGRES_URL_VAR} is set but preparing a schema failed: {err}")
    });
    let db = Db::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("connecting to the fresh PostgreSQL schema failed: {err}"));
    Some(TestDb {
        label: Backend::Postgres.as_str(),
        db,
        url,
        data_dir: None,
        _dir: None,
    })
}

/// Creates a new schema on the server at `base_url` and returns a URL whose connections use it.
async fn create_schema(base_url: &str) -> Result<String, StoreError> {
    sqlx::any::install_default_drivers();
    let schema = format!("{SCHEMA_PREFIX}{}", Uuid::now_v7().simple());
    let mut conn = sqlx::AnyConnection::connect(base_url).await?;
    drop_stale_schemas(&mut conn).await?;
    // The name is ours (prefix + hex), so formatting it into the SQL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;

    let mut url = url::Url::parse(base_url)
        .map_err(|err| StoreError::Invalid(format!("{POSTGRES_URL_VAR} is not a URL: {err}")))?;
    url.query_pairs_mut()
        .append_pair("options", &format!("-csearch_path={schema}"));
    Ok(url.to_string())
}

/// Drops test schemas created more than an hour ago (left by earlier runs).
async fn drop_stale_schemas(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT CAST(nspname AS TEXT) FROM pg_catalog.pg_namespace WHERE nspname LIKE 'regentra\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let an_hour_ago_ms = super::sql::to_ms(time::OffsetDateTime::now_utc()) - 3_600_000;
    for row in rows {
        let name: String = row.try_get(0)?;
        let Some(born_ms) = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|hex| Uuid::try_parse(hex).ok())
            .and_then(|uuid| uuid.get_timestamp())
            .map(|ts| {
                let (secs, nanos) = ts.to_unix();
                i64::try_from(secs).unwrap_or(i64::MAX) * 1000 + i64::from(nanos / 1_000_000)
            })
        else {
            continue;
        };
        if born_ms < an_hour_ago_ms {
            // Another run may drop it at the same moment; that is fine.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
    Ok(())
}

/// A temporary directory removed (with its contents) on drop. Small on purpose, so the
/// library does not need a `tempfile` dependency for its public test support.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<system temp>/regentra-test-<uuid>`.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("regentra-test-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("creating {} failed: {err}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
