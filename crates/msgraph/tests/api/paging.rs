//! Paging guards (field reports B3, B4, B7, B8 and the empty-middle-page case).

use msgraph::{Error, IncompleteReason};
use time::macros::datetime;
use wiremock::matchers::{any, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{FakeGraph, message, page};

const CHAT: &str = "19:2da4c29f6d7041eca70b638b43d45437@thread.v2";
const MESSAGES_PATH: &str = "/v1.0/chats/19:2da4c29f6d7041eca70b638b43d45437@thread.v2/messages";

/// Matches a request whose raw (undecoded) query contains `needle`.
fn raw_query_contains(needle: &'static str) -> impl Fn(&Request) -> bool {
    move |request: &Request| {
        request
            .url
            .query()
            .is_some_and(|query| query.contains(needle))
    }
}

#[tokio::test]
async fn repeated_next_link_stops_paging_and_reports_incomplete() {
    let graph = FakeGraph::start().await;
    let link = graph.url(&format!("{MESSAGES_PATH}?$skiptoken=L"));
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(raw_query_contains("skiptoken=L"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("m1", "2025-03-02T09:00:00Z")],
            Some(&link),
        )))
        .expect(1)
        .mount(&graph.server)
        .await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("m1", "2025-03-02T09:00:00Z")],
            Some(&link),
        )))
        .mount(&graph.server)
        .await;

    let listing = graph.client.list_messages_since(CHAT, None).await.unwrap();

    assert_eq!(listing.messages.len(), 1, "m1 is returned once");
    assert!(!listing.complete);
    assert_eq!(
        listing.incomplete_reason,
        Some(IncompleteReason::RepeatedNextLink)
    );
    assert_eq!(graph.requests().await.len(), 2);
}

#[tokio::test]
async fn duplicate_message_across_pages_is_returned_once() {
    let graph = FakeGraph::start().await;
    let link = graph.url(&format!("{MESSAGES_PATH}?$skiptoken=P2"));
    Mock::given(raw_query_contains("skiptoken=P2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                message("mN-1", "2025-03-02T08:00:00Z"),
                message("m1", "2025-03-02T10:00:00Z"),
            ],
            None,
        )))
        .mount(&graph.server)
        .await;
    Mock::given(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                message("m1", "2025-03-02T10:00:00Z"),
                message("mN", "2025-03-02T09:00:00Z"),
            ],
            Some(&link),
        )))
        .mount(&graph.server)
        .await;

    let listing = graph.client.list_messages_since(CHAT, None).await.unwrap();

    let ids: Vec<_> = listing.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m1", "mN", "mN-1"]);
    assert!(listing.complete);
}

#[tokio::test]
async fn empty_middle_page_does_not_end_paging() {
    let graph = FakeGraph::start().await;
    let second = graph.url(&format!("{MESSAGES_PATH}?$skiptoken=two"));
    let third = graph.url(&format!("{MESSAGES_PATH}?$skiptoken=three"));
    Mock::given(raw_query_contains("skiptoken=three"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(vec![message("m2", "2025-03-01T09:00:00Z")], None)),
        )
        .mount(&graph.server)
        .await;
    Mock::given(raw_query_contains("skiptoken=two"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], Some(&third))))
        .mount(&graph.server)
        .await;
    Mock::given(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("m3", "2025-03-02T09:00:00Z")],
            Some(&second),
        )))
        .mount(&graph.server)
        .await;

    let listing = graph.client.list_messages_since(CHAT, None).await.unwrap();

    let ids: Vec<_> = listing.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m3", "m2"]);
    assert!(listing.complete);
    assert_eq!(listing.pages, 3);
}

#[tokio::test]
async fn empty_middle_page_of_chats_is_skipped_by_the_pager() {
    let graph = FakeGraph::start().await;
    let second = graph.url("/v1.0/me/chats?$skiptoken=two");
    let third = graph.url("/v1.0/me/chats?$skiptoken=three");
    let chat = |id: &str| serde_json::json!({"id": id, "chatType": "oneOnOne"});
    Mock::given(raw_query_contains("skiptoken=three"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![chat("c2")], None)))
        .mount(&graph.server)
        .await;
    Mock::given(raw_query_contains("skiptoken=two"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], Some(&third))))
        .mount(&graph.server)
        .await;
    Mock::given(path("/v1.0/me/chats"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(page(vec![chat("c1")], Some(&second))),
        )
        .mount(&graph.server)
        .await;

    let mut pager = graph.client.list_chats_by_recent_activity();
    let first = pager.next_page().await.unwrap().unwrap();
    assert_eq!(first.chats[0].id, "c1");
    assert!(!pager.is_complete());
    assert_eq!(graph.requests().await.len(), 1, "pages are fetched lazily");
    let next = pager.next_page().await.unwrap().unwrap();
    assert_eq!(next.chats[0].id, "c2");
    assert!(pager.next_page().await.unwrap().is_none());
    assert!(pager.is_complete());
    assert_eq!(pager.pages_fetched(), 3);
}

#[tokio::test]
async fn chat_list_asks_for_previews_newest_first_fifty_at_a_time() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me/chats"))
        .and(query_param("$expand", "lastMessagePreview"))
        .and(query_param(
            "$orderby",
            "lastMessagePreview/createdDateTime desc",
        ))
        .and(query_param("$top", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], None)))
        .expect(1)
        .mount(&graph.server)
        .await;

    let mut pager = graph.client.list_chats_by_recent_activity();
    assert!(pager.next_page().await.unwrap().is_none());
    assert!(pager.is_complete());
}

#[tokio::test]
async fn next_link_is_followed_verbatim_with_encoded_equals_and_spaces() {
    let graph = FakeGraph::start().await;
    let link = graph.url(&format!(
        "{MESSAGES_PATH}?$top=2&$orderBy=lastModifiedDateTime desc&$filter=lastModifiedDateTime gt 2022-09-22T00:00:00.000Z&$skiptoken=M2UyZDAwMDAwMDMxMzkzYTMy%3d%3d"
    ));
    // The server rejects the second page if the token was decoded or re-encoded.
    Mock::given(raw_query_contains(
        "$skiptoken=M2UyZDAwMDAwMDMxMzkzYTMy%3d%3d",
    ))
    .and(raw_query_contains(
        "lastModifiedDateTime%20gt%202022-09-22T00:00:00.000Z",
    ))
    .respond_with(
        ResponseTemplate::new(200)
            .set_body_json(page(vec![message("m1", "2022-09-23T00:00:00Z")], None)),
    )
    .with_priority(1)
    .mount(&graph.server)
    .await;
    Mock::given(raw_query_contains("skiptoken"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(crate::support::odata_error(
                "BadRequest",
                "bad skiptoken",
                "r-7",
            )),
        )
        .with_priority(2)
        .mount(&graph.server)
        .await;
    Mock::given(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("m2", "2022-09-23T01:00:00Z")],
            Some(&link),
        )))
        .with_priority(3)
        .mount(&graph.server)
        .await;

    let listing = graph.client.list_messages_since(CHAT, None).await.unwrap();

    let ids: Vec<_> = listing.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m2", "m1"]);
    assert!(listing.complete);
}

#[tokio::test]
async fn next_link_answering_400_is_retried_once_then_fails_typed() {
    let graph = FakeGraph::start().await;
    let link = graph.url(&format!("{MESSAGES_PATH}?$skiptoken=broken"));
    Mock::given(raw_query_contains("skiptoken=broken"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(crate::support::odata_error(
                "BadRequest",
                "Bad Request",
                "r-400",
            )),
        )
        .expect(2)
        .mount(&graph.server)
        .await;
    Mock::given(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("m1", "2025-03-02T09:00:00Z")],
            Some(&link),
        )))
        .mount(&graph.server)
        .await;

    let error = graph
        .client
        .list_messages_since(CHAT, None)
        .await
        .unwrap_err();

    match error {
        Error::BadRequest { code, ids, .. } => {
            assert_eq!(code, "BadRequest");
            assert_eq!(ids.request_id.as_deref(), Some("r-400"));
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_next_link_is_refused_and_gets_no_token() {
    let graph = FakeGraph::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let foreign = format!("{}/v1.0/chats?$skiptoken=steal", elsewhere.uri());
    Mock::given(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("m1", "2025-03-02T09:00:00Z")],
            Some(&foreign),
        )))
        .mount(&graph.server)
        .await;

    let error = graph
        .client
        .list_messages_since(CHAT, None)
        .await
        .unwrap_err();

    match &error {
        Error::ForeignNextLink {
            link_origin,
            expected_origin,
        } => {
            assert_eq!(link_origin, &elsewhere.uri());
            assert_eq!(expected_origin, &graph.server.uri());
        }
        other => panic!("expected ForeignNextLink, got {other:?}"),
    }
    assert!(error.to_string().contains("no token was sent"));
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn page_cap_ends_paging_as_incomplete() {
    let graph = FakeGraph::start_with(|config| config.page_cap = 3).await;
    // Every page points to a new page: an endless listing.
    let base = graph.server.uri();
    Mock::given(path(MESSAGES_PATH))
        .respond_with(move |request: &Request| {
            let n: u32 = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "$skiptoken")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let next = format!("{base}{MESSAGES_PATH}?$skiptoken={}", n + 1);
            ResponseTemplate::new(200).set_body_json(page(
                vec![message(&format!("m{n}"), "2025-03-02T09:00:00Z")],
                Some(&next),
            ))
        })
        .mount(&graph.server)
        .await;

    let listing = graph.client.list_messages_since(CHAT, None).await.unwrap();

    assert_eq!(listing.messages.len(), 3);
    assert!(!listing.complete);
    assert_eq!(
        listing.incomplete_reason,
        Some(IncompleteReason::PageCapReached { pages: 3 })
    );
    assert_eq!(graph.requests().await.len(), 3);
}

#[tokio::test]
async fn unreadable_item_is_skipped_and_the_page_kept() {
    let graph = FakeGraph::start().await;
    let mut broken = message("bad", "2025-03-02T09:00:00Z");
    broken["createdDateTime"] = "2021-03-1706:47:05.123Z".into();
    let mut no_id = message("x", "2025-03-02T09:00:00Z");
    no_id.as_object_mut().unwrap().remove("id");
    Mock::given(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![message("good", "2025-03-02T10:00:00Z"), broken, no_id],
            None,
        )))
        .mount(&graph.server)
        .await;

    let listing = graph.client.list_messages_since(CHAT, None).await.unwrap();

    assert_eq!(listing.messages.len(), 1);
    assert_eq!(listing.messages[0].id, "good");
    assert_eq!(listing.skipped.len(), 2);
    assert_eq!(listing.skipped[0].id.as_deref(), Some("bad"));
    assert_eq!(listing.skipped[1].id, None);
    assert!(
        listing.complete,
        "skipped items do not make the listing incomplete"
    );
}

#[tokio::test]
async fn messages_since_filters_with_gt_and_orders_by_the_same_property() {
    let graph = FakeGraph::start().await;
    Mock::given(path(MESSAGES_PATH))
        .and(query_param("$orderby", "lastModifiedDateTime desc"))
        .and(query_param(
            "$filter",
            "lastModifiedDateTime gt 2023-01-15T17:16:32.057Z",
        ))
        .and(query_param("$top", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(vec![], None)))
        .expect(1)
        .mount(&graph.server)
        .await;

    let listing = graph
        .client
        .list_messages_since(CHAT, Some(datetime!(2023-01-15 17:16:32.057 UTC)))
        .await
        .unwrap();

    assert!(listing.complete);
    assert!(!listing.filter_fallback);
    for request in graph.requests().await {
        let query = request
            .url
            .query_pairs()
            .map(|(_, v)| v.into_owned())
            .collect::<Vec<_>>()
            .join("&");
        assert!(
            !query.contains(" ge ") && !query.contains(" le "),
            "{query}"
        );
    }
}

#[tokio::test]
async fn rejected_filter_falls_back_to_newest_first_paging_until_the_cursor() {
    let graph = FakeGraph::start().await;
    Mock::given(path(MESSAGES_PATH))
        .and(wiremock::matchers::query_param_contains("$filter", "gt"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(crate::support::odata_error(
                "BadRequest",
                "Invalid $filter query.",
                "r-f",
            )),
        )
        .expect(1)
        .mount(&graph.server)
        .await;
    Mock::given(path(MESSAGES_PATH))
        .and(wiremock::matchers::query_param_is_missing("$filter"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![
                message("new2", "2025-03-02T12:00:00Z"),
                message("new1", "2025-03-02T11:00:00Z"),
                message("old", "2025-03-02T09:00:00Z"),
            ],
            Some("/v1.0/never-followed"),
        )))
        .expect(1)
        .mount(&graph.server)
        .await;

    let listing = graph
        .client
        .list_messages_since(CHAT, Some(datetime!(2025-03-02 10:00 UTC)))
        .await
        .unwrap();

    let ids: Vec<_> = listing.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["new2", "new1"]);
    assert!(listing.filter_fallback);
    assert!(
        listing.complete,
        "reaching the cursor completes the listing"
    );
}
