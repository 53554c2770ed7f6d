//! `regentra keys rotate`: re-encrypt every stored secret under a new key, keeping the old key
//! readable until that has finished (ARCHITECTURE §8, `vault::keys` for the key files).
//!
//! Stored secrets today: the Teams connection's access and refresh tokens and the PKCE verifiers
//! of sign-ins in progress. A new table with sealed columns must be added to
//! [`reencrypt_all_secrets`].
//!
//! Steps: (1) make a new active key (the old one is saved as `encryption.key.old.<id>` first);
//! (2) re-encrypt every blob not sealed under the active key, compare-and-swap against
//! concurrent refreshes; (3) check nothing is left under an old key; (4) only then delete the old
//! key files. A failure in (2) or (3) leaves the old key files in place, so nothing becomes
//! unreadable; running the command again continues. This module never prints key material.

use std::path::Path;

use super::tokens::token_field;
use crate::bridge::vault::{KeyError, KeyId, KeyRing, KeySource, SealedField, VaultError};
use crate::store::teams::{
    ACCESS_TOKEN_FIELD, OAUTH_STATES_TABLE, PKCE_VERIFIER_FIELD, REFRESH_TOKEN_FIELD,
};
use crate::store::{self, Db, StoreError};

/// How often one connection's blobs are re-read when a refresh keeps replacing them.
const MAX_ATTEMPTS: usize = 5;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The key every secret is now sealed with.
    pub active_key_id: KeyId,
    /// Sealed values rewritten under the active key.
    pub secrets_reencrypted: usize,
    /// Old keys forgotten (their files deleted) after everything was rewritten.
    pub retired_key_ids: Vec<KeyId>,
}

/// Why a rotation stopped. Old keys stay readable in every case.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(
        "reading or writing the stored secrets failed: {0}; the old keys were kept, run the command again"
    )]
    Store(#[from] StoreError),
    #[error("{0}; the old keys were kept so nothing was lost")]
    Vault(#[from] VaultError),
    #[error(
        "{0} could not be re-encrypted because Regentra kept changing it (a running server is \
         refreshing tokens); stop Regentra and run `regentra keys rotate` again — the old keys \
         were kept"
    )]
    KeptChanging(String),
}

/// Rotates: new active key, every secret re-encrypted, then the old keys retired.
///
/// With the key in `REGENTRA_ENCRYPTION_KEY` Regentra cannot replace it: the first run saves the
/// current key as an old-key file and returns [`KeyError::ActiveKeyFromEnvironment`] (whose
/// message tells the operator to set a new key and run the command again); the second run,
/// with the new key set, re-encrypts and retires.
pub async fn rotate_keys(
    db: &Db,
    keys: &mut KeyRing,
    data_dir: &Path,
) -> Result<RotationReport, RotateError> {
    if *keys.active_source() == KeySource::Environment {
        if keys.old_key_ids().is_empty() {
            keys.save_active_as_old_key(data_dir)?;
            return Err(KeyError::ActiveKeyFromEnvironment.into());
        }
    } else {
        keys.generate_new_active(data_dir)?;
    }
    let secrets_reencrypted = reencrypt_all_secrets(db, keys).await?;
    let retired_key_ids = keys.retire_old_keys(data_dir)?;
    Ok(RotationReport {
        active_key_id: keys.active_key_id(),
        secrets_reencrypted,
        retired_key_ids,
    })
}

/// Re-encrypts every stored secret not sealed under the active key and checks none is left.
/// Returns how many values were rewritten.
pub async fn reencrypt_all_secrets(db: &Db, keys: &KeyRing) -> Result<usize, RotateError> {
    let mut rewritten = 0;
    let mut conn = db.acquire().await?;

    for mut sealed in store::teams::all_sealed_tokens(&mut conn).await? {
        let mut attempts = 0;
        loop {
            let access_stale = sealed
                .access_token
                .as_deref()
                .is_some_and(|blob| keys.needs_reencryption(blob));
            let refresh_stale = sealed
                .refresh_token
                .as_deref()
                .is_some_and(|blob| keys.needs_reencryption(blob));
            if !access_stale && !refresh_stale {
                break;
            }
            let reseal = |blob: Option<&Vec<u8>>, field: &str| -> Result<_, VaultError> {
                blob.map(|blob| keys.reencrypt(blob, &token_field(sealed.id, field)))
                    .transpose()
            };
            let access = reseal(sealed.access_token.as_ref(), ACCESS_TOKEN_FIELD)?;
            let refresh = reseal(sealed.refresh_token.as_ref(), REFRESH_TOKEN_FIELD)?;
            if store::teams::replace_sealed_tokens(
                &mut conn,
                sealed.id,
                sealed.token_version,
                access.as_deref(),
                refresh.as_deref(),
            )
            .await?
            {
                rewritten += usize::from(access.is_some()) + usize::from(refresh.is_some());
                break;
            }
            attempts += 1;
            if attempts >= MAX_ATTEMPTS {
                return Err(RotateError::KeptChanging(format!(
                    "the Teams connection {}",
                    sealed.id
                )));
            }
            // A refresh replaced the tokens meanwhile (already under some key): read again.
            let record = store::teams::get(&mut conn, sealed.id).await?;
            sealed.token_version = record.token_version;
            sealed.access_token = record.access_token;
            sealed.refresh_token = record.refresh_token;
        }
    }

    for (state_hash, blob) in store::teams::all_sealed_oauth_verifiers(&mut conn).await? {
        if keys.needs_reencryption(&blob) {
            let field =
                SealedField::new(OAUTH_STATES_TABLE, state_hash.clone(), PKCE_VERIFIER_FIELD);
            let resealed = keys.reencrypt(&blob, &field)?;
            store::teams::replace_sealed_oauth_verifier(&mut conn, &state_hash, &resealed).await?;
            rewritten += 1;
        }
    }

    // Nothing may be left under a key about to be deleted.
    for sealed in store::teams::all_sealed_tokens(&mut conn).await? {
        let stale = [&sealed.access_token, &sealed.refresh_token]
            .into_iter()
            .flatten()
            .any(|blob| keys.needs_reencryption(blob));
        if stale {
            return Err(RotateError::KeptChanging(format!(
                "the Teams connection {}",
                sealed.id
            )));
        }
    }
    let pending_stale = store::teams::all_sealed_oauth_verifiers(&mut conn)
        .await?
        .iter()
        .any(|(_, blob)| keys.needs_reencryption(blob));
    if pending_stale {
        return Err(RotateError::KeptChanging(
            "a Teams sign-in in progress".to_owned(),
        ));
    }
    Ok(rewritten)
}
