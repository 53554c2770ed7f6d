//! The real `regentra demo` binary as a child process, for the browser test and the API test of
//! the command itself: started with `--port 0 --sim-port 0` (the bound URLs are read from what
//! it prints), a temporary `--data-dir` and a known `--api-token`; interrupted like Ctrl-C.
//!
//! Shared by `tests/browser/main.rs` and `tests/api/demo_story.rs` (`#[path]` module).

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The API token the process is started with.
pub const PROCESS_API_TOKEN: &str = "rgt_browser_test_token_0123456789";

/// How long the demo may take to start (a cold debug binary, a busy CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running `regentra demo`; killed when dropped.
pub struct DemoProcess {
    child: Child,
    /// Everything printed on stdout up to "Press Ctrl-C to stop.".
    pub banner: String,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub app_url: String,
    pub teams_page_url: String,
    pub technician_email: String,
    pub technician_password: String,
    pub api_token: String,
}

impl DemoProcess {
    /// Starts the binary with a fresh data directory and waits until it has printed its banner.
    pub async fn start(data_dir: &Path, extra_args: &[&str]) -> DemoProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_regentra"));
        command
            .arg("demo")
            .args([
                "--port",
                "0",
                "--sim-port",
                "0",
                "--api-token",
                PROCESS_API_TOKEN,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .env_remove("REGENTRA_DEMO_API_TOKEN")
            .env("REGENTRA_LOG", "warn,regentra=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("starting target/…/regentra demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();

        let read_banner = async {
            let mut banner = String::new();
            while let Some(line) = lines.next_line().await.expect("reading the demo's stdout") {
                banner.push_str(&line);
                banner.push('\n');
                if line.contains("Press Ctrl-C to stop.") {
                    return banner;
                }
            }
            panic!("regentra demo ended before it was ready; it printed:\n{banner}");
        };
        let banner = tokio::time::timeout(START_TIMEOUT, read_banner)
            .await
            .unwrap_or_else(|_| panic!("regentra demo did not start within {START_TIMEOUT:?}"));
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let field = |label: &str| -> String {
            banner
                .lines()
                .find_map(|line| line.trim_start().strip_prefix(label))
                .map(|rest| rest.trim().to_owned())
                .unwrap_or_else(|| panic!("the banner has no {label:?} line:\n{banner}"))
        };
        let app_url = field("Helpdesk:").trim_end_matches('/').to_owned();
        let teams_page_url = field("Teams (sim):");
        let login = field("Sign in as:");
        let (technician_email, technician_password) = login
            .split_once(" / ")
            .map(|(email, password)| (email.trim().to_owned(), password.trim().to_owned()))
            .unwrap_or_else(|| panic!("cannot read the login from {login:?}"));
        let api_token = field("API token:")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();

        assert_eq!(
            api_token, PROCESS_API_TOKEN,
            "the demo uses the given --api-token"
        );
        let process = DemoProcess {
            child,
            banner,
            app_url,
            teams_page_url,
            technician_email,
            technician_password,
            api_token,
        };
        process.wait_until_healthy().await;
        process
    }

    /// Waits until `/healthz` answers 200.
    async fn wait_until_healthy(&self) {
        let url = format!("{}/healthz", self.app_url);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status() == 200
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} did not answer 200 within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits for the process to end.
    pub async fn interrupt_and_wait(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the demo is still running");
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -INT {pid} failed");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("regentra demo did not stop within 30 s of Ctrl-C")
            .expect("waiting for regentra demo")
    }
}
