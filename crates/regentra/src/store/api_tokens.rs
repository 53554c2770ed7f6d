//! API tokens for the JSON API (`Authorization: Bearer rgt_…`).
//!
//! A token is `rgt_` + 32 random bytes in base64url. Only its SHA-256 (hex) is stored; the
//! plaintext is returned once by [`create`] and can never be read back. A fast hash is right
//! here (unlike passwords): the token has 256 bits of entropy, so there is nothing to brute-force,
//! and looking it up by hash reveals nothing about other tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::StoreError;
use super::sql::{from_ms, opt_from_ms, parse_stored, to_ms};
use crate::tickets::{ApiToken, TechnicianId, TokenId};

/// Every token starts with this, so it is recognisable in config files and secret scanners.
pub const TOKEN_PREFIX: &str = "rgt_";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    technician_id: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self) -> Result<ApiToken, StoreError> {
        Ok(ApiToken {
            id: parse_stored(&self.id, TokenId::parse)?,
            technician_id: parse_stored(&self.technician_id, TechnicianId::parse)?,
            name: self.name,
            created_at: from_ms(self.created_at)?,
            last_used_at: opt_from_ms(self.last_used_at)?,
        })
    }
}

/// Creates a token for `technician_id` and returns its metadata and the plaintext token —
/// the only time the plaintext exists outside the caller's hands.
pub async fn create(
    conn: &mut AnyConnection,
    technician_id: TechnicianId,
    name: &str,
    now: OffsetDateTime,
) -> Result<(ApiToken, SecretString), StoreError> {
    let random: [u8; 32] = rand::random();
    let token = SecretString::from(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random)));
    let metadata = create_with_value(conn, technician_id, name, &token, now).await?;
    Ok((metadata, token))
}

/// Shortest token [`create_with_value`] accepts, prefix included.
pub const MIN_CHOSEN_TOKEN_CHARS: usize = 24;

/// Stores a token whose value the caller chose (`regentra demo --api-token`, for scripts).
/// The value must start with [`TOKEN_PREFIX`] (or [`authenticate`] would never accept it) and
/// be at least [`MIN_CHOSEN_TOKEN_CHARS`] long. `Conflict` if that value is already stored.
pub async fn create_with_value(
    conn: &mut AnyConnection,
    technician_id: TechnicianId,
    name: &str,
    token: &SecretString,
    now: OffsetDateTime,
) -> Result<ApiToken, StoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StoreError::Invalid("token name must not be empty".into()));
    }
    let value = token.expose_secret();
    if !value.starts_with(TOKEN_PREFIX)
        || value.chars().count() < MIN_CHOSEN_TOKEN_CHARS
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(StoreError::Invalid(format!(
            "an API token must start with {TOKEN_PREFIX}, be at least {MIN_CHOSEN_TOKEN_CHARS} \
             characters long and contain no spaces"
        )));
    }
    let id = TokenId::new();
    let inserted = sqlx::query(
        "INSERT INTO api_tokens (id, technician_id, name, token_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(technician_id.to_string())
    .bind(name)
    .bind(token_hash(value))
    .bind(to_ms(now))
    .execute(&mut *conn)
    .await;
    if let Err(sqlx::Error::Database(db_err)) = &inserted {
        if db_err.is_foreign_key_violation() {
            return Err(StoreError::NotFound("technician"));
        }
        if db_err.is_unique_violation() {
            return Err(StoreError::Conflict(
                "this API token value is already stored".into(),
            ));
        }
    }
    inserted?;
    Ok(ApiToken {
        id,
        technician_id,
        name: name.to_owned(),
        created_at: super::sql::truncate_to_ms(now),
        last_used_at: None,
    })
}

/// The technician a presented token belongs to, or `None` for an unknown/revoked/malformed
/// token. Records `last_used_at`.
pub async fn authenticate(
    conn: &mut AnyConnection,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<TechnicianId>, StoreError> {
    let token = token.trim();
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let owner: Option<String> = sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2 RETURNING technician_id",
    )
    .bind(to_ms(now))
    .bind(token_hash(token))
    .fetch_optional(&mut *conn)
    .await?;
    owner
        .map(|id| parse_stored(&id, TechnicianId::parse))
        .transpose()
}

/// A technician's tokens (metadata only), newest first.
pub async fn list_for(
    conn: &mut AnyConnection,
    technician_id: TechnicianId,
) -> Result<Vec<ApiToken>, StoreError> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT id, technician_id, name, created_at, last_used_at FROM api_tokens \
         WHERE technician_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(technician_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(TokenRow::into_token).collect()
}

/// Deletes a token; it stops working at once.
pub async fn revoke(conn: &mut AnyConnection, id: TokenId) -> Result<(), StoreError> {
    let result = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound("API token"));
    }
    Ok(())
}

/// SHA-256 of the token as lower-case hex (what the `token_hash` column holds).
pub fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::technicians::{self, NewTechnician};
    use crate::store::testing::fresh_dbs;
    use crate::tickets::TechnicianEmail;

    async fn technician(conn: &mut AnyConnection) -> TechnicianId {
        technicians::create(
            conn,
            NewTechnician {
                email: TechnicianEmail::parse("ops@example.com").unwrap(),
                display_name: "Ops".into(),
                password: SecretString::from("long enough password"),
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap()
        .id
    }

    #[tokio::test]
    async fn created_token_authenticates_its_technician_and_records_use() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let tech = technician(&mut conn).await;
            let now = OffsetDateTime::now_utc();
            let (metadata, token) = create(&mut conn, tech, "ci", now).await.unwrap();
            assert!(token.expose_secret().starts_with("rgt_"));
            assert_eq!(token.expose_secret().len(), 4 + 43);
            assert_eq!(metadata.last_used_at, None);

            let owner = authenticate(&mut conn, token.expose_secret(), now)
                .await
                .unwrap();
            assert_eq!(owner, Some(tech), "{}", test_db.label);
            let listed = list_for(&mut conn, tech).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(
                listed[0].last_used_at,
                Some(crate::store::sql::truncate_to_ms(now))
            );
        }
    }

    #[tokio::test]
    async fn token_is_stored_only_as_its_sha256() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let tech = technician(&mut conn).await;
            let (_, token) = create(&mut conn, tech, "ci", OffsetDateTime::now_utc())
                .await
                .unwrap();
            let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            assert_eq!(stored, [token_hash(token.expose_secret())]);
            assert_eq!(stored[0].len(), 64);
            assert!(!stored[0].contains(token.expose_secret()));
        }
    }

    #[tokio::test]
    async fn unknown_malformed_and_revoked_tokens_are_refused() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let tech = technician(&mut conn).await;
            let now = OffsetDateTime::now_utc();
            let (metadata, token) = create(&mut conn, tech, "ci", now).await.unwrap();
            assert_eq!(
                authenticate(&mut conn, "rgt_not-a-real-token", now)
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(authenticate(&mut conn, "", now).await.unwrap(), None);
            // The stored hash itself is not a token.
            let hash = token_hash(token.expose_secret());
            assert_eq!(authenticate(&mut conn, &hash, now).await.unwrap(), None);

            revoke(&mut conn, metadata.id).await.unwrap();
            assert_eq!(
                authenticate(&mut conn, token.expose_secret(), now)
                    .await
                    .unwrap(),
                None
            );
        }
    }

    #[tokio::test]
    async fn token_for_unknown_technician_is_not_found() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let err = create(
                &mut conn,
                TechnicianId::new(),
                "ci",
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap_err();
            assert!(matches!(err, StoreError::NotFound("technician")), "{err:?}");
        }
    }
}
