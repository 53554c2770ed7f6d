//! Behaviour tests for [`super::render`] and the reply helpers: realistic Teams bodies, the
//! real Graph payloads in `shared/fixtures/graph/`, and property tests.

use std::path::PathBuf;

use proptest::prelude::*;
use scraper::{Html, Node};
use serde_json::Value;

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

fn html(body: &str) -> RenderedContent {
    render(&MessageContent {
        body,
        ..MessageContent::default()
    })
}

fn with_attachments(body: &str, attachments: &[AttachmentInput]) -> RenderedContent {
    render(&MessageContent {
        body,
        attachments,
        ..MessageContent::default()
    })
}

fn attachment(id: &str, content_type: &str) -> AttachmentInput {
    AttachmentInput {
        id: Some(id.to_owned()),
        content_type: Some(content_type.to_owned()),
        ..AttachmentInput::default()
    }
}

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/graph");
    assert!(
        dir.is_dir(),
        "the Graph fixture folder {} is missing: these tests read the real payloads from \
         `shared/fixtures/graph/` next to the repository checkout; put the shared folder there",
        dir.display()
    );
    dir
}

fn fixture(file: &str) -> Value {
    let path = fixtures_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("fixture {} is not JSON: {error}", path.display()))
}

fn string_field(value: &Value, name: &str) -> Option<String> {
    match value.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Maps one Graph `chatMessageAttachment` JSON object the way the ingest maps the model.
fn attachment_from_graph(value: &Value) -> AttachmentInput {
    AttachmentInput {
        id: string_field(value, "id"),
        content_type: string_field(value, "contentType"),
        content_url: string_field(value, "contentUrl"),
        content: string_field(value, "content"),
        name: string_field(value, "name"),
        thumbnail_url: string_field(value, "thumbnailUrl"),
    }
}

/// Maps one Graph `chatMessageMention` JSON object.
fn mention_from_graph(value: &Value) -> MentionInput {
    let mentioned = value.get("mentioned");
    let identity = ["user", "application", "conversation", "tag"]
        .iter()
        .find_map(|kind| mentioned?.get(kind).filter(|identity| identity.is_object()));
    MentionInput {
        id: value
            .get("id")
            .and_then(Value::as_i64)
            .expect("mention id is an integer"),
        mention_text: string_field(value, "mentionText"),
        mentioned_id: identity.and_then(|identity| string_field(identity, "id")),
        display_name: identity.and_then(|identity| string_field(identity, "displayName")),
    }
}

/// Renders a Graph `chatMessage` JSON object.
fn render_graph_message(message: &Value) -> RenderedContent {
    let body = &message["body"];
    let attachments: Vec<AttachmentInput> = message["attachments"]
        .as_array()
        .map(|items| items.iter().map(attachment_from_graph).collect())
        .unwrap_or_default();
    let mentions: Vec<MentionInput> = message["mentions"]
        .as_array()
        .map(|items| items.iter().map(mention_from_graph).collect())
        .unwrap_or_default();
    render(&MessageContent {
        body: body["content"].as_str().expect("body.content is a string"),
        body_type: BodyType::from_graph(body["contentType"].as_str().unwrap_or("html")),
        attachments: &attachments,
        mentions: &mentions,
    })
}

/// Safety checks on display HTML that hold for any input: parsed back, it has no script-ish
/// elements, no event handler attributes and no non-http(s)/mailto URLs.
fn assert_display_html_is_safe(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "script tag in {html}");
    assert!(!lower.contains("<style"), "style tag in {html}");
    assert!(!lower.contains("<iframe"), "iframe in {html}");
    assert!(!lower.contains("<form"), "form in {html}");
    let document = Html::parse_fragment(html);
    for node in document.tree.nodes() {
        let Node::Element(element) = node.value() else {
            continue;
        };
        assert!(
            !matches!(
                element.name(),
                "script"
                    | "style"
                    | "iframe"
                    | "form"
                    | "input"
                    | "object"
                    | "embed"
                    | "svg"
                    | "textarea"
                    | "select"
                    | "button"
                    | "frame"
                    | "math"
            ),
            "<{}> in {html}",
            element.name()
        );
        for (name, value) in element.attrs() {
            assert!(
                !name.to_ascii_lowercase().starts_with("on"),
                "handler {name} in {html}"
            );
            assert!(name != "style", "style attribute in {html}");
            let compact: String = value
                .chars()
                .filter(|ch| !ch.is_whitespace() && !ch.is_control())
                .collect::<String>()
                .to_ascii_lowercase();
            assert!(!compact.contains("javascript:"), "javascript URL in {html}");
            if matches!(name, "href" | "src") {
                assert!(
                    compact.starts_with("https://")
                        || compact.starts_with("http://")
                        || compact.starts_with("mailto:"),
                    "{name}={value} in {html}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paragraphs, line breaks, entities, whitespace

#[test]
fn paragraphs_and_line_breaks_become_lines() {
    let rendered = html(
        "<p>Hello team,</p><p>the printer on floor 2<br>is jammed again.</p><div>Thanks</div>",
    );
    assert_eq!(
        rendered.text,
        "Hello team,\nthe printer on floor 2\nis jammed again.\nThanks"
    );
    assert_eq!(
        rendered.html,
        "<p>Hello team,</p><p>the printer on floor 2<br>is jammed again.</p><div>Thanks</div>"
    );
    assert_eq!(rendered.subject_line.as_deref(), Some("Hello team,"));
    assert!(!rendered.is_empty);
}

#[test]
fn old_client_div_bodies_with_trailing_breaks_read_cleanly() {
    let rendered = html(
        "<div><div>Line one<br></div><div>Line two<br></div><div><br></div><div>Line four</div></div>",
    );
    assert_eq!(rendered.text, "Line one\nLine two\n\nLine four");
}

#[test]
fn entities_are_decoded_and_whitespace_collapsed() {
    let rendered =
        html("<p>  Tom&nbsp;&amp;&nbsp;Jerry\n   say &quot;hi&quot; &lt;3 &#128512; &euro;5 </p>");
    assert_eq!(rendered.text, "Tom & Jerry say \"hi\" <3 😀 €5");
    assert!(
        rendered.html.contains("Tom&nbsp;&amp;&nbsp;Jerry"),
        "{}",
        rendered.html
    );
}

#[test]
fn no_break_space_paragraphs_are_blank_lines_not_spaces() {
    let rendered = html("<p>first</p><p>&nbsp;</p><p>second&nbsp;</p>");
    assert_eq!(rendered.text, "first\n\nsecond");
}

#[test]
fn lists_tables_and_headings_stay_readable() {
    let rendered = html(
        "<h2>Steps</h2><ol><li>Restart</li><li><p>Log in</p><ul><li>with MFA</li></ul></li></ol>\
         <table><tr><th>Host</th><th>State</th></tr><tr><td>srv1</td><td>down</td></tr></table>",
    );
    assert_eq!(
        rendered.text,
        "Steps\n1. Restart\n2. Log in\n  - with MFA\nHost | State\nsrv1 | down"
    );
    let continued = html(r#"<ol start="3"><li>three</li><li>four</li></ol>"#);
    assert_eq!(continued.text, "3. three\n4. four");
    assert_eq!(
        continued.html,
        r#"<ol start="3"><li>three</li><li>four</li></ol>"#
    );
}

#[test]
fn a_quote_the_sender_typed_is_prefixed_like_mail() {
    let rendered = html("<blockquote><p>old words</p><p>more</p></blockquote><p>my answer</p>");
    assert_eq!(rendered.text, "> old words\n> more\nmy answer");
    assert_eq!(rendered.quote, None);
}

// ---------------------------------------------------------------------------------------------
// Emoji

#[test]
fn emoji_elements_become_the_emoji() {
    // Field report Part B row 14.
    let rendered =
        html(r#"<p>thanks <emoji id="like" alt="👍" title="Like"></emoji> all fixed</p>"#);
    assert_eq!(rendered.text, "thanks 👍 all fixed");
    assert_eq!(rendered.html, "<p>thanks 👍 all fixed</p>");
}

#[test]
fn emoji_images_become_the_emoji_without_loading_the_image() {
    // Field report Part B row 15.
    let rendered = html(
        r#"<p>Works now <img alt="😀" itemscope="" itemtype="http://schema.skype.com/Emoji" itemid="smile" src="https://statics.teams.cdn.office.net/evergreen-assets/skype/v2/smile/default/20_f.png" title="Smile" style="width:20px;height:20px;"></p>"#,
    );
    assert_eq!(rendered.text, "Works now 😀");
    assert_eq!(rendered.html, "<p>Works now 😀</p>");
    assert!(rendered.hosted_images.is_empty());
}

#[test]
fn emoji_pictures_from_teams_assets_without_itemtype_are_emoji_too() {
    let rendered = html(
        r#"<p>great <img src="https://statics.teams.cdn.office.net/evergreen-assets/personal-expressions/v2/assets/emoticons/1f600_grinningface/default/20_f.png?v=v4" alt="😀" title="Grinning face" width="20" height="20"></p>"#,
    );
    assert_eq!(rendered.text, "great 😀");
}

#[test]
fn emoji_without_alt_falls_back_to_its_title_or_nothing() {
    assert_eq!(
        html(r#"<p>ok <emoji id="x" title="Party"></emoji></p>"#).text,
        "ok Party"
    );
    assert_eq!(html(r#"<p>ok <emoji id="x"></emoji>!</p>"#).text, "ok !");
}

// ---------------------------------------------------------------------------------------------
// Mentions

#[test]
fn mentions_become_at_names_in_text_and_html() {
    let mentions = [MentionInput {
        id: 0,
        mention_text: Some("Pat Lee".to_owned()),
        mentioned_id: Some("u-1".to_owned()),
        display_name: Some("Pat Lee".to_owned()),
    }];
    let rendered = render(&MessageContent {
        body: r#"<p>Hi <at id="0">Pat Lee</at>, the VPN drops.</p>"#,
        mentions: &mentions,
        ..MessageContent::default()
    });
    assert_eq!(rendered.text, "Hi @Pat Lee, the VPN drops.");
    assert_eq!(
        rendered.html,
        r#"<p>Hi <span class="mention">@Pat Lee</span>, the VPN drops.</p>"#
    );
}

#[test]
fn a_name_split_into_several_mentions_reads_as_one() {
    let mention = |id: i64, text: &str| MentionInput {
        id,
        mention_text: Some(text.to_owned()),
        mentioned_id: Some("u-7".to_owned()),
        display_name: Some("Pat Q. Lee".to_owned()),
    };
    let mentions = [
        mention(0, "Pat"),
        mention(1, "Q."),
        mention(2, "Lee"),
        MentionInput {
            id: 3,
            mention_text: Some("Sam".to_owned()),
            mentioned_id: Some("u-8".to_owned()),
            display_name: None,
        },
    ];
    let rendered = render(&MessageContent {
        body: r#"<p><at id="0">Pat</at>&nbsp;<at id="1">Q.</at> <at id="2">Lee</at> <at id="3">Sam</at> look</p>"#,
        mentions: &mentions,
        ..MessageContent::default()
    });
    assert_eq!(rendered.text, "@Pat Q. Lee @Sam look");
}

#[test]
fn an_empty_mention_element_uses_the_mention_text_and_unknown_ones_vanish() {
    let mentions = [MentionInput {
        id: 4,
        mention_text: Some("Help Desk".to_owned()),
        ..MentionInput::default()
    }];
    let rendered = render(&MessageContent {
        body: r#"<p><at id="4"></at> and <at id="9"></at>?</p>"#,
        mentions: &mentions,
        ..MessageContent::default()
    });
    assert_eq!(rendered.text, "@Help Desk and ?");
}

#[test]
fn old_style_mention_spans_are_mentions_too() {
    let rendered = html(
        r#"<div><span itemscope="" itemtype="http://schema.skype.com/Mention" itemid="0">Casey</span> please check</div>"#,
    );
    assert_eq!(rendered.text, "@Casey please check");
}

// ---------------------------------------------------------------------------------------------
// Links

#[test]
fn links_keep_their_url_once() {
    let rendered = html(
        r#"<p>See <a href="https://status.example.com/incidents/42" title="x">the incident</a> or <a href="https://status.example.com">https://status.example.com</a> or mail <a href="mailto:help@example.com">help@example.com</a> / <a href="mailto:help@example.com">us</a></p>"#,
    );
    assert_eq!(
        rendered.text,
        "See the incident (https://status.example.com/incidents/42) or https://status.example.com or mail help@example.com / us (help@example.com)"
    );
    assert!(rendered.html.contains(
        r#"<a href="https://status.example.com/incidents/42" target="_blank" rel="noopener noreferrer">the incident</a>"#
    ), "{}", rendered.html);
    // Links in the body are not file attachments.
    assert!(rendered.links.is_empty());
}

#[test]
fn dangerous_or_relative_links_keep_only_their_words() {
    let rendered = html(
        r#"<p><a href="javascript:alert(document.cookie)">click me</a> <a href="/admin/delete">here</a> <a href="data:text/html;base64,PHNjcmlwdD4=">data</a></p>"#,
    );
    assert_eq!(rendered.text, "click me here data");
    assert!(!rendered.html.contains("javascript"));
    assert!(!rendered.html.contains("/admin"));
    assert!(!rendered.html.contains("data:"));
    assert_display_html_is_safe(&rendered.html);
}

#[test]
fn a_link_without_a_label_shows_the_url() {
    let rendered = html(r#"<p>docs: <a href="https://example.com/a"></a></p>"#);
    assert_eq!(rendered.text, "docs: https://example.com/a");
    assert!(
        rendered.html.contains(">https://example.com/a</a>"),
        "{}",
        rendered.html
    );
}

// ---------------------------------------------------------------------------------------------
// Quoted replies

fn quote_reference(id: &str, preview: &str, author: &str) -> AttachmentInput {
    AttachmentInput {
        content: Some(
            serde_json::json!({
                "messageId": id,
                "messagePreview": preview,
                "messageSender": {"application": null, "device": null,
                    "user": {"userIdentityType": "aadUser", "id": "u-1", "displayName": author}}
            })
            .to_string(),
        ),
        ..attachment(id, "messageReference")
    }
}

#[test]
fn reply_with_quote_shows_one_marker_and_only_the_new_text_as_subject() {
    // Body shape of Graph's replyWithQuote documentation example.
    let attachments = [quote_reference(
        "1728422677844",
        "Hello World",
        "Casey Lindqvist",
    )];
    let rendered = with_attachments(
        "<p></p>\n<attachment id=\"1728422677844\"></attachment>\ntest reply\n<p></p>",
        &attachments,
    );
    assert_eq!(rendered.text, "> Casey Lindqvist: Hello World\ntest reply");
    assert_eq!(rendered.subject_line.as_deref(), Some("test reply"));
    assert_eq!(
        rendered.quote,
        Some(QuotedReply {
            message_id: Some("1728422677844".to_owned()),
            author: Some("Casey Lindqvist".to_owned()),
            text_preview: "Hello World".to_owned(),
        })
    );
    assert!(rendered.html.contains(
        r#"<blockquote class="quoted-reply"><strong>Casey Lindqvist</strong>: Hello World</blockquote>"#
    ), "{}", rendered.html);
}

#[test]
fn the_reply_blockquote_teams_copies_into_the_body_is_not_repeated() {
    let attachments = [quote_reference(
        "1622853091207",
        "Testing unread read status",
        "Rowan",
    )];
    let rendered = with_attachments(
        r#"<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" itemid="1622853091207">
<strong itemprop="mri" itemid="8:orgid:7b68460c">Rowan</strong><span itemprop="time" itemid="1622853091207"></span>
<p itemprop="preview">Testing unread read status</p>
</blockquote>
<p>Still unread for me</p>"#,
        &attachments,
    );
    assert_eq!(
        rendered.text,
        "> Rowan: Testing unread read status\nStill unread for me"
    );
    assert_eq!(rendered.text.matches("Testing unread").count(), 1);
    assert_eq!(
        rendered.subject_line.as_deref(),
        Some("Still unread for me")
    );
}

#[test]
fn a_reply_blockquote_without_its_attachment_is_still_a_single_quote() {
    let rendered = html(
        r#"<blockquote itemscope="" itemtype="http://schema.skype.com/Reply" itemid="99"><strong itemprop="mri">Sam Park</strong><span itemprop="time" itemid="99"></span>Is the  server up?</blockquote><p>Yes, since 10:00.</p>"#,
    );
    assert_eq!(
        rendered.text,
        "> Sam Park: Is the server up?\nYes, since 10:00."
    );
    assert_eq!(
        rendered.quote.as_ref().map(|quote| quote.author.as_deref()),
        Some(Some("Sam Park"))
    );
    assert_eq!(rendered.subject_line.as_deref(), Some("Yes, since 10:00."));
}

#[test]
fn a_quote_attachment_the_body_does_not_place_goes_on_top() {
    let attachments = [quote_reference("5", "original words", "Pat")];
    let rendered = with_attachments("<p>new words</p>", &attachments);
    assert_eq!(rendered.text, "> Pat: original words\nnew words");
}

#[test]
fn only_a_quote_is_not_an_empty_message_but_has_no_subject() {
    let attachments = [quote_reference("5", "original words", "Pat")];
    let rendered = with_attachments(r#"<attachment id="5"></attachment>"#, &attachments);
    assert!(!rendered.is_empty);
    assert_eq!(rendered.subject_line, None);
}

// ---------------------------------------------------------------------------------------------
// Code

#[test]
fn code_blocks_keep_their_content_verbatim() {
    let rendered = html(
        "<p>Error:</p><pre>fn main() {\n    if a &lt; b &amp;&amp; c {\n        go();   // spaced\n    }\n}</pre><p>after</p>",
    );
    assert_eq!(
        rendered.text,
        "Error:\nfn main() {\n    if a < b && c {\n        go();   // spaced\n    }\n}\nafter"
    );
    assert!(rendered.html.contains(
        "<pre><code>fn main() {\n    if a &lt; b &amp;&amp; c {\n        go();   // spaced\n    }\n}</code></pre>"
    ), "{}", rendered.html);
}

#[test]
fn teams_code_block_elements_with_breaks_are_code() {
    let rendered = html(
        r#"<codeblock class="PowerShell"><code>Get-Service&nbsp;|<br>&nbsp; Where-Object Status -eq 'Stopped'</code></codeblock>"#,
    );
    assert_eq!(
        rendered.text,
        "Get-Service |\n  Where-Object Status -eq 'Stopped'"
    );
    assert!(
        rendered.html.starts_with("<pre><code>Get-Service"),
        "{}",
        rendered.html
    );
}

#[test]
fn inline_code_keeps_its_spacing() {
    let rendered = html("<p>run <code>ipconfig  /flushdns</code> now</p>");
    assert_eq!(rendered.text, "run ipconfig  /flushdns now");
    assert_eq!(
        rendered.html,
        "<p>run <code>ipconfig  /flushdns</code> now</p>"
    );
}

// ---------------------------------------------------------------------------------------------
// Attachments: files, cards, others

#[test]
fn file_references_become_links_where_the_body_places_them() {
    let attachments = [AttachmentInput {
        content_url: Some(
            "https://contoso.sharepoint.com/sites/it/Shared Documents/log.txt".to_owned(),
        ),
        name: Some("log.txt".to_owned()),
        ..attachment("ABC-1", "reference")
    }];
    let rendered = with_attachments(
        r#"<p>Log attached</p><attachment id="abc-1"></attachment><p>thanks</p>"#,
        &attachments,
    );
    assert_eq!(
        rendered.text,
        "Log attached\n[File] log.txt (https://contoso.sharepoint.com/sites/it/Shared%20Documents/log.txt)\nthanks"
    );
    assert_eq!(
        rendered.links,
        vec![LinkAttachment {
            name: "log.txt".to_owned(),
            url: "https://contoso.sharepoint.com/sites/it/Shared%20Documents/log.txt".to_owned(),
        }]
    );
}

#[test]
fn unknown_attachment_tags_leave_nothing_and_unplaced_attachments_come_last() {
    let attachments = [AttachmentInput {
        name: Some("Weekly sync".to_owned()),
        ..attachment("m1", "meetingReference")
    }];
    let rendered = with_attachments(
        r#"<p>before <attachment id="nope"></attachment>after</p>"#,
        &attachments,
    );
    assert_eq!(rendered.text, "before after\n[Meeting] Weekly sync");
    assert!(
        !rendered.html.contains("attachment id"),
        "{}",
        rendered.html
    );
}

#[test]
fn unknown_attachment_types_are_named_not_dropped() {
    let attachments = [
        attachment("x", "application/x-something"),
        AttachmentInput {
            content_url: Some("https://files.example.com/shot.png".to_owned()),
            name: Some("shot.png".to_owned()),
            ..attachment("y", "image/png")
        },
    ];
    let rendered = with_attachments("", &attachments);
    assert_eq!(
        rendered.text,
        "[attachment: application/x-something]\n[Attachment] shot.png (https://files.example.com/shot.png)"
    );
    assert!(!rendered.is_empty);
    assert_eq!(rendered.subject_line, None);
}

#[test]
fn cards_become_a_short_summary_and_malformed_cards_a_placeholder() {
    let attachments = [
        AttachmentInput {
            content: Some(r#"{"type":"AdaptiveCard","body":[{"type":"TextBlock","text":"Ticket #12 updated"},{"type":"TextBlock","text":"Status: waiting on you"}]}"#.to_owned()),
            ..attachment("c1", "application/vnd.microsoft.card.adaptive")
        },
        AttachmentInput {
            content: Some(r#"{"title": "Hero" , "text": 5"#.to_owned()),
            ..attachment("c2", "application/vnd.microsoft.card.hero")
        },
    ];
    let rendered = with_attachments(
        r#"<attachment id="c1"></attachment><attachment id="c2"></attachment>"#,
        &attachments,
    );
    assert_eq!(
        rendered.text,
        "[Card] Ticket #12 updated — Status: waiting on you\n[Card]"
    );
    assert!(
        rendered.html.contains(
            r#"<div class="card-summary">[Card] Ticket #12 updated — Status: waiting on you</div>"#
        ),
        "{}",
        rendered.html
    );
    assert_eq!(rendered.subject_line, None);
}

// ---------------------------------------------------------------------------------------------
// Images

const HOSTED_ID: &str = "aWQ9eF8wLXd1cy1kOS1lNTRmNjM1NWYxYmJkNGQ3ZTNmNGJhZmU4NTI5MTBmNix0eXBlPTEsdXJsPWh0dHBzOi8vdXMtYXBpLmFzbS5za3lwZS5jb20vdjEvb2JqZWN0cy8wLXd1cy1kOS1lNTRmNjM1NWYxYmJkNGQ3ZTNmNGJhZmU4NTI5MTBmNi92aWV3cy9pbWdv";

#[test]
fn pasted_images_are_listed_for_download_and_shown_as_placeholders() {
    let src = format!(
        "https://graph.microsoft.com/v1.0/chats/19:2da4c29f6d7041eca70b638b43d45437@thread.v2/messages/1615971548136/hostedContents/{HOSTED_ID}/$value"
    );
    let body = format!(
        r#"<div><div>Screenshot of the error:</div><div><span><img height="297" src="{src}" width="260" style="vertical-align:bottom; width:260px; height:297px" alt="image"></span></div></div>"#
    );
    let rendered = html(&body);
    assert_eq!(rendered.text, "Screenshot of the error:\n[image]");
    assert_eq!(
        rendered.hosted_images,
        vec![HostedImageRef {
            hosted_content_id: HOSTED_ID.to_owned(),
            url: src.clone(),
            alt: Some("image".to_owned()),
        }]
    );
    assert!(
        !rendered.html.contains("graph.microsoft.com"),
        "{}",
        rendered.html
    );
    assert!(
        rendered.html.contains(&format!(
            r#"<img data-hosted-content-id="{HOSTED_ID}" alt="image">"#
        )),
        "{}",
        rendered.html
    );
    assert_eq!(
        rendered.subject_line.as_deref(),
        Some("Screenshot of the error:")
    );

    let resolved = resolve_hosted_images(&rendered.html, |id| {
        (id == HOSTED_ID).then(|| "/attachments/31".to_owned())
    });
    assert!(resolved.contains(r#"src="/attachments/31""#), "{resolved}");
}

#[test]
fn old_client_nested_divs_around_a_pasted_image_without_alt() {
    // Shape of the image message in Graph's chat-list-messages example.
    let rendered = html(
        "<div><div>\n<div>\n<div>\n<div>\n<div><img height=\"63\" src=\"https://graph.microsoft.com/v1.0/chats/19:2da4c29f6d7041eca70b638b43d45437@thread.v2/messages/1615971548136/hostedContents/aWQ9eF8wLXd1cy1kOS1l/$value\" width=\"67\" style=\"vertical-align:bottom; width:67px; height:63px\"></div>\n\n\n</div>\n</div>\n</div>\n</div>\n</div>\n</div>",
    );
    assert_eq!(rendered.text, "[image]");
    assert_eq!(rendered.hosted_images.len(), 1);
    assert_eq!(
        rendered.hosted_images[0].hosted_content_id,
        "aWQ9eF8wLXd1cy1kOS1l"
    );
    assert_eq!(rendered.hosted_images[0].alt, None);
    assert!(
        rendered
            .html
            .contains(r#"<img data-hosted-content-id="aWQ9eF8wLXd1cy1kOS1l" alt="image">"#),
        "{}",
        rendered.html
    );
    assert_eq!(rendered.subject_line, None);
}

#[test]
fn an_image_only_message_has_no_subject_but_is_not_empty() {
    let rendered = html(
        r#"<p><img src="https://graph.microsoft.com/v1.0/chats/19:a@thread.v2/messages/1/hostedContents/aGM=/$value" alt="image"><img src="https://graph.microsoft.com/v1.0/chats/19:a@thread.v2/messages/1/hostedContents/aGM=/$value"></p>"#,
    );
    assert_eq!(rendered.text, "[image] [image]");
    assert_eq!(
        rendered.hosted_images.len(),
        1,
        "one download per hosted content id"
    );
    assert_eq!(rendered.subject_line, None);
    assert!(!rendered.is_empty);
}

#[test]
fn other_images_are_links_never_loaded() {
    let rendered = html(
        r#"<p><img src="https://media.giphy.com/media/x/giphy.gif" alt="dance"> <img src="javascript:alert(1)"></p>"#,
    );
    assert_eq!(rendered.text, "[image] [image]");
    assert_eq!(
        rendered.html,
        r#"<p><a href="https://media.giphy.com/media/x/giphy.gif" target="_blank" rel="noopener noreferrer">[image]</a> [image]</p>"#
    );
    assert!(rendered.hosted_images.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Plain text bodies, empty bodies, subjects

#[test]
fn text_bodies_are_escaped_not_parsed() {
    let rendered = render(&MessageContent {
        body: "if a <b> & c\r\nthen <script>x</script>",
        body_type: BodyType::Text,
        ..MessageContent::default()
    });
    assert_eq!(rendered.text, "if a <b> & c\nthen <script>x</script>");
    assert_eq!(
        rendered.html,
        "if a &lt;b&gt; &amp; c<br>then &lt;script&gt;x&lt;/script&gt;"
    );
    assert_eq!(rendered.subject_line.as_deref(), Some("if a <b> & c"));
    assert_eq!(BodyType::from_graph("TEXT"), BodyType::Text);
    assert_eq!(BodyType::from_graph("html"), BodyType::Html);
}

#[test]
fn empty_bodies_without_attachments_are_empty() {
    for body in [
        "",
        "<p></p>",
        "<p>&nbsp;</p>\n<p> </p>",
        "<systemEventMessage/>",
        "<div><br></div>",
    ] {
        let rendered = html(body);
        assert!(rendered.is_empty, "{body:?} should be empty");
        assert_eq!(rendered.text, "");
        assert_eq!(rendered.subject_line, None);
    }
    let rendered = with_attachments("", &[attachment("a", "reference")]);
    assert!(!rendered.is_empty);
}

#[test]
fn subjects_are_the_first_own_line_cut_to_80_characters() {
    let long = "Ä".repeat(120);
    let rendered = html(&format!("<p></p><p>  </p><p>{long}</p><p>second</p>"));
    let subject = rendered.subject_line.expect("a subject");
    assert_eq!(subject.chars().count(), 80);
    assert_eq!(subject, format!("{}…", "Ä".repeat(79)));
    assert_eq!(
        html("<p>Short one</p>").subject_line.as_deref(),
        Some("Short one")
    );
    assert_eq!(subject_from_text(&"x".repeat(80)), Some("x".repeat(80)));
    assert_eq!(subject_from_text("\n \n"), None);
}

// ---------------------------------------------------------------------------------------------
// Sanitising

#[test]
fn scripts_styles_handlers_frames_and_forms_never_reach_the_html_or_text() {
    let rendered = html(
        r#"<p onmouseover="steal()">Hello</p><script>alert('x')</script><style>body{display:none}</style>
<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input value="pw"><textarea>raw <b>text</b></textarea></form>
<img src="x" onerror="alert(1)"><svg><script>alert(2)</script><![CDATA[<b>cdata</b>]]></svg><noscript><p>ns</p></noscript>
<a href="https://ok.example/" onclick="x()">ok</a><object data="x.swf"></object><math><mi>x</mi></math>"#,
    );
    assert_display_html_is_safe(&rendered.html);
    assert_eq!(rendered.text, "Hello\n[image] ok (https://ok.example/)");
    assert!(rendered.html.contains(r#"target="_blank""#));
    assert!(rendered.html.contains(r#"rel="noopener noreferrer""#));
}

#[test]
fn very_deep_nesting_does_not_overflow_and_keeps_the_text() {
    // Far beyond the walk's nesting limit; html5ever itself is quadratic in nesting depth, so
    // the size stays near Teams' 28 KB message limit.
    let depth = 3_000;
    let body = format!(
        "{}deep text{}",
        "<div><b>".repeat(depth),
        "</b></div>".repeat(depth)
    );
    let rendered = html(&body);
    assert_eq!(rendered.text, "deep text");
    assert!(rendered.html.contains("deep text"));
}

// ---------------------------------------------------------------------------------------------
// Real Graph payloads (shared/fixtures/graph)

#[test]
fn fixture_13_new_client_paragraph() {
    let messages = fixture("13-messages-page-cli-recorded-new-client-html.json");
    let rendered = render_graph_message(&messages[0]);
    assert_eq!(rendered.text, "Hello world");
    assert_eq!(rendered.html, "<p>Hello world</p>");
    assert_eq!(rendered.subject_line.as_deref(), Some("Hello world"));
}

#[test]
fn fixture_14_bot_cards_and_emoji_paragraphs() {
    let messages = fixture("14-replies-recorded-abridged-bot-cards.json");
    let messages = messages.as_array().expect("an array of messages");
    let texts: Vec<String> = messages
        .iter()
        .map(|message| render_graph_message(message).text)
        .collect();
    assert_eq!(texts[0], "[Card] 👋 Welcome!");
    assert_eq!(texts[1], "[Card] 📝 Message Fetch Results");
    assert_eq!(texts[2], "1");
    assert_eq!(texts[4], "✅ Thanks for your message!");
    assert_eq!(
        texts.last().map(String::as_str),
        Some("✅ Thanks for your message!")
    );
    for message in messages {
        let rendered = render_graph_message(message);
        assert!(!rendered.is_empty);
        assert!(!rendered.text.contains('<'), "{}", rendered.text);
        assert_display_html_is_safe(&rendered.html);
    }
}

#[test]
fn fixture_17_mention_of_a_bot() {
    let rendered = render_graph_message(&fixture("17-message-recorded-mention-of-bot.json"));
    assert_eq!(rendered.text, "@Chat SDK Demo Hey");
    assert_eq!(
        rendered.html,
        r#"<p><span class="mention">@Chat SDK Demo</span> Hey</p>"#
    );
}

#[test]
fn fixture_21_mention_of_a_user() {
    let rendered = render_graph_message(&fixture("21-send-channel-mention-user-201.json"));
    assert_eq!(rendered.text, "Hello World @Harper Quinlan");
}

#[test]
fn fixture_22_thumbnail_card_with_html_in_its_fields() {
    let rendered = render_graph_message(&fixture("22-send-channel-thumbnail-card-201.json"));
    assert_eq!(
        rendered.text,
        "[Card] This is an example of posting a card — This is the subtitle"
    );
    assert_eq!(rendered.subject_line, None);
    assert!(!rendered.is_empty);
}

#[test]
fn fixture_23_file_reference_keeps_name_and_url() {
    let rendered = render_graph_message(&fixture("23-send-channel-file-reference-201.json"));
    let url =
        "https://contoso.sharepoint.com/sites/test/Shared%20Documents/General/test%20doc.docx";
    assert_eq!(
        rendered.text,
        format!("Here's the latest budget.\n[File] Budget.docx ({url})")
    );
    assert_eq!(
        rendered.links,
        vec![LinkAttachment {
            name: "Budget.docx".to_owned(),
            url: url.to_owned()
        }]
    );
    assert_eq!(
        rendered.subject_line.as_deref(),
        Some("Here's the latest budget.")
    );
    assert!(
        rendered.html.contains(&format!(
            r#"<a href="{url}" target="_blank" rel="noopener noreferrer">[File] Budget.docx</a>"#
        )),
        "{}",
        rendered.html
    );
}

#[test]
fn fixture_25_channel_mention_and_no_break_space() {
    let rendered = render_graph_message(&fixture(
        "25-send-channel-mention-channel-conversation-201.json",
    ));
    assert_eq!(rendered.text, "@General Hello there!");
}

#[test]
fn fixture_39_attachment_variants() {
    let variants = fixture("39-fragment-attachment-variants.json");
    let first = |label: &str| attachment_from_graph(&variants[label][0]);

    let file = first("fileReference");
    let rendered = with_attachments(
        r#"<attachment id="9B9FA984-30FB-5AF7-9C3E-7BB75F32B524"></attachment>"#,
        &[file],
    );
    assert_eq!(
        rendered.text,
        "[File] color.png (https://testing.sharepoint.com/sites/Samples/Shared%20Documents/General/color.png)"
    );
    assert_eq!(rendered.links.len(), 1);

    let card = first("adaptiveCardFromTeamsApp");
    let rendered = with_attachments(
        r#"<attachment id="f60e7358497741f5bdb5fa7f101fe425"></attachment>"#,
        &[card],
    );
    assert_eq!(rendered.text, "[Card] Awesome — Test User 1");

    let quote = first("messageReference");
    let rendered = with_attachments(
        r#"<attachment id="1622853091207"></attachment><p>Read now?</p>"#,
        &[quote],
    );
    assert_eq!(
        rendered.text,
        "> Rowan: Testing unread read status\nRead now?"
    );
    assert_eq!(
        rendered.quote,
        Some(QuotedReply {
            message_id: Some("1622853091207".to_owned()),
            author: Some("Rowan".to_owned()),
            text_preview: "Testing unread read status".to_owned(),
        })
    );
    assert!(rendered.links.is_empty(), "a quote is not a file");

    let rendered = with_attachments("", &[first("meetingReference"), first("tabReference")]);
    assert_eq!(
        rendered.text,
        "[Meeting] Testing channel meeting\n[Tab] Bing"
    );
}

#[test]
fn fixture_15_hosted_content_id_round_trips_from_an_image_url() {
    let listing = fixture("15-hostedcontents-list-chat-message.json");
    let id = listing["value"][0]["id"]
        .as_str()
        .expect("hosted content id");
    let body = format!(
        r#"<p><img src="https://graph.microsoft.com/v1.0/chats/19:2da4c29f6d7041eca70b638b43d45437@thread.v2/messages/1615971548136/hostedContents/{id}/$value" alt="image"></p>"#
    );
    let rendered = html(&body);
    assert_eq!(rendered.hosted_images.len(), 1);
    assert_eq!(rendered.hosted_images[0].hosted_content_id, id);
}

// ---------------------------------------------------------------------------------------------
// Outbound reply helpers

#[test]
fn reply_html_renders_back_to_the_technicians_text() {
    let text =
        "Hi Pat,\n\nplease run:\n    ipconfig /all\nand send <the output> & 'errors'.\r\nThanks";
    let html = reply_html(text);
    assert_eq!(
        html,
        "Hi Pat,<br><br>please run:<br>&nbsp;&nbsp;&nbsp;&nbsp;ipconfig /all<br>and send &lt;the output&gt; &amp; &#39;errors&#39;.<br>Thanks"
    );
    assert_eq!(html_to_text(&html), text.replace("\r\n", "\n"));
}

#[test]
fn a_reply_matches_its_copy_however_teams_reserialises_it() {
    let sent = reply_html("Hi Pat,\nit's fixed & tested: https://status.example.com");
    for candidate in [
        sent.clone(),
        "<p>Hi Pat,<br/>it&#39;s fixed &amp; tested: https://status.example.com</p>".to_owned(),
        "<div><div>Hi Pat,</div><div>it's fixed &amp;&nbsp;tested: <a href=\"https://status.example.com\">https://status.example.com</a></div></div>".to_owned(),
    ] {
        assert!(reply_text_matches(&sent, &candidate), "{candidate}");
    }
    for other in [
        "<p>Hi Pat,<br>it's fixed &amp; tested</p>",
        "<p>Hi Sam,<br>it's fixed &amp; tested: https://status.example.com</p>",
        "",
    ] {
        assert!(!reply_text_matches(&sent, other), "{other}");
    }
    assert!(!reply_text_matches("", ""), "blank never matches");
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Pieces of Teams-like HTML. Text pieces never contain a raw `<` before a letter or an
/// escaped one (`&lt;`), so any `<tag` in the output text would be markup that leaked.
fn html_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 .,!?:;()'=/\\-]{0,12}",
        Just("&nbsp;".to_owned()),
        Just("&amp;".to_owned()),
        Just("&quot;".to_owned()),
        Just(" < ".to_owned()),
        Just("<3".to_owned()),
        Just("😀".to_owned()),
        Just("\n".to_owned()),
        prop::sample::select(vec![
            "<p>", "</p>", "<div>", "</div>", "<br>", "<b>", "</b>", "<i>", "</i>", "<ul>", "<li>",
            "</li>", "</ul>", "<ol>", "</ol>", "<table><tr><td>", "</td><td>", "</td></tr></table>",
            "<pre>", "</pre>", "<code>", "</code>", "<codeblock><code>", "</code></codeblock>",
            "<blockquote>", "</blockquote>", "<at id=\"0\">", "</at>", "<at id=\"7\">",
            "<emoji id=\"x\" alt=\"👍\" title=\"Like\"></emoji>",
            "<img itemtype=\"http://schema.skype.com/Emoji\" alt=\"😀\" src=\"https://statics.teams.cdn.office.net/e.png\">",
            "<img src=\"https://graph.microsoft.com/v1.0/chats/c/messages/1/hostedContents/aGM=/$value\" alt=\"image\">",
            "<img src=\"x\" onerror=\"alert(1)\">",
            "<attachment id=\"f1\"></attachment>", "<attachment id=\"q1\"></attachment>",
            "<attachment id=\"c1\"></attachment>", "<attachment id=\"zz\"></attachment>",
            "<blockquote itemscope=\"\" itemtype=\"http://schema.skype.com/Reply\" itemid=\"q1\"><strong itemprop=\"mri\">Pat</strong><p itemprop=\"preview\">old</p></blockquote>",
            "<a href=\"https://example.com/x\">", "<a href=\"javascript:alert(1)\">",
            "<a href=\"JAVASCRIPT:alert(1)\" onclick=\"x()\">", "<a href=\"data:text/html,x\">",
            "</a>", "<script>alert(1)</script>", "<script>", "</script>", "<style>p{}</style>",
            "<iframe src=\"https://evil.example\">", "</iframe>", "<form action=\"https://e\">",
            "<input value=\"x\">", "<textarea>", "</textarea>", "<svg onload=\"x()\">", "</svg>",
            "<span onmouseover=\"x()\" style=\"color:red\">", "</span>", "<!-- note -->",
            "<systemEventMessage/>", "<title>", "</title>", "<xmp>", "</xmp>", "<noscript>",
            "<plaintext>", "<math>", "</math>", "<select><option>", "</select>", "<![CDATA[",
            "]]>", "<object data=\"x\">", "<embed src=\"x\">",
        ])
        .prop_map(str::to_owned),
    ]
}

fn property_attachments() -> Vec<AttachmentInput> {
    vec![
        AttachmentInput {
            content_url: Some("https://contoso.sharepoint.com/a b.docx".to_owned()),
            name: Some("a b.docx".to_owned()),
            ..attachment("f1", "reference")
        },
        quote_reference("q1", "old", "Pat"),
        AttachmentInput {
            content: Some(
                r#"{"type":"AdaptiveCard","body":[{"type":"TextBlock","text":"Hi"}]}"#.to_owned(),
            ),
            ..attachment("c1", "application/vnd.microsoft.card.adaptive")
        },
    ]
}

fn has_raw_markup(text: &str) -> bool {
    text.as_bytes().windows(2).any(|pair| {
        pair[0] == b'<' && (pair[1].is_ascii_alphabetic() || matches!(pair[1], b'/' | b'!' | b'?'))
    })
}

/// What `reply_html` → `html_to_text` must give back: the text with line breaks normalised,
/// tabs and no-break spaces as spaces, control characters and BOMs dropped, trailing spaces on
/// each line and blank lines at both ends trimmed.
fn expected_round_trip(text: &str) -> String {
    let cleaned: String = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter_map(|ch| match ch {
            '\n' => Some('\n'),
            '\t' | '\u{a0}' => Some(' '),
            '\u{feff}' => None,
            ch if ch.is_control() => None,
            ch => Some(ch),
        })
        .collect();
    cleaned
        .split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_matches('\n')
        .to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn teams_like_html_never_leaks_markup_into_text_or_danger_into_html(
        pieces in prop::collection::vec(html_piece(), 0..40)
    ) {
        let body = pieces.concat();
        let attachments = property_attachments();
        let rendered = render(&MessageContent { body: &body, attachments: &attachments, ..MessageContent::default() });
        prop_assert!(!has_raw_markup(&rendered.text), "markup in text {:?} from {:?}", rendered.text, body);
        prop_assert!(!rendered.html.to_ascii_lowercase().contains("javascript:"), "{}", rendered.html);
        assert_display_html_is_safe(&rendered.html);
        if let Some(subject) = &rendered.subject_line {
            prop_assert!(subject.chars().count() <= SUBJECT_MAX_CHARS);
            prop_assert!(!subject.contains('\n'));
        }
    }

    #[test]
    fn any_input_renders_without_panicking_and_with_safe_html(
        body in any::<String>(),
        content in proptest::option::of(any::<String>()),
        content_type in prop::sample::select(vec!["reference", "messageReference", "application/vnd.microsoft.card.adaptive", "application/vnd.microsoft.card.thumbnail", "meetingReference", "x"]),
        as_text in any::<bool>(),
    ) {
        let attachments = [AttachmentInput { content, content_url: Some(body.clone()), ..attachment("a", content_type) }];
        let rendered = render(&MessageContent {
            body: &body,
            body_type: if as_text { BodyType::Text } else { BodyType::Html },
            attachments: &attachments,
            mentions: &[],
        });
        assert_display_html_is_safe(&rendered.html);
        prop_assert!(!rendered.text.chars().any(|ch| ch.is_control() && ch != '\n' && ch != '\t'));
    }

    #[test]
    fn tag_soup_renders_without_panicking_and_with_safe_html(
        body in "(<[a-zA-Z!/?]{0,3}[^<>]{0,8}>?|&[#a-z0-9]{0,5};?|[^<&]{0,6}){0,30}"
    ) {
        let rendered = html(&body);
        assert_display_html_is_safe(&rendered.html);
    }

    #[test]
    fn reply_html_round_trips_through_the_text_renderer(text in any::<String>()) {
        prop_assert_eq!(html_to_text(&reply_html(&text)), expected_round_trip(&text));
    }

    #[test]
    fn reply_html_round_trips_typed_text(text in "[a-zA-Z0-9 <>&\"'\n\t.,!?:;/@#%*()\\[\\]{}=+-_äöü€😀]{0,80}") {
        prop_assert_eq!(html_to_text(&reply_html(&text)), expected_round_trip(&text));
        let wrapped_by_teams = format!("<p>{}</p>", reply_html(&text));
        let matches = reply_text_matches(&reply_html(&text), &wrapped_by_teams);
        prop_assert_eq!(matches, !text.trim().is_empty());
    }
}
