//! `regentra keys rotate`: re-encrypt every stored secret (the Teams connection's tokens, the
//! PKCE verifiers of sign-ins in progress) under a new key, then retire the old key.
//!
//! Run it while no Regentra server is running: a running server keeps its key ring in memory
//! and would go on sealing under the old key (the command then stops and keeps the old key, so
//! nothing becomes unreadable). This module never prints key material.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::bridge::connection::rotate_keys;
use crate::bridge::vault::KeyRing;
use crate::config::{Config, ConfigFlags, StorageFlags};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored secret under a new key, keeping the old key readable until done.
    ///
    /// With the key in the key file (default) a new key file is written and the old key is kept
    /// as encryption.key.old.<id> until everything is re-encrypted. With REGENTRA_ENCRYPTION_KEY
    /// the first run saves the current key and says how to continue: set a new key, then run
    /// this command again. Stop the server first.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub storage: StorageFlags,
}

impl KeysCommand {
    /// The flags that count for the configuration (storage and log only).
    pub fn config_flags(&self) -> ConfigFlags {
        match self {
            KeysCommand::Rotate(args) => ConfigFlags {
                storage: args.storage.clone(),
                ..Default::default()
            },
        }
    }
}

/// Runs a `keys` subcommand.
pub async fn run(config: Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Rotate(_) => rotate(config).await,
    }
}

async fn rotate(config: Config) -> anyhow::Result<ExitCode> {
    let db = crate::app::open_database(&config)
        .await
        .with_context(|| format!("cannot open the database ({})", config.database.describe()))?;
    let mut keys = KeyRing::load(config.encryption_key.as_ref(), &config.data_dir)
        .context("cannot load the encryption key")?;
    let previous = keys.active_key_id();
    let report = rotate_keys(&db, &mut keys, &config.data_dir)
        .await
        .context("key rotation stopped")?;
    db.close().await;
    let retired = report
        .retired_key_ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    println!(
        "Rotated the encryption key: {} stored secret(s) re-encrypted under key {} (was {}). \
         Old key(s) retired: {}.",
        report.secrets_reencrypted,
        report.active_key_id,
        previous,
        if retired.is_empty() {
            "none".to_owned()
        } else {
            retired.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}
