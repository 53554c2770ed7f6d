//! Token minting: JWT-shaped access and id tokens (header.claims.signature, base64url) and opaque
//! refresh tokens, recorded in the world so Graph can check expiry and scopes and `/_sim/tokens`
//! can list them. The signature is random bytes: only this simulator validates these tokens.
//!
//! Never log token values.

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::SimConfig;
use crate::model::{AccessTokenRecord, RefreshTokenRecord, User, World};

/// Microsoft Graph's application id, the `aud` of Graph access tokens.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
pub(crate) const GRAPH_RESOURCE: &str = "https://graph.microsoft.com/";
/// OpenID Connect scopes: they ask for tokens, not Graph permissions.
pub(crate) const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn random_b64url(len: usize) -> String {
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        bytes.extend_from_slice(&rand::random::<[u8; 32]>());
    }
    bytes.truncate(len);
    b64url(&bytes)
}

fn jwt(claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "m365-sim"});
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        random_b64url(64)
    )
}

/// Decodes the claims of a token this module minted (tests and diagnostics only).
pub fn decode_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Splits requested scopes into Graph permissions (short names) and OIDC scopes.
pub(crate) fn graph_scopes(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| !OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(s)))
        .cloned()
        .collect()
}

pub(crate) fn has_scope(scopes: &[String], wanted: &str) -> bool {
    scopes.iter().any(|s| s.eq_ignore_ascii_case(wanted))
}

/// What the token endpoint returns on success.
pub(crate) struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: String,
}

impl IssuedTokens {
    /// Body in the key order of the recorded success response (fixture 43) plus `id_token`.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "token_type": "Bearer",
            "scope": self.scope,
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": self.access_token,
        });
        if let Some(refresh) = &self.refresh_token {
            body["refresh_token"] = json!(refresh);
        }
        if let Some(id_token) = &self.id_token {
            body["id_token"] = json!(id_token);
        }
        body
    }
}

/// Mints and records tokens for `user` and `client_id` with `scopes` (already normalised).
pub(crate) fn issue(
    world: &mut World,
    config: &SimConfig,
    now: OffsetDateTime,
    user: &User,
    client_id: &str,
    scopes: &[String],
    nonce: Option<&str>,
) -> IssuedTokens {
    let lifetime = {
        let (low, high) = (
            *config.access_token_lifetime_secs.start(),
            *config.access_token_lifetime_secs.end(),
        );
        if low >= high {
            low
        } else {
            rand::random_range(low..=high)
        }
    };
    let graph = graph_scopes(scopes);
    let expires_at = now + time::Duration::seconds(lifetime as i64);
    let claims = json!({
        "aud": GRAPH_APP_ID,
        "iss": format!("https://sts.windows.net/{}/", user.tenant_id),
        "iat": now.unix_timestamp(),
        "nbf": now.unix_timestamp(),
        "exp": expires_at.unix_timestamp(),
        "app_displayname": world.app(client_id).and_then(|a| a.display_name.clone()),
        "appid": client_id,
        "name": user.display_name,
        "oid": user.id,
        "scp": graph.join(" "),
        "sub": user.id,
        "tid": user.tenant_id,
        "unique_name": user.upn,
        "upn": user.upn,
        "uti": random_b64url(16),
        "ver": "1.0",
    });
    let access_token = jwt(&claims);
    world.access_tokens.push(AccessTokenRecord {
        token: access_token.clone(),
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        client_id: client_id.to_owned(),
        scopes: graph.clone(),
        issued_at: now,
        expires_at,
    });
    let refresh_token = has_scope(scopes, "offline_access").then(|| {
        let token = format!("1.A{}", random_b64url(96));
        let serial = world.next_token_serial;
        world.next_token_serial += 1;
        world.refresh_tokens.push(RefreshTokenRecord {
            serial,
            token: token.clone(),
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            client_id: client_id.to_owned(),
            scopes: scopes.to_vec(),
            issued_at: now,
            last_used_at: now,
        });
        token
    });
    let id_token = has_scope(scopes, "openid").then(|| {
        jwt(&json!({
            "aud": client_id,
            "iss": format!("https://login.microsoftonline.com/{}/v2.0", user.tenant_id),
            "iat": now.unix_timestamp(),
            "nbf": now.unix_timestamp(),
            "exp": expires_at.unix_timestamp(),
            "name": user.display_name,
            "nonce": nonce,
            "oid": user.id,
            "preferred_username": user.upn,
            "sub": user.id,
            "tid": user.tenant_id,
            "ver": "2.0",
        }))
    });
    let mut scope_words: Vec<String> = graph
        .iter()
        .map(|s| format!("{GRAPH_RESOURCE}{s}"))
        .collect();
    for oidc in ["openid", "profile", "email"] {
        if has_scope(scopes, oidc) {
            scope_words.push(oidc.to_owned());
        }
    }
    IssuedTokens {
        access_token,
        expires_in: lifetime,
        refresh_token,
        id_token,
        scope: scope_words.join(" "),
    }
}
