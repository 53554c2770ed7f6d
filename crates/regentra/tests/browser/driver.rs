//! Headless Chromium through chromedriver, for the browser test: finding the two programs,
//! starting chromedriver on a free loopback port (killed when dropped), opening a WebDriver
//! session with a fresh profile, explicit waits, and PNG screenshots as test artifacts.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

/// How long one explicit wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Where chromium and chromedriver are.
pub struct BrowserTools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Looks for Debian's `chromium` and `chromedriver` on the PATH.
pub fn find_browser_tools() -> Option<BrowserTools> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(on_path)?;
    let chromedriver = on_path("chromedriver")?;
    Some(BrowserTools {
        chromium,
        chromedriver,
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A chromedriver child process; killed when dropped.
pub struct ChromeDriver {
    _child: Child,
    url: String,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub async fn start(tools: &BrowserTools) -> ChromeDriver {
        let port = free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        wait_until("chromedriver to be ready", || async {
            let response = reqwest::get(&status).await.ok()?;
            let body: serde_json::Value = response.json().await.ok()?;
            (body["value"]["ready"] == true).then_some(())
        })
        .await;
        ChromeDriver { _child: child, url }
    }

    /// A new headless Chromium session with a fresh profile in `profile_dir`.
    pub async fn session(&self, tools: &BrowserTools, profile_dir: &Path) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile_dir.display()),
                ]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        ClientBuilder::rustls()
            .expect("TLS roots for fantoccini")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("opening a Chromium session through chromedriver")
    }
}

/// A free port on 127.0.0.1 (chromedriver cannot be told to pick one itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// Polls `check` every 100 ms until it returns `Some`; fails the test after [`WAIT`].
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until an element matching `css` exists and its text contains `text`; returns the text.
pub async fn wait_for_text(browser: &Client, css: &str, text: &str) -> String {
    wait_until(&format!("{css} to contain {text:?}"), || async {
        let elements = browser.find_all(Locator::Css(css)).await.ok()?;
        for element in elements {
            if let Ok(found) = element.text().await
                && found.contains(text)
            {
                return Some(found);
            }
        }
        None
    })
    .await
}

/// Waits until the element `css` exists and returns it.
pub async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    wait_until(&format!("{css} to appear"), || async {
        browser.find(Locator::Css(css)).await.ok()
    })
    .await
}

/// Saves PNG screenshots under `<target>/test-artifacts/browser/`.
pub struct Screenshots {
    dir: PathBuf,
    count: usize,
    pub saved: Vec<PathBuf>,
}

impl Screenshots {
    /// The artifact folder (`CARGO_TARGET_DIR` if set, else the workspace's `target`), emptied
    /// of older screenshots.
    pub fn new() -> Screenshots {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        let dir = target.join("test-artifacts").join("browser");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the screenshot folder");
        Screenshots {
            dir,
            count: 0,
            saved: Vec::new(),
        }
    }

    /// Saves the current page as `NN-name.png` and prints its path.
    pub async fn take(&mut self, browser: &Client, name: &str) {
        self.count += 1;
        let path = self.dir.join(format!("{:02}-{name}.png", self.count));
        let png = browser.screenshot().await.expect("taking a screenshot");
        std::fs::write(&path, png).expect("writing the screenshot");
        let shown = path.canonicalize().unwrap_or_else(|_| path.clone());
        println!("screenshot: {}", shown.display());
        self.saved.push(shown);
    }
}
