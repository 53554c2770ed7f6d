//! Test helpers: a started simulator with a plain reqwest client, the demo world, sign-in
//! through the real authorize/consent pages, and Graph calls that schema-check every answer.

use base64::Engine as _;
use m365_sim::demo;
use m365_sim::{ClockStart, RunningSimulator, Scenario, SimConfig, Simulator, ThrottleLimits};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const REDIRECT_URI: &str = "http://127.0.0.1:9/integrations/teams/callback";
pub const SCOPES: &str =
    "openid profile offline_access User.Read Chat.Read ChatMessage.Read ChatMessage.Send";
pub const VERIFIER: &str = "test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG";

pub fn frozen_start() -> time::OffsetDateTime {
    time::macros::datetime!(2026-03-02 09:00:00 UTC)
}

/// Deterministic settings: frozen clock, fixed token lifetime, no throttling unless a test wants it.
pub fn test_config() -> SimConfig {
    SimConfig {
        clock: ClockStart::FrozenAt(frozen_start()),
        access_token_lifetime_secs: 3600..=3600,
        throttling: ThrottleLimits::disabled(),
        ..SimConfig::default()
    }
}

pub fn demo_world() -> Scenario {
    demo::demo_scenario(REDIRECT_URI)
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

pub struct TestSim {
    #[expect(
        dead_code,
        reason = "owning it keeps the simulator serving for the whole test"
    )]
    pub running: RunningSimulator,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn html_attr(html: &str, selector: &str, attribute: &str) -> Option<String> {
    let document = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(selector).ok()?;
    document
        .select(&selector)
        .next()?
        .value()
        .attr(attribute)
        .map(str::to_owned)
}

pub fn query_param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl TestSim {
    pub async fn start() -> TestSim {
        TestSim::start_with(test_config(), demo_world()).await
    }

    pub async fn start_with(config: SimConfig, scenario: Scenario) -> TestSim {
        let running = Simulator::start(config, scenario)
            .await
            .expect("simulator starts");
        let base = running.base_url().as_str().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestSim {
            running,
            base,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn read(response: reqwest::Response) -> Resp {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        TestSim::read(request.send().await.expect("request reaches the simulator")).await
    }

    /// GET a Graph URL (path or absolute nextLink) and schema-check the answer as `definition`.
    pub async fn graph_get(&self, path_or_url: &str, token: &str, definition: &str) -> Resp {
        self.graph_get_with(path_or_url, token, definition, &[])
            .await
    }

    pub async fn graph_get_with(
        &self,
        path_or_url: &str,
        token: &str,
        definition: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        let mut request = self.http.get(url).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.send(request).await;
        check_graph_response(&response, definition);
        response
    }

    pub async fn graph_post(&self, path: &str, token: &str, body: &Value) -> Resp {
        let response = self
            .send(self.http.post(self.url(path)).bearer_auth(token).json(body))
            .await;
        check_graph_response(&response, "microsoft.graph.chatMessage");
        response
    }

    pub async fn control_get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn control_post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// Starts an authorize request and returns the response (sign-in page or error).
    pub async fn authorize(&self, tenant: &str, extra: &[(&str, &str)]) -> Resp {
        let code_challenge = challenge(VERIFIER);
        let mut params = vec![
            ("client_id", demo::REGENTRA_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", SCOPES),
            ("state", "state-123"),
            ("code_challenge", code_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in extra {
            params.retain(|(k, _)| k != key);
            params.push((key, value));
        }
        let url = format!("{}/{tenant}/oauth2/v2.0/authorize", self.base);
        self.send(self.http.get(url).query(&params)).await
    }

    /// Submits the sign-in page of `page` as `login`.
    pub async fn submit_sign_in(&self, page: &Resp, login: &str) -> Resp {
        let action = html_attr(&page.text, "#signin-form", "action").expect("sign-in form");
        let flow =
            html_attr(&page.text, "#signin-form input[name=flow]", "value").expect("flow field");
        self.send(
            self.http
                .post(self.url(&action))
                .form(&[("flow", flow.as_str()), ("login", login)]),
        )
        .await
    }

    /// Presses `#accept` or `#cancel` on a consent page.
    pub async fn submit_consent(&self, page: &Resp, button: &str) -> Resp {
        let action = html_attr(&page.text, "#consent-form", "action").expect("consent form");
        let flow =
            html_attr(&page.text, "#consent-form input[name=flow]", "value").expect("flow field");
        let value = html_attr(&page.text, &format!("#{button}"), "value").expect("button");
        self.send(
            self.http
                .post(self.url(&action))
                .form(&[("flow", flow.as_str()), ("action", value.as_str())]),
        )
        .await
    }

    /// Signs in and consents; returns the redirect `Location`.
    pub async fn sign_in_and_consent(&self, tenant: &str, login: &str) -> String {
        let page = self.authorize(tenant, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let mut answer = self.submit_sign_in(&page, login).await;
        if answer.status == StatusCode::OK {
            answer = self.submit_consent(&answer, "accept").await;
        }
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);
        answer
            .headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("redirect")
            .to_owned()
    }

    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Resp {
        self.send(
            self.http
                .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
                .form(form),
        )
        .await
    }

    pub async fn redeem(&self, code: &str, verifier: &str, secret: &str) -> Resp {
        self.token_request(
            "organizations",
            &[
                ("client_id", demo::REGENTRA_CLIENT_ID),
                ("client_secret", secret),
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.token_request(
            "organizations",
            &[
                ("client_id", demo::REGENTRA_CLIENT_ID),
                ("client_secret", demo::REGENTRA_CLIENT_SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// Full connect as `login`: token response JSON.
    pub async fn connect(&self, login: &str) -> Value {
        let location = self.sign_in_and_consent("organizations", login).await;
        let code = query_param(&location, "code").expect("code in redirect");
        let tokens = self
            .redeem(&code, VERIFIER, demo::REGENTRA_CLIENT_SECRET)
            .await;
        assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
        tokens.body
    }

    pub async fn support_token(&self) -> String {
        self.connect(demo::SUPPORT_UPN).await["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// The oneOnOne chat between a client user and the support user.
    pub async fn chat_with_support(&self, client_user: &str) -> String {
        let chat = self
            .control_post(
                "/_sim/chats",
                &json!({"chatType": "oneOnOne", "members": [client_user, demo::SUPPORT_USER_ID]}),
            )
            .await;
        assert!(chat.status.is_success(), "{}", chat.text);
        crate::schema::assert_valid("microsoft.graph.chat", &chat.body);
        chat.body["id"].as_str().expect("chat id").to_owned()
    }

    pub async fn user_says(&self, chat: &str, user: &str, html: &str) -> Resp {
        let posted = self
            .control_post(
                &format!("/_sim/chats/{chat}/messages"),
                &json!({"from": user, "html": html}),
            )
            .await;
        if posted.status == StatusCode::CREATED {
            crate::schema::assert_valid("microsoft.graph.chatMessage", &posted.body);
        }
        posted
    }
    pub async fn advance(&self, seconds: i64) {
        let moved = self
            .control_post("/_sim/clock", &json!({"advance_secs": seconds}))
            .await;
        assert_eq!(moved.status, StatusCode::OK);
    }
}

/// Every Graph answer is schema-checked: errors as the OData envelope, successes as `definition`.
pub fn check_graph_response(response: &Resp, definition: &str) {
    assert!(
        response.headers.contains_key("request-id"),
        "no request-id header"
    );
    if response.status.is_client_error() || response.status.is_server_error() {
        crate::schema::assert_valid_odata_error(&response.body);
    } else if !definition.is_empty() {
        crate::schema::assert_valid(definition, &response.body);
    }
}
