//! Nothing stores or prints a secret it should not: the API token exists only as a hash in the
//! database, and the admin commands never echo the password.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

pub const PASSWORD: &str = "a very long admin password 42";

/// `regentra …` with a clean environment pointing at `data_dir`.
pub fn regentra(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regentra"));
    command
        .env_clear()
        .env("REGENTRA_DATA_DIR", data_dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

pub fn create_technician(data_dir: &Path, email: &str, password: &str) -> std::process::Output {
    let mut child = regentra(data_dir)
        .args([
            "admin",
            "create-technician",
            "--email",
            email,
            "--name",
            "Sam Admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every byte of every file in the data directory (database, WAL, shared memory).
fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn api_token_is_printed_once_and_stored_only_as_a_hash() {
    let dir = tempfile::tempdir().unwrap();

    // Arrange: a technician, created by the real binary with the password on stdin.
    let created = create_technician(dir.path(), "sam@msp.example", PASSWORD);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let printed = [created.stdout.as_slice(), created.stderr.as_slice()].concat();
    assert!(
        !contains(&printed, PASSWORD),
        "the password is never printed"
    );
    assert!(
        String::from_utf8_lossy(&created.stderr)
            .contains("Created technician Sam Admin <sam@msp.example>")
    );

    // Act: create an API token.
    let output = regentra(dir.path())
        .args([
            "admin",
            "create-api-token",
            "--email",
            "sam@msp.example",
            "--name",
            "ci",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout holds the token and nothing else"
    );
    assert!(token.starts_with("rgt_") && token.len() > 40, "{token}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains(token), "the token goes to stdout only");

    // Assert: the raw database files hold the hash, never the token or the password.
    let bytes = all_bytes_under(dir.path());
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, token),
        "plaintext API token found in the database files"
    );
    assert!(
        !contains(&bytes, &token["rgt_".len()..]),
        "token body found in the database files"
    );
    assert!(
        !contains(&bytes, PASSWORD),
        "plaintext password found in the database files"
    );
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        contains(&bytes, &hash),
        "the token's SHA-256 is what is stored"
    );

    // And the printed token really works against the API of an app on that database.
    let app = regentra::app::App::build(regentra::config::Config::for_tests(dir.path()))
        .await
        .unwrap();
    let base = app.base_url().to_string();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until_shutdown(shutdown.clone()));
    let response = reqwest::Client::new()
        .get(format!("{base}api/v1/tickets"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn sessions_and_api_use_leave_no_secret_in_the_database() {
    let app = crate::helpers::TestApp::spawn().await;
    app.login_as_technician().await;
    assert_eq!(app.api_get("/api/v1/tickets").await.status(), 200);
    let dir = app.test_db.data_dir.clone().unwrap();
    let bytes = all_bytes_under(&dir);
    use secrecy::ExposeSecret as _;
    assert!(!contains(&bytes, app.api_token.expose_secret()));
    assert!(!contains(&bytes, crate::helpers::TECH_PASSWORD));
}
