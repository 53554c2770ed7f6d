//! Inbound content (ARCHITECTURE §5.6) end to end: what Teams puts in a message body becomes
//! readable ticket text and safe HTML — emoji, mentions, links, quotes, entities, code, files,
//! cards — and pasted images are downloaded and stored with the ticket (placeholder and later
//! retry when the download fails). Bodies come from the recorded fixtures where one fits.

use std::sync::Arc;

use base64::Engine as _;
use m365_sim::demo;
use regentra::bridge::connection::ManualClock;
use regentra::bridge::metrics::PollMetrics;
use regentra::bridge::poller::{CycleMode, PollTarget, Poller, PollerSettings};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::helpers::TestApp;
use crate::inbound::{
    chat_with, client_entries, connected_app, fixture, only_ticket_of, poll, say_raw, sim,
};

/// Posts `message` (raw chatMessage fields) as Pat in the Pat–support chat (Teams keeps one
/// oneOnOne chat per pair), polls, and returns that message's entry.
async fn ingest_one(app: &TestApp, message: Value) -> Value {
    let chat = chat_with(app, demo::CONTOSO_USER_1_ID);
    let posted = say_raw(app, &chat, demo::CONTOSO_USER_1_ID, message);
    let report = poll(app).await;
    assert_eq!(report["summary"]["messages_ingested"], 1, "{report}");
    let ticket = only_ticket_of(app, &chat).await;
    client_entries(&ticket)
        .into_iter()
        .find(|e| e["graph_message_id"] == posted["id"])
        .unwrap_or_else(|| panic!("no entry for {posted}: {ticket:#}"))
}

fn html_body(content: &str) -> Value {
    json!({"contentType": "html", "content": content})
}

fn assert_no_markup(text: &str) {
    for tag in [
        "<p",
        "<at",
        "<emoji",
        "<attachment",
        "<img",
        "</",
        "&nbsp;",
        "&amp;",
    ] {
        assert!(!text.contains(tag), "raw markup {tag:?} in {text:?}");
    }
}

#[tokio::test]
async fn every_content_kind_becomes_readable_text_and_safe_html() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;

    // Emoji element (field report B14).
    let entry = ingest_one(
        &app,
        json!({"body": html_body("<p>thanks <emoji id=\"like\" alt=\"👍\" title=\"Like\"></emoji> all fixed</p>")}),
    )
    .await;
    assert_eq!(entry["text"], "thanks 👍 all fixed");

    // Emoji picture and a file reference (B15): the emoji's alt text, the file as a link.
    let entry = ingest_one(
        &app,
        json!({
            "body": html_body("<p>see <img itemtype=\"http://schema.skype.com/Emoji\" alt=\"😀\" src=\"https://statics.teams.cdn.office.net/evergreen-assets/personal-expressions/v2/assets/emoticons/smile/default/20_f.png\"> <attachment id=\"f1\"></attachment></p>"),
            "attachments": [{"id": "f1", "contentType": "reference", "contentUrl": "https://contoso.sharepoint.com/sites/it/Shared%20Documents/report.pdf", "name": "report.pdf"}]
        }),
    )
    .await;
    let text = entry["text"].as_str().unwrap();
    assert!(text.starts_with("see 😀"), "{text}");
    assert!(text.contains("report.pdf"), "{text}");
    let attachment = &entry["attachments"][0];
    assert_eq!(attachment["kind"], "link");
    assert_eq!(attachment["name"], "report.pdf");
    assert_eq!(
        attachment["url"],
        "https://contoso.sharepoint.com/sites/it/Shared%20Documents/report.pdf"
    );

    // Recorded file reference (fixture 23): the file keeps its name and SharePoint link.
    let recorded = fixture("23-send-channel-file-reference-201.json");
    let entry = ingest_one(
        &app,
        json!({"body": recorded["body"], "attachments": recorded["attachments"]}),
    )
    .await;
    let text = entry["text"].as_str().unwrap();
    assert!(text.starts_with("Here's the latest budget."), "{text}");
    assert_eq!(entry["attachments"][0]["name"], "Budget.docx");
    assert_no_markup(text);

    // Recorded card (fixture 22): a short summary, never the card JSON.
    let recorded = fixture("22-send-channel-thumbnail-card-201.json");
    let entry = ingest_one(
        &app,
        json!({"body": recorded["body"], "attachments": recorded["attachments"]}),
    )
    .await;
    let text = entry["text"].as_str().unwrap();
    assert!(
        text.contains("This is an example of posting a card"),
        "{text}"
    );
    assert!(!text.contains("\"title\""), "card JSON leaked: {text}");
    assert_no_markup(text);

    // Recorded mention (fixture 17): `@Name`, the mention shown as such in the HTML.
    let recorded = fixture("17-message-recorded-mention-of-bot.json");
    let entry = ingest_one(
        &app,
        json!({"body": recorded["body"], "mentions": recorded["mentions"]}),
    )
    .await;
    assert_eq!(entry["text"], "@Chat SDK Demo Hey");
    assert!(entry["html"].as_str().unwrap().contains("@Chat SDK Demo"));

    // Quoted reply (fixture 39 messageReference): a quote marker, not new text.
    let reference = fixture("39-fragment-attachment-variants.json")["messageReference"][0].clone();
    let entry = ingest_one(
        &app,
        json!({
            "body": html_body("<attachment id=\"1622853091207\"></attachment><p>Yes, it still happens</p>"),
            "attachments": [reference]
        }),
    )
    .await;
    let text = entry["text"].as_str().unwrap();
    assert!(
        text.contains("> Rowan: Testing unread read status"),
        "{text}"
    );
    assert!(text.ends_with("Yes, it still happens"), "{text}");

    // Entities, a link, a code block; a script is never kept.
    let entry = ingest_one(
        &app,
        json!({"body": html_body("<p>Tom&nbsp;&amp;&nbsp;Jerry read <a href=\"https://docs.example/vpn\">the guide</a></p><pre>ping 10.0.0.1</pre><script>alert(1)</script>")}),
    )
    .await;
    let text = entry["text"].as_str().unwrap();
    assert!(
        text.starts_with("Tom & Jerry read the guide (https://docs.example/vpn)"),
        "{text}"
    );
    assert!(text.contains("ping 10.0.0.1"), "{text}");
    assert_no_markup(text);
    let html = entry["html"].as_str().unwrap();
    assert!(html.contains("href=\"https://docs.example/vpn\""), "{html}");
    assert!(!html.contains("<script"), "{html}");

    // An empty message is treated as deleted, never stored as a blank entry.
    let chat = chat_with(&app, demo::CONTOSO_USER_2_ID);
    say_raw(
        &app,
        &chat,
        demo::CONTOSO_USER_2_ID,
        json!({"body": html_body("<p> </p>")}),
    );
    let report = poll(&app).await;
    assert_eq!(report["summary"]["skipped"]["empty"], 1, "{report}");
}

#[tokio::test]
async fn pasted_images_are_stored_with_the_ticket_and_a_failed_download_is_retried_later() {
    let app = connected_app().await;
    app.create_client("Contoso", Some(demo::CONTOSO_TENANT_ID))
        .await;
    let chat = chat_with(&app, demo::CONTOSO_USER_1_ID);
    let sim_base = app.sim.as_ref().unwrap().base_url();
    let png = b"\x89PNG\r\n\x1a\n fake image bytes".to_vec();
    let image_message = |message_id: &str, hosted_id: &str| {
        json!({
            "id": message_id,
            "body": html_body(&format!(
                "<p>Screenshot of the error:</p><p><img src=\"{}v1.0/chats/{chat}/messages/{message_id}/hostedContents/{hosted_id}/$value\" alt=\"error dialog\"></p>",
                sim_base
            )),
            "hostedContents": [{"id": hosted_id, "contentType": "image/png",
                                "contentBytes": base64::engine::general_purpose::STANDARD.encode(&png)}]
        })
    };
    say_raw(
        &app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        image_message("1780000000001", "aWQ9MQ=="),
    );
    poll(&app).await;
    let entry = client_entries(&only_ticket_of(&app, &chat).await)[0].clone();
    assert_eq!(entry["text"], "Screenshot of the error:\n[image]");
    let image = &entry["attachments"][0];
    assert_eq!(image["kind"], "image");
    assert_eq!(image["name"], "error dialog");
    assert_eq!(image["download_state"], "downloaded");
    assert_eq!(image["size_bytes"], png.len());
    let mut conn = app.db.acquire().await.unwrap();
    let attachment_id =
        regentra::tickets::AttachmentId::parse(image["id"].as_str().unwrap()).unwrap();
    let (content_type, bytes) =
        regentra::store::entries::attachment_content(&mut conn, attachment_id)
            .await
            .unwrap()
            .expect("bytes stored");
    assert_eq!(bytes, png);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    drop(conn);

    // The image endpoint refuses once (field report B16): the text lands with a placeholder.
    let response = app
        .api
        .post(format!("{}_sim/faults", sim_base))
        .json(&json!({"method": "GET", "path_prefix": format!("/v1.0/chats/{chat}/messages/1780000000002/hostedContents"), "status": 403, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    say_raw(
        &app,
        &chat,
        demo::CONTOSO_USER_1_ID,
        image_message("1780000000002", "aWQ9Mg=="),
    );
    let report = poll(&app).await;
    assert_eq!(
        report["result"], "ok",
        "one image never fails the poll: {report}"
    );
    let entries = client_entries(&only_ticket_of(&app, &chat).await);
    let second = entries
        .iter()
        .find(|e| e["graph_message_id"] == "1780000000002")
        .unwrap();
    assert_eq!(second["text"], "Screenshot of the error:\n[image]");
    assert_eq!(second["attachments"][0]["download_state"], "pending");

    // Later (the retry is due after a few minutes) the download is tried again and succeeds.
    let account = app.state.teams.active().await.unwrap().unwrap();
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::now_utc() + time::Duration::minutes(10),
    ));
    let poller = Poller::with_clock(
        app.db.clone(),
        Some(app.state.teams.clone()),
        PollerSettings::from_config(&app.state.config),
        Arc::new(PollMetrics::new()),
        clock,
    );
    sim(&app).advance_clock(2);
    let report = poller
        .poll_target(
            &PollTarget::from_account(&account),
            CycleMode::Incremental,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        report.summary.graph_requests, 2,
        "chat list + the image: {report:?}"
    );
    let entries = client_entries(&only_ticket_of(&app, &chat).await);
    let second = entries
        .iter()
        .find(|e| e["graph_message_id"] == "1780000000002")
        .unwrap();
    assert_eq!(second["attachments"][0]["download_state"], "downloaded");
    assert_eq!(second["attachments"][0]["size_bytes"], png.len());
}
