//! Where the vault's keys come from, and how `regentra keys rotate` replaces them.
//!
//! The active key is `REGENTRA_ENCRYPTION_KEY` (base64 of exactly 32 bytes) when set, otherwise the
//! key file `encryption.key` in the data directory, created on first start. Files in the data
//! directory, each holding the base64 of 32 bytes and a newline (the same text the variable takes,
//! so a file key can be moved into the environment as is):
//!
//! | file | role |
//! |---|---|
//! | `encryption.key` | the active key when the variable is not set |
//! | `encryption.key.old.<key id>` | a previous key, readable until a rotation has finished |
//!
//! When the variable is set and `encryption.key` exists too, that file's key stays readable, so
//! switching from a file to the variable loses nothing.
//!
//! Key files are created with mode 0600 in one step (`create_new` + `mode`), never widened later.
//! A key file that group or others may read is **refused** at start (an error, not a warning): a
//! key that every local account can copy protects nothing, and `chmod 600` is a one-line fix.
//!
//! Rotation, driven by the `keys rotate` command:
//! 1. [`KeyRing::generate_new_active`] saves the current key as `encryption.key.old.<id>`, then
//!    atomically replaces `encryption.key` with a new key (write a temporary file, rename).
//!    With the key in `REGENTRA_ENCRYPTION_KEY` Regentra cannot change it: the operator runs
//!    [`KeyRing::save_active_as_old_key`], sets a new value, restarts, and continues with step 2.
//! 2. The caller re-encrypts every blob for which [`KeyRing::needs_reencryption`] holds.
//! 3. Only after the caller has confirmed step 2 finished: [`KeyRing::retire_old_keys`] deletes
//!    the old key files. Blobs still sealed under them become unreadable (an `UnknownKey` error).
//!
//! Rotate while no other Regentra process is running: a running server keeps its key ring in
//! memory and would go on writing under the old key.
//!
//! This module must never print key bytes (errors name files and key ids only), write a key file
//! that is readable by others even for a moment, or overwrite the active key file in place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::{EncryptionKey, KEY_LEN, KeyId, KeyRing};

/// The environment variable that holds the active key.
pub const ENV_KEY_VAR: &str = "REGENTRA_ENCRYPTION_KEY";
/// File name of the active key in the data directory.
pub const KEY_FILE_NAME: &str = "encryption.key";
/// File name prefix of old keys kept readable during a rotation (followed by the key id).
pub const OLD_KEY_FILE_PREFIX: &str = "encryption.key.old.";
/// Temporary file a new active key is written to before it is renamed into place.
const NEW_KEY_TEMP_NAME: &str = "encryption.key.new";
/// How to make a valid key, quoted in every key error.
const HOW_TO_MAKE_A_KEY: &str = "`openssl rand -base64 32`";

/// Where the active key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `REGENTRA_ENCRYPTION_KEY`.
    Environment,
    /// A key file in the data directory.
    File(PathBuf),
    /// Built in memory with [`KeyRing::new`].
    Memory,
}

/// Why the keys could not be loaded, created or rotated. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `REGENTRA_ENCRYPTION_KEY` is set but not a base64-encoded 32-byte key.
    #[error(
        "{ENV_KEY_VAR} is not usable: {problem}. It must be the base64 encoding of exactly 32 \
         random bytes; create one with {HOW_TO_MAKE_A_KEY}"
    )]
    InvalidEnvKey { problem: String },
    /// A key file exists but does not hold a base64-encoded 32-byte key.
    #[error(
        "the key file {} is not usable: {problem}. It must hold the base64 encoding of exactly \
         32 bytes (as made by {HOW_TO_MAKE_A_KEY}); restore it from your backup. Without the \
         original key the stored Teams tokens cannot be decrypted: if it is lost, delete the \
         file, restart, and reconnect the Teams account",
        path.display()
    )]
    InvalidKeyFile { path: PathBuf, problem: String },
    /// A key file can be read by group or others.
    #[error(
        "the key file {} can be read by other users (mode {mode:03o}); Regentra refuses to use \
         it. Restrict it with `chmod 600 {}` (owned by the user Regentra runs as) and restart",
        path.display(),
        path.display()
    )]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Rotation was asked for while the active key comes from the environment.
    #[error(
        "the active encryption key comes from {ENV_KEY_VAR}, so Regentra cannot replace it. To \
         rotate: keep the current key readable (Regentra saves it as `{OLD_KEY_FILE_PREFIX}<key \
         id>` in the data directory), set {ENV_KEY_VAR} to a new key made with \
         {HOW_TO_MAKE_A_KEY}, restart, and run `regentra keys rotate` again"
    )]
    ActiveKeyFromEnvironment,
    /// The operating system could not provide random bytes for a new key.
    #[error("the operating system's random number generator failed ({0}); no key was created")]
    Randomness(String),
}

impl KeyRing {
    /// Loads the key ring for a process: the active key from `env_key`
    /// (`REGENTRA_ENCRYPTION_KEY`, pass `None` when unset) or else from `encryption.key` in
    /// `data_dir`, creating that file (mode 0600) on first start; plus every
    /// `encryption.key.old.*` file as a readable old key.
    pub fn load(env_key: Option<&SecretString>, data_dir: &Path) -> Result<Self, KeyError> {
        match env_key {
            Some(encoded) => {
                let active = decode_key(encoded.expose_secret())
                    .map_err(|problem| KeyError::InvalidEnvKey { problem })?;
                let mut old = read_old_key_files(data_dir)?;
                if let Some(file_key) = read_key_file(&data_dir.join(KEY_FILE_NAME))? {
                    old.push(file_key);
                }
                Ok(Self::from_parts(active, KeySource::Environment, old))
            }
            None => {
                create_data_dir(data_dir)?;
                let path = data_dir.join(KEY_FILE_NAME);
                let active = match read_key_file(&path)? {
                    Some(key) => key,
                    None => create_key_file(&path)?,
                };
                let old = read_old_key_files(data_dir)?;
                Ok(Self::from_parts(active, KeySource::File(path), old))
            }
        }
    }

    /// Rotation step 1: keeps the current active key readable as `encryption.key.old.<id>`, then
    /// atomically replaces `encryption.key` with a new random key and makes it active. Returns
    /// the new key's id. Refused when the active key comes from `REGENTRA_ENCRYPTION_KEY`.
    pub fn generate_new_active(&mut self, data_dir: &Path) -> Result<KeyId, KeyError> {
        if *self.active_source() == KeySource::Environment {
            return Err(KeyError::ActiveKeyFromEnvironment);
        }
        create_data_dir(data_dir)?;
        self.save_active_as_old_key(data_dir)?;

        let new_key = EncryptionKey::generate()?;
        let temp = data_dir.join(NEW_KEY_TEMP_NAME);
        // A leftover from an interrupted rotation holds a key nothing was encrypted with.
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("remove the leftover", &temp, source)),
        }
        write_new_key_file(&temp, &new_key)
            .map_err(|source| io_error("write the new key file", &temp, source))?;
        let path = data_dir.join(KEY_FILE_NAME);
        fs::rename(&temp, &path)
            .map_err(|source| io_error("move the new key into place at", &path, source))?;
        sync_dir(data_dir);

        let new_id = new_key.id();
        self.replace_active(new_key, KeySource::File(path));
        Ok(new_id)
    }

    /// Writes the active key to `encryption.key.old.<id>` (mode 0600) so it stays readable after
    /// the active key changes. Succeeds if that file already holds this key. Returns its path.
    pub fn save_active_as_old_key(&self, data_dir: &Path) -> Result<PathBuf, KeyError> {
        create_data_dir(data_dir)?;
        let active = self.active_key();
        let path = data_dir.join(format!("{OLD_KEY_FILE_PREFIX}{}", active.id()));
        match write_new_key_file(&path, active) {
            Ok(()) => {
                sync_dir(data_dir);
                Ok(path)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                match read_key_file(&path)? {
                    Some(existing) if existing.id() == active.id() => Ok(path),
                    _ => Err(KeyError::InvalidKeyFile {
                        path,
                        problem: "it does not hold the key its name says".to_owned(),
                    }),
                }
            }
            Err(source) => Err(io_error("save the current key to", &path, source)),
        }
    }

    /// Rotation step 3, only after every blob has been re-encrypted under the active key:
    /// deletes the `encryption.key.old.*` files and forgets the old keys. Returns the ids of the
    /// keys forgotten. Blobs still sealed under them fail from now on with `UnknownKey`.
    pub fn retire_old_keys(&mut self, data_dir: &Path) -> Result<Vec<KeyId>, KeyError> {
        for path in old_key_file_paths(data_dir)? {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("delete the old key file", &path, source)),
            }
        }
        sync_dir(data_dir);
        Ok(self.drop_old_keys())
    }
}

/// Decodes the text form of a key (base64 of 32 bytes, surrounding whitespace ignored). The
/// problem text never quotes the input: it is a secret.
fn decode_key(text: &str) -> Result<EncryptionKey, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("it is empty".to_owned());
    }
    let decoded = Zeroizing::new(
        BASE64
            .decode(trimmed)
            .map_err(|_| "it is not valid base64".to_owned())?,
    );
    if decoded.len() != KEY_LEN {
        return Err(format!(
            "it decodes to {} bytes, not {KEY_LEN}",
            decoded.len()
        ));
    }
    let bytes = SecretBox::init_with_mut(|buffer: &mut [u8; KEY_LEN]| {
        buffer.copy_from_slice(&decoded);
    });
    Ok(EncryptionKey::from_bytes(bytes))
}

/// Reads a key file; `None` when it does not exist.
fn read_key_file(path: &Path) -> Result<Option<EncryptionKey>, KeyError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("open the key file", path, source)),
    };
    let metadata = file
        .metadata()
        .map_err(|source| io_error("inspect the key file", path, source))?;
    if !metadata.is_file() {
        return Err(KeyError::InvalidKeyFile {
            path: path.to_owned(),
            problem: "it is not a regular file".to_owned(),
        });
    }
    refuse_if_readable_by_others(path, &metadata)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|source| KeyError::InvalidKeyFile {
            path: path.to_owned(),
            problem: format!("it could not be read as text ({source})"),
        })?;
    decode_key(&text)
        .map(Some)
        .map_err(|problem| KeyError::InvalidKeyFile {
            path: path.to_owned(),
            problem,
        })
}

#[cfg(unix)]
fn refuse_if_readable_by_others(path: &Path, metadata: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::KeyFileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_readable_by_others(_path: &Path, _metadata: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// First start: creates `encryption.key` with a new key. If another process created it in the
/// meantime, that process's key wins and is read instead.
fn create_key_file(path: &Path) -> Result<EncryptionKey, KeyError> {
    let key = EncryptionKey::generate()?;
    match write_new_key_file(path, &key) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            Ok(key)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read_key_file(path)?
            .ok_or_else(|| KeyError::InvalidKeyFile {
                path: path.to_owned(),
                problem: "it vanished while it was being created".to_owned(),
            }),
        Err(source) => Err(io_error("create the key file", path, source)),
    }
}

/// Creates `path` (which must not exist) with mode 0600 from the first moment, writes the key's
/// text form and flushes it to disk. A half-written file is removed again.
fn write_new_key_file(path: &Path, key: &EncryptionKey) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut text = Zeroizing::new(BASE64.encode(key.expose_bytes()));
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        drop(file);
        // Best effort: the write error is what the caller needs to see.
        let _ = fs::remove_file(path);
        return Err(error);
    }
    Ok(())
}

fn old_key_file_paths(data_dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error("list the data directory", data_dir, source)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|source| io_error("list the data directory", data_dir, source))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(OLD_KEY_FILE_PREFIX))
        {
            paths.push(entry.path());
        }
    }
    // Stable order, so the key ring (and its Debug output) does not depend on directory order.
    paths.sort();
    Ok(paths)
}

fn read_old_key_files(data_dir: &Path) -> Result<Vec<EncryptionKey>, KeyError> {
    let mut keys = Vec::new();
    for path in old_key_file_paths(data_dir)? {
        if let Some(key) = read_key_file(&path)? {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn create_data_dir(data_dir: &Path) -> Result<(), KeyError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        // Only applies to directories created here; an existing data dir keeps its mode.
        builder.mode(0o700);
    }
    builder
        .create(data_dir)
        .map_err(|source| io_error("create the data directory", data_dir, source))
}

/// Makes a create or rename in `dir` durable. Best effort: some file systems cannot fsync a
/// directory, and the file itself has already been synced.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::vault::{SealedField, VaultError};
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn env_key(text: &str) -> SecretString {
        SecretString::from(text)
    }

    /// base64 of 32 bytes of 0x11 — a made-up test key.
    const TEST_KEY_1: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
    /// base64 of 32 bytes of 0x22.
    const TEST_KEY_2: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";

    fn field() -> SealedField {
        SealedField::new("teams_connection", "1", "refresh_token")
    }

    #[test]
    fn first_start_creates_a_0600_key_file_that_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("regentra-data");
        let first = KeyRing::load(None, &data_dir).unwrap();
        let path = data_dir.join(KEY_FILE_NAME);
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(*first.active_source(), KeySource::File(path.clone()));

        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(BASE64.decode(text.trim()).unwrap().len(), 32);

        let blob = first.encrypt(b"token", &field()).unwrap();
        let second = KeyRing::load(None, &data_dir).unwrap();
        assert_eq!(second.active_key_id(), first.active_key_id());
        assert_eq!(
            second.decrypt(&blob, &field()).unwrap().expose_secret(),
            b"token"
        );
    }

    #[test]
    fn env_key_is_used_and_no_key_file_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(Some(&env_key(&format!(" {TEST_KEY_1}\n"))), dir.path()).unwrap();
        assert_eq!(*ring.active_source(), KeySource::Environment);
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
        let same = KeyRing::load(Some(&env_key(TEST_KEY_1)), dir.path()).unwrap();
        assert_eq!(ring.active_key_id(), same.active_key_id());
    }

    #[test]
    fn bad_env_key_names_the_variable_and_how_to_make_one_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        for (value, problem) in [
            ("not base64 at all!", "it is not valid base64"),
            ("AAAAAAAAAAAAAAAAAAAAAA==", "it decodes to 16 bytes, not 32"),
            ("   ", "it is empty"),
        ] {
            let error = KeyRing::load(Some(&env_key(value)), dir.path()).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, KeyError::InvalidEnvKey { .. }));
            assert!(
                message.starts_with("REGENTRA_ENCRYPTION_KEY is not usable"),
                "{message}"
            );
            assert!(message.contains(problem), "{message}");
            assert!(message.contains("openssl rand -base64 32"), "{message}");
            if !value.trim().is_empty() {
                assert!(
                    !message.contains(value),
                    "the message echoes the key: {message}"
                );
            }
        }
    }

    #[test]
    fn key_file_with_wrong_length_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        fs::write(&path, "AAAAAAAAAAAAAAAAAAAAAA==\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = KeyRing::load(None, dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, KeyError::InvalidKeyFile { .. }));
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("decodes to 16 bytes, not 32"), "{message}");
    }

    #[test]
    fn empty_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        fs::write(&path, "").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = KeyRing::load(None, dir.path()).unwrap_err();
        assert!(error.to_string().contains("it is empty"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn key_file_readable_by_others_is_refused_with_the_chmod_fix() {
        let dir = tempfile::tempdir().unwrap();
        KeyRing::load(None, dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = KeyRing::load(None, dir.path()).unwrap_err();
        assert!(matches!(
            error,
            KeyError::KeyFileTooOpen { mode: 0o644, .. }
        ));
        assert!(
            error
                .to_string()
                .contains(&format!("chmod 600 {}", path.display()))
        );
    }

    #[test]
    fn rotation_keeps_old_blobs_readable_until_the_old_key_is_retired() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::load(None, dir.path()).unwrap();
        let k1 = ring.active_key_id();
        let old_blob = ring.encrypt(b"token", &field()).unwrap();

        let k2 = ring.generate_new_active(dir.path()).unwrap();
        assert_ne!(k1, k2);
        assert_eq!(ring.active_key_id(), k2);
        assert_eq!(ring.old_key_ids(), vec![k1]);
        let old_file = dir.path().join(format!("{OLD_KEY_FILE_PREFIX}{k1}"));
        assert_eq!(mode_of(&old_file), 0o600);
        assert_eq!(mode_of(&dir.path().join(KEY_FILE_NAME)), 0o600);
        assert!(!dir.path().join(NEW_KEY_TEMP_NAME).exists());

        // Old blob still opens, here and after a restart mid-rotation.
        assert_eq!(
            ring.decrypt(&old_blob, &field()).unwrap().expose_secret(),
            b"token"
        );
        let restarted = KeyRing::load(None, dir.path()).unwrap();
        assert_eq!(restarted.active_key_id(), k2);
        assert_eq!(restarted.old_key_ids(), vec![k1]);
        assert!(restarted.decrypt(&old_blob, &field()).is_ok());

        assert!(ring.needs_reencryption(&old_blob));
        let new_blob = ring.reencrypt(&old_blob, &field()).unwrap();
        assert!(!ring.needs_reencryption(&new_blob));

        assert_eq!(ring.retire_old_keys(dir.path()).unwrap(), vec![k1]);
        assert!(!old_file.exists());
        assert_eq!(
            ring.decrypt(&new_blob, &field()).unwrap().expose_secret(),
            b"token"
        );
        assert!(matches!(
            ring.decrypt(&old_blob, &field()),
            Err(VaultError::UnknownKey { key_id, .. }) if key_id == k1
        ));

        let after_restart = KeyRing::load(None, dir.path()).unwrap();
        assert_eq!(after_restart.active_key_id(), k2);
        assert!(after_restart.old_key_ids().is_empty());
        assert!(after_restart.decrypt(&new_blob, &field()).is_ok());
    }

    #[test]
    fn rotation_with_an_environment_key_is_refused_with_instructions() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::load(Some(&env_key(TEST_KEY_1)), dir.path()).unwrap();
        let error = ring.generate_new_active(dir.path()).unwrap_err();
        assert!(matches!(error, KeyError::ActiveKeyFromEnvironment));
        assert!(
            error
                .to_string()
                .contains("set REGENTRA_ENCRYPTION_KEY to a new key")
        );
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
    }

    #[test]
    fn environment_key_rotation_keeps_the_previous_key_readable_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let before = KeyRing::load(Some(&env_key(TEST_KEY_1)), dir.path()).unwrap();
        let blob = before.encrypt(b"token", &field()).unwrap();
        let saved = before.save_active_as_old_key(dir.path()).unwrap();
        assert_eq!(mode_of(&saved), 0o600);
        // Saving twice is harmless.
        assert_eq!(before.save_active_as_old_key(dir.path()).unwrap(), saved);

        let after = KeyRing::load(Some(&env_key(TEST_KEY_2)), dir.path()).unwrap();
        assert_ne!(after.active_key_id(), before.active_key_id());
        assert_eq!(after.old_key_ids(), vec![before.active_key_id()]);
        assert_eq!(
            after.decrypt(&blob, &field()).unwrap().expose_secret(),
            b"token"
        );
    }

    #[test]
    fn switching_from_the_key_file_to_the_environment_keeps_file_secrets_readable() {
        let dir = tempfile::tempdir().unwrap();
        let file_ring = KeyRing::load(None, dir.path()).unwrap();
        let blob = file_ring.encrypt(b"token", &field()).unwrap();
        let env_ring = KeyRing::load(Some(&env_key(TEST_KEY_2)), dir.path()).unwrap();
        assert_eq!(env_ring.old_key_ids(), vec![file_ring.active_key_id()]);
        assert!(env_ring.decrypt(&blob, &field()).is_ok());
    }
}
