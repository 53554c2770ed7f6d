//! Repository tests for the Teams connection and pending sign-ins, on SQLite and (when
//! configured) PostgreSQL. Blobs here are arbitrary bytes: sealing is the vault's business.

use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::store::Db;
use crate::store::technicians;
use crate::store::testing::fresh_dbs;
use crate::tickets::TechnicianEmail;

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const MSP_TENANT: &str = "4b6e1f3a-7c2d-4e8f-9a1b-2c3d4e5f6a70";
const SUPPORT_USER: &str = "9D2C5A1E-3F4B-4C6D-8E7F-0A1B2C3D4E51";
const OTHER_USER: &str = "1e7a9b3c-5d2f-4a8e-b6c4-d0e1f2a3b452";

fn new_connection<'a>(
    id: ConnectionId,
    tenant: &'a TenantId,
    user: &'a str,
    email: &'a str,
    blobs: &'a (Vec<u8>, Vec<u8>),
) -> NewConnection<'a> {
    NewConnection {
        id,
        tenant_id: tenant,
        user_id: user,
        email,
        display_name: "Northwind IT Support",
        tenant_domains: &[],
        scopes: &[],
        personal_account_hint: None,
        access_token: &blobs.0,
        access_token_expires_at: T0 + Duration::hours(1),
        refresh_token: &blobs.1,
    }
}

async fn connect(db: &Db, user: &str, email: &str, now: OffsetDateTime) -> ConnectionId {
    let tenant = TenantId::parse(MSP_TENANT).unwrap();
    let mut conn = db.acquire().await.unwrap();
    let id = id_for_account(&mut conn, &tenant, user)
        .await
        .unwrap()
        .unwrap_or_default();
    let blobs = (b"access-blob".to_vec(), b"refresh-blob".to_vec());
    save_connected(
        &mut conn,
        &new_connection(id, &tenant, user, email, &blobs),
        now,
    )
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn connecting_stores_the_account_as_current_and_connected() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let id = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        let current = current(&mut conn).await.unwrap().unwrap();
        assert_eq!(current.id, id, "{}", test_db.label);
        assert_eq!(current.state, ConnectionState::Connected);
        assert_eq!(current.email, "support@northwind-it.example");
        assert_eq!(current.user_id, SUPPORT_USER.to_lowercase());
        assert_eq!(current.access_token.as_deref(), Some(&b"access-blob"[..]));
        assert_eq!(current.refresh_token.as_deref(), Some(&b"refresh-blob"[..]));
        assert_eq!(current.token_version, 1);
        assert_eq!(current.connected_at, T0);
    }
}

#[tokio::test]
async fn connecting_another_account_retires_the_first_and_erases_its_tokens() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let second = connect(db, OTHER_USER, "helpdesk@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(current(&mut conn).await.unwrap().unwrap().id, second);
        let old = get(&mut conn, first).await.unwrap();
        assert_eq!(
            old.state,
            ConnectionState::Disconnected,
            "{}",
            test_db.label
        );
        assert!(old.access_token.is_none() && old.refresh_token.is_none());
        assert_eq!(old.disconnected_at, Some(T0));
    }
}

#[tokio::test]
async fn reconnecting_the_same_account_keeps_its_id() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        assert!(
            mark_reconnect_required(&mut conn, first, "revoked", T0)
                .await
                .unwrap()
        );
        drop(conn);
        let again = connect(
            db,
            SUPPORT_USER,
            "support@northwind-it.example",
            T0 + Duration::hours(1),
        )
        .await;
        assert_eq!(again, first, "{}", test_db.label);
        let mut conn = db.acquire().await.unwrap();
        let record = current(&mut conn).await.unwrap().unwrap();
        assert_eq!(record.state, ConnectionState::Connected);
        assert_eq!(record.problem, None);
        assert_eq!(record.connected_at, T0 + Duration::hours(1));
    }
}

#[tokio::test]
async fn reconnect_required_is_set_once_and_erases_the_tokens() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let id = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        assert!(
            mark_reconnect_required(&mut conn, id, "the grant was revoked", T0)
                .await
                .unwrap()
        );
        assert!(
            !mark_reconnect_required(&mut conn, id, "again", T0)
                .await
                .unwrap(),
            "second call must report no change ({})",
            test_db.label
        );
        let record = current(&mut conn).await.unwrap().unwrap();
        assert_eq!(record.state, ConnectionState::ReconnectRequired);
        assert_eq!(record.problem.as_deref(), Some("the grant was revoked"));
        assert!(record.access_token.is_none() && record.refresh_token.is_none());
    }
}

#[tokio::test]
async fn disconnect_clears_the_current_slot_and_tokens() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let id = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(disconnect_current(&mut conn, T0).await.unwrap(), Some(id));
        assert!(
            current(&mut conn).await.unwrap().is_none(),
            "{}",
            test_db.label
        );
        assert_eq!(disconnect_current(&mut conn, T0).await.unwrap(), None);
        let record = get(&mut conn, id).await.unwrap();
        assert_eq!(record.state, ConnectionState::Disconnected);
        assert!(record.refresh_token.is_none());
    }
}

#[tokio::test]
async fn refresh_lease_lets_one_owner_store_tokens_once() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let id = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        let until = T0 + Duration::seconds(60);
        assert!(
            claim_refresh_lease(&mut conn, id, 1, "process-a", until, T0)
                .await
                .unwrap()
        );
        assert!(
            !claim_refresh_lease(&mut conn, id, 1, "process-b", until, T0)
                .await
                .unwrap(),
            "a held lease must refuse a second owner ({})",
            test_db.label
        );
        assert!(
            !store_refreshed_tokens(&mut conn, id, 1, "process-b", b"a2", until, b"r2", T0)
                .await
                .unwrap()
        );
        assert!(
            store_refreshed_tokens(&mut conn, id, 1, "process-a", b"a2", until, b"r2", T0)
                .await
                .unwrap()
        );
        let record = get(&mut conn, id).await.unwrap();
        assert_eq!(record.token_version, 2);
        assert_eq!(record.refresh_token.as_deref(), Some(&b"r2"[..]));
        assert_eq!(record.refresh_lease_owner, None);
        // The old version can no longer be claimed or written.
        assert!(
            !claim_refresh_lease(&mut conn, id, 1, "process-b", until, T0)
                .await
                .unwrap()
        );
        // An expired lease can be taken over.
        assert!(
            claim_refresh_lease(&mut conn, id, 2, "process-a", until, T0)
                .await
                .unwrap()
        );
        assert!(
            claim_refresh_lease(
                &mut conn,
                id,
                2,
                "process-b",
                until + Duration::seconds(60),
                until + Duration::seconds(1)
            )
            .await
            .unwrap()
        );
    }
}

#[tokio::test]
async fn tokens_refreshed_after_a_disconnect_are_not_stored() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let id = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        let until = T0 + Duration::seconds(60);
        assert!(
            claim_refresh_lease(&mut conn, id, 1, "p", until, T0)
                .await
                .unwrap()
        );
        disconnect_current(&mut conn, T0).await.unwrap();
        assert!(
            !store_refreshed_tokens(&mut conn, id, 1, "p", b"a", until, b"r", T0)
                .await
                .unwrap(),
            "{}",
            test_db.label
        );
        assert!(get(&mut conn, id).await.unwrap().refresh_token.is_none());
    }
}

async fn technician(db: &Db) -> TechnicianId {
    technicians::create(
        &mut db.acquire().await.unwrap(),
        technicians::NewTechnician {
            email: TechnicianEmail::parse("ada@msp.example").unwrap(),
            display_name: "Ada".into(),
            password: SecretString::from("a long test password"),
        },
        T0,
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn oauth_state_is_taken_once_and_stored_only_as_a_hash() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let technician_id = technician(db).await;
        let mut conn = db.acquire().await.unwrap();
        let state = "random-state-value";
        let hash = state_hash(state);
        insert_oauth_state(
            &mut conn,
            &hash,
            technician_id,
            b"sealed-verifier",
            T0 + Duration::minutes(10),
            T0,
        )
        .await
        .unwrap();
        let stored: Vec<String> = sqlx::query_scalar("SELECT state_hash FROM teams_oauth_states")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        assert_eq!(stored, vec![hash.clone()]);
        assert_ne!(stored[0], state);
        let taken = take_oauth_state(&mut conn, &hash).await.unwrap().unwrap();
        assert_eq!(taken.technician_id, technician_id, "{}", test_db.label);
        assert_eq!(taken.pkce_verifier, b"sealed-verifier");
        assert_eq!(taken.expires_at, T0 + Duration::minutes(10));
        assert!(take_oauth_state(&mut conn, &hash).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn expired_oauth_states_are_swept_on_insert() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let technician_id = technician(db).await;
        let mut conn = db.acquire().await.unwrap();
        insert_oauth_state(&mut conn, "old", technician_id, b"v", T0, T0)
            .await
            .unwrap();
        insert_oauth_state(
            &mut conn,
            "new",
            technician_id,
            b"v",
            T0 + Duration::hours(1),
            T0 + Duration::minutes(11),
        )
        .await
        .unwrap();
        assert!(
            take_oauth_state(&mut conn, "old").await.unwrap().is_none(),
            "{}",
            test_db.label
        );
        assert!(take_oauth_state(&mut conn, "new").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn rotation_rewrites_blobs_unless_a_refresh_got_there_first() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let id = connect(db, SUPPORT_USER, "support@northwind-it.example", T0).await;
        let mut conn = db.acquire().await.unwrap();
        let sealed = all_sealed_tokens(&mut conn).await.unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].id, id);
        assert!(
            replace_sealed_tokens(
                &mut conn,
                id,
                sealed[0].token_version,
                Some(b"a'"),
                Some(b"r'")
            )
            .await
            .unwrap()
        );
        let record = get(&mut conn, id).await.unwrap();
        assert_eq!(record.refresh_token.as_deref(), Some(&b"r'"[..]));
        assert_eq!(record.token_version, sealed[0].token_version);
        assert!(
            !replace_sealed_tokens(&mut conn, id, 99, Some(b"x"), Some(b"y"))
                .await
                .unwrap(),
            "{}",
            test_db.label
        );
    }
}

#[test]
fn state_hash_is_sha256_hex() {
    assert_eq!(
        state_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
