//! Repository tests for Verify Client Federation's tables and evidence queries, run against
//! SQLite and (when configured) PostgreSQL. Times are fixed and millisecond-aligned.

use secrecy::SecretString;
use time::Duration;
use time::macros::datetime;

use super::*;
use crate::bridge::federation::{AllowedDomains, Remediation, import_federation_configuration};
use crate::store::entries::{self, DeliveryUpdate};
use crate::store::testing::fresh_dbs;
use crate::store::tickets::{InboundClientMessage, receive_client_message};
use crate::store::{Db, clients, technicians};
use crate::tickets::lifecycle::ReopenWindow;
use crate::tickets::{
    ChatId, EntraObjectId, GraphMessageId, NewClient, NewContact, TechnicianEmail, TicketId,
};

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const CONTOSO_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const FABRIKAM_TENANT: &str = "99999999-8888-4777-8666-555555555555";

async fn client(db: &Db, name: &str, tenant: &str) -> ClientId {
    clients::create(
        &mut db.acquire().await.unwrap(),
        &NewClient::parse(name, Some(tenant), &[]).unwrap(),
        T0,
    )
    .await
    .unwrap()
    .id
}

async fn technician(db: &Db) -> TechnicianId {
    technicians::create(
        &mut db.acquire().await.unwrap(),
        technicians::NewTechnician {
            email: TechnicianEmail::parse("alex@msp.example").unwrap(),
            display_name: "Alex".into(),
            password: SecretString::from("a long test password"),
        },
        T0,
    )
    .await
    .unwrap()
    .id
}

/// A client message from `tenant` in `chat`; returns its ticket.
async fn receive(db: &Db, chat: &str, id: &str, tenant: &str, at: OffsetDateTime) -> TicketId {
    let message = InboundClientMessage {
        chat_id: ChatId::parse(chat).unwrap(),
        graph_message_id: GraphMessageId::parse(id).unwrap(),
        sender: NewContact {
            entra_object_id: EntraObjectId::parse("8ea0e38b-efb3-4757-924a-5f94061cf8c2").unwrap(),
            entra_tenant_id: TenantId::parse(tenant).unwrap(),
            display_name: "Megan Bowen".into(),
            email: None,
        },
        text: "help".into(),
        html: "<p>help</p>".into(),
        sent_at: at,
        last_modified: at,
        attachments: Vec::new(),
    };
    receive_client_message(
        &mut db.acquire().await.unwrap(),
        &message,
        ReopenWindow::default(),
        at,
    )
    .await
    .unwrap()
    .ticket_id
}

fn settings(imported_at: OffsetDateTime) -> MspFederationSettings {
    import_federation_configuration(
        r#"{"Identity":"Global","AllowFederatedUsers":true,
            "AllowedDomains":{"AllowedDomain":["Domain=contoso.com"]},"BlockedDomains":[]}"#,
        imported_at,
    )
    .unwrap()
}

#[tokio::test]
async fn imported_settings_round_trip_and_a_new_import_replaces_them() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(msp_settings(&mut conn).await.unwrap(), None);

        let by = technician(db).await;
        let first = settings(T0);
        save_msp_settings(&mut conn, &first, Some(by))
            .await
            .unwrap();
        assert_eq!(
            msp_settings(&mut conn).await.unwrap(),
            Some(first.clone()),
            "{}",
            test_db.label
        );

        let mut second = settings(T0 + Duration::hours(1));
        second.allowed = AllowedDomains::All;
        save_msp_settings(&mut conn, &second, None).await.unwrap();
        assert_eq!(msp_settings(&mut conn).await.unwrap(), Some(second));

        assert!(clear_msp_settings(&mut conn).await.unwrap());
        assert!(!clear_msp_settings(&mut conn).await.unwrap());
        assert_eq!(msp_settings(&mut conn).await.unwrap(), None);
    }
}

#[tokio::test]
async fn checks_are_replaced_per_client_and_removed_with_the_client() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let contoso = client(db, "Contoso", CONTOSO_TENANT).await;
        let fabrikam = client(db, "Fabrikam", FABRIKAM_TENANT).await;
        let blocked = StoredCheck {
            client_id: contoso,
            tenant_id: Some(TenantId::parse(CONTOSO_TENANT).unwrap()),
            result: FederationResult {
                status: FederationStatus::Blocked,
                reasons: vec!["contoso.com is not in the MSP's AllowedDomains list.".into()],
                blocking_side: Some(Side::Msp),
                remediation: Some(Remediation {
                    actions: Vec::new(),
                    test_steps: vec!["Ask someone at Contoso to write.".into()],
                    client_admin_message: None,
                }),
            },
            checked_at: T0,
        };
        let unknown = StoredCheck {
            client_id: fabrikam,
            tenant_id: None,
            result: FederationResult {
                status: FederationStatus::Unknown,
                reasons: vec!["No chat yet.".into()],
                blocking_side: None,
                remediation: None,
            },
            checked_at: T0,
        };
        let mut conn = db.acquire().await.unwrap();
        save_checks(&mut conn, &[blocked.clone(), unknown.clone()])
            .await
            .unwrap();
        let stored = last_checks(&mut conn).await.unwrap();
        assert_eq!(stored.get(&contoso), Some(&blocked), "{}", test_db.label);
        assert_eq!(stored.get(&fabrikam), Some(&unknown));

        let connected = StoredCheck {
            result: FederationResult {
                status: FederationStatus::Connected,
                reasons: vec!["Last message received.".into()],
                blocking_side: None,
                remediation: None,
            },
            checked_at: T0 + Duration::minutes(5),
            ..blocked
        };
        save_checks(&mut conn, std::slice::from_ref(&connected))
            .await
            .unwrap();
        let stored = last_checks(&mut conn).await.unwrap();
        assert_eq!(stored.get(&contoso), Some(&connected));
        assert_eq!(stored.len(), 2);

        sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(fabrikam.to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
        let stored = last_checks(&mut conn).await.unwrap();
        assert_eq!(stored.keys().collect::<Vec<_>>(), [&contoso]);

        // A verdict for a client deleted while the check ran is skipped, not an error.
        save_checks(&mut conn, &[unknown]).await.unwrap();
        assert_eq!(last_checks(&mut conn).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn live_evidence_reads_the_newest_message_delivery_and_failure() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let contoso = client(db, "Contoso", CONTOSO_TENANT).await;
        let by = technician(db).await;
        let chat = "19:contoso_support@unq.gbl.spaces";
        let ticket = receive(db, chat, "1001", CONTOSO_TENANT, T0).await;
        receive(db, chat, "1002", CONTOSO_TENANT, T0 + Duration::hours(2)).await;
        // A message from a tenant no client has yet still counts for that tenant.
        receive(
            db,
            "19:fabrikam_support@unq.gbl.spaces",
            "2001",
            FABRIKAM_TENANT,
            T0 + Duration::hours(1),
        )
        .await;

        let mut conn = db.acquire().await.unwrap();
        let sent = entries::add_reply(&mut conn, ticket, by, "On it", T0 + Duration::minutes(10))
            .await
            .unwrap();
        entries::update_delivery(
            &mut conn,
            sent.id,
            &DeliveryUpdate::Sent {
                graph_message_id: GraphMessageId::parse("1003").unwrap(),
                sent_at: T0 + Duration::minutes(11),
            },
        )
        .await
        .unwrap();
        for (minute, error) in [(20, "older refusal"), (30, "Teams refused: 403 Forbidden")] {
            let reply = entries::add_reply(
                &mut conn,
                ticket,
                by,
                "Try again",
                T0 + Duration::minutes(minute),
            )
            .await
            .unwrap();
            entries::update_delivery(
                &mut conn,
                reply.id,
                &DeliveryUpdate::Failed {
                    error: error.into(),
                },
            )
            .await
            .unwrap();
        }

        let evidence = live_evidence(&mut conn).await.unwrap();
        let contoso_tenant = TenantId::parse(CONTOSO_TENANT).unwrap();
        let fabrikam_tenant = TenantId::parse(FABRIKAM_TENANT).unwrap();
        assert_eq!(
            evidence.last_inbound_by_tenant.get(&contoso_tenant),
            Some(&(T0 + Duration::hours(2))),
            "{}",
            test_db.label
        );
        assert_eq!(
            evidence.last_inbound_by_tenant.get(&fabrikam_tenant),
            Some(&(T0 + Duration::hours(1)))
        );
        assert_eq!(
            evidence.last_delivered_reply_by_client.get(&contoso),
            Some(&(T0 + Duration::minutes(11)))
        );
        // Without an outbox row the time of the failed reply is when it was written.
        assert_eq!(
            evidence.last_failed_send_by_client.get(&contoso),
            Some(&StoredFailedSend {
                at: T0 + Duration::minutes(30),
                error: "Teams refused: 403 Forbidden".into(),
            })
        );
    }
}

#[tokio::test]
async fn no_data_is_no_evidence() {
    for test_db in fresh_dbs().await {
        let mut conn = test_db.db.acquire().await.unwrap();
        assert_eq!(
            live_evidence(&mut conn).await.unwrap(),
            LiveEvidence::default(),
            "{}",
            test_db.label
        );
        assert!(last_checks(&mut conn).await.unwrap().is_empty());
    }
}
