//! Final 4xx answers are typed and carry the request ids; hosted content downloads.

use msgraph::{Error, HostedContentRef};
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{FakeGraph, odata_error};

async fn fail_me_with(status: u16, body: serde_json::Value) -> Error {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .expect(1)
        .mount(&graph.server)
        .await;
    graph.client.me().await.unwrap_err()
}

#[tokio::test]
async fn forbidden_not_found_bad_request_and_too_large_are_typed_and_final() {
    let forbidden = fail_me_with(
        403,
        odata_error("Forbidden", "Missing scope permissions", "r-403"),
    )
    .await;
    assert!(
        matches!(&forbidden, Error::Forbidden { code, .. } if code == "Forbidden"),
        "{forbidden:?}"
    );
    assert_eq!(forbidden.request_id(), Some("r-403"));

    let not_found = fail_me_with(404, odata_error("NotFound", "Unknown chat type", "r-404")).await;
    assert!(
        matches!(&not_found, Error::NotFound { message, .. } if message == "Unknown chat type")
    );

    let bad = fail_me_with(
        400,
        odata_error("BadRequest", "Invalid $filter query.", "r-400"),
    )
    .await;
    assert!(
        matches!(&bad, Error::BadRequest { message, .. } if message == "Invalid $filter query.")
    );
    assert!(bad.to_string().contains("r-400"));

    let too_large = fail_me_with(413, serde_json::json!({})).await;
    assert!(matches!(too_large, Error::PayloadTooLarge { .. }));

    let conflict = fail_me_with(409, odata_error("Conflict", "etag", "r-409")).await;
    assert!(matches!(conflict, Error::Rejected { status: 409, .. }));
}

#[tokio::test]
async fn federated_chat_post_400_is_a_typed_bad_request_not_an_unknown_outcome() {
    let graph = FakeGraph::start().await;
    // The recorded body of field report B19 (fixture 60): only `request-id` in innerError.
    let body = serde_json::json!({"error": {"code": "BadRequest", "message": "Bad Request",
        "innerError": {"date": "2020-07-14T10:52:18", "request-id": "6f025372-a88e-532c-ad65-353030fba37b"}}});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(body))
        .expect(1)
        .mount(&graph.server)
        .await;

    let error = graph
        .client
        .send_message("19:a_b@fed.unq.gbl.spaces", "hi")
        .await
        .unwrap_err();

    match error {
        Error::BadRequest { code, ids, .. } => {
            assert_eq!(code, "BadRequest");
            assert_eq!(
                ids.request_id.as_deref(),
                Some("6f025372-a88e-532c-ad65-353030fba37b")
            );
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn unreadable_success_body_is_a_bad_response() {
    let graph = FakeGraph::start().await;
    Mock::given(path("/v1.0/me"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "r-ok")
                .set_body_string("<html>not json</html>"),
        )
        .mount(&graph.server)
        .await;

    let error = graph.client.me().await.unwrap_err();

    assert!(
        matches!(&error, Error::BadResponse { ids, .. } if ids.request_id.as_deref() == Some("r-ok")),
        "{error:?}"
    );
}

#[tokio::test]
async fn hosted_content_is_downloaded_with_its_type_by_url_or_ids() {
    let graph = FakeGraph::start().await;
    let value_path =
        "/v1.0/chats/19:abc@unq.gbl.spaces/messages/1700000000000/hostedContents/aGM/$value";
    Mock::given(path(value_path))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(vec![0x89, b'P', b'N', b'G'], "image/png"),
        )
        .expect(2)
        .mount(&graph.server)
        .await;

    let by_url = graph
        .client
        .get_hosted_content(HostedContentRef::Url(&graph.url(value_path)))
        .await
        .unwrap();
    let by_ids = graph
        .client
        .get_hosted_content(HostedContentRef::Ids {
            chat_id: "19:abc@unq.gbl.spaces",
            message_id: "1700000000000",
            hosted_content_id: "aGM",
        })
        .await
        .unwrap();

    assert_eq!(by_url.bytes, vec![0x89, b'P', b'N', b'G']);
    assert_eq!(by_url.content_type.as_deref(), Some("image/png"));
    assert_eq!(by_ids.bytes, by_url.bytes);
}

#[tokio::test]
async fn hosted_content_forbidden_is_typed_so_the_caller_can_use_a_placeholder() {
    let graph = FakeGraph::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(403).set_body_json(odata_error(
            "Forbidden",
            "Forbidden",
            "r-img",
        )))
        .mount(&graph.server)
        .await;

    let error = graph
        .client
        .get_hosted_content(HostedContentRef::Ids {
            chat_id: "c",
            message_id: "m",
            hosted_content_id: "h",
        })
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Forbidden { .. }));
}

#[tokio::test]
async fn hosted_content_on_another_host_is_refused_without_a_request() {
    let graph = FakeGraph::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;

    let error = graph
        .client
        .get_hosted_content(HostedContentRef::Url(&format!(
            "{}/v1.0/chats/c/messages/m/hostedContents/h/$value",
            elsewhere.uri()
        )))
        .await
        .unwrap_err();

    assert!(matches!(error, Error::ForeignUrl { .. }), "{error:?}");
}
