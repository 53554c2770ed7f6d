//! The Teams page (`/_sim/teams`): both directions of a chat, sending through the control path,
//! federation notes, escaping.

use m365_sim::demo;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestSim;

fn texts(html: &str, selector: &str) -> Vec<String> {
    let document = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(selector).unwrap();
    document
        .select(&selector)
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .collect()
}

async fn send_from_page(sim: &TestSim, user: &str, text: &str) -> String {
    let answer = sim
        .send(sim.http.post(sim.url("/_sim/teams/send")).form(&[
            ("user", user),
            ("peer", demo::SUPPORT_USER_ID),
            ("message", text),
        ]))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let location = answer.headers["location"].to_str().unwrap().to_owned();
    sim.send(sim.http.get(sim.url(&location))).await.text
}

#[tokio::test]
async fn a_client_message_typed_on_the_page_reaches_graph_and_the_reply_shows_on_the_page() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    let page = sim.control_get("/_sim/teams").await;
    assert_eq!(page.status, StatusCode::OK);
    for id in [
        "#user-select",
        "#peer-select",
        "#message-input",
        "#send-button",
    ] {
        assert_eq!(texts(&page.text, id).len(), 1, "{id} present once");
    }

    let shown = send_from_page(
        &sim,
        demo::CONTOSO_USER_1_ID,
        "Printer <b>broken</b> & offline\nsecond line",
    )
    .await;
    assert_eq!(
        texts(&shown, ".message .body"),
        vec!["Printer <b>broken</b> & offline\nsecond line".replace('\n', "")]
    );
    let chat = texts(&shown, "#chat-id").remove(0);
    let listed = sim
        .graph_get(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            "microsoft.graph.chatMessageCollectionResponse",
        )
        .await;
    assert_eq!(
        listed.body["value"][0]["body"]["content"],
        "<p>Printer &#60;b&#62;broken&#60;/b&#62; &#38; offline<br>second line</p>"
    );
    assert_eq!(
        listed.body["value"][0]["from"]["user"]["id"],
        demo::CONTOSO_USER_1_ID
    );

    sim.advance(5).await;
    let reply = sim
        .graph_post(
            &format!("/v1.0/chats/{chat}/messages"),
            &token,
            &json!({"body": {"contentType": "html", "content": "<p>On it</p>"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let page = sim
        .control_get(&format!(
            "/_sim/teams?user={}&peer={}",
            demo::CONTOSO_USER_1_ID,
            demo::SUPPORT_USER_ID
        ))
        .await;
    assert_eq!(
        texts(&page.text, ".message .sender"),
        vec!["Pat Lee", demo::SUPPORT_DISPLAY_NAME]
    );
    assert_eq!(texts(&page.text, ".message .body")[1], "On it");
}

#[tokio::test]
async fn a_blocked_tenants_user_sees_a_note_and_the_message_is_not_delivered() {
    let sim = TestSim::start().await;
    let shown = send_from_page(&sim, demo::FABRIKAM_USER_ID, "hello?").await;
    let note = texts(&shown, "#delivery-note");
    assert_eq!(note.len(), 1);
    assert!(
        note[0].starts_with("Teams did not deliver your last message."),
        "{note:?}"
    );
    assert!(texts(&shown, ".message").is_empty());
    let state = sim.control_get("/_sim/state").await;
    assert_eq!(state.body["chats"][0]["messageCount"], 0);
}

#[tokio::test]
async fn message_html_from_graph_is_sanitised_on_the_page() {
    let sim = TestSim::start().await;
    let chat = sim.chat_with_support(demo::CONTOSO_USER_1_ID).await;
    sim.user_says(
        &chat,
        demo::CONTOSO_USER_1_ID,
        "<p>hi<script>alert(1)</script></p>",
    )
    .await;
    let page = sim
        .control_get(&format!("/_sim/teams?user={}", demo::CONTOSO_USER_1_ID))
        .await;
    assert!(!page.text.contains("alert(1)"));
    assert_eq!(texts(&page.text, ".message .body"), vec!["hi"]);
}
