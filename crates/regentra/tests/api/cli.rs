//! The real `regentra` binary: help text, configuration errors, admin commands, first start.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::secrets::{PASSWORD, create_technician, regentra};

#[test]
fn help_lists_the_commands_and_their_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let output = regentra(dir.path()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("serve"), "{help}");
    assert!(help.contains("admin"), "{help}");

    let output = regentra(dir.path())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "--port",
        "REGENTRA_PORT",
        "--data-dir",
        "REGENTRA_DATA_DIR",
        "--database-url",
        "--poll-interval",
    ] {
        assert!(
            help.contains(needle),
            "serve --help mentions {needle}:\n{help}"
        );
    }
}

#[test]
fn bad_environment_value_stops_with_a_message_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = regentra(dir.path())
        .env("REGENTRA_PORT", "eighty")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        "regentra: configuration error: REGENTRA_PORT has an invalid value \"eighty\": expected a port number from 0 to 65535"
    );
}

#[test]
fn create_technician_refuses_short_passwords_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let short = create_technician(dir.path(), "sam@msp.example", "short");
    assert!(!short.status.success());
    let stderr = String::from_utf8(short.stderr).unwrap();
    assert!(stderr.contains("too short"), "{stderr}");
    assert!(!stderr.contains("short\n") || stderr.contains("too short"));

    assert!(
        create_technician(dir.path(), "sam@msp.example", PASSWORD)
            .status
            .success()
    );
    let again = create_technician(dir.path(), "SAM@msp.example", PASSWORD);
    assert!(!again.status.success());
    let stderr = String::from_utf8(again.stderr).unwrap();
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn create_api_token_for_an_unknown_technician_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = regentra(dir.path())
        .args([
            "admin",
            "create-api-token",
            "--email",
            "nobody@msp.example",
            "--name",
            "ci",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when no token was made"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("no technician with e-mail nobody@msp.example"),
        "{stderr}"
    );
    assert!(
        stderr.contains("regentra admin create-technician"),
        "{stderr}"
    );
}

#[tokio::test]
async fn first_start_with_an_empty_database_explains_how_to_create_a_technician() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(regentra(dir.path()))
        .args(["serve", "--port", "0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Guard against a hang only; the hint appears right after start-up.
    let found = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("regentra admin create-technician --email");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    child.kill().await.unwrap();
    assert!(found, "stderr was:\n{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|line| line.contains("No technician exists yet")),
        "{}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|line| line.contains("Regentra is listening on http://127.0.0.1:")),
        "{}",
        seen.join("\n")
    );
}
