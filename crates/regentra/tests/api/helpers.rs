//! `TestApp`: the real Regentra application on 127.0.0.1:0 with a fresh database, a seeded
//! technician and API token, and HTTP helpers for the JSON API (bearer token) and the browser
//! UI (cookie jar, same-origin form posts like a real browser sends them).

use std::sync::LazyLock;

use regentra::app::App;
use regentra::config::Config;
use regentra::store::testing::{self, TestDb};
use regentra::store::{self, Db};
use regentra::tickets::lifecycle::ReopenWindow;
use regentra::tickets::{
    ChatId, EntraObjectId, GraphMessageId, NewContact, TechnicianEmail, TenantId,
};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::redirect::Policy;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Logs of the app under test go to the test output only when `TEST_LOG` is set.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,regentra=debug"))
            .with_test_writer()
            .try_init();
    }
});

pub const TECH_EMAIL: &str = "alex@msp.example";
pub const TECH_NAME: &str = "Alex Admin";
pub const TECH_PASSWORD: &str = "correct horse battery staple";

/// A running app. Dropping it stops the server and deletes the database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub address: String,
    /// "sqlite" or "postgres", for assertion messages.
    pub label: &'static str,
    pub db: Db,
    /// The seeded API token (plaintext, as the admin command would have printed it).
    pub api_token: SecretString,
    /// JSON API client (no cookies).
    pub api: reqwest::Client,
    /// Browser-like client: cookie jar, no automatic redirects (tests assert them).
    pub browser: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Keeps the database (and its temp dir) alive while the app runs.
    pub test_db: TestDb,
    /// The running app's shared state (Teams connection, database, config) for driving workers
    /// and services directly.
    pub state: regentra::app::AppState,
    /// The Microsoft 365 simulator the app talks to ([`TestApp::with_simulator`]), seeded with
    /// `m365_sim::demo::demo_scenario` and the app's real redirect URI.
    pub sim: Option<m365_sim::RunningSimulator>,
}

impl TestApp {
    /// The app on a fresh SQLite database.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_on(testing::fresh_sqlite().await).await
    }

    /// The app on SQLite and, when `REGENTRA_TEST_POSTGRES_URL` is set, also on a fresh
    /// PostgreSQL schema (otherwise a visible "skipped" line is printed).
    pub async fn spawn_all() -> Vec<TestApp> {
        let mut apps = vec![TestApp::spawn().await];
        if let Some(postgres) = testing::fresh_postgres().await {
            apps.push(TestApp::spawn_on(postgres).await);
        }
        apps
    }

    /// The app on SQLite, configured as if served behind a TLS proxy at `public_url`.
    pub async fn spawn_with_public_url(public_url: &str) -> TestApp {
        TestApp::spawn_configured(testing::fresh_sqlite().await, Some(public_url), None).await
    }

    /// The app on a fresh SQLite database, its Microsoft settings (`REGENTRA_MS_*`, authority,
    /// Graph URL) pointing at a fresh simulator running the demo world
    /// (`m365_sim::demo`), whose app registration lists this app's callback. Nothing is
    /// connected yet: see `connect_support_user` (tests/api/teams_flow.rs).
    pub async fn with_simulator() -> TestApp {
        TestApp::with_simulator_on(testing::fresh_sqlite().await).await
    }

    /// [`TestApp::with_simulator`] on SQLite and, when configured, on PostgreSQL too.
    pub async fn all_with_simulator() -> Vec<TestApp> {
        let mut apps = vec![TestApp::with_simulator().await];
        if let Some(postgres) = testing::fresh_postgres().await {
            apps.push(TestApp::with_simulator_on(postgres).await);
        }
        apps
    }

    /// [`TestApp::with_simulator`] on the given database.
    pub async fn with_simulator_on(test_db: TestDb) -> TestApp {
        let sim = m365_sim::Simulator::start(
            m365_sim::SimConfig::default(),
            // The real redirect URI is known once the app is bound; loaded again below.
            m365_sim::demo::demo_scenario("http://127.0.0.1:1/integrations/teams/callback"),
        )
        .await
        .expect("starting the simulator");
        TestApp::spawn_configured(test_db, None, Some(sim)).await
    }

    async fn spawn_on(test_db: TestDb) -> TestApp {
        TestApp::spawn_configured(test_db, None, None).await
    }

    /// [`TestApp::with_simulator`] with settings changed by `configure` before the app is built
    /// (e.g. a short `microsoft.graph_timeout`).
    pub async fn with_simulator_configured(configure: impl FnOnce(&mut Config)) -> TestApp {
        let sim = m365_sim::Simulator::start(
            m365_sim::SimConfig::default(),
            m365_sim::demo::demo_scenario("http://127.0.0.1:1/integrations/teams/callback"),
        )
        .await
        .expect("starting the simulator");
        TestApp::spawn_configured_with(testing::fresh_sqlite().await, None, Some(sim), configure)
            .await
    }

    /// Stops the server and its background workers, as if Regentra were shut down; the
    /// database, the simulator and `state` stay usable.
    pub async fn stop_server(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    async fn spawn_configured(
        test_db: TestDb,
        public_url: Option<&str>,
        sim: Option<m365_sim::RunningSimulator>,
    ) -> TestApp {
        TestApp::spawn_configured_with(test_db, public_url, sim, |_| {}).await
    }

    async fn spawn_configured_with(
        test_db: TestDb,
        public_url: Option<&str>,
        sim: Option<m365_sim::RunningSimulator>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        LazyLock::force(&TRACING);
        let data_dir = test_db.data_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("regentra-pg-{}", uuid::Uuid::now_v7()))
        });
        let mut config = Config::for_tests(data_dir);
        config.public_url = public_url.map(|url| url::Url::parse(url).unwrap());
        if let Some(sim) = &sim {
            config.microsoft.client_id = Some(m365_sim::demo::REGENTRA_CLIENT_ID.to_owned());
            config.microsoft.client_secret = Some(SecretString::from(
                m365_sim::demo::REGENTRA_CLIENT_SECRET,
            ));
            config.microsoft.authority = sim.base_url();
            config.microsoft.graph_url = sim.base_url();
        }
        configure(&mut config);
        let db = test_db.db.clone();

        let now = OffsetDateTime::now_utc();
        let mut conn = db.acquire().await.expect("connection");
        let technician = store::technicians::create(
            &mut conn,
            store::technicians::NewTechnician {
                email: TechnicianEmail::parse(TECH_EMAIL).unwrap(),
                display_name: TECH_NAME.to_owned(),
                password: SecretString::from(TECH_PASSWORD),
            },
            now,
        )
        .await
        .expect("seeding the technician");
        let (_, api_token) = store::api_tokens::create(&mut conn, technician.id, "tests", now)
            .await
            .expect("seeding the API token");
        drop(conn);

        let app = App::build_with_db(config, db.clone())
            .await
            .expect("building the app");
        let address = format!("http://{}", app.address());
        if public_url.is_none() {
            assert_eq!(app.base_url().as_str(), format!("{address}/"));
        }
        if let Some(sim) = &sim {
            let redirect_uri = format!("{}integrations/teams/callback", app.base_url());
            sim.sim()
                .load_scenario(&m365_sim::demo::demo_scenario(&redirect_uri))
                .expect("seeding the simulator with the app's redirect URI");
        }
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                app.run_until_shutdown(shutdown)
                    .await
                    .expect("server failed");
            }
        });

        let api = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        let browser = reqwest::Client::builder()
            .redirect(Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        TestApp {
            address,
            label: test_db.label,
            db,
            api_token,
            api,
            browser,
            shutdown,
            server: Some(server),
            test_db,
            state,
            sim,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    // ------------------------------------------------------------------ JSON API

    fn bearer(&self) -> String {
        format!("Bearer {}", self.api_token.expose_secret())
    }

    pub async fn api_get(&self, path: &str) -> reqwest::Response {
        self.api
            .get(self.url(path))
            .header("authorization", self.bearer())
            .send()
            .await
            .unwrap()
    }

    pub async fn api_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.api
            .post(self.url(path))
            .header("authorization", self.bearer())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.api
            .patch(self.url(path))
            .header("authorization", self.bearer())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a manual ticket through the API and returns its JSON.
    pub async fn create_ticket(&self, subject: &str, client_id: Option<&str>) -> Value {
        let response = self
            .api_post("/api/v1/tickets", &serde_json::json!({"subject": subject, "client_id": client_id, "text": "Created by a test"}))
            .await;
        assert_eq!(response.status(), 201, "{}", self.label);
        response.json().await.unwrap()
    }

    /// Creates a client through the API and returns its JSON.
    pub async fn create_client(&self, name: &str, tenant: Option<&str>) -> Value {
        let response = self
            .api_post(
                "/api/v1/clients",
                &serde_json::json!({"name": name, "entra_tenant_id": tenant, "domains": []}),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", self.label);
        response.json().await.unwrap()
    }

    /// A client message arriving from Teams (what the poller will do), straight into the store.
    pub async fn receive_teams_message(
        &self,
        chat: &str,
        message_id: &str,
        sender_tenant: &str,
        sender_name: &str,
        text: &str,
    ) -> String {
        let now = OffsetDateTime::now_utc();
        let message = store::tickets::InboundClientMessage {
            chat_id: ChatId::parse(chat).unwrap(),
            graph_message_id: GraphMessageId::parse(message_id).unwrap(),
            sender: NewContact {
                entra_object_id: EntraObjectId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
                entra_tenant_id: TenantId::parse(sender_tenant).unwrap(),
                display_name: sender_name.to_owned(),
                email: None,
            },
            text: text.to_owned(),
            html: format!("<p>{text}</p>"),
            sent_at: now,
            last_modified: now,
            attachments: Vec::new(),
        };
        let received = store::tickets::receive_client_message(
            &mut self.db.acquire().await.unwrap(),
            &message,
            ReopenWindow::default(),
            now,
        )
        .await
        .expect("receiving a Teams message");
        received.ticket_id.to_string()
    }

    // ------------------------------------------------------------------ browser

    /// Headers a browser sends on a same-origin form post.
    pub fn same_origin_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_str(&self.address).unwrap());
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        headers
    }

    pub async fn get_page(&self, path: &str) -> reqwest::Response {
        self.browser.get(self.url(path)).send().await.unwrap()
    }

    /// The page's HTML, asserting a 200.
    pub async fn get_html(&self, path: &str) -> String {
        let response = self.get_page(path).await;
        assert_eq!(response.status(), 200, "GET {path} ({})", self.label);
        response.text().await.unwrap()
    }

    /// A same-origin form post, as the browser sends it.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.browser
            .post(self.url(path))
            .headers(self.same_origin_headers())
            .form(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_form(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("next", "/tickets"),
            ],
        )
        .await
    }

    /// Signs the browser in as the seeded technician.
    pub async fn login_as_technician(&self) {
        let response = self.login(TECH_EMAIL, TECH_PASSWORD).await;
        assert_eq!(
            response.status(),
            303,
            "login should redirect ({})",
            self.label
        );
        assert_eq!(location(&response), "/tickets");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The `Location` header of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The `Set-Cookie` header for the session cookie, if any.
pub fn session_set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|cookie| cookie.starts_with("regentra_session="))
}
