//! Technicians (helpdesk users) and their argon2id password login.
//!
//! Hashing and verifying run on the blocking thread pool (they take tens of milliseconds by
//! design). A login for an unknown e-mail still verifies against a dummy hash, so response time
//! does not reveal which addresses exist. Passwords and hashes are never logged or returned.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::StoreError;
use super::sql::{from_ms, parse_stored, to_ms};
use crate::tickets::{Technician, TechnicianEmail, TechnicianId};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A technician to create.
#[derive(Debug)]
pub struct NewTechnician {
    pub email: TechnicianEmail,
    pub display_name: String,
    /// Checked for length here; hashed with argon2id; never stored or logged in clear.
    pub password: SecretString,
}

#[derive(sqlx::FromRow)]
struct TechnicianRow {
    id: String,
    email: String,
    display_name: String,
    created_at: i64,
}

impl TechnicianRow {
    fn into_technician(self) -> Result<Technician, StoreError> {
        Ok(Technician {
            id: parse_stored(&self.id, TechnicianId::parse)?,
            email: parse_stored(&self.email, TechnicianEmail::parse)?,
            display_name: self.display_name,
            created_at: from_ms(self.created_at)?,
        })
    }
}

const COLUMNS: &str = "id, email, display_name, created_at";

/// Creates a technician. Errors: `Invalid` for a blank name or a password shorter than
/// [`MIN_PASSWORD_CHARS`]; `Conflict` when the e-mail is taken.
pub async fn create(
    conn: &mut AnyConnection,
    new: NewTechnician,
    now: OffsetDateTime,
) -> Result<Technician, StoreError> {
    let display_name = new.display_name.trim().to_owned();
    if display_name.is_empty() {
        return Err(StoreError::Invalid("display_name must not be empty".into()));
    }
    check_password_strength(&new.password)?;
    let password_hash = hash_password(new.password).await?;
    let id = TechnicianId::new();
    let inserted = sqlx::query(
        "INSERT INTO technicians (id, email, display_name, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(new.email.as_str())
    .bind(&display_name)
    .bind(password_hash)
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await;
    match inserted.map_err(StoreError::from) {
        Err(err) if err.is_unique_violation() => {
            return Err(StoreError::Conflict(format!(
                "a technician with email {} already exists",
                new.email
            )));
        }
        other => other?,
    };
    get(conn, id).await
}

/// Replaces a technician's password.
pub async fn set_password(
    conn: &mut AnyConnection,
    id: TechnicianId,
    password: SecretString,
) -> Result<(), StoreError> {
    check_password_strength(&password)?;
    let password_hash = hash_password(password).await?;
    let result = sqlx::query("UPDATE technicians SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound("technician"));
    }
    Ok(())
}

/// Checks a login. `Some` only when the technician exists and the password matches; takes the
/// same time either way.
pub async fn verify_login(
    conn: &mut AnyConnection,
    email: &str,
    password: &SecretString,
) -> Result<Option<Technician>, StoreError> {
    let normalised = email.trim().to_lowercase();
    let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, email, display_name, password_hash, created_at FROM technicians \
         WHERE email = $1",
    )
    .bind(&normalised)
    .fetch_optional(&mut *conn)
    .await?;
    let (stored_hash, technician) = match row {
        Some((id, email, display_name, password_hash, created_at)) => {
            let technician = TechnicianRow {
                id,
                email,
                display_name,
                created_at,
            }
            .into_technician()?;
            (password_hash, Some(technician))
        }
        None => (dummy_hash().await?, None),
    };
    let matches = verify_password(password.clone(), stored_hash).await?;
    Ok(technician.filter(|_| matches))
}

/// One technician.
pub async fn get(conn: &mut AnyConnection, id: TechnicianId) -> Result<Technician, StoreError> {
    let row: Option<TechnicianRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM technicians WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("technician"))?
        .into_technician()
}

/// The technician with this login e-mail (any letter case), if any.
pub async fn find_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Option<Technician>, StoreError> {
    let row: Option<TechnicianRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM technicians WHERE email = $1"
    )))
    .bind(email.trim().to_lowercase())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(TechnicianRow::into_technician).transpose()
}

/// All technicians, by display name.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Technician>, StoreError> {
    let rows: Vec<TechnicianRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM technicians ORDER BY display_name, email"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(TechnicianRow::into_technician)
        .collect()
}

/// How many technicians exist (0 on first start: the CLI tells how to create one).
pub async fn count(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM technicians")
        .fetch_one(&mut *conn)
        .await?)
}

fn check_password_strength(password: &SecretString) -> Result<(), StoreError> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::Invalid(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

async fn hash_password(password: SecretString) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| StoreError::Internal(format!("hashing the password failed: {err}")))
    })
    .await
    .map_err(|err| StoreError::Internal(format!("password hashing task failed: {err}")))?
}

async fn verify_password(password: SecretString, hash: String) -> Result<bool, StoreError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .map_err(|err| StoreError::Internal(format!("password verification task failed: {err}")))
}

/// A valid argon2id hash (default parameters) of a random password nobody knows, computed once.
async fn dummy_hash() -> Result<String, StoreError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let random: [u8; 32] = rand::random();
    let hash = hash_password(SecretString::from(
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    ))
    .await?;
    Ok(DUMMY.get_or_init(|| hash).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::fresh_dbs;

    fn alice() -> NewTechnician {
        NewTechnician {
            email: TechnicianEmail::parse("Alice@Example.com").unwrap(),
            display_name: " Alice Admin ".into(),
            password: SecretString::from("correct horse battery"),
        }
    }

    #[tokio::test]
    async fn created_technician_can_log_in_with_any_email_case() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let now = OffsetDateTime::now_utc();
            let created = create(&mut conn, alice(), now).await.unwrap();
            assert_eq!(created.email.as_str(), "alice@example.com");
            assert_eq!(created.display_name, "Alice Admin");

            let password = SecretString::from("correct horse battery");
            let logged_in = verify_login(&mut conn, " ALICE@example.com", &password)
                .await
                .unwrap();
            assert_eq!(logged_in, Some(created), "{}", test_db.label);
        }
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_email_are_refused() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            create(&mut conn, alice(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            let wrong = SecretString::from("incorrect horse battery");
            assert_eq!(
                verify_login(&mut conn, "alice@example.com", &wrong)
                    .await
                    .unwrap(),
                None
            );
            let right = SecretString::from("correct horse battery");
            assert_eq!(
                verify_login(&mut conn, "bob@example.com", &right)
                    .await
                    .unwrap(),
                None
            );
        }
    }

    #[tokio::test]
    async fn password_is_stored_only_as_argon2id_hash() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            create(&mut conn, alice(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            let stored: String = sqlx::query_scalar("SELECT password_hash FROM technicians")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert!(stored.starts_with("$argon2id$"), "{stored}");
            assert!(!stored.contains("correct horse battery"));
        }
    }

    #[tokio::test]
    async fn duplicate_email_is_a_conflict() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            create(&mut conn, alice(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            let err = create(&mut conn, alice(), OffsetDateTime::now_utc())
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
            assert_eq!(
                err.to_string(),
                "a technician with email alice@example.com already exists"
            );
            assert_eq!(count(&mut conn).await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn short_password_is_refused_before_hashing() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let mut new = alice();
            new.password = SecretString::from("short");
            let err = create(&mut conn, new, OffsetDateTime::now_utc())
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "password must be at least 10 characters");
            assert_eq!(count(&mut conn).await.unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn set_password_replaces_the_old_one() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let created = create(&mut conn, alice(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            set_password(
                &mut conn,
                created.id,
                SecretString::from("a brand new secret"),
            )
            .await
            .unwrap();
            let old = SecretString::from("correct horse battery");
            let new = SecretString::from("a brand new secret");
            assert_eq!(
                verify_login(&mut conn, "alice@example.com", &old)
                    .await
                    .unwrap(),
                None
            );
            assert!(
                verify_login(&mut conn, "alice@example.com", &new)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }
}
