//! Running Verify Client Federation: gathers the evidence for every client, asks the identity
//! platform whether each tenant exists, applies [`verdict`] and stores the results.
//!
//! Evidence per client (ARCHITECTURE §9):
//! 1. the tenant ID (missing → Unknown, checked by the rules);
//! 2. the identity platform's public OIDC discovery document
//!    `GET {REGENTRA_MS_AUTHORITY}/{tenant}/v2.0/.well-known/openid-configuration`
//!    ([`TenantDirectory`]): 200 → exists, 400 with AADSTS90002 → not found, anything else
//!    (timeout, other status, redirect, unreadable body) → the lookup failed, which is no
//!    evidence either way;
//! 3. our own data ([`store::federation::live_evidence`]): the last message from the tenant, the
//!    last reply Teams accepted, the last failed send and whether it was a federation refusal
//!    ([`is_federation_refusal`]);
//! 4. the MSP's imported Teams settings, and the MSP's domains and support address from the
//!    current Teams connection (for the remediation text).
//!
//! Lookups run concurrently, at most [`CheckOptions::concurrency`] at a time, each bounded by
//! [`CheckOptions::lookup_timeout`]; a slow or failing lookup turns into a reason on that one
//! client, never into an error of the whole check. No database connection is held while the
//! lookups run.
//!
//! This module must never claim more than the evidence shows (that is [`verdict`]'s job; this
//! module only feeds it faithfully), send anything to a client's tenant, or use a token: the
//! discovery document is public.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;

use super::rules::{ClientEvidence, FailedSend, FederationResult, TenantLookup, verdict};
use crate::store::federation::{LiveEvidence, StoredCheck, StoredFailedSend};
use crate::store::{self, Db, StoreError};
use crate::tickets::{Client, ClientId, TenantId};

/// At most this many tenant lookups run at the same time by default.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Each tenant lookup gives up after this long by default.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The identity platform's error code for "tenant not found".
const TENANT_NOT_FOUND_CODE: i64 = 90002;

/// How a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Tenant lookups in flight at once (at least 1).
    pub concurrency: usize,
    /// Time limit of one tenant lookup (connect + answer).
    pub lookup_timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
        }
    }
}

/// Why the check as a whole could not run (single lookups never end up here).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The HTTP client for the lookups could not be built (TLS setup).
    #[error(
        "cannot prepare the HTTP client for the tenant lookups ({0}); check the TLS setup of \
         this machine"
    )]
    HttpClient(#[source] reqwest::Error),
    /// Reading the clients or evidence, or storing the results, failed.
    #[error("Verify Client Federation could not read or store its data: {0}")]
    Store(#[from] StoreError),
}

/// Asks the identity platform's public OIDC discovery document whether a tenant exists.
#[derive(Debug, Clone)]
pub struct TenantDirectory {
    http: reqwest::Client,
    /// `REGENTRA_MS_AUTHORITY` without a trailing slash.
    authority: String,
}

impl TenantDirectory {
    /// A directory on `authority` (e.g. `https://login.microsoftonline.com`) whose lookups give
    /// up after `timeout`. Redirects are not followed: the real service answers directly.
    pub fn new(authority: &Url, timeout: Duration) -> Result<Self, CheckError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Regentra/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CheckError::HttpClient)?;
        Ok(Self {
            http,
            authority: authority.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// The discovery document's address for `tenant`.
    pub fn discovery_url(&self, tenant: &TenantId) -> String {
        format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            self.authority
        )
    }

    /// Looks the tenant up. Never fails: a failure is [`TenantLookup::Failed`] with a reason
    /// a person can read.
    pub async fn lookup(&self, tenant: &TenantId) -> TenantLookup {
        let response = match self.http.get(self.discovery_url(tenant)).send().await {
            Ok(response) => response,
            Err(error) => return TenantLookup::Failed(describe_request_error(error)),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return TenantLookup::Failed(describe_request_error(error)),
        };
        classify_discovery_answer(status, &body)
    }
}

/// What the discovery answer means (see the module docs).
fn classify_discovery_answer(status: reqwest::StatusCode, body: &[u8]) -> TenantLookup {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if status == reqwest::StatusCode::OK {
        return match json.as_ref().and_then(|doc| doc.get("issuer")) {
            Some(serde_json::Value::String(_)) => TenantLookup::Exists,
            _ => TenantLookup::Failed(
                "the sign-in service answered, but not with an OpenID configuration".to_owned(),
            ),
        };
    }
    let aadsts_codes: Vec<i64> = json
        .as_ref()
        .and_then(|error| error.get("error_codes"))
        .and_then(serde_json::Value::as_array)
        .map(|codes| codes.iter().filter_map(serde_json::Value::as_i64).collect())
        .unwrap_or_default();
    let description = json
        .as_ref()
        .and_then(|error| error.get("error_description"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if status == reqwest::StatusCode::BAD_REQUEST
        && (aadsts_codes.contains(&TENANT_NOT_FOUND_CODE)
            || description.starts_with("AADSTS90002:"))
    {
        return TenantLookup::NotFound;
    }
    let code = aadsts_codes
        .first()
        .map(|code| format!(", AADSTS{code}"))
        .unwrap_or_default();
    let kind = if status.is_redirection() {
        "a redirect instead of the OpenID configuration"
    } else {
        "an error"
    };
    TenantLookup::Failed(format!(
        "the sign-in service answered with {kind} (HTTP {}{code})",
        status.as_u16()
    ))
}

fn describe_request_error(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "the sign-in service did not answer in time".to_owned()
    } else if error.is_connect() {
        "the sign-in service could not be reached".to_owned()
    } else {
        // Without the URL: it is ours and adds nothing for the reader.
        format!(
            "the request to the sign-in service failed ({})",
            error.without_url()
        )
    }
}

/// The words the outbox (`bridge::outbox::classify`) puts into a reply's delivery error when
/// Teams answers a plain 403 to a send, which is what a federation (external access) block
/// looks like: "Teams refused: this client's organisation blocks external chat with us (or the
/// support user is no longer in this chat). …"; the demo's seeded Fabrikam history uses the same
/// words. A test in `check/tests.rs` runs the outbox's classifier so the two cannot drift apart.
pub const FEDERATION_REFUSAL_MARKER: &str = "blocks external chat";

/// Whether a stored delivery error is Teams refusing the message because of federation
/// (external access), as opposed to throttling, a missing permission, a deleted chat …
///
/// Graph does not document the response to a federation-blocked send (graph-facts §7, §12); a
/// plain 403 on a chat with a member of another tenant is what is observed, and the outbox
/// words it with [`FEDERATION_REFUSAL_MARKER`] (also when it gave up after retries, since the
/// last reason is quoted then).
pub fn is_federation_refusal(error: &str) -> bool {
    error.contains(FEDERATION_REFUSAL_MARKER)
}

/// The verdict for one client, as stored and shown; serialises as the API row (ARCHITECTURE
/// §3: `client_id, name, tenant_id, status, reasons, checked_at`, plus the remediation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientVerdict {
    pub client_id: ClientId,
    pub name: String,
    /// The client's tenant ID, when set.
    pub tenant_id: Option<TenantId>,
    /// The client's domains, as used for the verdict.
    pub domains: Vec<String>,
    /// Flattened: `status`, `reasons`, `blocking_side`, `remediation` (ARCHITECTURE §3 row).
    #[serde(flatten)]
    pub result: FederationResult,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

/// The MSP side of the evidence: who the support account is and which domains it chats from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MspAccount {
    /// The connected support account's address.
    pub support_account: Option<String>,
    /// The MSP tenant's verified domains (or the support account's domain when those are not
    /// known).
    pub domains: Vec<String>,
}

/// The MSP account from the current Teams connection (also while it needs reconnecting: the
/// domains are still right). Empty when nothing was ever connected.
pub async fn msp_account(db: &Db) -> Result<MspAccount, StoreError> {
    let Some(connection) = store::teams::current(&mut *db.acquire().await?).await? else {
        return Ok(MspAccount::default());
    };
    let mut domains: Vec<String> = connection
        .tenant_domains
        .iter()
        .map(|domain| domain.trim().to_ascii_lowercase())
        .filter(|domain| !domain.is_empty())
        .collect();
    if domains.is_empty()
        && let Some((_, domain)) = connection.email.rsplit_once('@')
    {
        domains.push(domain.to_ascii_lowercase());
    }
    Ok(MspAccount {
        support_account: Some(connection.email),
        domains,
    })
}

/// Runs Verify Client Federation for every client and stores the results (all or nothing).
/// The results are in the clients' order (by name).
pub async fn verify_all_clients(
    db: &Db,
    authority: &Url,
    options: CheckOptions,
    now: OffsetDateTime,
) -> Result<Vec<ClientVerdict>, CheckError> {
    let directory = TenantDirectory::new(authority, options.lookup_timeout)?;
    // Everything from the database first, on one connection released before any HTTP.
    let (clients, settings, evidence) = {
        let mut conn = db.acquire().await?;
        (
            store::clients::list(&mut conn).await?,
            store::federation::msp_settings(&mut conn).await?,
            store::federation::live_evidence(&mut conn).await?,
        )
    };
    let msp = msp_account(db).await?;

    let tenants: Vec<TenantId> = clients
        .iter()
        .filter_map(|client| client.entra_tenant_id.clone())
        .collect();
    let lookups = lookup_all(&directory, tenants, options.concurrency).await;

    let verdicts: Vec<ClientVerdict> = clients
        .iter()
        .map(|client| {
            let lookup = client
                .entra_tenant_id
                .as_ref()
                .and_then(|tenant| lookups.get(tenant).cloned())
                .unwrap_or(TenantLookup::NotChecked);
            let evidence = client_evidence(client, lookup, &evidence, settings.as_ref(), &msp);
            ClientVerdict {
                client_id: client.id,
                name: client.name.to_string(),
                tenant_id: client.entra_tenant_id.clone(),
                domains: evidence.domains.clone(),
                result: verdict(&evidence),
                checked_at: now,
            }
        })
        .collect();

    let stored: Vec<StoredCheck> = verdicts
        .iter()
        .map(|row| StoredCheck {
            client_id: row.client_id,
            tenant_id: row.tenant_id.clone(),
            result: row.result.clone(),
            checked_at: row.checked_at,
        })
        .collect();
    store::federation::save_checks(&mut *db.acquire().await?, &stored).await?;
    tracing::info!(
        clients = verdicts.len(),
        connected = count(&verdicts, super::FederationStatus::Connected),
        blocked = count(&verdicts, super::FederationStatus::Blocked),
        unknown = count(&verdicts, super::FederationStatus::Unknown),
        "Verify Client Federation finished"
    );
    Ok(verdicts)
}

fn count(verdicts: &[ClientVerdict], status: super::FederationStatus) -> usize {
    verdicts
        .iter()
        .filter(|row| row.result.status == status)
        .count()
}

/// Looks up every tenant, at most `concurrency` at a time. Every tenant gets an answer.
pub async fn lookup_all(
    directory: &TenantDirectory,
    tenants: Vec<TenantId>,
    concurrency: usize,
) -> HashMap<TenantId, TenantLookup> {
    futures::stream::iter(tenants)
        .map(|tenant| async move {
            let lookup = directory.lookup(&tenant).await;
            if let TenantLookup::Failed(reason) = &lookup {
                tracing::warn!(%tenant, reason, "tenant lookup failed");
            }
            (tenant, lookup)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Everything [`verdict`] needs about one client.
fn client_evidence<'a>(
    client: &Client,
    tenant_lookup: TenantLookup,
    evidence: &LiveEvidence,
    settings: Option<&'a super::MspFederationSettings>,
    msp: &MspAccount,
) -> ClientEvidence<'a> {
    let tenant = client.entra_tenant_id.as_ref();
    ClientEvidence {
        client_name: client.name.to_string(),
        tenant_id: tenant.map(ToString::to_string),
        domains: client.domains.iter().map(ToString::to_string).collect(),
        tenant_lookup,
        last_inbound_at: tenant
            .and_then(|tenant| evidence.last_inbound_by_tenant.get(tenant))
            .copied(),
        last_delivered_reply_at: evidence
            .last_delivered_reply_by_client
            .get(&client.id)
            .copied(),
        last_failed_send: evidence
            .last_failed_send_by_client
            .get(&client.id)
            .map(failed_send),
        msp_settings: settings,
        msp_domains: msp.domains.clone(),
        support_account: msp.support_account.clone(),
    }
}

fn failed_send(stored: &StoredFailedSend) -> FailedSend {
    FailedSend {
        at: stored.at,
        federation_type: is_federation_refusal(&stored.error),
        message: stored.error.clone(),
    }
}

#[cfg(test)]
mod tests;
