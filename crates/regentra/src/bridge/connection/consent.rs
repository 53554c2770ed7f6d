//! The connect flow: "Connect Teams Chat" → Microsoft sign-in and consent → our callback.
//!
//! [`TeamsConnections::begin_connect`] creates a single-use `state` (stored as a SHA-256, valid
//! for [`STATE_LIFETIME`], bound to the technician; the caller also keeps its hash in the
//! browser session) and a PKCE verifier (sealed in the vault), and returns Microsoft's authorize
//! URL. [`TeamsConnections::complete_connect`] checks the state against the session and the
//! database (taking it, so it works once), redeems the code, reads `/me` and `/organization`,
//! and stores the account and its sealed tokens as the current connection.
//!
//! Refusals (consent declined, admin consent required, …) come back as [`ConnectError::Refused`]
//! with a message for the card and, when an administrator must approve, the admin-consent link.
//! This module must never log or show the code, the verifier or a token.

use std::sync::Arc;

use msgraph::oauth::{Prompt, TokenError, TokenErrorClass};
use msgraph::{GraphClient, StaticTokenSource};
use secrecy::SecretString;
use time::Duration;
use url::Url;

use super::{ConnectionError, ConnectionId, TeamsConnections, account_hint, tokens::token_field};
use crate::bridge::vault::SealedField;
use crate::store::teams::{
    ACCESS_TOKEN_FIELD, NewConnection, OAUTH_STATES_TABLE, PKCE_VERIFIER_FIELD,
    REFRESH_TOKEN_FIELD, state_hash,
};
use crate::store::{self};
use crate::tickets::{TechnicianId, TenantId};

/// How long a started sign-in may take (Microsoft's authorization codes live about as long).
pub const STATE_LIFETIME: Duration = Duration::minutes(10);

/// Where to send the browser, and what to remember in its session.
#[derive(Debug, Clone)]
pub struct ConnectStart {
    /// Microsoft's authorize URL (with state, PKCE challenge and the five scopes).
    pub authorize_url: Url,
    /// SHA-256 of the state: keep it in the browser session and pass it to `complete_connect`.
    pub state_hash: String,
}

/// The query Microsoft redirects to the callback with.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    /// The authorization code (a secret: never logged).
    pub code: Option<SecretString>,
    pub state: Option<String>,
    /// `access_denied`, `consent_required`, … when sign-in or consent failed.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// `True` when Microsoft returns from the tenant-wide admin-consent page.
    pub admin_consent: Option<String>,
}

/// What the callback achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// The account is connected (and current).
    Connected {
        connection_id: ConnectionId,
        email: String,
        display_name: String,
        personal_account_hint: Option<String>,
    },
    /// An administrator granted tenant-wide consent; the support user can connect now.
    AdminConsentGranted,
}

/// Why connecting failed. Every message says what happened and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The Microsoft app settings are incomplete or invalid.
    #[error("{0}")]
    NotConfigured(String),
    /// The `state` is missing, unknown, already used, or belongs to another browser session.
    #[error(
        "This Microsoft sign-in response was refused: it does not belong to a Connect Teams Chat \
         request started in this browser session (it is unknown, was already used, or was \
         started elsewhere). Click Connect Teams Chat again."
    )]
    UnknownState,
    /// The sign-in was started more than [`STATE_LIFETIME`] ago.
    #[error(
        "The Microsoft sign-in took longer than 10 minutes, so its response was refused. Click \
         Connect Teams Chat again."
    )]
    Expired,
    /// Microsoft refused the sign-in, the consent or the code redemption.
    #[error("{message}")]
    Refused {
        message: String,
        /// The tenant-wide admin-consent link, when an administrator must approve the app.
        admin_consent_url: Option<Url>,
        error: Box<TokenError>,
    },
    /// Microsoft answered without a refresh token (`offline_access` was not granted).
    #[error(
        "Microsoft did not grant offline access (no refresh token), so the connection could not \
         keep working after an hour. Check that the app registration allows the delegated \
         permission offline_access, then click Connect Teams Chat again."
    )]
    NoRefreshToken,
    /// Reading `/me` or `/organization` failed.
    #[error(
        "The sign-in worked, but reading the support account from Microsoft Graph failed: \
         {0}. Click Connect Teams Chat again; if it keeps failing, check that the app has the \
         User.Read permission."
    )]
    Graph(#[source] msgraph::Error),
    /// Graph returned an account Regentra cannot use.
    #[error("{0}")]
    BadAccount(String),
    /// Storage or vault failure.
    #[error(transparent)]
    Internal(#[from] ConnectionError),
}

impl From<store::StoreError> for ConnectError {
    fn from(error: store::StoreError) -> Self {
        ConnectError::Internal(ConnectionError::Store(error))
    }
}

impl From<crate::bridge::vault::VaultError> for ConnectError {
    fn from(error: crate::bridge::vault::VaultError) -> Self {
        ConnectError::Internal(ConnectionError::Vault(error))
    }
}

impl ConnectError {
    /// The admin-consent link to show next to the message, if an administrator must act.
    pub fn admin_consent_url(&self) -> Option<&Url> {
        match self {
            ConnectError::Refused {
                admin_consent_url, ..
            } => admin_consent_url.as_ref(),
            _ => None,
        }
    }
}

/// The card's message for a refused sign-in, and whether the admin-consent link helps.
fn refusal_message(error: &TokenError) -> (String, bool) {
    let code_is = |codes: &[u32]| error.error_codes.iter().any(|code| codes.contains(code));
    let codes_text = if error.error_codes.is_empty() {
        error.error.clone()
    } else {
        error
            .error_codes
            .iter()
            .map(|code| format!("AADSTS{code}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if code_is(&[90094, 90095]) || error.error == "consent_required" {
        return (
            format!(
                "Your Microsoft 365 organization only lets administrators approve apps, so the \
                 support user could not grant Regentra's permissions ({codes_text}). Ask a Global \
                 Administrator or Cloud Application Administrator to open the admin-consent link \
                 and accept, then click Connect Teams Chat again."
            ),
            true,
        );
    }
    if code_is(&[65004]) || error.error == "access_denied" {
        return (
            format!(
                "The permissions were not granted: the Microsoft sign-in was cancelled or the \
                 permission request was declined ({codes_text}). Click Connect Teams Chat again, \
                 sign in as the shared support account and choose Accept. If your organization \
                 does not let users approve apps, an administrator can approve Regentra for \
                 everyone with the admin-consent link."
            ),
            true,
        );
    }
    if error.class == TokenErrorClass::ConsentRequired {
        return (
            format!(
                "Regentra has not been granted the permissions it needs ({codes_text}). Click \
                 Connect Teams Chat again and accept, or have an administrator approve Regentra \
                 for everyone with the admin-consent link."
            ),
            true,
        );
    }
    (
        format!("Connecting the Microsoft 365 support account failed: {error}"),
        false,
    )
}

impl TeamsConnections {
    /// Starts a sign-in for `technician_id`: stores the state (hashed) and the sealed PKCE
    /// verifier, and returns where to send the browser.
    pub async fn begin_connect(
        &self,
        technician_id: TechnicianId,
    ) -> Result<ConnectStart, ConnectionError> {
        let Some(app) = &self.inner.app else {
            return Err(ConnectionError::NotConfigured(
                self.setup()
                    .problem(self.redirect_uri())
                    .unwrap_or_default(),
            ));
        };
        // select_account: the admin signing in is usually not the support user.
        let authorize = app.oauth.authorize_url(None, Some(Prompt::SelectAccount));
        let hash = state_hash(&authorize.state);
        let verifier_blob = self.inner.keys.encrypt_secret(
            &authorize.pkce_verifier,
            &SealedField::new(OAUTH_STATES_TABLE, hash.clone(), PKCE_VERIFIER_FIELD),
        )?;
        let now = self.inner.clock.now();
        store::teams::insert_oauth_state(
            &mut *self.inner.db.acquire().await?,
            &hash,
            technician_id,
            &verifier_blob,
            now + STATE_LIFETIME,
            now,
        )
        .await?;
        Ok(ConnectStart {
            authorize_url: authorize.url,
            state_hash: hash,
        })
    }

    /// Finishes a sign-in from Microsoft's redirect. `session_state_hash` is what
    /// [`ConnectStart::state_hash`] the caller kept in this browser's session (`None` if none).
    pub async fn complete_connect(
        &self,
        params: CallbackParams,
        technician_id: TechnicianId,
        session_state_hash: Option<&str>,
    ) -> Result<ConnectOutcome, ConnectError> {
        let Some(app) = &self.inner.app else {
            return Err(ConnectError::NotConfigured(
                self.setup()
                    .problem(self.redirect_uri())
                    .unwrap_or_default(),
            ));
        };
        let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
            if params
                .admin_consent
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                return Ok(ConnectOutcome::AdminConsentGranted);
            }
            return Err(ConnectError::UnknownState);
        };
        let hash = state_hash(state);
        if session_state_hash != Some(hash.as_str()) {
            return Err(ConnectError::UnknownState);
        }
        let pending =
            store::teams::take_oauth_state(&mut *self.inner.db.acquire().await?, &hash).await?;
        let Some(pending) = pending else {
            return Err(ConnectError::UnknownState);
        };
        if pending.technician_id != technician_id {
            return Err(ConnectError::UnknownState);
        }
        if pending.expires_at < self.inner.clock.now() {
            return Err(ConnectError::Expired);
        }

        if let Some(error) = params.error.as_deref() {
            let error =
                TokenError::from_authorize_callback(error, params.error_description.as_deref());
            return Err(self.refused(error));
        }
        let Some(code) = params.code else {
            return Err(ConnectError::UnknownState);
        };
        let verifier = self.inner.keys.decrypt_secret(
            &pending.pkce_verifier,
            &SealedField::new(OAUTH_STATES_TABLE, hash, PKCE_VERIFIER_FIELD),
        )?;
        let tokens = app
            .oauth
            .redeem_code(&code, &verifier)
            .await
            .map_err(|error| self.refused(error))?;
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            return Err(ConnectError::NoRefreshToken);
        };

        let graph = GraphClient::new(
            app.graph_config.clone(),
            Arc::new(StaticTokenSource::new(tokens.access_token.clone())),
        )
        .map_err(ConnectError::Graph)?;
        let me = graph.me().await.map_err(ConnectError::Graph)?;
        let organization = graph.organization().await.map_err(ConnectError::Graph)?;

        let tenant_id = TenantId::parse(&organization.id).map_err(|error| {
            ConnectError::BadAccount(format!(
                "Microsoft Graph returned a tenant id Regentra cannot use ({error}); connect an \
                 account of a work or school (Entra ID) tenant"
            ))
        })?;
        let user_id = me.id.trim().to_lowercase();
        let sign_in_name = me
            .user_principal_name
            .clone()
            .filter(|upn| !upn.trim().is_empty());
        let email = me
            .mail
            .clone()
            .filter(|mail| !mail.trim().is_empty())
            .or_else(|| sign_in_name.clone())
            .ok_or_else(|| {
                ConnectError::BadAccount(
                    "Microsoft Graph returned the account without an e-mail address or user \
                     principal name; connect a licensed Microsoft 365 user"
                        .to_owned(),
                )
            })?;
        if user_id.is_empty() {
            return Err(ConnectError::BadAccount(
                "Microsoft Graph returned the account without an id; try connecting again"
                    .to_owned(),
            ));
        }
        let display_name = me
            .display_name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| email.clone());
        let hint = account_hint::personal_account_hint(
            sign_in_name.as_deref().unwrap_or(&email),
            &display_name,
            me.given_name.as_deref(),
            me.surname.as_deref(),
        );
        let tenant_domains: Vec<String> = organization
            .verified_domains
            .iter()
            .filter_map(|domain| domain.name.as_deref())
            .map(str::to_lowercase)
            .collect();

        let mut conn = self.inner.db.acquire().await?;
        let id = store::teams::id_for_account(&mut conn, &tenant_id, &user_id)
            .await?
            .unwrap_or_default();
        let keys = &self.inner.keys;
        let access_blob =
            keys.encrypt_secret(&tokens.access_token, &token_field(id, ACCESS_TOKEN_FIELD))?;
        let refresh_blob =
            keys.encrypt_secret(&refresh_token, &token_field(id, REFRESH_TOKEN_FIELD))?;
        let retired = store::teams::save_connected(
            &mut conn,
            &NewConnection {
                id,
                tenant_id: &tenant_id,
                user_id: &user_id,
                email: &email,
                display_name: &display_name,
                tenant_domains: &tenant_domains,
                scopes: &tokens.scopes,
                personal_account_hint: hint.as_deref(),
                access_token: &access_blob,
                access_token_expires_at: self.expiry_on_our_clock(tokens.expires_at),
                refresh_token: &refresh_blob,
            },
            self.inner.clock.now(),
        )
        .await?;
        drop(conn);
        for old in retired {
            self.forget_graph_client(old);
        }
        self.forget_graph_client(id);
        tracing::info!(
            connection.id = %id,
            account.email = %email,
            tenant.id = %tenant_id,
            "Teams support account connected"
        );
        self.bump_changes();
        Ok(ConnectOutcome::Connected {
            connection_id: id,
            email,
            display_name,
            personal_account_hint: hint,
        })
    }

    fn refused(&self, error: TokenError) -> ConnectError {
        let (message, admin_link) = refusal_message(&error);
        ConnectError::Refused {
            message,
            admin_consent_url: admin_link.then(|| self.admin_consent_url()).flatten(),
            error: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_consent_required_asks_for_an_administrator() {
        let error = TokenError::from_authorize_callback(
            "consent_required",
            Some("AADSTS90094: The grant requires admin permission."),
        );
        let (message, admin_link) = refusal_message(&error);
        assert!(admin_link);
        assert!(
            message.contains("only lets administrators approve apps"),
            "{message}"
        );
        assert!(message.contains("AADSTS90094"), "{message}");
    }

    #[test]
    fn declined_consent_says_to_accept() {
        let error = TokenError::from_authorize_callback(
            "access_denied",
            Some("AADSTS65004: User declined to consent to access the app."),
        );
        let (message, admin_link) = refusal_message(&error);
        assert!(admin_link);
        assert!(message.contains("choose Accept"), "{message}");
        assert!(message.contains("AADSTS65004"), "{message}");
    }

    #[test]
    fn other_failures_show_microsofts_reason_without_the_admin_link() {
        let error = TokenError::from_authorize_callback(
            "invalid_request",
            Some("AADSTS50011: The redirect URI does not match."),
        );
        let (message, admin_link) = refusal_message(&error);
        assert!(!admin_link);
        assert!(message.starts_with("Connecting the Microsoft 365 support account failed"));
        assert!(message.contains("AADSTS50011"), "{message}");
    }
}
