//! Teams attachments and embedded references: what kind an attachment is, card summaries,
//! quoted-reply details, file names, and recognising pasted-image (`hostedContents`) URLs.
//! Attachment `content` is untrusted JSON in a string: it is parsed with `serde_json`, never
//! evaluated, and malformed content degrades to a placeholder.

use serde_json::Value;
use url::Url;

use super::text::{one_line, truncate_with_ellipsis};
use super::{AttachmentInput, QuotedReply, html_to_text};

/// Longest quoted-reply preview kept, in characters.
const PREVIEW_MAX_CHARS: usize = 200;
/// Longest title or text taken from a card, in characters.
const CARD_PART_MAX_CHARS: usize = 100;
/// How deep the card JSON is searched for text.
const CARD_MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AttachmentKind {
    /// `messageReference`: a quoted reply.
    Quote,
    /// `forwardedMessageReference`.
    Forwarded,
    /// `reference`: a file in SharePoint/OneDrive.
    File,
    /// `application/vnd.microsoft.card.*` and other Microsoft card types.
    Card,
    /// `meetingReference`.
    Meeting,
    /// `tabReference`.
    Tab,
    /// Anything else, with its content type as given.
    Other(String),
}

pub(super) fn kind(attachment: &AttachmentInput) -> AttachmentKind {
    let content_type = attachment
        .content_type
        .as_deref()
        .unwrap_or_default()
        .trim();
    match content_type.to_ascii_lowercase().as_str() {
        "messagereference" => AttachmentKind::Quote,
        "forwardedmessagereference" => AttachmentKind::Forwarded,
        "reference" => AttachmentKind::File,
        "meetingreference" => AttachmentKind::Meeting,
        "tabreference" => AttachmentKind::Tab,
        lower if lower.starts_with("application/vnd.microsoft.") && lower.contains("card") => {
            AttachmentKind::Card
        }
        "" => AttachmentKind::Other("unknown".to_owned()),
        _ => AttachmentKind::Other(content_type.to_owned()),
    }
}

fn parse_content(attachment: &AttachmentInput) -> Option<Value> {
    serde_json::from_str(attachment.content.as_deref()?).ok()
}

/// Text from content that may or may not be HTML (card fields, message previews), as one line.
fn plain_line(value: &str) -> String {
    if ammonia::is_html(value) {
        one_line(&html_to_text(value))
    } else {
        one_line(value)
    }
}

/// A quoted message's preview as one line of at most [`PREVIEW_MAX_CHARS`] characters.
pub(super) fn preview_text(preview: &str) -> String {
    truncate_with_ellipsis(&plain_line(preview), PREVIEW_MAX_CHARS)
}

/// Details of a `messageReference` (or `forwardedMessageReference`) attachment. Content JSON:
/// `{messageId, messagePreview, messageSender: {user|application|conversation: {displayName}}}`.
pub(super) fn quote(attachment: &AttachmentInput) -> QuotedReply {
    let content = parse_content(attachment);
    let field = |name: &str| content.as_ref().and_then(|content| content.get(name));
    let message_id = match field("messageId") {
        Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_owned()),
        Some(Value::Number(id)) => Some(id.to_string()),
        _ => attachment.id.clone(),
    };
    let author = field("messageSender").and_then(|sender| {
        ["user", "application", "conversation", "device"]
            .iter()
            .filter_map(|identity| sender.get(identity)?.get("displayName")?.as_str())
            .map(one_line)
            .find(|name| !name.is_empty())
    });
    let text_preview = field("messagePreview")
        .and_then(Value::as_str)
        .map(preview_text)
        .unwrap_or_default();
    QuotedReply {
        message_id,
        author,
        text_preview,
    }
}

/// Card keys whose string value is shown, in the order they appear in the card.
const CARD_TEXT_KEYS: &[&str] = &[
    "title",
    "subtitle",
    "text",
    "summary",
    "activityTitle",
    "activitySubtitle",
    "activityText",
];

/// Card parts that are buttons, data or speech, never shown text.
const CARD_SKIPPED_KEYS: &[&str] = &[
    "actions",
    "buttons",
    "potentialAction",
    "selectAction",
    "tap",
    "speak",
    "data",
    "msteams",
    "entities",
    "images",
];

/// `[Card] title — first text`, `[Card] title`, or `[Card]` when the card has no readable text
/// or its JSON is malformed.
pub(super) fn card_summary(content: Option<&str>) -> String {
    let card = content.and_then(|content| serde_json::from_str::<Value>(content).ok());
    let mut parts = Vec::new();
    if let Some(card) = &card {
        collect_card_text(card, None, &mut parts, 0);
    }
    let mut summary = String::from("[Card]");
    if let Some(title) = parts.first() {
        summary.push(' ');
        summary.push_str(title);
    }
    if let Some(text) = parts.get(1) {
        summary.push_str(" — ");
        summary.push_str(text);
    }
    summary
}

fn collect_card_text(value: &Value, key: Option<&str>, parts: &mut Vec<String>, depth: usize) {
    if parts.len() >= 2 || depth > CARD_MAX_DEPTH {
        return;
    }
    let push = |text: &str, parts: &mut Vec<String>| {
        let text = truncate_with_ellipsis(&plain_line(text), CARD_PART_MAX_CHARS);
        if !text.is_empty() && parts.len() < 2 {
            parts.push(text);
        }
    };
    match value {
        Value::Object(map) => {
            for (name, value) in map {
                if CARD_SKIPPED_KEYS.contains(&name.as_str()) {
                    continue;
                }
                match value {
                    Value::String(text) if CARD_TEXT_KEYS.contains(&name.as_str()) => {
                        push(text, parts);
                    }
                    _ => collect_card_text(value, Some(name), parts, depth + 1),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    // Adaptive `RichTextBlock.inlines` may hold plain strings.
                    Value::String(text) if key == Some("inlines") => push(text, parts),
                    _ => collect_card_text(item, key, parts, depth + 1),
                }
            }
        }
        _ => {}
    }
}

/// A file attachment's display name: its `name`, else the last segment of its URL, else `file`.
pub(super) fn file_name(attachment: &AttachmentInput) -> String {
    if let Some(name) = attachment.name.as_deref().map(one_line)
        && !name.is_empty()
    {
        return name;
    }
    attachment
        .content_url
        .as_deref()
        .and_then(|url| Url::parse(url.trim()).ok())
        .and_then(|url| {
            url.path_segments()?
                .rev()
                .find(|segment| !segment.is_empty())
                .map(one_line)
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "file".to_owned())
}

/// The hosted content id of a pasted-image URL
/// `…/messages/{message}/hostedContents/{id}/$value` (absolute or relative), exactly as it
/// appears in the path; `None` for any other image.
pub(super) fn hosted_content_id(src: &str) -> Option<String> {
    let src = src.trim();
    if src.is_empty() {
        return None;
    }
    let url = Url::parse(src)
        .or_else(|_| Url::parse("https://graph.invalid/").and_then(|base| base.join(src)))
        .ok()?;
    let segments: Vec<&str> = url.path_segments()?.collect();
    let start = segments
        .iter()
        .position(|segment| segment.eq_ignore_ascii_case("hostedContents"))?;
    let end = segments
        .iter()
        .rposition(|segment| *segment == "$value" || segment.eq_ignore_ascii_case("%24value"))?;
    if end <= start + 1 {
        return None;
    }
    let id = segments[start + 1..end].join("/");
    (!id.trim().is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_content_urls_are_recognised_and_others_are_not() {
        assert_eq!(
            hosted_content_id(
                "https://graph.microsoft.com/v1.0/chats/19:abc@unq.gbl.spaces/messages/1700000000000/hostedContents/aGM=/$value"
            )
            .as_deref(),
            Some("aGM=")
        );
        assert_eq!(
            hosted_content_id(
                "http://127.0.0.1:4010/v1.0/chats/c/messages/m/hostedContents/x1/$value"
            )
            .as_deref(),
            Some("x1")
        );
        assert_eq!(
            hosted_content_id("../hostedContents/1/$value").as_deref(),
            Some("1")
        );
        assert_eq!(hosted_content_id("https://example.com/picture.png"), None);
        assert_eq!(hosted_content_id("https://x/hostedContents/$value"), None);
        assert_eq!(hosted_content_id(""), None);
    }

    #[test]
    fn attachment_kinds_follow_the_content_type() {
        let of = |content_type: &str| {
            kind(&AttachmentInput {
                content_type: Some(content_type.to_owned()),
                ..AttachmentInput::default()
            })
        };
        assert_eq!(of("messageReference"), AttachmentKind::Quote);
        assert_eq!(of("reference"), AttachmentKind::File);
        assert_eq!(
            of("application/vnd.microsoft.card.adaptive"),
            AttachmentKind::Card
        );
        assert_eq!(
            of("application/vnd.microsoft.card.hero"),
            AttachmentKind::Card
        );
        assert_eq!(
            of("application/vnd.microsoft.teams.card.o365connector"),
            AttachmentKind::Card
        );
        assert_eq!(of("meetingReference"), AttachmentKind::Meeting);
        assert_eq!(of("tabReference"), AttachmentKind::Tab);
        assert_eq!(
            of("image/png"),
            AttachmentKind::Other("image/png".to_owned())
        );
    }

    #[test]
    fn card_summaries_take_title_and_first_text_and_survive_garbage() {
        assert_eq!(
            card_summary(Some(
                r#"{"title":"Outage","subtitle":"<b>Mail</b> is down","text":"x"}"#
            )),
            "[Card] Outage — Mail is down"
        );
        assert_eq!(
            card_summary(Some(
                r#"{"type":"AdaptiveCard","body":[{"type":"RichTextBlock","inlines":["Heads up",{"type":"TextRun","text":"printer jam"}]}],"actions":[{"type":"Action.Submit","title":"OK"}]}"#
            )),
            "[Card] Heads up — printer jam"
        );
        assert_eq!(
            card_summary(Some(
                r#"{"type":"AdaptiveCard","actions":[{"title":"Only a button"}]}"#
            )),
            "[Card]"
        );
        assert_eq!(card_summary(Some("{not json")), "[Card]");
        assert_eq!(card_summary(Some("[1, 2")), "[Card]");
        assert_eq!(card_summary(Some("null")), "[Card]");
        assert_eq!(card_summary(None), "[Card]");
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(card_summary(Some(&deep)), "[Card]");
    }

    #[test]
    fn quote_details_come_from_the_reference_json_or_fall_back() {
        let attachment = AttachmentInput {
            id: Some("171".to_owned()),
            content_type: Some("messageReference".to_owned()),
            content: Some(
                r#"{"messageId":"171","messagePreview":"Printer  is\nbroken","messageSender":{"application":null,"user":{"displayName":"Pat Lee"}}}"#
                    .to_owned(),
            ),
            ..AttachmentInput::default()
        };
        assert_eq!(
            quote(&attachment),
            QuotedReply {
                message_id: Some("171".to_owned()),
                author: Some("Pat Lee".to_owned()),
                text_preview: "Printer is broken".to_owned(),
            }
        );
        let broken = AttachmentInput {
            content: Some("{oops".to_owned()),
            ..attachment
        };
        assert_eq!(
            quote(&broken),
            QuotedReply {
                message_id: Some("171".to_owned()),
                author: None,
                text_preview: String::new(),
            }
        );
    }
}
