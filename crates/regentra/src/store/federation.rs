//! Verify Client Federation's tables (`federation_msp_settings`, `federation_checks`) and the
//! read-only queries that gather live evidence from the ticket data (ARCHITECTURE §9).
//!
//! * The MSP's imported Teams settings are one row: a successful import replaces it, nothing
//!   else writes it (a failed import never reaches this module, so the previous settings stay).
//! * The last verdict per client is one row per client, replaced by every check and removed
//!   with the client.
//! * [`live_evidence`] reads what our own data proves: the last message received from each
//!   tenant, the last reply Teams accepted per client, and the last failed send per client with
//!   its stored error. It never decides what that means: `bridge::federation` does.
//!
//! This module must never do HTTP and never invent evidence (a missing row is "no evidence").

use std::collections::HashMap;

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::sql::{decode_error, from_ms, opt_from_ms, parse_stored, parse_stored_opt, to_ms};
use super::{StoreError, write_tx};
use crate::bridge::federation::{FederationResult, FederationStatus, MspFederationSettings, Side};
use crate::tickets::{ClientId, TechnicianId, TenantId};

/// The key of the single `federation_msp_settings` row.
const MSP_ROW: &str = "msp";

/// The MSP's imported settings, if any.
pub async fn msp_settings(
    conn: &mut AnyConnection,
) -> Result<Option<MspFederationSettings>, StoreError> {
    let raw: Option<String> =
        sqlx::query_scalar("SELECT settings FROM federation_msp_settings WHERE id = $1")
            .bind(MSP_ROW)
            .fetch_optional(&mut *conn)
            .await?;
    raw.map(|raw| {
        serde_json::from_str(&raw).map_err(|err| {
            decode_error(format!("the imported Teams settings cannot be read: {err}"))
        })
    })
    .transpose()
}

/// Stores a successful import, replacing the previous one. The import time is
/// `settings.imported_at`.
pub async fn save_msp_settings(
    conn: &mut AnyConnection,
    settings: &MspFederationSettings,
    imported_by: Option<TechnicianId>,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(settings).map_err(|err| {
        StoreError::Internal(format!("encoding the Teams settings failed: {err}"))
    })?;
    sqlx::query(
        "INSERT INTO federation_msp_settings (id, settings, imported_by, imported_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, \
           imported_by = excluded.imported_by, imported_at = excluded.imported_at",
    )
    .bind(MSP_ROW)
    .bind(json)
    .bind(imported_by.map(|id| id.to_string()))
    .bind(to_ms(settings.imported_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets the imported settings (the verdicts then no longer use them). `true` if there were any.
pub async fn clear_msp_settings(conn: &mut AnyConnection) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM federation_msp_settings WHERE id = $1")
        .bind(MSP_ROW)
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// One client's verdict as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheck {
    pub client_id: ClientId,
    /// The tenant ID as it was when checked (it may have changed since).
    pub tenant_id: Option<TenantId>,
    pub result: FederationResult,
    pub checked_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    client_id: String,
    tenant_id: Option<String>,
    status: String,
    reasons: String,
    blocking_side: Option<String>,
    remediation: Option<String>,
    checked_at: i64,
}

impl CheckRow {
    fn into_check(self) -> Result<StoredCheck, StoreError> {
        let status = match self.status.as_str() {
            "connected" => FederationStatus::Connected,
            "blocked" => FederationStatus::Blocked,
            "unknown" => FederationStatus::Unknown,
            other => return Err(decode_error(format!("unknown federation status {other:?}"))),
        };
        let blocking_side = match self.blocking_side.as_deref() {
            None => None,
            Some("msp") => Some(Side::Msp),
            Some("client") => Some(Side::Client),
            Some(other) => return Err(decode_error(format!("unknown blocking side {other:?}"))),
        };
        let reasons = serde_json::from_str(&self.reasons).map_err(|err| {
            decode_error(format!("federation reasons are not a JSON list: {err}"))
        })?;
        let remediation = self
            .remediation
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|err| decode_error(format!("federation remediation cannot be read: {err}")))?;
        Ok(StoredCheck {
            client_id: parse_stored(&self.client_id, ClientId::parse)?,
            tenant_id: parse_stored_opt(self.tenant_id.as_deref(), TenantId::parse)?,
            result: FederationResult {
                status,
                reasons,
                blocking_side,
                remediation,
            },
            checked_at: from_ms(self.checked_at)?,
        })
    }
}

fn side_str(side: Side) -> &'static str {
    match side {
        Side::Msp => "msp",
        Side::Client => "client",
    }
}

/// Stores the verdicts of one run, replacing each client's previous one, all or nothing.
/// Verdicts for clients deleted meanwhile are skipped.
pub async fn save_checks(
    conn: &mut AnyConnection,
    checks: &[StoredCheck],
) -> Result<(), StoreError> {
    let mut tx = write_tx(conn).await?;
    for check in checks {
        let reasons = serde_json::to_string(&check.result.reasons)
            .map_err(|err| StoreError::Internal(format!("encoding reasons failed: {err}")))?;
        let remediation = check
            .result
            .remediation
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|err| StoreError::Internal(format!("encoding remediation failed: {err}")))?;
        // INSERT … SELECT FROM clients: a client deleted since the check started is skipped
        // instead of failing the whole run on the foreign key.
        sqlx::query(
            "INSERT INTO federation_checks \
               (client_id, tenant_id, status, reasons, blocking_side, remediation, checked_at) \
             SELECT id, $2, $3, $4, $5, $6, $7 FROM clients WHERE id = $1 \
             ON CONFLICT (client_id) DO UPDATE SET tenant_id = excluded.tenant_id, \
               status = excluded.status, reasons = excluded.reasons, \
               blocking_side = excluded.blocking_side, remediation = excluded.remediation, \
               checked_at = excluded.checked_at",
        )
        .bind(check.client_id.to_string())
        .bind(
            check
                .tenant_id
                .as_ref()
                .map(|tenant| tenant.as_str().to_owned()),
        )
        .bind(check.result.status.as_str())
        .bind(reasons)
        .bind(check.result.blocking_side.map(side_str))
        .bind(remediation)
        .bind(to_ms(check.checked_at))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The last stored verdict of every client that has one.
pub async fn last_checks(
    conn: &mut AnyConnection,
) -> Result<HashMap<ClientId, StoredCheck>, StoreError> {
    let rows: Vec<CheckRow> = sqlx::query_as(
        "SELECT client_id, tenant_id, status, reasons, blocking_side, remediation, checked_at \
         FROM federation_checks",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| row.into_check().map(|check| (check.client_id, check)))
        .collect()
}

/// The most recent reply to a client that Teams refused, as stored by the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFailedSend {
    /// When the send was given up (the outbox row's last update), or when the reply was
    /// written if no outbox row exists.
    pub at: OffsetDateTime,
    /// The error shown on the ticket.
    pub error: String,
}

/// What our own data proves about each tenant and client, read in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveEvidence {
    /// Newest client message received per sender tenant.
    pub last_inbound_by_tenant: HashMap<TenantId, OffsetDateTime>,
    /// Newest reply accepted by Teams per client (of tickets belonging to the client).
    pub last_delivered_reply_by_client: HashMap<ClientId, OffsetDateTime>,
    /// Newest failed reply per client.
    pub last_failed_send_by_client: HashMap<ClientId, StoredFailedSend>,
}

/// Reads the live evidence for all clients and tenants (three aggregate queries).
pub async fn live_evidence(conn: &mut AnyConnection) -> Result<LiveEvidence, StoreError> {
    // Deleted messages still count: they arrived, which is what proves federation.
    let inbound: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.entra_tenant_id, MAX(e.created_at) FROM ticket_entries e \
         JOIN contacts c ON c.id = e.author_contact_id \
         WHERE e.kind = 'client_message' GROUP BY c.entra_tenant_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let delivered: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.client_id, MAX(e.sent_at) FROM ticket_entries e \
         JOIN tickets t ON t.id = e.ticket_id \
         WHERE e.kind = 'reply' AND e.delivery_state = 'sent' AND e.sent_at IS NOT NULL \
           AND t.client_id IS NOT NULL \
         GROUP BY t.client_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    // Newest first; the first row per client wins below. Failed replies are rare, so reading
    // them all is cheap.
    let failed: Vec<(String, Option<String>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT t.client_id, e.delivery_error, o.updated_at, e.created_at FROM ticket_entries e \
         JOIN tickets t ON t.id = e.ticket_id \
         LEFT JOIN outbox o ON o.entry_id = e.id \
         WHERE e.kind = 'reply' AND e.delivery_state = 'failed' AND t.client_id IS NOT NULL \
         ORDER BY COALESCE(o.updated_at, e.created_at) DESC, e.id DESC",
    )
    .fetch_all(&mut *conn)
    .await?;

    let mut evidence = LiveEvidence::default();
    for (tenant, at) in inbound {
        // Contacts always carry a valid tenant; skip rather than fail on a foreign row.
        if let Ok(tenant) = TenantId::parse(&tenant) {
            evidence.last_inbound_by_tenant.insert(tenant, from_ms(at)?);
        }
    }
    for (client, at) in delivered {
        evidence
            .last_delivered_reply_by_client
            .insert(parse_stored(&client, ClientId::parse)?, from_ms(at)?);
    }
    for (client, error, failed_at, created_at) in failed {
        let client = parse_stored(&client, ClientId::parse)?;
        if evidence.last_failed_send_by_client.contains_key(&client) {
            continue;
        }
        let at = opt_from_ms(failed_at)?.map_or_else(|| from_ms(created_at), Ok)?;
        evidence.last_failed_send_by_client.insert(
            client,
            StoredFailedSend {
                at,
                error: error.unwrap_or_default(),
            },
        );
    }
    Ok(evidence)
}

#[cfg(test)]
mod tests;
