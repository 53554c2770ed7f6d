//! The scenario file (ARCHITECTURE §4): tenants, users, app registrations and chats with their
//! members and messages. Graph objects are kept as given (unknown fields preserved) so recorded
//! payloads can be replayed; only the few keys the simulator needs are typed.
//!
//! This module only parses and checks; it must never touch the running state.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::SimError;

/// A whole simulated world. Load with [`Scenario::from_file`] or build in code (see `demo`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Scenario {
    #[serde(default)]
    pub tenants: Vec<ScenarioTenant>,
    #[serde(default)]
    pub users: Vec<ScenarioUser>,
    #[serde(default, rename = "appRegistrations")]
    pub app_registrations: Vec<ScenarioApp>,
    #[serde(default)]
    pub chats: Vec<ScenarioChat>,
    /// Anything else in the file is kept (and ignored).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tenant. Everything except the simulator settings is served by `GET /organization`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioTenant {
    pub id: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    /// Graph `verifiedDomain` objects, or plain domain names (turned into Graph objects).
    #[serde(default, rename = "verifiedDomains")]
    pub verified_domains: Vec<Value>,
    /// Teams external access (Teams admin center → Users → External access).
    #[serde(default, rename = "teamsExternalAccess")]
    pub teams_external_access: ExternalAccess,
    /// Users may not consent to apps; an admin must (AADSTS90094 on sign-in).
    #[serde(default, rename = "adminConsentRequired")]
    pub admin_consent_required: bool,
    /// Client ids an admin already consented to for the whole tenant.
    #[serde(default, rename = "adminConsentGranted")]
    pub admin_consent_granted: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The four modes of Teams external access, domain based as in Teams.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccess {
    pub mode: ExternalAccessMode,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub blocked_domains: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ExternalAccessMode {
    /// Allow all external domains (the Teams default).
    #[default]
    AllowAll,
    /// Allow only `allowedDomains`.
    AllowList,
    /// Block `blockedDomains`, allow the rest.
    BlockList,
    /// Block all external domains.
    BlockAll,
}

/// A user. `tenantId` is the simulator's link to the home tenant and is not served by `/me`;
/// every other key is served as given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioUser {
    pub id: String,
    #[serde(rename = "tenantId")]
    pub tenant_id: String,
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An app registration (Entra "App registrations").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioApp {
    pub client_id: String,
    /// Made-up secret; the simulator compares it verbatim.
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Simulator convenience, off by default: accept a registered `http://127.0.0.1`/`localhost`
    /// redirect URI on any port. Exact-match validation is the real (and default) behaviour.
    #[serde(default)]
    pub allow_any_loopback_port: bool,
}

/// A chat: the Graph chat object plus `members` (conversationMember objects) and `messages`
/// (chatMessage objects). A message may carry `hostedContents: [{id, contentType, contentBytes}]`
/// (bytes base64) which are served under `…/hostedContents`. The optional key
/// `@sim.visibleTo` (user ids) lists who sees the chat besides its members; it is never served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioChat {
    #[serde(default)]
    pub members: Vec<Value>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(flatten)]
    pub chat: Map<String, Value>,
}

impl Scenario {
    /// Reads and checks a scenario file. Errors name the file and what is wrong.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Scenario, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ScenarioRead {
            path: path.display().to_string(),
            source,
        })?;
        let scenario: Scenario =
            serde_json::from_str(&text).map_err(|source| SimError::ScenarioParse {
                path: path.display().to_string(),
                source,
            })?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Parses a scenario from JSON text (same checks as [`Scenario::from_file`]).
    pub fn from_json(text: &str) -> Result<Scenario, SimError> {
        let scenario: Scenario =
            serde_json::from_str(text).map_err(|source| SimError::ScenarioParse {
                path: "<inline>".to_owned(),
                source,
            })?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Checks references between objects so mistakes surface at load time, not mid-test.
    pub fn check(&self) -> Result<(), SimError> {
        let invalid = |what: String| Err(SimError::ScenarioInvalid(what));
        for user in &self.users {
            if !self
                .tenants
                .iter()
                .any(|t| t.id.eq_ignore_ascii_case(&user.tenant_id))
            {
                return invalid(format!(
                    "user {} names tenant {} which is not in `tenants`; add the tenant or fix the user's tenantId",
                    user.id, user.tenant_id
                ));
            }
        }
        for (index, chat) in self.chats.iter().enumerate() {
            let Some(chat_id) = chat.chat.get("id").and_then(Value::as_str) else {
                return invalid(format!(
                    "chat #{index} has no string `id`; every chat needs one"
                ));
            };
            for (message_index, message) in chat.messages.iter().enumerate() {
                if message.get("id").and_then(Value::as_str).is_none() {
                    return invalid(format!(
                        "chat {chat_id}: message #{message_index} has no string `id`; Graph message ids are required"
                    ));
                }
            }
            for member in &chat.members {
                if !member.is_object() {
                    return invalid(format!(
                        "chat {chat_id}: every member must be a JSON object"
                    ));
                }
            }
        }
        for app in &self.app_registrations {
            for uri in &app.redirect_uris {
                if url::Url::parse(uri).is_err() {
                    return invalid(format!(
                        "app {}: redirect URI {uri:?} is not an absolute URL",
                        app.client_id
                    ));
                }
            }
        }
        Ok(())
    }
}
