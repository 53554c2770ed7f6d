//! Repository tests for tickets and entries, run against SQLite and (when configured)
//! PostgreSQL. Times are fixed and millisecond-aligned so stored values compare exactly.

use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::store::entries::{self, DeliveryUpdate, EditOutcome, EditedMessage, TeamsReply};
use crate::store::testing::fresh_dbs;
use crate::store::{Db, clients, technicians};
use crate::tickets::{
    AttachmentKind, DeliveryState, DownloadState, EntraObjectId, EntryKind, NewClient,
    TechnicianEmail,
};

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const CONTOSO_TENANT: &str = "11111111-2222-4333-8444-555555555555";
const FABRIKAM_TENANT: &str = "99999999-8888-4777-8666-555555555555";
const CHAT: &str = "19:contoso-megan_support@unq.gbl.spaces";

async fn technician(db: &Db, name: &str) -> TechnicianId {
    technicians::create(
        &mut db.acquire().await.unwrap(),
        technicians::NewTechnician {
            email: TechnicianEmail::parse(&format!("{}@msp.example", name.to_lowercase())).unwrap(),
            display_name: name.into(),
            password: SecretString::from("a long test password"),
        },
        T0,
    )
    .await
    .unwrap()
    .id
}

fn message(
    chat: &str,
    id: &str,
    tenant: &str,
    text: &str,
    sent_at: OffsetDateTime,
) -> InboundClientMessage {
    InboundClientMessage {
        chat_id: ChatId::parse(chat).unwrap(),
        graph_message_id: GraphMessageId::parse(id).unwrap(),
        sender: NewContact {
            entra_object_id: EntraObjectId::parse("8ea0e38b-efb3-4757-924a-5f94061cf8c2").unwrap(),
            entra_tenant_id: TenantId::parse(tenant).unwrap(),
            display_name: "Megan Bowen".into(),
            email: None,
        },
        text: text.into(),
        html: format!("<p>{text}</p>"),
        sent_at,
        last_modified: sent_at,
        attachments: Vec::new(),
    }
}

async fn receive(db: &Db, msg: &InboundClientMessage) -> Received {
    receive_client_message(
        &mut db.acquire().await.unwrap(),
        msg,
        ReopenWindow::default(),
        msg.sent_at,
    )
    .await
    .unwrap()
}

async fn contoso(db: &Db) -> ClientId {
    clients::create(
        &mut db.acquire().await.unwrap(),
        &NewClient::parse("Contoso", Some(&CONTOSO_TENANT.to_uppercase()), &[]).unwrap(),
        T0,
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn ticket_numbers_are_sequential_from_one() {
    for test_db in fresh_dbs().await {
        let mut conn = test_db.db.acquire().await.unwrap();
        let mut numbers = Vec::new();
        for subject in ["VPN down", "Printer", "New laptop"] {
            numbers.push(
                create(&mut conn, &NewTicket::with_subject(subject), T0)
                    .await
                    .unwrap()
                    .number,
            );
        }
        assert_eq!(numbers, [1, 2, 3], "{}", test_db.label);
        assert_eq!(
            get_by_number(&mut conn, 2).await.unwrap().subject,
            "Printer"
        );
    }
}

#[tokio::test]
async fn concurrent_creates_get_distinct_numbers() {
    for test_db in fresh_dbs().await {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let db = test_db.db.clone();
                tokio::spawn(async move {
                    let mut conn = db.acquire().await.unwrap();
                    create(
                        &mut conn,
                        &NewTicket::with_subject(format!("ticket {i}")),
                        T0,
                    )
                    .await
                    .unwrap()
                    .number
                })
            })
            .collect();
        let mut numbers = Vec::new();
        for task in tasks {
            numbers.push(task.await.unwrap());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=8).collect::<Vec<i64>>(), "{}", test_db.label);
    }
}

#[tokio::test]
async fn blank_subject_is_refused() {
    for test_db in fresh_dbs().await {
        let err = create(
            &mut test_db.db.acquire().await.unwrap(),
            &NewTicket::with_subject("  "),
            T0,
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "subject must not be empty");
    }
}

#[tokio::test]
async fn list_filters_by_status_and_client_and_pages_with_total() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let client = contoso(db).await;
        let mut conn = db.acquire().await.unwrap();
        let mut assigned = NewTicket::with_subject("assigned");
        assigned.client_id = Some(client);
        let a = create(&mut conn, &assigned, T0).await.unwrap();
        let b = create(
            &mut conn,
            &NewTicket::with_subject("unassigned one"),
            T0 + Duration::minutes(1),
        )
        .await
        .unwrap();
        let c = create(
            &mut conn,
            &NewTicket::with_subject("unassigned two"),
            T0 + Duration::minutes(2),
        )
        .await
        .unwrap();
        set_status(
            &mut conn,
            c.id,
            TicketStatus::Resolved,
            tech,
            T0 + Duration::minutes(3),
        )
        .await
        .unwrap();

        let all = list(&mut conn, &TicketFilter::default()).await.unwrap();
        assert_eq!(all.total, 3);
        let order: Vec<i64> = all.items.iter().map(|t| t.number).collect();
        assert_eq!(
            order,
            [c.number, b.number, a.number],
            "most recent activity first"
        );

        let resolved = list(
            &mut conn,
            &TicketFilter {
                statuses: vec![TicketStatus::Resolved],
                ..TicketFilter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((resolved.total, resolved.items[0].id), (1, c.id));

        let active_unassigned = list(
            &mut conn,
            &TicketFilter {
                statuses: vec![TicketStatus::New, TicketStatus::Open, TicketStatus::Pending],
                client: ClientFilter::Unassigned,
                ..TicketFilter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            active_unassigned
                .items
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>(),
            [b.id]
        );

        let for_client = list(
            &mut conn,
            &TicketFilter {
                client: ClientFilter::Client(client),
                ..TicketFilter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(for_client.items[0].client_name.as_deref(), Some("Contoso"));
        assert_eq!(for_client.total, 1);

        let second_page = list(
            &mut conn,
            &TicketFilter {
                limit: 1,
                offset: 1,
                ..TicketFilter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((second_page.total, second_page.items.len()), (3, 1));
        assert_eq!(second_page.items[0].id, b.id, "{}", test_db.label);
    }
}

#[tokio::test]
async fn technician_status_change_records_times_and_an_event() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let mut conn = db.acquire().await.unwrap();
        let ticket = create(&mut conn, &NewTicket::with_subject("VPN"), T0)
            .await
            .unwrap();
        let resolved_at = T0 + Duration::hours(2);
        let resolved = set_status(
            &mut conn,
            ticket.id,
            TicketStatus::Resolved,
            tech,
            resolved_at,
        )
        .await
        .unwrap();
        assert_eq!(resolved.status, TicketStatus::Resolved);
        assert_eq!(resolved.resolved_at, Some(resolved_at));
        assert_eq!(resolved.updated_at, resolved_at);

        let closed = set_status(
            &mut conn,
            ticket.id,
            TicketStatus::Closed,
            tech,
            resolved_at + Duration::days(1),
        )
        .await
        .unwrap();
        assert_eq!(closed.closed_at, Some(resolved_at + Duration::days(1)));
        assert_eq!(
            closed.resolved_at,
            Some(resolved_at),
            "closing keeps the resolution time"
        );

        let detail = detail(&mut conn, ticket.id).await.unwrap();
        let events: Vec<&str> = detail
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Event)
            .map(|e| e.text.as_str())
            .collect();
        assert_eq!(
            events,
            [
                "Alice changed the status from New to Resolved",
                "Alice changed the status from Resolved to Closed"
            ],
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn closed_ticket_refuses_status_changes_with_the_rule_message() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let mut conn = db.acquire().await.unwrap();
        let ticket = create(&mut conn, &NewTicket::with_subject("VPN"), T0)
            .await
            .unwrap();
        set_status(&mut conn, ticket.id, TicketStatus::Closed, tech, T0)
            .await
            .unwrap();
        let err = set_status(&mut conn, ticket.id, TicketStatus::Open, tech, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("ticket is closed"), "{err}");
        assert_eq!(
            get(&mut conn, ticket.id).await.unwrap().status,
            TicketStatus::Closed
        );

        let missing = set_status(&mut conn, TicketId::new(), TicketStatus::Open, tech, T0)
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::NotFound("ticket")));
    }
}

#[tokio::test]
async fn client_message_in_new_chat_opens_ticket_for_matching_tenant() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let client = contoso(db).await;
        let msg = message(
            CHAT,
            "1700000000001",
            CONTOSO_TENANT,
            "Printer on floor 2 is down\nE-42",
            T0,
        );
        let received = receive(db, &msg).await;
        assert_eq!(received.outcome, ReceiveOutcome::NewTicket);
        assert_eq!(received.ticket_number, 1);

        let detail = detail(&mut db.acquire().await.unwrap(), received.ticket_id)
            .await
            .unwrap();
        let ticket = &detail.ticket;
        assert_eq!(ticket.subject, "Printer on floor 2 is down");
        assert_eq!(ticket.status, TicketStatus::New);
        assert_eq!(ticket.client_id, Some(client));
        assert_eq!(ticket.unassigned_tenant_id, None);
        assert_eq!(ticket.requester_name.as_deref(), Some("Megan Bowen"));
        assert_eq!(
            ticket.teams_chat_id.as_ref().map(ChatId::as_str),
            Some(CHAT)
        );
        assert_eq!(ticket.created_at, T0);
        assert_eq!(detail.entries.len(), 1);
        let entry = &detail.entries[0];
        assert_eq!(entry.id, received.entry_id);
        assert_eq!(entry.kind, EntryKind::ClientMessage);
        assert_eq!(entry.author_name, "Megan Bowen");
        assert_eq!(entry.author_contact_id, ticket.requester_contact_id);
        assert_eq!(entry.text, "Printer on floor 2 is down\nE-42");
        assert_eq!(
            entry.graph_message_id.as_ref().map(GraphMessageId::as_str),
            Some("1700000000001")
        );
        assert_eq!(entry.delivery, None, "{}", test_db.label);
    }
}

#[tokio::test]
async fn client_message_from_unknown_tenant_goes_to_unassigned_showing_the_tenant() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        contoso(db).await;
        let received = receive(db, &message(CHAT, "m1", FABRIKAM_TENANT, "Hello", T0)).await;
        let ticket = get(&mut db.acquire().await.unwrap(), received.ticket_id)
            .await
            .unwrap();
        assert_eq!(ticket.client_id, None);
        assert_eq!(
            ticket.unassigned_tenant_id.as_ref().map(TenantId::as_str),
            Some(FABRIKAM_TENANT)
        );
    }
}

#[tokio::test]
async fn same_message_twice_is_stored_once() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let msg = message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0);
        let first = receive(db, &msg).await;
        let again = receive(db, &msg).await;
        assert_eq!(again.outcome, ReceiveOutcome::AlreadyKnown);
        assert!(!again.outcome.is_new());
        assert_eq!(
            (again.ticket_id, again.entry_id),
            (first.ticket_id, first.entry_id)
        );
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(
            detail(&mut conn, first.ticket_id)
                .await
                .unwrap()
                .entries
                .len(),
            1
        );
        assert_eq!(
            list(&mut conn, &TicketFilter::default())
                .await
                .unwrap()
                .total,
            1,
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn later_messages_append_to_the_open_ticket() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        let later = T0 + Duration::minutes(5);
        let second = receive(db, &message(CHAT, "m2", CONTOSO_TENANT, "Any news?", later)).await;
        assert_eq!(second.outcome, ReceiveOutcome::Appended);
        assert_eq!(second.ticket_id, first.ticket_id);
        let ticket = get(&mut db.acquire().await.unwrap(), first.ticket_id)
            .await
            .unwrap();
        assert_eq!(ticket.updated_at, later);
        assert_eq!(ticket.status, TicketStatus::New);
    }
}

#[tokio::test]
async fn client_reply_moves_pending_ticket_back_to_open() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        set_status(
            &mut db.acquire().await.unwrap(),
            first.ticket_id,
            TicketStatus::Pending,
            tech,
            T0,
        )
        .await
        .unwrap();
        let reply = receive(
            db,
            &message(
                CHAT,
                "m2",
                CONTOSO_TENANT,
                "Here is the info",
                T0 + Duration::hours(1),
            ),
        )
        .await;
        assert_eq!(
            reply.outcome,
            ReceiveOutcome::Reopened {
                from: TicketStatus::Pending
            }
        );
        let detail = detail(&mut db.acquire().await.unwrap(), first.ticket_id)
            .await
            .unwrap();
        assert_eq!(detail.ticket.status, TicketStatus::Open);
        assert!(
            detail.entries.iter().any(|e| e.kind == EntryKind::Event
                && e.text == "Reopened (Pending → Open) by a message from Megan Bowen"),
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn message_within_reopen_window_reopens_resolved_ticket() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        set_status(
            &mut db.acquire().await.unwrap(),
            first.ticket_id,
            TicketStatus::Resolved,
            tech,
            T0,
        )
        .await
        .unwrap();
        let again = receive(
            db,
            &message(
                CHAT,
                "m2",
                CONTOSO_TENANT,
                "It broke again",
                T0 + Duration::days(6),
            ),
        )
        .await;
        assert_eq!(
            again.outcome,
            ReceiveOutcome::Reopened {
                from: TicketStatus::Resolved
            }
        );
        let ticket = get(&mut db.acquire().await.unwrap(), first.ticket_id)
            .await
            .unwrap();
        assert_eq!(
            (ticket.status, ticket.resolved_at),
            (TicketStatus::Open, None)
        );
    }
}

#[tokio::test]
async fn message_after_reopen_window_starts_linked_follow_up() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        set_status(
            &mut db.acquire().await.unwrap(),
            first.ticket_id,
            TicketStatus::Resolved,
            tech,
            T0,
        )
        .await
        .unwrap();
        let later = receive(
            db,
            &message(
                CHAT,
                "m2",
                CONTOSO_TENANT,
                "New problem: Outlook",
                T0 + Duration::days(8),
            ),
        )
        .await;
        assert_eq!(
            later.outcome,
            ReceiveOutcome::FollowUp {
                of: first.ticket_id
            }
        );
        assert!(later.outcome.created_ticket());
        assert_ne!(later.ticket_id, first.ticket_id);
        let mut conn = db.acquire().await.unwrap();
        let follow_up = detail(&mut conn, later.ticket_id).await.unwrap();
        assert_eq!(follow_up.ticket.follow_up_of, Some(first.ticket_id));
        assert_eq!(follow_up.ticket.number, 2);
        assert_eq!(follow_up.ticket.subject, "New problem: Outlook");
        assert_eq!(
            follow_up.entries.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EntryKind::Event, EntryKind::ClientMessage]
        );
        assert_eq!(
            follow_up.entries[0].text,
            "Follow-up of ticket #1 (Resolved), opened by a new message in the same chat"
        );
        assert_eq!(
            get(&mut conn, first.ticket_id).await.unwrap().status,
            TicketStatus::Resolved
        );

        // The follow-up is now the chat's current ticket.
        let next = receive(
            db,
            &message(CHAT, "m3", CONTOSO_TENANT, "more", T0 + Duration::days(8)),
        )
        .await;
        assert_eq!(
            (next.outcome, next.ticket_id),
            (ReceiveOutcome::Appended, later.ticket_id)
        );
    }
}

#[tokio::test]
async fn reopen_window_is_taken_from_the_caller() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        set_status(&mut conn, first.ticket_id, TicketStatus::Resolved, tech, T0)
            .await
            .unwrap();
        let msg = message(CHAT, "m2", CONTOSO_TENANT, "again", T0 + Duration::days(2));
        let outcome = receive_client_message(&mut conn, &msg, ReopenWindow::days(1), msg.sent_at)
            .await
            .unwrap()
            .outcome;
        assert_eq!(
            outcome,
            ReceiveOutcome::FollowUp {
                of: first.ticket_id
            }
        );
    }
}

#[tokio::test]
async fn message_after_close_always_starts_follow_up() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        set_status(
            &mut db.acquire().await.unwrap(),
            first.ticket_id,
            TicketStatus::Closed,
            tech,
            T0,
        )
        .await
        .unwrap();
        let again = receive(
            db,
            &message(
                CHAT,
                "m2",
                CONTOSO_TENANT,
                "Thanks!",
                T0 + Duration::minutes(1),
            ),
        )
        .await;
        assert_eq!(
            again.outcome,
            ReceiveOutcome::FollowUp {
                of: first.ticket_id
            }
        );
    }
}

#[tokio::test]
async fn assigning_a_tenant_moves_unassigned_tickets_and_fixes_future_matching() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = receive(db, &message(CHAT, "m1", FABRIKAM_TENANT, "Hello", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        let fabrikam = clients::create(
            &mut conn,
            &NewClient::parse("Fabrikam", None, &[]).unwrap(),
            T0,
        )
        .await
        .unwrap();
        let moved = clients::assign_tenant(
            &mut conn,
            fabrikam.id,
            &TenantId::parse(FABRIKAM_TENANT).unwrap(),
            T0,
        )
        .await
        .unwrap();
        assert_eq!((moved.tickets_moved, moved.contacts_moved), (1, 1));
        let ticket = get(&mut conn, first.ticket_id).await.unwrap();
        assert_eq!(ticket.client_id, Some(fabrikam.id));
        assert_eq!(ticket.client_name.as_deref(), Some("Fabrikam"));
        assert_eq!(ticket.unassigned_tenant_id, None);
        drop(conn);

        let other_chat = "19:fabrikam-joni_support@unq.gbl.spaces";
        let mut msg = message(other_chat, "m9", FABRIKAM_TENANT, "Second chat", T0);
        msg.sender.entra_object_id =
            EntraObjectId::parse("0000aaaa-1111-4222-8333-444455556666").unwrap();
        let received = receive(db, &msg).await;
        let ticket = get(&mut db.acquire().await.unwrap(), received.ticket_id)
            .await
            .unwrap();
        assert_eq!(ticket.client_id, Some(fabrikam.id), "{}", test_db.label);
    }
}

#[tokio::test]
async fn setting_a_tenant_on_client_update_also_adopts_unassigned_tickets() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = receive(db, &message(CHAT, "m1", FABRIKAM_TENANT, "Hello", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        let fabrikam = clients::create(
            &mut conn,
            &NewClient::parse("Fabrikam", None, &[]).unwrap(),
            T0,
        )
        .await
        .unwrap();
        clients::update(
            &mut conn,
            fabrikam.id,
            &crate::tickets::ClientUpdate::parse(None, Some(FABRIKAM_TENANT), None).unwrap(),
            T0,
        )
        .await
        .unwrap();
        assert_eq!(
            get(&mut conn, first.ticket_id).await.unwrap().client_id,
            Some(fabrikam.id)
        );
    }
}

#[tokio::test]
async fn assign_client_records_event_and_can_unassign() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let client = contoso(db).await;
        let mut conn = db.acquire().await.unwrap();
        let ticket = create(&mut conn, &NewTicket::with_subject("x"), T0)
            .await
            .unwrap();
        let assigned = assign_client(&mut conn, ticket.id, Some(client), tech, T0)
            .await
            .unwrap();
        assert_eq!(assigned.client_name.as_deref(), Some("Contoso"));
        let unassigned = assign_client(&mut conn, ticket.id, None, tech, T0)
            .await
            .unwrap();
        assert_eq!(unassigned.client_id, None);
        let texts: Vec<String> = detail(&mut conn, ticket.id)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(
            texts,
            [
                "Alice assigned the ticket to Contoso",
                "Alice moved the ticket to Unassigned"
            ]
        );
        let err = assign_client(&mut conn, ticket.id, Some(ClientId::new()), tech, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound("client")), "{err:?}");
    }
}

#[tokio::test]
async fn technician_reply_is_queued_for_the_chat_and_opens_a_new_ticket() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        let at = T0 + Duration::minutes(3);
        let reply = entries::add_reply(
            &mut conn,
            first.ticket_id,
            tech,
            "  On it <b>now</b>\nAlice ",
            at,
        )
        .await
        .unwrap();
        assert_eq!(reply.kind, EntryKind::Reply);
        assert_eq!(reply.author_name, "Alice");
        assert_eq!(reply.author_technician_id, Some(tech));
        assert_eq!(reply.text, "On it <b>now</b>\nAlice");
        assert_eq!(reply.html, "On it &#60;b&#62;now&#60;/b&#62;<br>Alice");
        assert_eq!(reply.teams_chat_id.as_ref().map(ChatId::as_str), Some(CHAT));
        assert_eq!(reply.graph_message_id, None);
        let delivery = reply.delivery.clone().unwrap();
        assert_eq!(
            (delivery.state, delivery.attempts, delivery.error),
            (DeliveryState::Queued, 0, None)
        );
        let ticket = get(&mut conn, first.ticket_id).await.unwrap();
        assert_eq!(
            (ticket.status, ticket.updated_at),
            (TicketStatus::Open, at),
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn reply_on_ticket_without_chat_is_refused_but_note_works() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let mut conn = db.acquire().await.unwrap();
        let ticket = create(&mut conn, &NewTicket::with_subject("phone call"), T0)
            .await
            .unwrap();
        let err = entries::add_reply(&mut conn, ticket.id, tech, "hello", T0)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ticket #1 has no Teams chat to reply in; add an internal note instead"
        );
        let note = entries::add_note(&mut conn, ticket.id, tech, "called the client", T0)
            .await
            .unwrap();
        assert_eq!((note.kind, note.delivery.clone()), (EntryKind::Note, None));
        assert_eq!(
            get(&mut conn, ticket.id).await.unwrap().status,
            TicketStatus::New,
            "notes keep status"
        );
        let empty = entries::add_note(&mut conn, ticket.id, tech, " \n ", T0)
            .await
            .unwrap_err();
        assert_eq!(empty.to_string(), "text must not be empty");
    }
}

#[tokio::test]
async fn reply_and_caller_write_commit_or_roll_back_together() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;

        // Rolled back: neither the reply nor the caller's own write survives.
        {
            let mut tx = db.begin().await.unwrap();
            entries::add_reply(&mut tx, first.ticket_id, tech, "draft", T0)
                .await
                .unwrap();
            sqlx::query("INSERT INTO counters (name, value) VALUES ('outbox_probe', 1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
        }
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(
            detail(&mut conn, first.ticket_id)
                .await
                .unwrap()
                .entries
                .len(),
            1
        );
        drop(conn);

        let mut tx = db.begin().await.unwrap();
        let reply = entries::add_reply(&mut tx, first.ticket_id, tech, "sent", T0)
            .await
            .unwrap();
        sqlx::query("INSERT INTO counters (name, value) VALUES ('outbox_probe', 1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(
            entries::get(&mut conn, reply.id).await.unwrap().text,
            "sent",
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn ingest_inside_a_rolled_back_transaction_leaves_nothing() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let mut tx = db.begin().await.unwrap();
        let msg = message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0);
        let received = receive_client_message(&mut tx, &msg, ReopenWindow::default(), T0)
            .await
            .unwrap();
        assert_eq!(received.outcome, ReceiveOutcome::NewTicket);
        drop(tx);
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(
            list(&mut conn, &TicketFilter::default())
                .await
                .unwrap()
                .total,
            0
        );
        // The number was not consumed either: the next ticket is still #1.
        drop(conn);
        assert_eq!(
            receive(db, &msg).await.ticket_number,
            1,
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn delivery_updates_follow_the_outbox() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db, "Alice").await;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        let reply = entries::add_reply(&mut conn, first.ticket_id, tech, "On it", T0)
            .await
            .unwrap();

        let retrying = entries::update_delivery(
            &mut conn,
            reply.id,
            &DeliveryUpdate::Retrying {
                error: "Teams is throttling (429); retrying".into(),
            },
        )
        .await
        .unwrap()
        .delivery
        .unwrap();
        assert_eq!(retrying.state, DeliveryState::Queued);
        assert_eq!(retrying.attempts, 1);
        assert_eq!(
            retrying.error.as_deref(),
            Some("Teams is throttling (429); retrying")
        );

        let failed = entries::update_delivery(
            &mut conn,
            reply.id,
            &DeliveryUpdate::Failed {
                error: "403".into(),
            },
        )
        .await
        .unwrap()
        .delivery
        .unwrap();
        assert_eq!((failed.state, failed.attempts), (DeliveryState::Failed, 2));

        let requeued = entries::update_delivery(&mut conn, reply.id, &DeliveryUpdate::Requeued)
            .await
            .unwrap()
            .delivery
            .unwrap();
        assert_eq!(
            (requeued.state, requeued.attempts, requeued.error),
            (DeliveryState::Queued, 2, None)
        );

        let sent_at = T0 + Duration::minutes(1);
        let sent = entries::update_delivery(
            &mut conn,
            reply.id,
            &DeliveryUpdate::Sent {
                graph_message_id: GraphMessageId::parse("1700000009999").unwrap(),
                sent_at,
            },
        )
        .await
        .unwrap();
        let delivery = sent.delivery.unwrap();
        assert_eq!(
            (delivery.state, delivery.attempts, delivery.sent_at),
            (DeliveryState::Sent, 3, Some(sent_at))
        );
        assert_eq!(
            sent.graph_message_id.as_ref().map(GraphMessageId::as_str),
            Some("1700000009999")
        );

        // The poller later sees our own message in the chat: recognised, not duplicated.
        let seen = entries::record_teams_reply(
            &mut conn,
            &TeamsReply {
                chat_id: ChatId::parse(CHAT).unwrap(),
                graph_message_id: GraphMessageId::parse("1700000009999").unwrap(),
                author_name: "Contoso Support".into(),
                text: "On it".into(),
                html: "<p>On it</p>".into(),
                sent_at,
                last_modified: sent_at,
            },
            sent_at,
        )
        .await
        .unwrap();
        assert_eq!(
            seen,
            entries::TeamsReplyOutcome::AlreadyKnown { entry_id: reply.id }
        );

        let note = entries::add_note(&mut conn, first.ticket_id, tech, "internal", T0)
            .await
            .unwrap();
        let err = entries::update_delivery(&mut conn, note.id, &DeliveryUpdate::Requeued)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)),
            "{}: {err:?}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn reply_typed_in_teams_is_recorded_once_as_sent_from_teams() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let mut conn = db.acquire().await.unwrap();
        let reply = TeamsReply {
            chat_id: ChatId::parse(CHAT).unwrap(),
            graph_message_id: GraphMessageId::parse("s1").unwrap(),
            author_name: "Contoso Support".into(),
            text: "We are looking into it".into(),
            html: "<p>We are looking into it</p>".into(),
            sent_at: T0 + Duration::minutes(2),
            last_modified: T0 + Duration::minutes(2),
        };
        assert_eq!(
            entries::record_teams_reply(&mut conn, &reply, T0)
                .await
                .unwrap(),
            entries::TeamsReplyOutcome::NoTicket
        );
        drop(conn);
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "Hello", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        let outcome = entries::record_teams_reply(&mut conn, &reply, T0)
            .await
            .unwrap();
        let entries::TeamsReplyOutcome::Recorded {
            ticket_id,
            entry_id,
        } = outcome
        else {
            panic!("expected Recorded, got {outcome:?}");
        };
        assert_eq!(ticket_id, first.ticket_id);
        let entry = entries::get(&mut conn, entry_id).await.unwrap();
        assert!(entry.sent_from_teams);
        assert_eq!(entry.kind, EntryKind::Reply);
        assert_eq!(entry.author_name, "Contoso Support");
        assert_eq!(entry.delivery.map(|d| d.state), Some(DeliveryState::Sent));
        assert_eq!(
            get(&mut conn, ticket_id).await.unwrap().status,
            TicketStatus::Open
        );
        assert_eq!(
            entries::record_teams_reply(&mut conn, &reply, T0)
                .await
                .unwrap(),
            entries::TeamsReplyOutcome::AlreadyKnown { entry_id },
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn edit_keeps_the_previous_text_and_ignores_older_versions() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = receive(
            db,
            &message(CHAT, "m1", CONTOSO_TENANT, "Printer broken", T0),
        )
        .await;
        let mut conn = db.acquire().await.unwrap();
        let chat = ChatId::parse(CHAT).unwrap();
        let id = GraphMessageId::parse("m1").unwrap();
        let edit_time = T0 + Duration::minutes(10);
        let edited = EditedMessage {
            text: "Printer on floor 2 broken".into(),
            html: "<p>Printer on floor 2 broken</p>".into(),
            last_modified: edit_time,
        };
        assert_eq!(
            entries::apply_edit(&mut conn, &chat, &id, &edited, edit_time)
                .await
                .unwrap(),
            EditOutcome::Applied
        );
        let entry = entries::get(&mut conn, first.entry_id).await.unwrap();
        assert_eq!(entry.text, "Printer on floor 2 broken");
        assert_eq!(entry.edited_at, Some(edit_time));
        let revisions = entries::revisions(&mut conn, first.entry_id).await.unwrap();
        assert_eq!(revisions.len(), 1);
        assert_eq!(revisions[0].previous_text, "Printer broken");
        assert_eq!(revisions[0].previous_html, "<p>Printer broken</p>");

        // Replaying the same or an older version changes nothing.
        assert_eq!(
            entries::apply_edit(&mut conn, &chat, &id, &edited, edit_time)
                .await
                .unwrap(),
            EditOutcome::Stale
        );
        let older = EditedMessage {
            last_modified: T0 + Duration::minutes(5),
            text: "old".into(),
            html: "old".into(),
        };
        assert_eq!(
            entries::apply_edit(&mut conn, &chat, &id, &older, edit_time)
                .await
                .unwrap(),
            EditOutcome::Stale
        );

        // A newer version with the same content (a reaction) records only the time.
        let reaction = EditedMessage {
            last_modified: T0 + Duration::minutes(20),
            ..edited.clone()
        };
        assert_eq!(
            entries::apply_edit(&mut conn, &chat, &id, &reaction, edit_time)
                .await
                .unwrap(),
            EditOutcome::Unchanged
        );
        assert_eq!(
            entries::revisions(&mut conn, first.entry_id)
                .await
                .unwrap()
                .len(),
            1
        );

        let unknown = GraphMessageId::parse("nope").unwrap();
        assert_eq!(
            entries::apply_edit(&mut conn, &chat, &unknown, &edited, edit_time)
                .await
                .unwrap(),
            EditOutcome::UnknownMessage,
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn deleted_message_stays_visible_as_deleted() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let first = receive(db, &message(CHAT, "m1", CONTOSO_TENANT, "oops", T0)).await;
        let mut conn = db.acquire().await.unwrap();
        let chat = ChatId::parse(CHAT).unwrap();
        let id = GraphMessageId::parse("m1").unwrap();
        let deleted_at = T0 + Duration::minutes(1);
        assert_eq!(
            entries::mark_deleted(&mut conn, &chat, &id, deleted_at)
                .await
                .unwrap(),
            EditOutcome::Applied
        );
        assert_eq!(
            entries::mark_deleted(&mut conn, &chat, &id, deleted_at)
                .await
                .unwrap(),
            EditOutcome::Stale
        );
        let entry = entries::get(&mut conn, first.entry_id).await.unwrap();
        assert_eq!(
            (entry.deleted_at, entry.text.as_str()),
            (Some(deleted_at), "oops")
        );
        let edit = EditedMessage {
            text: "x".into(),
            html: "x".into(),
            last_modified: deleted_at + Duration::minutes(1),
        };
        assert_eq!(
            entries::apply_edit(&mut conn, &chat, &id, &edit, T0)
                .await
                .unwrap(),
            EditOutcome::Stale
        );
    }
}

#[tokio::test]
async fn attachments_are_stored_with_the_message_and_downloadable_later() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let mut msg = message(CHAT, "m1", CONTOSO_TENANT, "see attached", T0);
        msg.attachments = vec![
            NewAttachment::link("report.pdf", "https://contoso.sharepoint.com/report.pdf"),
            NewAttachment {
                kind: AttachmentKind::Image,
                name: "screenshot.png".into(),
                url: Some("https://graph.microsoft.com/v1.0/chats/x/messages/m1/hostedContents/aGM/$value".into()),
                content_type: None,
                content: None,
                download_state: DownloadState::Pending,
            },
        ];
        let received = receive(db, &msg).await;
        let mut conn = db.acquire().await.unwrap();
        let entry = &detail(&mut conn, received.ticket_id).await.unwrap().entries[0];
        let kinds: Vec<(AttachmentKind, DownloadState)> = entry
            .attachments
            .iter()
            .map(|a| (a.kind, a.download_state))
            .collect();
        assert_eq!(
            kinds,
            [
                (AttachmentKind::Link, DownloadState::NotNeeded),
                (AttachmentKind::Image, DownloadState::Pending)
            ]
        );
        let image = entry.attachments[1].clone();
        let pending = entries::attachments_pending_download(&mut conn, 10)
            .await
            .unwrap();
        assert_eq!(pending, std::slice::from_ref(&image));
        assert_eq!(
            entries::attachment_content(&mut conn, image.id)
                .await
                .unwrap(),
            None
        );

        let png = vec![0x89, b'P', b'N', b'G', 0, 255];
        entries::store_attachment_content(&mut conn, image.id, Some("image/png"), &png)
            .await
            .unwrap();
        assert_eq!(
            entries::attachment_content(&mut conn, image.id)
                .await
                .unwrap(),
            Some((Some("image/png".to_owned()), png))
        );
        let stored = entries::attachment(&mut conn, image.id).await.unwrap();
        assert_eq!(
            (stored.download_state, stored.size_bytes),
            (DownloadState::Downloaded, Some(6))
        );
        assert!(
            entries::attachments_pending_download(&mut conn, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            test_db.label
        );
    }
}
