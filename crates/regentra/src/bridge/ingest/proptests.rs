//! Property test of the ingest (ARCHITECTURE §5.2): whatever way a chat's message stream is cut
//! into pages and cycles — duplicates across pages, stale versions next to current ones, edits
//! and deletions between cycles, listings that end early — every message ends up as at most one
//! entry, and every message that still exists has exactly one entry showing its final text.
//!
//! The model plays Graph faithfully where it matters: a listing that claims to be complete holds
//! every message modified after the reader's cursor (minus the overlap) in its current version;
//! an incomplete one holds any subset. Runs against a real SQLite database, no HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

use super::{ChatBatch, IngestContext, IngestSettings, NoGraph, ReadEnd, SupportUser, ingest_chat};
use crate::store::poller as poll_store;
use crate::store::testing::fresh_sqlite;
use crate::store::{entries, tickets as ticket_store};
use crate::tickets::{ChatId, EntryKind, GraphMessageId};

const ACCOUNT: &str = "proptest-account";
const CHAT: &str = "19:proptest@unq.gbl.spaces";
const CLIENT_TENANT: &str = "2f0a1c9e-5b7d-4e21-9a3c-6d8e0f1b2a34";
const CLIENT_USER: &str = "7c1e9d2a-3b4f-4a5c-8d6e-0f1a2b3c4d5e";
const MSP_TENANT: &str = "0e4f8a2b-6c1d-4e3f-a5b7-c9d0e1f2a3b4";
const OVERLAP: time::Duration = time::Duration::minutes(2);
const BASE: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);

/// One message's life: posted in cycle `posted`, edited in the given cycles, maybe deleted.
#[derive(Debug, Clone)]
struct Life {
    posted: usize,
    edits: Vec<usize>,
    deleted: Option<usize>,
}

/// What Graph shows of one message at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    message: usize,
    /// 0 = as posted, n = after the n-th edit, `usize::MAX` = deleted.
    version: usize,
    /// The cycle the version appeared in.
    cycle: usize,
}

fn message_id(message: usize) -> String {
    format!("{}", 1_772_442_000_000_u64 + message as u64)
}

fn text_of(message: usize, version: usize) -> String {
    format!("message {message} version {version}")
}

fn last_modified(v: Version) -> OffsetDateTime {
    let step = if v.version == usize::MAX {
        9
    } else {
        v.version as i64
    };
    BASE + time::Duration::hours(v.cycle as i64)
        + time::Duration::seconds(v.message as i64 * 10 + step)
}

fn to_graph(v: Version, lives: &[Life]) -> msgraph::model::ChatMessage {
    let created = last_modified(Version {
        message: v.message,
        version: 0,
        cycle: lives[v.message].posted,
    });
    let modified = last_modified(v);
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let deleted = v.version == usize::MAX;
    let raw = json!({
        "id": message_id(v.message),
        "messageType": "message",
        "createdDateTime": fmt(created),
        "lastModifiedDateTime": fmt(modified),
        "deletedDateTime": if deleted { json!(fmt(modified)) } else { json!(null) },
        "chatId": CHAT,
        "from": if deleted { json!(null) } else { json!({"application": null, "device": null, "user": {
            "id": CLIENT_USER, "displayName": "Pat Client", "userIdentityType": "aadUser", "tenantId": CLIENT_TENANT}}) },
        "body": if deleted { json!({"contentType": "html", "content": ""}) } else {
            json!({"contentType": "html", "content": format!("<p>{}</p>", text_of(v.message, v.version))}) },
        "attachments": [], "mentions": [], "reactions": [],
    });
    msgraph::model::ChatMessage::from_json(raw).unwrap()
}

/// Every version a message has had up to and including `cycle`, oldest first.
fn versions_until(message: usize, life: &Life, cycle: usize) -> Vec<Version> {
    let mut versions = Vec::new();
    if life.posted > cycle {
        return versions;
    }
    versions.push(Version {
        message,
        version: 0,
        cycle: life.posted,
    });
    for (n, edit) in life.edits.iter().enumerate() {
        if *edit <= cycle {
            versions.push(Version {
                message,
                version: n + 1,
                cycle: *edit,
            });
        }
    }
    if let Some(deleted) = life.deleted.filter(|d| *d <= cycle) {
        versions.push(Version {
            message,
            version: usize::MAX,
            cycle: deleted,
        });
    }
    versions
}

fn life_strategy(cycles: usize) -> impl Strategy<Value = Life> {
    (
        0..cycles,
        proptest::collection::vec(0..cycles, 0..3),
        proptest::option::weighted(0.25, 0..cycles),
    )
        .prop_map(|(posted, mut edits, deleted)| {
            for edit in &mut edits {
                *edit = (*edit).max(posted);
            }
            edits.sort_unstable();
            let last = edits.last().copied().unwrap_or(posted);
            Life {
                posted,
                edits,
                deleted: deleted.map(|d| d.max(last)),
            }
        })
}

/// Per cycle: is the listing complete, which extra (possibly stale) versions are mixed in,
/// which subset an incomplete listing keeps, and how it is shuffled into pages.
#[derive(Debug, Clone)]
struct CyclePlan {
    complete: bool,
    keep_mask: u64,
    duplicate_picks: Vec<usize>,
    shuffle_seed: u64,
    page_size: usize,
}

fn plan_strategy() -> impl Strategy<Value = CyclePlan> {
    (
        proptest::bool::weighted(0.6),
        any::<u64>(),
        proptest::collection::vec(0..64_usize, 0..6),
        any::<u64>(),
        1..5_usize,
    )
        .prop_map(
            |(complete, keep_mask, duplicate_picks, shuffle_seed, page_size)| CyclePlan {
                complete,
                keep_mask,
                duplicate_picks,
                shuffle_seed,
                page_size,
            },
        )
}

fn scenario() -> impl Strategy<Value = (Vec<Life>, Vec<CyclePlan>)> {
    (1..5_usize).prop_flat_map(|cycles| {
        (
            proptest::collection::vec(life_strategy(cycles), 1..10),
            proptest::collection::vec(plan_strategy(), cycles),
        )
    })
}

/// Builds one cycle's listing: pages of versions, concatenated in page order.
fn listing(
    lives: &[Life],
    cycle: usize,
    plan: &CyclePlan,
    read_from: OffsetDateTime,
) -> Vec<Version> {
    let mut current: Vec<Version> = Vec::new();
    let mut older: Vec<Version> = Vec::new();
    for (message, life) in lives.iter().enumerate() {
        let mut versions = versions_until(message, life, cycle);
        if let Some(newest) = versions.pop() {
            if last_modified(newest) > read_from {
                current.push(newest);
            }
            older.extend(versions);
        }
    }
    let mut shown: Vec<Version> = if plan.complete {
        current.clone()
    } else {
        current
            .iter()
            .enumerate()
            .filter(|(index, _)| plan.keep_mask & (1 << (index % 64)) != 0)
            .map(|(_, v)| *v)
            .collect()
    };
    // Duplicates and stale versions, as Graph's paging bugs produce them.
    let pool: Vec<Version> = current.iter().chain(older.iter()).copied().collect();
    for pick in &plan.duplicate_picks {
        if !pool.is_empty() {
            shown.push(pool[pick % pool.len()]);
        }
    }
    // A deterministic shuffle (pages in any order of the stream).
    let mut seed = plan.shuffle_seed | 1;
    for i in (1..shown.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        shown.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    // Cut into pages and put back together in page order, as the Graph client hands them over.
    shown
        .chunks(plan.page_size.max(1))
        .flat_map(|page| page.iter().copied())
        .collect()
}

async fn run_case(lives: Vec<Life>, plans: Vec<CyclePlan>) -> Result<(), TestCaseError> {
    let test_db = fresh_sqlite().await;
    let db = &test_db.db;
    let chat = ChatId::parse(CHAT).unwrap();
    let support = SupportUser {
        account_id: ACCOUNT.into(),
        user_id: "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d".into(),
        display_name: "Support".into(),
        tenant_id: Some(crate::tickets::TenantId::parse(MSP_TENANT).unwrap()),
    };
    let history_start = BASE - time::Duration::days(1);
    {
        let mut conn = db.acquire().await.unwrap();
        poll_store::ensure_account(&mut conn, ACCOUNT, history_start, BASE)
            .await
            .unwrap();
    }
    let cycles = plans.len();
    // The planned cycles, then two complete ones after everything has happened.
    let mut all_plans = plans.clone();
    for _ in 0..2 {
        all_plans.push(CyclePlan {
            complete: true,
            keep_mask: u64::MAX,
            duplicate_picks: Vec::new(),
            shuffle_seed: 7,
            page_size: 3,
        });
    }
    for (cycle_index, plan) in all_plans.iter().enumerate() {
        // The two closing cycles (index >= cycles) see the final state of every message.
        let cycle = cycle_index.min(cycles);
        let previous_cursor = {
            let mut conn = db.acquire().await.unwrap();
            poll_store::chat_states(&mut conn, ACCOUNT, std::slice::from_ref(&chat))
                .await
                .unwrap()
                .get(&chat)
                .and_then(|s| s.message_cursor)
        };
        let read_from = previous_cursor.unwrap_or(history_start) - OVERLAP;
        let shown = listing(&lives, cycle, plan, read_from);
        let messages: Vec<_> = shown.iter().map(|v| to_graph(*v, &lives)).collect();
        let ctx = IngestContext {
            db,
            support: &support,
            settings: IngestSettings::default(),
            history_start,
            graph: Arc::new(NoGraph),
            now: BASE + time::Duration::hours(cycle as i64) + time::Duration::minutes(30),
        };
        let end = if plan.complete {
            ReadEnd::Complete { activity_at: None }
        } else {
            ReadEnd::Incomplete {
                reason: "test".into(),
            }
        };
        let batch = ChatBatch {
            chat_id: &chat,
            chat_type: Some("oneOnOne"),
            messages: &messages,
            unreadable: 0,
            previous_cursor,
            end,
        };
        ingest_chat(&ctx, &batch)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    let mut conn = db.acquire().await.unwrap();
    let mut entries_by_id: HashMap<String, Vec<crate::tickets::Entry>> = HashMap::new();
    let mut ticket = ticket_store::current_for_chat(&mut conn, &chat)
        .await
        .unwrap();
    let mut ticket_entries = Vec::new();
    while let Some(t) = ticket {
        let detail = ticket_store::detail(&mut conn, t.id).await.unwrap();
        ticket_entries.extend(detail.entries);
        ticket = match t.follow_up_of {
            Some(previous) => Some(ticket_store::get(&mut conn, previous).await.unwrap()),
            None => None,
        };
    }
    for entry in ticket_entries
        .into_iter()
        .filter(|e| e.kind == EntryKind::ClientMessage)
    {
        prop_assert!(!entry.text.trim().is_empty(), "blank entry {:?}", entry);
        let id = entry.graph_message_id.clone().unwrap();
        entries_by_id
            .entry(id.as_str().to_owned())
            .or_default()
            .push(entry);
    }
    for (message, life) in lives.iter().enumerate() {
        let id = message_id(message);
        let found = entries_by_id.remove(&id).unwrap_or_default();
        prop_assert!(
            found.len() <= 1,
            "message {message} has {} entries",
            found.len()
        );
        match life.deleted {
            None => {
                prop_assert_eq!(
                    found.len(),
                    1,
                    "message {} has no entry: {:?}",
                    message,
                    life
                );
                let final_text = text_of(message, life.edits.len());
                prop_assert_eq!(&found[0].text, &final_text);
                prop_assert!(found[0].deleted_at.is_none());
                let by_id = entries::find_by_graph_id(
                    &mut conn,
                    &chat,
                    &GraphMessageId::parse(&id).unwrap(),
                )
                .await
                .unwrap();
                prop_assert!(by_id.is_some());
            }
            Some(_) => {
                if let Some(entry) = found.first() {
                    prop_assert!(
                        entry.deleted_at.is_some(),
                        "deleted message {message} shown as live"
                    );
                }
            }
        }
    }
    prop_assert!(
        entries_by_id.is_empty(),
        "entries for unknown messages: {:?}",
        entries_by_id.keys()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn any_split_into_pages_and_cycles_stores_each_message_once_with_its_final_text(
        (lives, plans) in scenario()
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run_case(lives, plans))?;
    }
}

#[tokio::test]
async fn an_edit_between_two_cycles_shows_the_edited_text() {
    let plan = CyclePlan {
        complete: true,
        keep_mask: u64::MAX,
        duplicate_picks: Vec::new(),
        shuffle_seed: 1,
        page_size: 2,
    };
    let lives = vec![Life {
        posted: 0,
        edits: vec![1],
        deleted: None,
    }];
    run_case(lives, vec![plan.clone(), plan]).await.unwrap();
}
