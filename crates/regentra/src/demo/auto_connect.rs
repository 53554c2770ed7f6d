//! `regentra demo --auto-connect`: connects the support account without a browser, through
//! exactly the code path a technician's click takes.
//!
//! [`connect`] asks the connection service for the authorize URL (state + PKCE, as
//! "Connect Teams Chat" does), then plays the browser against the simulator's sign-in and
//! consent pages over HTTP (reading their forms with `scraper`), takes the `code` and `state`
//! from the redirect to Regentra's callback, and hands them to the same `complete_connect` the
//! callback handler calls.
//!
//! This module must never be pointed at the real Microsoft sign-in (it submits a password-less
//! form only the simulator has) and never logs the code, the state or a token.

use reqwest::redirect::Policy;
use scraper::{Html, Selector};
use url::Url;

use crate::bridge::connection::{
    CallbackParams, ConnectError, ConnectOutcome, ConnectionError, TeamsConnections,
};
use crate::tickets::TechnicianId;

/// The most pages (sign-in, consent, …) followed before giving up.
const MAX_STEPS: usize = 6;

/// Why the automatic connect failed.
#[derive(Debug, thiserror::Error)]
pub enum AutoConnectError {
    #[error("starting the sign-in failed")]
    Start(#[source] ConnectionError),
    #[error("talking to the simulator's sign-in pages failed")]
    Http(#[source] reqwest::Error),
    #[error("the simulator's sign-in did not go as expected: {0}")]
    Flow(String),
    #[error("completing the connection failed")]
    Complete(#[source] ConnectError),
}

/// Signs in as `login` (UPN) in the simulator, accepts the consent, and completes the connect
/// for `technician`. Returns the connected account's e-mail address.
pub async fn connect(
    connections: &TeamsConnections,
    technician: TechnicianId,
    login: &str,
) -> Result<String, AutoConnectError> {
    let start = connections
        .begin_connect(technician)
        .await
        .map_err(AutoConnectError::Start)?;
    let redirect_uri = connections.redirect_uri().clone();
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .map_err(AutoConnectError::Http)?;

    let mut response = http
        .get(start.authorize_url.clone())
        .send()
        .await
        .map_err(AutoConnectError::Http)?;
    let mut page_url = start.authorize_url;
    for _ in 0..MAX_STEPS {
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| AutoConnectError::Flow("a redirect without a Location".into()))?;
            let target = page_url
                .join(location)
                .map_err(|error| AutoConnectError::Flow(format!("a bad redirect ({error})")))?;
            if is_callback(&target, &redirect_uri) {
                let params = callback_params(&target);
                let outcome = connections
                    .complete_connect(params, technician, Some(&start.state_hash))
                    .await
                    .map_err(AutoConnectError::Complete)?;
                return match outcome {
                    ConnectOutcome::Connected { email, .. } => Ok(email),
                    ConnectOutcome::AdminConsentGranted => Err(AutoConnectError::Flow(
                        "the simulator granted admin consent instead of signing in".into(),
                    )),
                };
            }
            response = http
                .get(target.clone())
                .send()
                .await
                .map_err(AutoConnectError::Http)?;
            page_url = target;
            continue;
        }
        let status = response.status();
        let body = response.text().await.map_err(AutoConnectError::Http)?;
        let (action, fields) = next_form(&body, login).ok_or_else(|| {
            AutoConnectError::Flow(format!(
                "expected the sign-in or consent page, got HTTP {status}: {}",
                page_text(&body)
            ))
        })?;
        let target = page_url
            .join(&action)
            .map_err(|error| AutoConnectError::Flow(format!("a bad form action ({error})")))?;
        response = http
            .post(target.clone())
            .form(&fields)
            .send()
            .await
            .map_err(AutoConnectError::Http)?;
        page_url = target;
    }
    Err(AutoConnectError::Flow(format!(
        "no redirect to Regentra after {MAX_STEPS} pages"
    )))
}

/// Whether `target` is Regentra's callback (same origin and path as the redirect URI).
fn is_callback(target: &Url, redirect_uri: &Url) -> bool {
    target.origin() == redirect_uri.origin() && target.path() == redirect_uri.path()
}

/// `code`, `state`, `error`, … from the callback URL's query.
fn callback_params(target: &Url) -> CallbackParams {
    let mut params = CallbackParams::default();
    for (key, value) in target.query_pairs() {
        let value = value.into_owned();
        match key.as_ref() {
            "code" => params.code = Some(value.into()),
            "state" => params.state = Some(value),
            "error" => params.error = Some(value),
            "error_description" => params.error_description = Some(value),
            "admin_consent" => params.admin_consent = Some(value),
            _ => {}
        }
    }
    params
}

/// The form to submit on a simulator page: the sign-in form (with `login`) or the consent
/// form (accepting). Returns the form's action and fields.
fn next_form(html: &str, login: &str) -> Option<(String, Vec<(String, String)>)> {
    let document = Html::parse_document(html);
    let hidden = |form: scraper::ElementRef<'_>| -> Vec<(String, String)> {
        // The selector is a constant that parses.
        let Ok(inputs) = Selector::parse("input[type=hidden]") else {
            return Vec::new();
        };
        form.select(&inputs)
            .filter_map(|input| {
                let name = input.value().attr("name")?;
                Some((
                    name.to_owned(),
                    input.value().attr("value").unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    };
    let form = |id: &str| {
        Selector::parse(&format!("form#{id}"))
            .ok()
            .and_then(|selector| document.select(&selector).next())
    };
    if let Some(sign_in) = form("signin-form") {
        let mut fields = hidden(sign_in);
        fields.push(("login".to_owned(), login.to_owned()));
        return Some((sign_in.value().attr("action")?.to_owned(), fields));
    }
    if let Some(consent) = form("consent-form") {
        let mut fields = hidden(consent);
        fields.push(("action".to_owned(), "accept".to_owned()));
        return Some((consent.value().attr("action")?.to_owned(), fields));
    }
    None
}

/// The visible text of an unexpected page, shortened, for the error message.
fn page_text(html: &str) -> String {
    let document = Html::parse_document(html);
    let text: String = document
        .root_element()
        .text()
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_form_gets_the_login_and_keeps_the_flow() {
        let html = r#"<form id="signin-form" method="post" action="/organizations/login">
            <input type="hidden" name="flow" value="f-123">
            <input id="login" name="login" type="text" value=""></form>"#;
        let (action, fields) = next_form(html, "support@northwind-it.example").unwrap();
        assert_eq!(action, "/organizations/login");
        assert_eq!(
            fields,
            vec![
                ("flow".to_owned(), "f-123".to_owned()),
                (
                    "login".to_owned(),
                    "support@northwind-it.example".to_owned()
                )
            ]
        );
    }

    #[test]
    fn consent_form_is_accepted() {
        let html = r#"<form id="consent-form" method="post" action="/organizations/Consent/Set">
            <input type="hidden" name="flow" value="f-9">
            <button id="cancel" name="action" value="cancel">Cancel</button>
            <button id="accept" name="action" value="accept">Accept</button></form>"#;
        let (action, fields) = next_form(html, "x").unwrap();
        assert_eq!(action, "/organizations/Consent/Set");
        assert_eq!(
            fields,
            vec![
                ("flow".to_owned(), "f-9".to_owned()),
                ("action".to_owned(), "accept".to_owned())
            ]
        );
    }

    #[test]
    fn an_error_page_has_no_form_to_submit() {
        assert!(next_form("<p>AADSTS50011: redirect URI mismatch</p>", "x").is_none());
        assert_eq!(
            page_text("<html><body><p>AADSTS50011:  mismatch</p></body></html>"),
            "AADSTS50011: mismatch"
        );
    }

    #[test]
    fn callback_is_recognised_by_origin_and_path_and_its_query_is_read() {
        let redirect = Url::parse("http://127.0.0.1:8080/integrations/teams/callback").unwrap();
        let back = Url::parse(
            "http://127.0.0.1:8080/integrations/teams/callback?code=abc&state=s1&session_state=x",
        )
        .unwrap();
        assert!(is_callback(&back, &redirect));
        assert!(!is_callback(
            &Url::parse("http://127.0.0.1:8081/integrations/teams/callback").unwrap(),
            &redirect
        ));
        let params = callback_params(&back);
        assert_eq!(params.state.as_deref(), Some("s1"));
        assert!(params.code.is_some());
        assert!(params.error.is_none());
    }
}
