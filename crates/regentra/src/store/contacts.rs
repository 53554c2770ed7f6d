//! Contacts: people at clients, keyed by (Entra object id, tenant id) as Teams identifies them.
//!
//! A contact is created on first sight of a sender and attached to the client whose tenant id
//! matches (or left unassigned). Later sightings refresh the display name (people get renamed)
//! and fill in an e-mail address if one becomes known.

use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::StoreError;
use super::sql::{from_ms, parse_stored, parse_stored_opt, to_ms};
use crate::tickets::{ClientId, Contact, ContactId, EntraObjectId, NewContact, TenantId};

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: String,
    client_id: Option<String>,
    display_name: String,
    email: Option<String>,
    entra_object_id: String,
    entra_tenant_id: String,
    created_at: i64,
}

impl ContactRow {
    fn into_contact(self) -> Result<Contact, StoreError> {
        Ok(Contact {
            id: parse_stored(&self.id, ContactId::parse)?,
            client_id: parse_stored_opt(self.client_id.as_deref(), ClientId::parse)?,
            display_name: self.display_name,
            email: self.email,
            entra_object_id: parse_stored(&self.entra_object_id, EntraObjectId::parse)?,
            entra_tenant_id: parse_stored(&self.entra_tenant_id, TenantId::parse)?,
            created_at: from_ms(self.created_at)?,
        })
    }
}

const COLUMNS: &str =
    "id, client_id, display_name, email, entra_object_id, entra_tenant_id, created_at";

/// Finds the contact with this (object id, tenant id) or creates it (one statement, safe
/// against concurrent callers). A new contact's client is the one owning the tenant.
/// The display name is refreshed when the sender's name changed; a blank name becomes
/// "Unknown sender".
pub async fn find_or_create(
    conn: &mut AnyConnection,
    seen: &NewContact,
    now: OffsetDateTime,
) -> Result<Contact, StoreError> {
    let display_name = match seen.display_name.trim() {
        "" => "Unknown sender",
        name => name,
    };
    let email = seen
        .email
        .as_deref()
        .map(str::trim)
        .filter(|email| !email.is_empty());
    let row: ContactRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO contacts \
           (id, client_id, display_name, email, entra_object_id, entra_tenant_id, created_at) \
         VALUES ($1, (SELECT id FROM clients WHERE entra_tenant_id = $2), $3, $4, $5, $2, $6) \
         ON CONFLICT (entra_object_id, entra_tenant_id) DO UPDATE SET \
           display_name = excluded.display_name, \
           email = COALESCE(excluded.email, contacts.email) \
         RETURNING {COLUMNS}"
    )))
    .bind(ContactId::new().to_string())
    .bind(seen.entra_tenant_id.as_str())
    .bind(display_name)
    .bind(email)
    .bind(seen.entra_object_id.as_str())
    .bind(to_ms(now))
    .fetch_one(&mut *conn)
    .await?;
    row.into_contact()
}

/// One contact.
pub async fn get(conn: &mut AnyConnection, id: ContactId) -> Result<Contact, StoreError> {
    let row: Option<ContactRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts WHERE id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or(StoreError::NotFound("contact"))?.into_contact()
}

/// A client's contacts by name.
pub async fn list_for_client(
    conn: &mut AnyConnection,
    client: ClientId,
) -> Result<Vec<Contact>, StoreError> {
    let rows: Vec<ContactRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts WHERE client_id = $1 ORDER BY lower(display_name), id"
    )))
    .bind(client.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(ContactRow::into_contact).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::clients;
    use crate::store::testing::fresh_dbs;
    use crate::tickets::NewClient;

    const TENANT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn megan(name: &str, email: Option<&str>) -> NewContact {
        NewContact {
            entra_object_id: EntraObjectId::parse("8EA0E38B-EFB3-4757-924A-5F94061CF8C2").unwrap(),
            entra_tenant_id: TenantId::parse(TENANT).unwrap(),
            display_name: name.into(),
            email: email.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn same_sender_is_one_contact_with_refreshed_name() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let now = OffsetDateTime::now_utc();
            let first =
                find_or_create(&mut conn, &megan("Megan B", Some("megan@contoso.com")), now)
                    .await
                    .unwrap();
            let again = find_or_create(&mut conn, &megan("Megan Bowen", None), now)
                .await
                .unwrap();
            assert_eq!(again.id, first.id, "{}", test_db.label);
            assert_eq!(again.display_name, "Megan Bowen");
            assert_eq!(
                again.email.as_deref(),
                Some("megan@contoso.com"),
                "email kept"
            );
            assert_eq!(again.client_id, None);
        }
    }

    #[tokio::test]
    async fn new_contact_joins_the_client_owning_its_tenant() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let now = OffsetDateTime::now_utc();
            let client = clients::create(
                &mut conn,
                &NewClient::parse("Contoso", Some(TENANT), &[]).unwrap(),
                now,
            )
            .await
            .unwrap();
            let contact = find_or_create(&mut conn, &megan("Megan", None), now)
                .await
                .unwrap();
            assert_eq!(contact.client_id, Some(client.id), "{}", test_db.label);
            assert_eq!(
                list_for_client(&mut conn, client.id).await.unwrap(),
                std::slice::from_ref(&contact)
            );
            assert_eq!(get(&mut conn, contact.id).await.unwrap(), contact);
        }
    }

    #[tokio::test]
    async fn blank_sender_name_gets_a_readable_placeholder() {
        for test_db in fresh_dbs().await {
            let mut conn = test_db.db.acquire().await.unwrap();
            let contact = find_or_create(&mut conn, &megan("  ", None), OffsetDateTime::now_utc())
                .await
                .unwrap();
            assert_eq!(contact.display_name, "Unknown sender");
        }
    }
}
