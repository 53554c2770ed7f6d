//! Web login sessions in the application database: a `tower_sessions::SessionStore` that works
//! on SQLite and PostgreSQL alike (the ready-made sqlx stores target another tower-sessions and
//! sqlx major; see rust-stack A.14).
//!
//! Rows hold the session data as JSON and the expiry as unix milliseconds. Expired rows are
//! never returned and are removed by `delete_expired` (call it periodically, e.g. hourly).
//! The session id is the cookie value; it is stored as-is because it is random and
//! short-lived, like the sessions table of most frameworks.

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use super::Db;
use super::sql::{from_ms, to_ms};

/// A `SessionStore` backed by the `sessions` table.
#[derive(Debug, Clone)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    /// A store on `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn backend_error(err: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(format!("session store: {err}"))
}

fn encode(record: &Record) -> Result<String, session_store::Error> {
    serde_json::to_string(&record.data).map_err(|err| session_store::Error::Encode(err.to_string()))
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        // A fresh random id colliding is astronomically unlikely; if it happens, draw another
        // instead of overwriting somebody's session.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(to_ms(record.expiry_date))
            .execute(self.db.pool())
            .await
            .map_err(backend_error)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(record.id.to_string())
        .bind(encode(record)?)
        .bind(to_ms(record.expiry_date))
        .execute(self.db.pool())
        .await
        .map_err(backend_error)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(session_id.to_string())
        .bind(to_ms(OffsetDateTime::now_utc()))
        .fetch_optional(self.db.pool())
        .await
        .map_err(backend_error)?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *session_id,
            data: serde_json::from_str(&data)
                .map_err(|err| session_store::Error::Decode(err.to_string()))?,
            expiry_date: from_ms(expires_at).map_err(backend_error)?,
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id.to_string())
            .execute(self.db.pool())
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_ms(OffsetDateTime::now_utc()))
            .execute(self.db.pool())
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use time::Duration;

    use super::*;
    use crate::store::testing::fresh_dbs;

    fn record(expiry: OffsetDateTime) -> Record {
        let mut data = HashMap::new();
        data.insert("technician_id".to_owned(), serde_json::json!("0190-tech"));
        Record {
            id: Id::default(),
            data,
            expiry_date: crate::store::sql::truncate_to_ms(expiry),
        }
    }

    #[tokio::test]
    async fn saved_session_loads_back_until_it_is_deleted() {
        for test_db in fresh_dbs().await {
            let store = DbSessionStore::new(test_db.db.clone());
            let mut session = record(OffsetDateTime::now_utc() + Duration::hours(1));
            store.create(&mut session).await.unwrap();
            assert_eq!(
                store.load(&session.id).await.unwrap(),
                Some(session.clone())
            );

            session
                .data
                .insert("csrf".to_owned(), serde_json::json!("changed"));
            store.save(&session).await.unwrap();
            assert_eq!(
                store.load(&session.id).await.unwrap(),
                Some(session.clone())
            );

            store.delete(&session.id).await.unwrap();
            assert_eq!(
                store.load(&session.id).await.unwrap(),
                None,
                "{}",
                test_db.label
            );
        }
    }

    #[tokio::test]
    async fn expired_session_is_not_loaded_and_is_swept() {
        for test_db in fresh_dbs().await {
            let store = DbSessionStore::new(test_db.db.clone());
            let mut expired = record(OffsetDateTime::now_utc() - Duration::minutes(1));
            let mut live = record(OffsetDateTime::now_utc() + Duration::hours(1));
            store.create(&mut expired).await.unwrap();
            store.create(&mut live).await.unwrap();
            assert_eq!(store.load(&expired.id).await.unwrap(), None);

            store.delete_expired().await.unwrap();
            let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
                .fetch_all(test_db.db.pool())
                .await
                .unwrap();
            assert_eq!(ids, [live.id.to_string()], "{}", test_db.label);
        }
    }

    #[tokio::test]
    async fn create_never_overwrites_an_existing_session() {
        for test_db in fresh_dbs().await {
            let store = DbSessionStore::new(test_db.db.clone());
            let mut first = record(OffsetDateTime::now_utc() + Duration::hours(1));
            store.create(&mut first).await.unwrap();
            let mut clash = record(OffsetDateTime::now_utc() + Duration::hours(1));
            clash.id = first.id;
            clash
                .data
                .insert("other".to_owned(), serde_json::json!(true));
            store.create(&mut clash).await.unwrap();
            assert_ne!(clash.id, first.id, "a new id was drawn");
            assert_eq!(store.load(&first.id).await.unwrap(), Some(first));
        }
    }
}
