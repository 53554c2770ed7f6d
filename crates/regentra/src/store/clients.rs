//! Clients (customer companies) and the tenant → client matching of ARCHITECTURE §6.
//!
//! Rule kept here: whenever a client gains an Entra tenant id (create, update or
//! [`assign_tenant`]), the Unassigned tickets and unassigned contacts from that tenant move to
//! it in the same transaction. Two clients can never share a tenant id (typed `Conflict`).

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::sql::{from_ms, parse_stored, parse_stored_opt, to_ms};
use super::{StoreError, write_tx};
use crate::tickets::{Client, ClientId, ClientName, ClientUpdate, Domain, NewClient, TenantId};

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    entra_tenant_id: Option<String>,
    domains: String,
    created_at: i64,
    updated_at: i64,
}

impl ClientRow {
    fn into_client(self) -> Result<Client, StoreError> {
        let raw_domains: Vec<String> = serde_json::from_str(&self.domains).map_err(|err| {
            super::sql::decode_error(format!("client domains are not a JSON list: {err}"))
        })?;
        Ok(Client {
            id: parse_stored(&self.id, ClientId::parse)?,
            name: parse_stored(&self.name, ClientName::parse)?,
            entra_tenant_id: parse_stored_opt(self.entra_tenant_id.as_deref(), TenantId::parse)?,
            domains: raw_domains
                .iter()
                .map(|raw| parse_stored(raw, Domain::parse))
                .collect::<Result<_, _>>()?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

const COLUMNS: &str = "id, name, entra_tenant_id, domains, created_at, updated_at";

/// What [`assign_tenant`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantAssignment {
    /// Unassigned tickets from the tenant now belonging to the client.
    pub tickets_moved: u64,
    /// Contacts from the tenant now belonging to the client.
    pub contacts_moved: u64,
}

/// Creates a client. `Conflict` if another client already has its tenant id.
pub async fn create(
    conn: &mut AnyConnection,
    new: &NewClient,
    now: OffsetDateTime,
) -> Result<Client, StoreError> {
    let mut tx = write_tx(conn).await?;
    if let Some(tenant) = &new.entra_tenant_id {
        ensure_tenant_free(&mut tx, tenant, None).await?;
    }
    let id = ClientId::new();
    sqlx::query(
        "INSERT INTO clients (id, name, entra_tenant_id, domains, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id.to_string())
    .bind(new.name.as_str())
    .bind(new.entra_tenant_id.as_ref().map(|t| t.as_str().to_owned()))
    .bind(domains_json(&new.domains)?)
    .bind(to_ms(now))
    .execute(&mut *tx)
    .await
    .map_err(|err| tenant_conflict_or(err, new.entra_tenant_id.as_ref()))?;
    if let Some(tenant) = &new.entra_tenant_id {
        adopt_unassigned(&mut tx, id, tenant, now).await?;
    }
    let client = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(client)
}

/// Applies a partial update. Setting a tenant id adopts that tenant's Unassigned tickets and
/// contacts. `NotFound` for an unknown client, `Conflict` for a tenant id used by another client.
pub async fn update(
    conn: &mut AnyConnection,
    id: ClientId,
    update: &ClientUpdate,
    now: OffsetDateTime,
) -> Result<Client, StoreError> {
    let mut tx = write_tx(conn).await?;
    let current = get(&mut tx, id).await?;
    let name = update.name.as_ref().unwrap_or(&current.name);
    let tenant = match &update.entra_tenant_id {
        Some(new_tenant) => new_tenant.as_ref(),
        None => current.entra_tenant_id.as_ref(),
    };
    let domains = update.domains.as_ref().unwrap_or(&current.domains);
    if let Some(tenant) = tenant {
        ensure_tenant_free(&mut tx, tenant, Some(id)).await?;
    }
    sqlx::query(
        "UPDATE clients SET name = $1, entra_tenant_id = $2, domains = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(name.as_str())
    .bind(tenant.map(|t| t.as_str().to_owned()))
    .bind(domains_json(domains)?)
    .bind(to_ms(now))
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(|err| tenant_conflict_or(err, tenant))?;
    if let Some(tenant) = tenant
        && current.entra_tenant_id.as_ref() != Some(tenant)
    {
        adopt_unassigned(&mut tx, id, tenant, now).await?;
    }
    let client = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(client)
}

/// Gives the client this tenant id ("assign this tenant to a client" from an Unassigned ticket)
/// and moves that tenant's Unassigned tickets and unassigned contacts to it.
pub async fn assign_tenant(
    conn: &mut AnyConnection,
    id: ClientId,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<TenantAssignment, StoreError> {
    let mut tx = write_tx(conn).await?;
    ensure_tenant_free(&mut tx, tenant, Some(id)).await?;
    let updated =
        sqlx::query("UPDATE clients SET entra_tenant_id = $1, updated_at = $2 WHERE id = $3")
            .bind(tenant.as_str())
            .bind(to_ms(now))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|err| tenant_conflict_or(err, Some(tenant)))?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound("client"));
    }
    let moved = adopt_unassigned(&mut tx, id, tenant, now).await?;
    tx.commit().await?;
    Ok(moved)
}

/// One client.
pub async fn get(conn: &mut AnyConnection, id: ClientId) -> Result<Client, StoreError> {
    let row: Option<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("client"))?.into_client()
}

/// The client whose Entra tenant id is `tenant`, if any.
pub async fn by_tenant(
    conn: &mut AnyConnection,
    tenant: &TenantId,
) -> Result<Option<Client>, StoreError> {
    let row: Option<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients WHERE entra_tenant_id = $1"
    )))
    .bind(tenant.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(ClientRow::into_client).transpose()
}

/// All clients by name (an MSP has tens to hundreds; no paging needed for pickers).
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Client>, StoreError> {
    let rows: Vec<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients ORDER BY lower(name), id"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(ClientRow::into_client).collect()
}

/// One page of clients by name, with the total count (for the JSON API's `limit`/`offset`).
pub async fn list_page(
    conn: &mut AnyConnection,
    limit: i64,
    offset: i64,
) -> Result<crate::tickets::Page<Client>, StoreError> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM clients ORDER BY lower(name), id LIMIT $1 OFFSET $2"
    )))
    .bind(limit.clamp(1, 1000))
    .bind(offset.max(0))
    .fetch_all(&mut *conn)
    .await?;
    Ok(crate::tickets::Page {
        items: rows
            .into_iter()
            .map(ClientRow::into_client)
            .collect::<Result<_, _>>()?,
        total,
    })
}

fn domains_json(domains: &[Domain]) -> Result<String, StoreError> {
    serde_json::to_string(domains)
        .map_err(|err| StoreError::Internal(format!("encoding domains failed: {err}")))
}

async fn ensure_tenant_free(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    except: Option<ClientId>,
) -> Result<(), StoreError> {
    if let Some(holder) = by_tenant(conn, tenant).await?
        && Some(holder.id) != except
    {
        return Err(tenant_taken(tenant, Some(holder.name.as_str())));
    }
    Ok(())
}

fn tenant_taken(tenant: &TenantId, holder: Option<&str>) -> StoreError {
    match holder {
        Some(name) => StoreError::Conflict(format!(
            "entra_tenant_id {tenant} already belongs to client {name}; remove it there first"
        )),
        None => StoreError::Conflict(format!(
            "entra_tenant_id {tenant} already belongs to another client; remove it there first"
        )),
    }
}

/// Maps a unique violation (two writers racing past `ensure_tenant_free`) to the same Conflict.
fn tenant_conflict_or(err: sqlx::Error, tenant: Option<&TenantId>) -> StoreError {
    let err = StoreError::from(err);
    match tenant {
        Some(tenant) if err.is_unique_violation() => tenant_taken(tenant, None),
        _ => err,
    }
}

/// Moves the tenant's Unassigned tickets and unassigned contacts to the client.
pub(crate) async fn adopt_unassigned(
    conn: &mut AnyConnection,
    client: ClientId,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<TenantAssignment, StoreError> {
    let tickets = sqlx::query(
        "UPDATE tickets SET client_id = $1, unassigned_tenant_id = NULL, updated_at = $2 \
         WHERE client_id IS NULL AND unassigned_tenant_id = $3",
    )
    .bind(client.to_string())
    .bind(to_ms(now))
    .bind(tenant.as_str())
    .execute(&mut *conn)
    .await?;
    let contacts = sqlx::query(
        "UPDATE contacts SET client_id = $1 WHERE client_id IS NULL AND entra_tenant_id = $2",
    )
    .bind(client.to_string())
    .bind(tenant.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(TenantAssignment {
        tickets_moved: tickets.rows_affected(),
        contacts_moved: contacts.rows_affected(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::fresh_dbs;

    const CONTOSO_TENANT: &str = "11111111-2222-4333-8444-555555555555";

    fn contoso() -> NewClient {
        NewClient::parse(
            "Contoso",
            Some(&CONTOSO_TENANT.to_uppercase()),
            &["contoso.com".into()],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn created_client_is_found_by_tenant_in_any_letter_case() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let created = create(&mut conn, &contoso(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            assert_eq!(created.name.as_str(), "Contoso");
            assert_eq!(created.domains, [Domain::parse("contoso.com").unwrap()]);

            let tenant = TenantId::parse(&CONTOSO_TENANT.to_uppercase()).unwrap();
            let found = by_tenant(&mut conn, &tenant).await.unwrap();
            assert_eq!(found, Some(created.clone()), "{}", test_db.label);
            assert_eq!(get(&mut conn, created.id).await.unwrap(), created);
            assert_eq!(list(&mut conn).await.unwrap(), [created]);
        }
    }

    #[tokio::test]
    async fn two_clients_cannot_share_a_tenant() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            create(&mut conn, &contoso(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            let mut copy = contoso();
            copy.name = ClientName::parse("Contoso again").unwrap();
            let err = create(&mut conn, &copy, OffsetDateTime::now_utc())
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!(
                    "entra_tenant_id {CONTOSO_TENANT} already belongs to client Contoso; \
                     remove it there first"
                )
            );
            assert_eq!(list(&mut conn).await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn clients_without_tenant_do_not_collide() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            for name in ["A", "B"] {
                create(
                    &mut conn,
                    &NewClient::parse(name, None, &[]).unwrap(),
                    OffsetDateTime::now_utc(),
                )
                .await
                .unwrap();
            }
            assert_eq!(list(&mut conn).await.unwrap().len(), 2, "{}", test_db.label);
        }
    }

    #[tokio::test]
    async fn update_changes_only_given_fields_and_can_remove_the_tenant() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let created = create(&mut conn, &contoso(), OffsetDateTime::now_utc())
                .await
                .unwrap();
            let renamed = update(
                &mut conn,
                created.id,
                &ClientUpdate::parse(Some("Contoso Ltd"), None, None).unwrap(),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
            assert_eq!(renamed.name.as_str(), "Contoso Ltd");
            assert_eq!(renamed.entra_tenant_id, created.entra_tenant_id);
            assert_eq!(renamed.domains, created.domains);

            let untenanted = update(
                &mut conn,
                created.id,
                &ClientUpdate::parse(None, Some(""), Some(&[])).unwrap(),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
            assert_eq!(untenanted.entra_tenant_id, None);
            assert!(untenanted.domains.is_empty());
        }
    }

    #[tokio::test]
    async fn updating_unknown_client_is_not_found() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let err = update(
                &mut conn,
                ClientId::new(),
                &ClientUpdate::default(),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap_err();
            assert!(matches!(err, StoreError::NotFound("client")), "{err:?}");
        }
    }

    #[tokio::test]
    async fn list_page_reports_total_and_clamps_limit() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            for name in ["Charlie", "alpha", "Bravo"] {
                create(
                    &mut conn,
                    &NewClient::parse(name, None, &[]).unwrap(),
                    OffsetDateTime::now_utc(),
                )
                .await
                .unwrap();
            }
            let page = list_page(&mut conn, 2, 1).await.unwrap();
            assert_eq!(page.total, 3);
            let names: Vec<&str> = page.items.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["Bravo", "Charlie"], "{}", test_db.label);
            assert_eq!(list_page(&mut conn, 0, 0).await.unwrap().items.len(), 1);
        }
    }
}
