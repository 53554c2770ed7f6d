//! Repository tests for the outbox, against SQLite and (when configured) PostgreSQL.

use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::store::testing::fresh_dbs;
use crate::store::tickets::{InboundClientMessage, receive_client_message};
use crate::store::{Db, entries, technicians};
use crate::tickets::lifecycle::ReopenWindow;
use crate::tickets::{
    EntraObjectId, Entry, NewContact, TechnicianEmail, TechnicianId, TenantId, TicketId,
};

const T0: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const CHAT_A: &str = "19:contoso-megan_support@unq.gbl.spaces";
const CHAT_B: &str = "19:fabrikam-pat_support@unq.gbl.spaces";
const TENANT: &str = "11111111-2222-4333-8444-555555555555";

async fn technician(db: &Db) -> TechnicianId {
    technicians::create(
        &mut db.acquire().await.unwrap(),
        technicians::NewTechnician {
            email: TechnicianEmail::parse("alice@msp.example").unwrap(),
            display_name: "Alice".into(),
            password: SecretString::from("a long test password"),
        },
        T0,
    )
    .await
    .unwrap()
    .id
}

/// A ticket on `chat`, opened by a client message.
async fn ticket_on(db: &Db, chat: &str) -> TicketId {
    let message = InboundClientMessage {
        chat_id: ChatId::parse(chat).unwrap(),
        graph_message_id: GraphMessageId::parse(&format!("client-{chat}")).unwrap(),
        sender: NewContact {
            entra_object_id: EntraObjectId::parse("8ea0e38b-efb3-4757-924a-5f94061cf8c2").unwrap(),
            entra_tenant_id: TenantId::parse(TENANT).unwrap(),
            display_name: "Megan Bowen".into(),
            email: None,
        },
        text: "Printer broken".into(),
        html: "<p>Printer broken</p>".into(),
        sent_at: T0,
        last_modified: T0,
        attachments: Vec::new(),
    };
    receive_client_message(
        &mut db.acquire().await.unwrap(),
        &message,
        ReopenWindow::default(),
        T0,
    )
    .await
    .unwrap()
    .ticket_id
}

/// A reply and its outbox row, written together as the web layer does.
async fn reply(
    db: &Db,
    ticket: TicketId,
    tech: TechnicianId,
    text: &str,
    at: OffsetDateTime,
) -> (Entry, OutboxRow) {
    let mut tx = db.begin().await.unwrap();
    let entry = entries::add_reply(&mut tx, ticket, tech, text, at)
        .await
        .unwrap();
    let chat = entry.teams_chat_id.clone().unwrap();
    let row = insert(
        &mut tx,
        &NewOutboxRow {
            entry_id: entry.id,
            chat_id: &chat,
            html: text,
            state: OutboxState::Pending,
            error: None,
        },
        at,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (entry, row)
}

#[tokio::test]
async fn a_rolled_back_reply_leaves_no_outbox_row() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db).await;
        let ticket = ticket_on(db, CHAT_A).await;
        let mut tx = db.begin().await.unwrap();
        let entry = entries::add_reply(&mut tx, ticket, tech, "draft", T0)
            .await
            .unwrap();
        insert(
            &mut tx,
            &NewOutboxRow {
                entry_id: entry.id,
                chat_id: entry.teams_chat_id.as_ref().unwrap(),
                html: "draft",
                state: OutboxState::Pending,
                error: None,
            },
            T0,
        )
        .await
        .unwrap();
        drop(tx);
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(
            pending_count(&mut conn).await.unwrap(),
            0,
            "{}",
            test_db.label
        );
        assert_eq!(get_by_entry(&mut conn, entry.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn only_the_oldest_pending_row_of_each_chat_is_a_head() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db).await;
        let ticket_a = ticket_on(db, CHAT_A).await;
        let ticket_b = ticket_on(db, CHAT_B).await;
        let (_, a1) = reply(db, ticket_a, tech, "a1", T0).await;
        let (_, a2) = reply(db, ticket_a, tech, "a2", T0).await;
        let (_, b1) = reply(db, ticket_b, tech, "b1", T0).await;
        assert!(a1.id < a2.id, "insertion order is kept");
        assert_eq!(
            (a1.state, a1.attempts, a1.next_attempt_at),
            (OutboxState::Pending, 0, T0)
        );

        let mut conn = db.acquire().await.unwrap();
        let heads = chat_heads(&mut conn).await.unwrap();
        let ids: Vec<i64> = heads.iter().map(|h| h.row_id).collect();
        assert_eq!(ids, [a1.id, b1.id], "{}", test_db.label);

        // The head is claimed once; a second claim while the lease lives fails.
        let lease = T0 + Duration::seconds(30);
        let claimed = try_claim(&mut conn, a1.id, "w1", T0, lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
        assert_eq!(
            try_claim(&mut conn, a1.id, "w2", T0, lease).await.unwrap(),
            None
        );
        // Still the head (a2 waits behind it), now due when the lease ends.
        let heads = chat_heads(&mut conn).await.unwrap();
        assert_eq!(heads[0].row_id, a1.id);
        assert_eq!(heads[0].due_at(), lease);
        // After the lease runs out another worker may take it.
        let later = lease + Duration::milliseconds(1);
        let taken = try_claim(&mut conn, a1.id, "w2", later, later + Duration::seconds(30))
            .await
            .unwrap();
        assert_eq!(
            taken.unwrap().lease_owner.as_deref(),
            Some("w2"),
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn an_attempt_needs_the_lease_and_sets_the_chat_pace() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db).await;
        let ticket = ticket_on(db, CHAT_A).await;
        let (_, row) = reply(db, ticket, tech, "hello", T0).await;
        let mut conn = db.acquire().await.unwrap();
        let pace = T0 + Duration::milliseconds(1100);
        assert!(
            !start_attempt(&mut conn, row.id, "w1", T0, pace)
                .await
                .unwrap(),
            "not claimed"
        );
        try_claim(&mut conn, row.id, "w1", T0, T0 + Duration::seconds(30))
            .await
            .unwrap();
        assert!(
            !start_attempt(&mut conn, row.id, "w2", T0, pace)
                .await
                .unwrap(),
            "wrong owner"
        );
        assert!(
            start_attempt(&mut conn, row.id, "w1", T0, pace)
                .await
                .unwrap()
        );
        let started = get(&mut conn, row.id).await.unwrap();
        assert_eq!(
            (started.attempts, started.attempt_started_at),
            (1, Some(T0))
        );
        assert_eq!(
            chat_heads(&mut conn).await.unwrap()[0].next_post_at,
            Some(pace)
        );
        // A shorter wait (e.g. a 429's Retry-After) never pulls the pace earlier.
        let chat = ChatId::parse(CHAT_A).unwrap();
        set_chat_pace(&mut conn, &chat, T0).await.unwrap();
        assert_eq!(
            chat_heads(&mut conn).await.unwrap()[0].next_post_at,
            Some(pace)
        );
        let later = pace + Duration::seconds(5);
        set_chat_pace(&mut conn, &chat, later).await.unwrap();
        assert_eq!(
            chat_heads(&mut conn).await.unwrap()[0].next_post_at,
            Some(later)
        );
        assert_eq!(
            unconfirmed_in_chat(&mut conn, &ChatId::parse(CHAT_A).unwrap())
                .await
                .unwrap()
                .len(),
            1,
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn a_retry_keeps_the_unknown_outcome_marker_only_when_the_post_may_have_arrived() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db).await;
        let ticket = ticket_on(db, CHAT_A).await;
        let (_, row) = reply(db, ticket, tech, "hello", T0).await;
        let mut conn = db.acquire().await.unwrap();
        let lease = T0 + Duration::seconds(30);
        let next = T0 + Duration::seconds(5);

        try_claim(&mut conn, row.id, "w1", T0, lease).await.unwrap();
        start_attempt(&mut conn, row.id, "w1", T0, T0)
            .await
            .unwrap();
        assert!(
            schedule_retry(
                &mut conn,
                row.id,
                "w1",
                next,
                "timed out",
                AttemptOutcome::Unknown,
                T0
            )
            .await
            .unwrap()
        );
        let unknown = get(&mut conn, row.id).await.unwrap();
        assert_eq!(unknown.attempt_started_at, Some(T0));
        assert_eq!((unknown.lease_owner, unknown.next_attempt_at), (None, next));
        assert_eq!(unknown.last_error.as_deref(), Some("timed out"));

        try_claim(&mut conn, row.id, "w1", next, next + Duration::seconds(30))
            .await
            .unwrap();
        schedule_retry(
            &mut conn,
            row.id,
            "w1",
            next,
            "throttled",
            AttemptOutcome::NotSent,
            next,
        )
        .await
        .unwrap();
        assert_eq!(
            get(&mut conn, row.id).await.unwrap().attempt_started_at,
            None
        );

        // Without the lease nothing is written.
        assert!(
            !schedule_retry(
                &mut conn,
                row.id,
                "w1",
                next,
                "x",
                AttemptOutcome::NotSent,
                next
            )
            .await
            .unwrap(),
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn a_failed_row_is_requeued_with_a_fresh_budget_and_then_sent() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db).await;
        let ticket = ticket_on(db, CHAT_A).await;
        let (entry, row) = reply(db, ticket, tech, "hello", T0).await;
        let mut conn = db.acquire().await.unwrap();
        try_claim(&mut conn, row.id, "w1", T0, T0 + Duration::seconds(30))
            .await
            .unwrap();
        start_attempt(&mut conn, row.id, "w1", T0, T0)
            .await
            .unwrap();
        assert!(
            mark_failed(
                &mut conn,
                row.id,
                "w1",
                "blocked",
                AttemptOutcome::NotSent,
                T0
            )
            .await
            .unwrap()
        );
        assert_eq!(pending_count(&mut conn).await.unwrap(), 0);
        assert!(
            chat_heads(&mut conn).await.unwrap().is_empty(),
            "failed rows do not block"
        );

        let later = T0 + Duration::minutes(5);
        let requeued = requeue_failed(&mut conn, entry.id, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                requeued.state,
                requeued.attempts,
                requeued.next_attempt_at,
                requeued.last_error
            ),
            (OutboxState::Pending, 0, later, None)
        );
        assert_eq!(
            requeue_failed(&mut conn, entry.id, later).await.unwrap(),
            None,
            "only failed rows"
        );

        let id = GraphMessageId::parse("1772442000123").unwrap();
        assert!(
            mark_sent(&mut conn, row.id, &id, later, later)
                .await
                .unwrap()
        );
        let sent = get(&mut conn, row.id).await.unwrap();
        assert_eq!(
            (
                sent.state,
                sent.graph_message_id,
                sent.sent_at,
                sent.attempt_started_at
            ),
            (OutboxState::Sent, Some(id.clone()), Some(later), None)
        );
        assert!(
            !mark_sent(&mut conn, row.id, &id, later, later)
                .await
                .unwrap(),
            "only once"
        );
        assert_eq!(
            list_in_state(&mut conn, OutboxState::Sent)
                .await
                .unwrap()
                .len(),
            1,
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn one_reply_gets_one_row() {
    for test_db in fresh_dbs().await {
        let db = &test_db.db;
        let tech = technician(db).await;
        let ticket = ticket_on(db, CHAT_A).await;
        let (entry, _) = reply(db, ticket, tech, "hello", T0).await;
        let chat = ChatId::parse(CHAT_A).unwrap();
        let err = insert(
            &mut db.acquire().await.unwrap(),
            &NewOutboxRow {
                entry_id: entry.id,
                chat_id: &chat,
                html: "hello",
                state: OutboxState::Pending,
                error: None,
            },
            T0,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "{}: {err:?}",
            test_db.label
        );
    }
}
