//! Test support for the Teams connection: drive the real consent flow over HTTP like a browser
//! (technician clicks Connect → the simulator's sign-in and consent forms → the callback), and
//! small readers for the simulator's control API (`/_sim/tokens`, `/_sim/requests`, …).
//!
//! Use with [`TestApp::with_simulator`]: `app.connect_support_user().await` leaves the demo
//! support account (`m365_sim::demo::SUPPORT_UPN`) connected and returns once the card says so.

use m365_sim::demo;
use scraper::{Html, Selector};
use serde_json::Value;

use crate::helpers::{TestApp, location};

/// What the support user answers on Microsoft's permission page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Accept,
    Cancel,
}

/// The Teams card on the integrations page, as a browser sees it.
#[derive(Debug, Clone)]
pub struct Card {
    /// `data-state` of `#teams-card`.
    pub state: String,
    /// Text of `#teams-account`, if shown.
    pub account: Option<String>,
    /// Text of `#teams-problem`, if shown.
    pub problem: Option<String>,
    /// Text of `#teams-hint`, if shown.
    pub hint: Option<String>,
    /// Text of `#flash`, if shown.
    pub flash: Option<String>,
    /// `href` of `#teams-admin-consent`, if shown.
    pub admin_consent_link: Option<String>,
    /// Ids of the card's buttons and links.
    pub actions: Vec<String>,
}

fn text_of(document: &Html, selector: &str) -> Option<String> {
    let selector = Selector::parse(selector).unwrap();
    document.select(&selector).next().map(|element| {
        element
            .text()
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn attr_of(document: &Html, selector: &str, attr: &str) -> Option<String> {
    let selector = Selector::parse(selector).unwrap();
    document
        .select(&selector)
        .next()
        .and_then(|element| element.value().attr(attr))
        .map(str::to_owned)
}

/// Reads the Teams card out of the integrations page.
pub fn parse_card(html: &str) -> Card {
    let document = Html::parse_document(html);
    let actions_selector = Selector::parse("#teams-actions a, #teams-actions button").unwrap();
    Card {
        state: attr_of(&document, "#teams-card", "data-state")
            .expect("the integrations page has a #teams-card"),
        account: text_of(&document, "#teams-account"),
        problem: text_of(&document, "#teams-problem"),
        hint: text_of(&document, "#teams-hint"),
        flash: text_of(&document, "#flash"),
        admin_consent_link: attr_of(&document, "#teams-admin-consent", "href"),
        actions: document
            .select(&actions_selector)
            .filter_map(|element| element.value().attr("id").map(str::to_owned))
            .collect(),
    }
}

/// A form on a simulator page: absolute action URL and its hidden fields.
fn form(html: &str, form_selector: &str, base: &url::Url) -> (String, Vec<(String, String)>) {
    let document = Html::parse_document(html);
    let action = attr_of(&document, form_selector, "action")
        .unwrap_or_else(|| panic!("the page has no {form_selector}:\n{html}"));
    let hidden = Selector::parse(&format!("{form_selector} input[type=hidden]")).unwrap();
    let fields = document
        .select(&hidden)
        .filter_map(|input| {
            Some((
                input.value().attr("name")?.to_owned(),
                input.value().attr("value").unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    (base.join(&action).unwrap().to_string(), fields)
}

impl TestApp {
    /// The simulator (panics unless built with [`TestApp::with_simulator`]).
    pub fn sim(&self) -> &m365_sim::RunningSimulator {
        self.sim
            .as_ref()
            .expect("this TestApp was built without the simulator; use TestApp::with_simulator()")
    }

    /// `http://127.0.0.1:<sim port><path>`.
    pub fn sim_url(&self, path: &str) -> String {
        self.sim().base_url().join(path).unwrap().to_string()
    }

    /// A call to the simulator's control API; returns the JSON answer (asserting a 2xx).
    pub async fn sim_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.api.request(method.clone(), self.sim_url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// `GET /_sim/tokens`: every access and refresh token the simulator issued.
    pub async fn sim_tokens(&self) -> (Vec<String>, Vec<String>) {
        let tokens = self
            .sim_call(reqwest::Method::GET, "/_sim/tokens", None)
            .await;
        let values = |key: &str| -> Vec<String> {
            tokens[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|token| token["token"].as_str().unwrap().to_owned())
                .collect()
        };
        (values("accessTokens"), values("refreshTokens"))
    }

    /// `GET /_sim/requests`: (method, path) of every Graph/identity request so far.
    pub async fn sim_requests(&self) -> Vec<(String, String)> {
        let log = self
            .sim_call(reqwest::Method::GET, "/_sim/requests", None)
            .await;
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["method"].as_str().unwrap().to_owned(),
                    entry["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The integrations page's Teams card.
    pub async fn teams_card(&self) -> Card {
        parse_card(&self.get_html("/settings/integrations").await)
    }

    /// Clicks "Connect Teams Chat" (signed in already); returns Microsoft's authorize URL.
    pub async fn click_connect(&self) -> String {
        let response = self.get_page("/settings/integrations/teams/connect").await;
        assert_eq!(
            response.status(),
            303,
            "Connect redirects to Microsoft ({})",
            self.label
        );
        let authorize = location(&response);
        assert!(
            authorize.starts_with(&self.sim_url("/")),
            "Connect leads to the simulator, not {authorize}"
        );
        authorize
    }

    /// At Microsoft: opens `authorize_url`, signs in as `upn` and answers the permission page
    /// (if Microsoft shows one). Returns the URL Microsoft redirects the browser back to.
    pub async fn sign_in_at_microsoft(
        &self,
        authorize_url: &str,
        upn: &str,
        consent: Consent,
    ) -> String {
        let sim_base = self.sim().base_url();
        let page = self.api.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "sign-in page at {authorize_url}");
        let html = page.text().await.unwrap();
        let (action, mut fields) = form(&html, "form#signin-form", &sim_base);
        fields.push(("login".to_owned(), upn.to_owned()));
        let answer = self.api.post(action).form(&fields).send().await.unwrap();
        if answer.status().is_redirection() {
            // Consent already given (or refused by policy): straight back to the app.
            return location(&answer);
        }
        let status = answer.status();
        let html = answer.text().await.unwrap();
        assert_eq!(status, 200, "after signing in as {upn}: {html}");
        let (action, mut fields) = form(&html, "form#consent-form", &sim_base);
        fields.push((
            "action".to_owned(),
            match consent {
                Consent::Accept => "accept",
                Consent::Cancel => "cancel",
            }
            .to_owned(),
        ));
        let answer = self.api.post(action).form(&fields).send().await.unwrap();
        assert_eq!(
            answer.status(),
            302,
            "the consent page redirects back to the app"
        );
        location(&answer)
    }

    /// Follows Microsoft's redirect into the app (the browser, with its session) and returns
    /// the card the app then shows.
    pub async fn follow_callback(&self, callback_url: &str) -> Card {
        assert!(
            callback_url.starts_with(&self.url("/integrations/teams/callback")),
            "Microsoft sends the browser to the app's callback, not {callback_url}"
        );
        let response = self.browser.get(callback_url).send().await.unwrap();
        assert_eq!(
            response.status(),
            303,
            "the callback redirects to the card ({})",
            self.label
        );
        assert_eq!(location(&response), "/settings/integrations");
        self.teams_card().await
    }

    /// The whole flow as a technician would do it for `upn`: sign in to Regentra, click
    /// Connect, sign in at Microsoft, accept, back to the card. Returns the card.
    pub async fn connect_as(&self, upn: &str) -> Card {
        self.login_as_technician().await;
        let authorize = self.click_connect().await;
        let callback = self
            .sign_in_at_microsoft(&authorize, upn, Consent::Accept)
            .await;
        self.follow_callback(&callback).await
    }

    /// Connects the demo support account and returns once the card says it is connected.
    pub async fn connect_support_user(&self) -> Card {
        let card = self.connect_as(demo::SUPPORT_UPN).await;
        assert_eq!(card.state, "connected", "{card:?} ({})", self.label);
        assert!(
            card.account
                .as_deref()
                .is_some_and(|a| a.contains(demo::SUPPORT_UPN)),
            "{card:?}"
        );
        card
    }
}
