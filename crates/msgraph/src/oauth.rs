//! Microsoft identity platform (v2.0) authorization code flow with PKCE, for one confidential web
//! app: authorize URL, code redemption, refresh with rotation, admin-consent link, and a typed
//! classification of token-endpoint errors.
//!
//! The token HTTP client never follows redirects (a redirected token request is an SSRF
//! foothold). Errors are classified from `error` and `error_codes` only, never from the
//! human-readable description (Microsoft's own rule). This module must never log, print or
//! `Debug`-format a token, code, verifier or secret: they only travel as `secrecy` types.

use std::fmt;
use std::time::Duration;

use oauth2::{CsrfToken, PkceCodeChallenge};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

/// Configuration of the app registration and the identity platform to talk to.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `https://login.microsoftonline.com` or the simulator's base URL.
    pub authority: Url,
    /// Tenant id, a verified domain, or `organizations`.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    pub client_secret: SecretString,
    /// Must match a redirect URI registered on the app exactly.
    pub redirect_uri: Url,
    /// Short scope names (`offline_access User.Read Chat.Read …`).
    pub scopes: Vec<String>,
}

/// `prompt` on the authorize request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Login,
    None,
    Consent,
    SelectAccount,
}

impl Prompt {
    fn as_str(self) -> &'static str {
        match self {
            Prompt::Login => "login",
            Prompt::None => "none",
            Prompt::Consent => "consent",
            Prompt::SelectAccount => "select_account",
        }
    }
}

/// Where to send the browser, plus what the caller must keep (server-side) until the callback.
#[derive(Debug)]
pub struct AuthorizeUrl {
    pub url: Url,
    /// Compare with the callback's `state` (single use).
    pub state: String,
    /// Pass to [`OAuthClient::redeem_code`].
    pub pkce_verifier: SecretString,
}

/// Tokens from a successful code redemption or refresh.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// On refresh this is always the newest refresh token: the rotated one if Microsoft sent one,
    /// otherwise the one that was used. `None` after a redemption without `offline_access`.
    pub refresh_token: Option<SecretString>,
    /// Only when `openid` was requested.
    pub id_token: Option<SecretString>,
    /// Computed from `expires_in` at the time the answer arrived.
    pub expires_at: OffsetDateTime,
    /// Granted scopes (URL-decoded), or the requested ones if Microsoft did not say.
    pub scopes: Vec<String>,
}

/// What the caller should do about a token-endpoint failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorClass {
    /// Consent is missing or was declined (65001, 65004, 90094, 90095, `consent_required`,
    /// `access_denied`): show the admin-consent link.
    ConsentRequired,
    /// The grant is dead (70008, 700082, 700084, 50173, 70043, 50057, 50034, `invalid_grant`):
    /// stop polling and reconnect.
    ReconnectRequired,
    /// MFA or Conditional Access needs the user in a browser (50076, 50079, 50078, 53003,
    /// `interaction_required`).
    InteractionRequired,
    /// The app registration or our configuration is wrong (7000215, 7000222, 700016, 50011,
    /// `invalid_client`, …): retrying cannot help.
    Configuration,
    /// 5xx, `temporarily_unavailable`, network failures: retry later.
    Transient,
    /// Anything else (e.g. a code redeemed twice).
    Other,
}

impl TokenErrorClass {
    fn advice(self) -> &'static str {
        match self {
            TokenErrorClass::ConsentRequired => {
                "the app lacks consent for its permissions; an administrator must grant consent (admin-consent link), then connect again"
            }
            TokenErrorClass::ReconnectRequired => {
                "the sign-in expired or was revoked; reconnect the support account"
            }
            TokenErrorClass::InteractionRequired => {
                "Microsoft requires the support user to sign in interactively (MFA or Conditional Access); reconnect through the browser"
            }
            TokenErrorClass::Configuration => {
                "the app registration settings are wrong (client id, client secret, redirect URI or tenant); fix the configuration, retrying will not help"
            }
            TokenErrorClass::Transient => {
                "the Microsoft sign-in service is temporarily unavailable; try again later"
            }
            TokenErrorClass::Other => "the sign-in request was refused; start the connection again",
        }
    }
}

/// A failed token request, with everything needed for a support case.
#[derive(Debug, Clone, thiserror::Error)]
pub struct TokenError {
    pub class: TokenErrorClass,
    /// OAuth `error` (`invalid_grant`, …) or `network`/`unreadable_response` for local failures.
    pub error: String,
    /// AADSTS numbers (`700082`, …).
    pub error_codes: Vec<u32>,
    /// Human text from Microsoft; for display only, never branched on.
    pub description: Option<String>,
    pub suberror: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub http_status: Option<u16>,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.class.advice(), self.error)?;
        for code in &self.error_codes {
            write!(f, ", AADSTS{code}")?;
        }
        if let Some(status) = self.http_status {
            write!(f, ", HTTP {status}")?;
        }
        if let Some(trace) = &self.trace_id {
            write!(f, ", trace_id {trace}")?;
        }
        if let Some(correlation) = &self.correlation_id {
            write!(f, ", correlation_id {correlation}")?;
        }
        f.write_str(")")?;
        // Microsoft's first description line names the problem in words; the rest repeats ids.
        if let Some(first_line) = self.description.as_deref().and_then(|d| d.lines().next()) {
            write!(f, ": {first_line}")?;
        }
        Ok(())
    }
}

impl TokenError {
    /// Classifies an error redirected back to our callback (`?error=access_denied&…`).
    pub fn from_authorize_callback(error: &str, description: Option<&str>) -> Self {
        let codes = description
            .map(aadsts_codes_in_description)
            .unwrap_or_default();
        Self {
            class: classify(error, &codes, None),
            error: error.to_owned(),
            error_codes: codes,
            description: description.map(str::to_owned),
            suberror: None,
            trace_id: None,
            correlation_id: None,
            http_status: None,
        }
    }

    fn local(
        class: TokenErrorClass,
        error: &str,
        detail: String,
        http_status: Option<u16>,
    ) -> Self {
        Self {
            class,
            error: error.to_owned(),
            error_codes: Vec::new(),
            description: Some(detail),
            suberror: None,
            trace_id: None,
            correlation_id: None,
            http_status,
        }
    }
}

/// The callback redirect carries no `error_codes`, only the description, which starts with
/// `AADSTSnnnnn:` — the one place the code is only available as text. Only the leading code is
/// read; the classification still rests on the number, not on words.
fn aadsts_codes_in_description(description: &str) -> Vec<u32> {
    description
        .strip_prefix("AADSTS")
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .into_iter()
        .collect()
}

/// Maps `error` + `error_codes` (+ HTTP status) to a [`TokenErrorClass`]. Codes win over the
/// generic `error` string because Entra pairs e.g. MFA (50076) with `invalid_grant`.
pub fn classify(error: &str, error_codes: &[u32], http_status: Option<u16>) -> TokenErrorClass {
    for code in error_codes {
        match code {
            65001 | 65004 | 90094 | 90095 => return TokenErrorClass::ConsentRequired,
            70008 | 700082 | 700084 | 50173 | 70043 | 50057 | 50034 => {
                return TokenErrorClass::ReconnectRequired;
            }
            50076 | 50079 | 50078 | 53003 => return TokenErrorClass::InteractionRequired,
            7000215 | 7000222 | 700016 | 50011 => return TokenErrorClass::Configuration,
            // Code redeemed twice / verifier mismatch: bugs in the flow, not a dead grant.
            54005 | 501481 => return TokenErrorClass::Other,
            _ => {}
        }
    }
    if http_status.is_some_and(|status| status >= 500) {
        return TokenErrorClass::Transient;
    }
    match error {
        "consent_required" | "access_denied" => TokenErrorClass::ConsentRequired,
        "interaction_required" | "login_required" => TokenErrorClass::InteractionRequired,
        "temporarily_unavailable" | "server_error" => TokenErrorClass::Transient,
        "invalid_client"
        | "unauthorized_client"
        | "invalid_resource"
        | "invalid_scope"
        | "unsupported_grant_type"
        | "unsupported_response_type" => TokenErrorClass::Configuration,
        "invalid_grant" => TokenErrorClass::ReconnectRequired,
        _ => TokenErrorClass::Other,
    }
}

/// The token endpoint's error body (`error`, `error_codes`, `trace_id`, …).
#[derive(Debug, Clone, Deserialize)]
pub struct AadErrorBody {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    /// Opaque text (the docs even contain a literal placeholder here).
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
    #[serde(default)]
    pub suberror: Option<String>,
}

impl AadErrorBody {
    /// Turns the body into a classified [`TokenError`].
    pub fn into_token_error(self, http_status: Option<u16>) -> TokenError {
        TokenError {
            class: classify(&self.error, &self.error_codes, http_status),
            error: self.error,
            error_codes: self.error_codes,
            description: self.error_description,
            suberror: self.suberror,
            trace_id: self.trace_id,
            correlation_id: self.correlation_id,
            http_status,
        }
    }
}

/// `expires_in` is a number on v2.0, but the v1 endpoint sent a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Seconds(u64),
    Text(String),
}

/// The token endpoint's success body. Tokens deserialize straight into secrets.
#[derive(Debug, Deserialize)]
struct TokenResponseBody {
    access_token: SecretString,
    expires_in: ExpiresIn,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    id_token: Option<SecretString>,
}

/// Parses a token endpoint success body (public for the fixture tests and the simulator's tests).
#[expect(
    clippy::result_large_err,
    reason = "TokenError is returned by value on purpose: callers match on its class"
)]
pub fn parse_token_response(
    body: &[u8],
    requested_scopes: &[String],
    received_at: OffsetDateTime,
) -> Result<TokenSet, TokenError> {
    let parsed: TokenResponseBody = serde_json::from_slice(body).map_err(|error| {
        TokenError::local(
            TokenErrorClass::Other,
            "unreadable_response",
            format!("the token response could not be read: {error}"),
            None,
        )
    })?;
    let expires_in = match parsed.expires_in {
        ExpiresIn::Seconds(seconds) => seconds,
        ExpiresIn::Text(text) => text.trim().parse().map_err(|_| {
            TokenError::local(
                TokenErrorClass::Other,
                "unreadable_response",
                format!("expires_in {text:?} is not a number of seconds"),
                None,
            )
        })?,
    };
    let scopes = match parsed.scope.as_deref() {
        Some(scope) => percent_encoding::percent_decode_str(scope)
            .decode_utf8_lossy()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        None => requested_scopes.to_vec(),
    };
    let expires_in = i64::try_from(expires_in).unwrap_or(i64::MAX);
    Ok(TokenSet {
        access_token: parsed.access_token,
        refresh_token: parsed.refresh_token,
        id_token: parsed.id_token,
        expires_at: received_at.saturating_add(time::Duration::seconds(expires_in)),
        scopes,
    })
}

/// Client for one app registration against one authority + tenant.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    config: OAuthConfig,
    authorize_endpoint: Url,
    token_endpoint: Url,
    http: reqwest::Client,
}

/// Default timeout of a token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

impl OAuthClient {
    /// Validates the configuration and builds the (non-redirecting) token HTTP client.
    pub fn new(config: OAuthConfig) -> Result<Self, crate::Error> {
        Self::with_timeout(config, TOKEN_TIMEOUT)
    }

    /// Like [`OAuthClient::new`] with a custom per-request timeout.
    pub fn with_timeout(config: OAuthConfig, timeout: Duration) -> Result<Self, crate::Error> {
        if !matches!(config.authority.scheme(), "http" | "https") {
            return Err(crate::Error::InvalidInput(format!(
                "the authority {} must be an http(s) URL",
                config.authority
            )));
        }
        if config.tenant.is_empty() || config.tenant.contains('/') {
            return Err(crate::Error::InvalidInput(format!(
                "the tenant {:?} must be a tenant id, a domain or `organizations`",
                config.tenant
            )));
        }
        let authorize_endpoint = endpoint(
            &config.authority,
            &[&config.tenant, "oauth2", "v2.0", "authorize"],
        )?;
        let token_endpoint = endpoint(
            &config.authority,
            &[&config.tenant, "oauth2", "v2.0", "token"],
        )?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("regentra-msgraph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                crate::Error::InvalidInput(format!(
                    "could not build the token HTTP client: {error}"
                ))
            })?;
        Ok(Self {
            config,
            authorize_endpoint,
            token_endpoint,
            http,
        })
    }

    /// The configured scopes joined as Microsoft expects them.
    fn scope_param(&self) -> String {
        self.config.scopes.join(" ")
    }

    /// Builds the authorize URL with a fresh `state` and PKCE S256 challenge.
    pub fn authorize_url(&self, login_hint: Option<&str>, prompt: Option<Prompt>) -> AuthorizeUrl {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random();
        let mut url = self.authorize_endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.config.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", self.config.redirect_uri.as_str())
                .append_pair("response_mode", "query")
                .append_pair("scope", &self.scope_param())
                .append_pair("state", state.secret())
                .append_pair("code_challenge", challenge.as_str())
                .append_pair("code_challenge_method", challenge.method().as_str());
            if let Some(prompt) = prompt {
                query.append_pair("prompt", prompt.as_str());
            }
            if let Some(hint) = login_hint {
                query.append_pair("login_hint", hint);
            }
        }
        AuthorizeUrl {
            url,
            state: state.secret().clone(),
            pkce_verifier: SecretString::from(verifier.secret().as_str()),
        }
    }

    /// The v2.0 admin-consent link for this app in the configured tenant
    /// (`/{tenant}/v2.0/adminconsent?client_id=…&scope=https://graph.microsoft.com/.default&redirect_uri=…`).
    pub fn admin_consent_url(&self) -> Url {
        // The endpoint was already built from the same authority + tenant in `new`, so this
        // cannot fail; fall back to the authorize endpoint's base just in case.
        let mut url = endpoint(
            &self.config.authority,
            &[&self.config.tenant, "v2.0", "adminconsent"],
        )
        .unwrap_or_else(|_| self.authorize_endpoint.clone());
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("scope", "https://graph.microsoft.com/.default")
            .append_pair("redirect_uri", self.config.redirect_uri.as_str());
        url
    }

    /// Redeems an authorization code (with the PKCE verifier and the client secret).
    pub async fn redeem_code(
        &self,
        code: &SecretString,
        pkce_verifier: &SecretString,
    ) -> Result<TokenSet, TokenError> {
        let scope = self.scope_param();
        let form = [
            ("client_id", self.config.client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", pkce_verifier.expose_secret()),
            ("client_secret", self.config.client_secret.expose_secret()),
            ("scope", scope.as_str()),
        ];
        self.token_request("authorization_code", &form).await
    }

    /// Redeems a refresh token. The result always holds the newest refresh token: store it
    /// (encrypted) before dropping the old one.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, TokenError> {
        let scope = self.scope_param();
        let form = [
            ("client_id", self.config.client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_secret", self.config.client_secret.expose_secret()),
            ("scope", scope.as_str()),
        ];
        let mut tokens = self.token_request("refresh_token", &form).await?;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh_token.clone());
        }
        Ok(tokens)
    }

    async fn token_request(
        &self,
        grant: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenSet, TokenError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "identity.token",
            grant,
            path = self.token_endpoint.path(),
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let _entered = span.enter();
        let response = self
            .http
            .post(self.token_endpoint.clone())
            .form(form)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                span.record("duration_ms", started.elapsed().as_millis() as u64);
                return Err(TokenError::local(
                    TokenErrorClass::Transient,
                    "network",
                    format!(
                        "the token endpoint could not be reached: {}",
                        without_url(&error)
                    ),
                    None,
                ));
            }
        };
        let status = response.status();
        span.record("status", status.as_u16());
        let received_at = OffsetDateTime::now_utc();
        let body = response.bytes().await;
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        let body = body.map_err(|error| {
            TokenError::local(
                TokenErrorClass::Transient,
                "network",
                format!("the token response was cut off: {}", without_url(&error)),
                Some(status.as_u16()),
            )
        })?;
        if status.is_success() {
            return parse_token_response(&body, &self.config.scopes, received_at);
        }
        if status.is_redirection() {
            return Err(TokenError::local(
                TokenErrorClass::Configuration,
                "redirected",
                format!(
                    "the token endpoint answered with a redirect ({status}), which is never followed; check the authority URL"
                ),
                Some(status.as_u16()),
            ));
        }
        match serde_json::from_slice::<AadErrorBody>(&body) {
            Ok(error_body) => {
                let error = error_body.into_token_error(Some(status.as_u16()));
                if let Some(trace) = &error.trace_id {
                    span.record("trace_id", trace.as_str());
                }
                tracing::warn!(
                    error = %error.error,
                    codes = ?error.error_codes,
                    correlation_id = error.correlation_id.as_deref().unwrap_or(""),
                    "token request refused"
                );
                Err(error)
            }
            Err(_) => {
                let class = if status.is_server_error() {
                    TokenErrorClass::Transient
                } else {
                    TokenErrorClass::Other
                };
                Err(TokenError::local(
                    class,
                    "unreadable_response",
                    format!(
                        "the token endpoint answered {status} with a body that is not an OAuth error"
                    ),
                    Some(status.as_u16()),
                ))
            }
        }
    }
}

/// reqwest errors print the URL; the token URL carries no secrets, but keep messages short.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<token endpoint>");
    }
    text
}

/// `authority` + path segments, keeping any path prefix the authority has.
fn endpoint(authority: &Url, segments: &[&str]) -> Result<Url, crate::Error> {
    let mut url = authority.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| {
            crate::Error::InvalidInput(format!("the authority {authority} cannot have a path"))
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OAuthConfig {
        OAuthConfig {
            authority: Url::parse("https://login.example.test/").unwrap(),
            tenant: "organizations".into(),
            client_id: "client-1".into(),
            client_secret: SecretString::from("very-secret-value"),
            redirect_uri: Url::parse("https://desk.example.test/callback").unwrap(),
            scopes: vec![
                "offline_access".into(),
                "User.Read".into(),
                "Chat.Read".into(),
            ],
        }
    }

    #[test]
    fn authorize_url_carries_state_pkce_scopes_prompt_and_hint() {
        let client = OAuthClient::new(config()).unwrap();
        let authorize =
            client.authorize_url(Some("support@msp.example"), Some(Prompt::SelectAccount));
        assert_eq!(authorize.url.path(), "/organizations/oauth2/v2.0/authorize");
        let pairs: std::collections::HashMap<_, _> =
            authorize.url.query_pairs().into_owned().collect();
        assert_eq!(pairs["client_id"], "client-1");
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["redirect_uri"], "https://desk.example.test/callback");
        assert_eq!(pairs["scope"], "offline_access User.Read Chat.Read");
        assert_eq!(pairs["state"], authorize.state);
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["prompt"], "select_account");
        assert_eq!(pairs["login_hint"], "support@msp.example");
        // The challenge is the S256 hash of the verifier, not the verifier itself.
        let verifier =
            oauth2::PkceCodeVerifier::new(authorize.pkce_verifier.expose_secret().to_owned());
        let expected = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        assert_eq!(pairs["code_challenge"], expected.as_str());
        assert_ne!(
            pairs["code_challenge"],
            authorize.pkce_verifier.expose_secret()
        );
        // Fresh state and verifier every time.
        let again = client.authorize_url(None, None);
        assert_ne!(again.state, authorize.state);
        assert!(
            !again
                .url
                .query_pairs()
                .any(|(k, _)| k == "prompt" || k == "login_hint")
        );
    }

    #[test]
    fn admin_consent_url_uses_the_v2_endpoint() {
        let client = OAuthClient::new(config()).unwrap();
        let url = client.admin_consent_url();
        assert_eq!(url.path(), "/organizations/v2.0/adminconsent");
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["client_id"], "client-1");
        assert_eq!(pairs["redirect_uri"], "https://desk.example.test/callback");
        assert_eq!(pairs["scope"], "https://graph.microsoft.com/.default");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let client = OAuthClient::new(config()).unwrap();
        let authorize = client.authorize_url(None, None);
        let tokens = TokenSet {
            access_token: SecretString::from("access-token-value"),
            refresh_token: Some(SecretString::from("refresh-token-value")),
            id_token: None,
            expires_at: OffsetDateTime::UNIX_EPOCH,
            scopes: vec![],
        };
        let debug = format!("{client:?} {authorize:?} {tokens:?}");
        for secret in [
            "very-secret-value",
            "access-token-value",
            "refresh-token-value",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
        assert!(!debug.contains(authorize.pkce_verifier.expose_secret()));
    }

    #[test]
    fn classification_uses_codes_before_the_error_string() {
        assert_eq!(
            classify("invalid_grant", &[50076], Some(400)),
            TokenErrorClass::InteractionRequired
        );
        assert_eq!(
            classify("invalid_grant", &[700082], Some(400)),
            TokenErrorClass::ReconnectRequired
        );
        assert_eq!(
            classify("invalid_grant", &[65001], Some(400)),
            TokenErrorClass::ConsentRequired
        );
        assert_eq!(
            classify("invalid_client", &[7000215], Some(401)),
            TokenErrorClass::Configuration
        );
        assert_eq!(
            classify("invalid_grant", &[54005], Some(400)),
            TokenErrorClass::Other
        );
        assert_eq!(
            classify("temporarily_unavailable", &[], Some(503)),
            TokenErrorClass::Transient
        );
        assert_eq!(
            classify("whatever", &[], Some(502)),
            TokenErrorClass::Transient
        );
        assert_eq!(
            classify("invalid_grant", &[], Some(400)),
            TokenErrorClass::ReconnectRequired
        );
    }

    #[test]
    fn every_listed_aadsts_code_has_its_class() {
        let table: &[(&[u32], TokenErrorClass)] = &[
            (
                &[65001, 65004, 90094, 90095],
                TokenErrorClass::ConsentRequired,
            ),
            (
                &[70008, 700082, 700084, 50173, 70043, 50057, 50034],
                TokenErrorClass::ReconnectRequired,
            ),
            (
                &[50076, 50079, 50078, 53003],
                TokenErrorClass::InteractionRequired,
            ),
            (
                &[7000215, 7000222, 700016, 50011],
                TokenErrorClass::Configuration,
            ),
        ];
        for (codes, class) in table {
            for code in *codes {
                // `error` deliberately contradicts the code: the code must win.
                assert_eq!(
                    classify("temporarily_unavailable", &[*code], Some(400)),
                    *class,
                    "AADSTS{code}"
                );
            }
        }
    }

    #[test]
    fn description_text_never_changes_the_class() {
        let body = AadErrorBody {
            error: "invalid_request".into(),
            error_description: Some(
                "AADSTS700082: The refresh token has expired due to inactivity".into(),
            ),
            error_codes: vec![90014],
            timestamp: None,
            trace_id: None,
            correlation_id: None,
            error_uri: None,
            suberror: None,
        };
        assert_eq!(
            body.into_token_error(Some(400)).class,
            TokenErrorClass::Other
        );
    }

    #[test]
    fn authorize_callback_errors_are_classified() {
        let denied = TokenError::from_authorize_callback(
            "access_denied",
            Some("AADSTS65004: User declined to consent"),
        );
        assert_eq!(denied.class, TokenErrorClass::ConsentRequired);
        assert_eq!(denied.error_codes, vec![65004]);
        let admin = TokenError::from_authorize_callback(
            "invalid_request",
            Some("AADSTS90094: needs admin"),
        );
        assert_eq!(admin.class, TokenErrorClass::ConsentRequired);
    }

    #[test]
    fn token_response_scope_may_be_url_encoded_and_expiry_a_string() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let tokens = parse_token_response(
            br#"{"access_token":"a","expires_in":"3599","scope":"https%3A%2F%2Fgraph.microsoft.com%2Fmail.read offline_access"}"#,
            &[],
            now,
        )
        .unwrap();
        assert_eq!(
            tokens.scopes,
            vec!["https://graph.microsoft.com/mail.read", "offline_access"]
        );
        assert_eq!(tokens.expires_at, now + time::Duration::seconds(3599));
        assert!(tokens.refresh_token.is_none());
    }
}
