//! AES-256-GCM token vault for secrets at rest (ARCHITECTURE §8).
//!
//! Every stored secret (Graph refresh and access tokens, …) is sealed into a self-describing blob:
//!
//! ```text
//! version (1 byte = 1) ‖ key id (8 bytes) ‖ nonce (12 random bytes) ‖ ciphertext + GCM tag (16 bytes)
//! ```
//!
//! * The nonce is fresh from the operating system's RNG for every encryption, so two encryptions of
//!   the same token never look alike. Random 96-bit nonces are safe far beyond our volume.
//! * The associated data binds the blob to its place: a [`SealedField`] (table, row id, field,
//!   e.g. `teams_connection:7:refresh_token`) plus the version byte and key id. A blob copied to
//!   another row or field, or altered in any bit, fails authentication.
//! * The key id (first 8 bytes of a domain-separated SHA-256 of the key) says which key of the
//!   [`KeyRing`] opens the blob, so `regentra keys rotate` can keep old keys readable while it
//!   re-encrypts everything under the new active key.
//!
//! Key material is loaded by [`KeyRing::load`] (see [`keys`] for the files it reads and writes).
//!
//! This module must never: return plaintext that failed authentication (it is an error, never
//! garbage); reuse a nonce; print key material or plaintext (`Debug` shows key ids only, plaintext
//! comes back as `secrecy` types); touch the database — callers store and fetch the blobs.

pub mod keys;

use std::fmt;

use aes_gcm::aead::{Aead, Generate, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use sha2::{Digest, Sha256};

pub use keys::{ENV_KEY_VAR, KEY_FILE_NAME, KeyError, KeySource, OLD_KEY_FILE_PREFIX};

/// Format version written as the first byte of every blob.
pub const BLOB_VERSION: u8 = 1;
/// Length of a [`KeyId`] inside a blob.
pub const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// The shortest possible blob: header, nonce and tag around an empty plaintext.
pub const MIN_BLOB_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;

/// Domain separation for key ids, so a key id never equals a plain hash of the key.
const KEY_ID_CONTEXT: &[u8] = b"regentra token vault key id v1\0";

/// Short public identifier of an encryption key (not secret; safe to log and to put in file names).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of_key(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::new_with_prefix(KEY_ID_CONTEXT)
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }

    /// The raw bytes as stored in a blob.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// One AES-256 key. The key bytes live in a zeroize-on-drop box and are never printed.
pub struct EncryptionKey {
    id: KeyId,
    bytes: SecretBox<[u8; KEY_LEN]>,
}

impl EncryptionKey {
    /// Wraps 32 key bytes (moved into a zeroize-on-drop box).
    pub fn from_bytes(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let id = KeyId::of_key(bytes.expose_secret());
        Self { id, bytes }
    }

    /// A new random key from the operating system's RNG.
    pub fn generate() -> Result<Self, KeyError> {
        let key = aes_gcm::Key::<Aes256Gcm>::try_generate()
            .map_err(|error| KeyError::Randomness(error.to_string()))?;
        let bytes = SecretBox::init_with_mut(|buffer: &mut [u8; KEY_LEN]| {
            buffer.copy_from_slice(key.as_slice());
        });
        // `key` is a plain array on the stack; overwrite it so only the boxed copy remains.
        let mut key = key;
        secrecy::zeroize::Zeroize::zeroize(key.as_mut_slice());
        Ok(Self::from_bytes(bytes))
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        // With aes-gcm's `zeroize` feature the cipher's key schedule is wiped when it is dropped.
        Aes256Gcm::new(self.bytes.expose_secret().into())
    }

    pub(crate) fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Where a sealed secret lives: the associated data that binds a blob to one row and field.
///
/// Its text form (`table:row_id:field`) names the record in error messages; the bytes fed to
/// AES-GCM are length-prefixed, so `("a", "b:c", "d")` and `("a", "b", "c:d")` never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedField {
    table: String,
    row_id: String,
    field: String,
}

impl SealedField {
    /// E.g. `SealedField::new("teams_connection", connection_id.to_string(), "refresh_token")`.
    pub fn new(
        table: impl Into<String>,
        row_id: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        Self {
            table: table.into(),
            row_id: row_id.into(),
            field: field.into(),
        }
    }

    /// The associated data for AES-GCM: the blob header, then each part length-prefixed.
    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let parts = [&self.table, &self.row_id, &self.field];
        let mut aad = Vec::with_capacity(
            header.len() + parts.iter().map(|part| part.len() + 8).sum::<usize>(),
        );
        aad.extend_from_slice(header);
        for part in parts {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

impl fmt::Display for SealedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.table, self.row_id, self.field)
    }
}

/// Why a secret could not be sealed or opened. Messages name the record and what to do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The authentication tag did not verify: the blob was altered, or it belongs to another
    /// row or field (associated data mismatch).
    #[error(
        "the stored secret for {context} cannot be decrypted: it was altered or copied from \
         another record; reconnect the account"
    )]
    TamperedOrForeign { context: String },
    /// The blob names a key that is not in the key ring.
    #[error(
        "the stored secret for {context} was encrypted with key {key_id}, which is not loaded: \
         put that key back (as the file `encryption.key.old.{key_id}` in the data directory, or \
         as REGENTRA_ENCRYPTION_KEY) and restart, or reconnect the account to store a new secret"
    )]
    UnknownKey { key_id: KeyId, context: String },
    /// The bytes are not a vault blob at all (too short, unknown version, or not text).
    #[error(
        "the stored secret for {context} is not a readable vault entry ({problem}); reconnect \
         the account"
    )]
    Malformed {
        context: String,
        problem: &'static str,
    },
    /// AES-GCM refuses plaintexts this large; no token comes close.
    #[error("the secret for {context} is too large to encrypt ({len} bytes)")]
    PlaintextTooLarge { context: String, len: usize },
    /// The operating system could not provide a random nonce.
    #[error(
        "the operating system's random number generator failed ({0}); refusing to encrypt \
         without a fresh nonce"
    )]
    Randomness(String),
}

/// The keys the vault can use: one active key (for every new encryption) and any number of old
/// keys that stay readable until a rotation has re-encrypted everything.
pub struct KeyRing {
    active: EncryptionKey,
    active_source: KeySource,
    old: Vec<EncryptionKey>,
}

impl KeyRing {
    /// An in-memory key ring (tests, tools). Old keys with the active key's id are dropped.
    pub fn new(active: EncryptionKey, old: Vec<EncryptionKey>) -> Self {
        let mut ring = Self {
            active,
            active_source: KeySource::Memory,
            old: Vec::new(),
        };
        for key in old {
            ring.add_readable_key(key);
        }
        ring
    }

    pub(crate) fn from_parts(
        active: EncryptionKey,
        active_source: KeySource,
        old: Vec<EncryptionKey>,
    ) -> Self {
        let mut ring = Self::new(active, old);
        ring.active_source = active_source;
        ring
    }

    /// Adds a key that can decrypt but is never used to encrypt (ignored if already present).
    pub fn add_readable_key(&mut self, key: EncryptionKey) {
        if key.id != self.active.id && !self.old.iter().any(|old| old.id == key.id) {
            self.old.push(key);
        }
    }

    /// Id of the key every new encryption uses.
    pub fn active_key_id(&self) -> KeyId {
        self.active.id
    }

    /// Where the active key came from.
    pub fn active_source(&self) -> &KeySource {
        &self.active_source
    }

    /// Ids of the old keys that are still readable (not including the active key).
    pub fn old_key_ids(&self) -> Vec<KeyId> {
        self.old.iter().map(|key| key.id).collect()
    }

    /// Seals `plaintext` for `field` under the active key with a fresh random nonce.
    pub fn encrypt(&self, plaintext: &[u8], field: &SealedField) -> Result<Vec<u8>, VaultError> {
        let mut header = [0u8; HEADER_LEN];
        header[0] = BLOB_VERSION;
        header[1..].copy_from_slice(self.active.id.as_bytes());
        let nonce =
            Nonce::try_generate().map_err(|error| VaultError::Randomness(error.to_string()))?;
        let aad = field.associated_data(&header);
        let sealed = self
            .active
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::PlaintextTooLarge {
                context: field.to_string(),
                len: plaintext.len(),
            })?;
        let mut blob = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
        blob.extend_from_slice(&header);
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a blob sealed for `field`. Any altered bit, a blob from another row or field, or a
    /// key that is not loaded is an error — never garbage.
    pub fn decrypt(&self, blob: &[u8], field: &SealedField) -> Result<SecretSlice<u8>, VaultError> {
        let malformed = |problem| VaultError::Malformed {
            context: field.to_string(),
            problem,
        };
        if blob.len() < MIN_BLOB_LEN {
            return Err(malformed("too short"));
        }
        let (header, rest) = blob.split_at(HEADER_LEN);
        if header[0] != BLOB_VERSION {
            return Err(malformed("unknown format version"));
        }
        let key_id = key_id_in(header);
        let key = self
            .key_by_id(key_id)
            .ok_or_else(|| VaultError::UnknownKey {
                key_id,
                context: field.to_string(),
            })?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| malformed("bad nonce length"))?;
        let aad = field.associated_data(header);
        let plaintext = key
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::TamperedOrForeign {
                context: field.to_string(),
            })?;
        Ok(SecretSlice::from(plaintext))
    }

    /// Seals a text secret (a token) for `field`.
    pub fn encrypt_secret(
        &self,
        secret: &SecretString,
        field: &SealedField,
    ) -> Result<Vec<u8>, VaultError> {
        self.encrypt(secret.expose_secret().as_bytes(), field)
    }

    /// Opens a text secret sealed with [`KeyRing::encrypt_secret`].
    pub fn decrypt_secret(
        &self,
        blob: &[u8],
        field: &SealedField,
    ) -> Result<SecretString, VaultError> {
        let plaintext = self.decrypt(blob, field)?;
        match std::str::from_utf8(plaintext.expose_secret()) {
            Ok(text) => Ok(SecretString::from(text)),
            Err(_) => Err(VaultError::Malformed {
                context: field.to_string(),
                problem: "the decrypted secret is not text",
            }),
        }
    }

    /// The id of the key a blob was sealed with, if the bytes look like a blob at all.
    pub fn key_id_of(blob: &[u8]) -> Option<KeyId> {
        (blob.len() >= MIN_BLOB_LEN && blob[0] == BLOB_VERSION).then(|| key_id_in(blob))
    }

    /// True when the blob is not sealed under the active key (what `keys rotate` must rewrite).
    pub fn needs_reencryption(&self, blob: &[u8]) -> bool {
        Self::key_id_of(blob) != Some(self.active.id)
    }

    /// Opens a blob with whichever readable key it names and seals it again under the active key.
    pub fn reencrypt(&self, blob: &[u8], field: &SealedField) -> Result<Vec<u8>, VaultError> {
        let plaintext = self.decrypt(blob, field)?;
        self.encrypt(plaintext.expose_secret(), field)
    }

    fn key_by_id(&self, id: KeyId) -> Option<&EncryptionKey> {
        std::iter::once(&self.active)
            .chain(self.old.iter())
            .find(|key| key.id == id)
    }

    pub(crate) fn active_key(&self) -> &EncryptionKey {
        &self.active
    }

    pub(crate) fn replace_active(&mut self, new_active: EncryptionKey, source: KeySource) {
        let previous = std::mem::replace(&mut self.active, new_active);
        self.active_source = source;
        self.old.retain(|key| key.id != self.active.id);
        self.add_readable_key(previous);
    }

    pub(crate) fn drop_old_keys(&mut self) -> Vec<KeyId> {
        self.old.drain(..).map(|key| key.id).collect()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.id)
            .field("active_source", &self.active_source)
            .field("old", &self.old_key_ids())
            .finish()
    }
}

/// Reads the key id that follows the version byte. Callers have checked the length.
fn key_id_in(blob: &[u8]) -> KeyId {
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&blob[1..HEADER_LEN]);
    KeyId(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(SecretBox::new(Box::new([byte; KEY_LEN])))
    }

    fn refresh_token_of(row: &str) -> SealedField {
        SealedField::new("teams_connection", row, "refresh_token")
    }

    #[test]
    fn round_trip_returns_the_token() {
        let ring = KeyRing::new(key(1), vec![]);
        let field = refresh_token_of("7");
        let token = SecretString::from("0.AAAA-refresh-token");
        let blob = ring.encrypt_secret(&token, &field).unwrap();
        let opened = ring.decrypt_secret(&blob, &field).unwrap();
        assert_eq!(opened.expose_secret(), "0.AAAA-refresh-token");
    }

    #[test]
    fn blob_layout_is_version_key_id_nonce_ciphertext_tag() {
        let ring = KeyRing::new(key(1), vec![]);
        let blob = ring.encrypt(b"abc", &refresh_token_of("1")).unwrap();
        assert_eq!(blob.len(), 1 + 8 + 12 + 3 + 16);
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(&blob[1..9], ring.active_key_id().as_bytes());
        assert_eq!(KeyRing::key_id_of(&blob), Some(ring.active_key_id()));
    }

    #[test]
    fn plaintext_does_not_appear_in_the_blob() {
        let ring = KeyRing::new(key(1), vec![]);
        let token = b"eyJ0eXAiOiJKV1QiLCJub25jZSI6InNlY3JldCJ9";
        let blob = ring.encrypt(token, &refresh_token_of("1")).unwrap();
        assert!(!blob.windows(token.len()).any(|window| window == token));
    }

    #[test]
    fn two_encryptions_of_the_same_token_use_different_nonces() {
        let ring = KeyRing::new(key(1), vec![]);
        let field = refresh_token_of("1");
        let first = ring.encrypt(b"same token", &field).unwrap();
        let second = ring.encrypt(b"same token", &field).unwrap();
        assert_ne!(
            first[HEADER_LEN..HEADER_LEN + NONCE_LEN],
            second[HEADER_LEN..HEADER_LEN + NONCE_LEN]
        );
        assert_ne!(first, second);
    }

    #[test]
    fn blob_moved_to_another_row_is_refused_naming_that_row() {
        let ring = KeyRing::new(key(1), vec![]);
        let blob = ring
            .encrypt(b"token of row 1", &refresh_token_of("1"))
            .unwrap();
        let error = ring.decrypt(&blob, &refresh_token_of("2")).unwrap_err();
        assert!(matches!(error, VaultError::TamperedOrForeign { .. }));
        assert_eq!(
            error.to_string(),
            "the stored secret for teams_connection:2:refresh_token cannot be decrypted: it was \
             altered or copied from another record; reconnect the account"
        );
    }

    #[test]
    fn blob_moved_to_another_field_is_refused() {
        let ring = KeyRing::new(key(1), vec![]);
        let blob = ring.encrypt(b"refresh", &refresh_token_of("1")).unwrap();
        let access = SealedField::new("teams_connection", "1", "access_token");
        assert!(matches!(
            ring.decrypt(&blob, &access),
            Err(VaultError::TamperedOrForeign { .. })
        ));
    }

    #[test]
    fn associated_data_parts_cannot_be_shifted_across_separators() {
        let ring = KeyRing::new(key(1), vec![]);
        let blob = ring
            .encrypt(b"x", &SealedField::new("a", "b:c", "d"))
            .unwrap();
        assert!(
            ring.decrypt(&blob, &SealedField::new("a", "b", "c:d"))
                .is_err()
        );
        assert!(
            ring.decrypt(&blob, &SealedField::new("a:b", "c", "d"))
                .is_err()
        );
    }

    #[test]
    fn blob_under_a_key_that_is_not_loaded_names_the_key_id() {
        let writer = KeyRing::new(key(1), vec![]);
        let reader = KeyRing::new(key(2), vec![]);
        let blob = writer.encrypt(b"token", &refresh_token_of("1")).unwrap();
        let error = reader.decrypt(&blob, &refresh_token_of("1")).unwrap_err();
        let missing = writer.active_key_id();
        assert!(matches!(error, VaultError::UnknownKey { key_id, .. } if key_id == missing));
        assert!(
            error
                .to_string()
                .contains(&format!("encryption.key.old.{missing}"))
        );
    }

    #[test]
    fn truncated_and_foreign_bytes_are_malformed() {
        let ring = KeyRing::new(key(1), vec![]);
        let field = refresh_token_of("1");
        assert!(matches!(
            ring.decrypt(b"", &field),
            Err(VaultError::Malformed {
                problem: "too short",
                ..
            })
        ));
        let mut blob = ring.encrypt(b"token", &field).unwrap();
        blob[0] = 9;
        assert!(matches!(
            ring.decrypt(&blob, &field),
            Err(VaultError::Malformed {
                problem: "unknown format version",
                ..
            })
        ));
    }

    #[test]
    fn binary_plaintext_is_not_returned_as_a_text_secret() {
        let ring = KeyRing::new(key(1), vec![]);
        let field = refresh_token_of("1");
        let blob = ring.encrypt(&[0xff, 0xfe, 0x00], &field).unwrap();
        assert!(matches!(
            ring.decrypt_secret(&blob, &field),
            Err(VaultError::Malformed { .. })
        ));
    }

    #[test]
    fn old_keys_stay_readable_and_reencrypt_moves_blobs_to_the_active_key() {
        let old_ring = KeyRing::new(key(1), vec![]);
        let field = refresh_token_of("1");
        let blob = old_ring.encrypt(b"token", &field).unwrap();

        let ring = KeyRing::new(key(2), vec![key(1)]);
        assert!(ring.needs_reencryption(&blob));
        assert_eq!(
            ring.decrypt(&blob, &field).unwrap().expose_secret(),
            b"token"
        );
        let rewritten = ring.reencrypt(&blob, &field).unwrap();
        assert!(!ring.needs_reencryption(&rewritten));
        assert_eq!(KeyRing::key_id_of(&rewritten), Some(ring.active_key_id()));
    }

    #[test]
    fn debug_output_shows_key_ids_but_never_key_bytes() {
        let ring = KeyRing::new(key(0xab), vec![key(0xcd)]);
        let debug = format!("{ring:?} {:?}", key(0xab));
        assert!(debug.contains(&ring.active_key_id().to_string()));
        // How the key bytes would print as an array (decimal) or as hex.
        assert!(!debug.contains("171, 171"));
        assert!(!debug.contains("205, 205"));
        assert!(!debug.to_lowercase().contains("abababab"));
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn key_ids_differ_between_keys_and_are_stable() {
        assert_eq!(key(1).id(), key(1).id());
        assert_ne!(key(1).id(), key(2).id());
        assert_eq!(key(1).id().to_string().len(), 16);
    }

    #[test]
    fn generated_keys_are_distinct() {
        let first = EncryptionKey::generate().unwrap();
        let second = EncryptionKey::generate().unwrap();
        assert_ne!(first.id(), second.id());
    }

    fn field_part() -> impl Strategy<Value = String> {
        "[a-z_:0-9-]{0,24}"
    }

    proptest! {
        #[test]
        fn any_plaintext_and_field_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..512),
            table in field_part(), row in field_part(), name in field_part(),
        ) {
            let ring = KeyRing::new(key(7), vec![]);
            let field = SealedField::new(table, row, name);
            let blob = ring.encrypt(&plaintext, &field).unwrap();
            let opened = ring.decrypt(&blob, &field).unwrap();
            prop_assert_eq!(opened.expose_secret(), plaintext.as_slice());
        }

        #[test]
        fn any_single_flipped_bit_is_refused(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            position in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let ring = KeyRing::new(key(7), vec![]);
            let field = refresh_token_of("42");
            let mut blob = ring.encrypt(&plaintext, &field).unwrap();
            let at = position.index(blob.len());
            blob[at] ^= 1 << bit;
            prop_assert!(ring.decrypt(&blob, &field).is_err());
        }

        #[test]
        fn a_blob_for_one_row_never_opens_for_another(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            row in "[0-9]{1,6}", other_row in "[0-9]{1,6}",
        ) {
            prop_assume!(row != other_row);
            let ring = KeyRing::new(key(7), vec![]);
            let blob = ring.encrypt(&plaintext, &refresh_token_of(&row)).unwrap();
            let result = ring.decrypt(&blob, &refresh_token_of(&other_row));
            let refused = matches!(result, Err(VaultError::TamperedOrForeign { .. }));
            prop_assert!(refused, "a blob sealed for another row was opened");
        }
    }
}
