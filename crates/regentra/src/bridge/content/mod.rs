//! Teams message content → sanitised display HTML and readable plain text (ARCHITECTURE §5.6),
//! plus the two HTML helpers of the outbound reply path (§7).
//!
//! This module is pure: it takes a message body, its attachments and mentions (our own small
//! input structs, so it does not depend on the `msgraph` models) and returns a
//! [`RenderedContent`]. It must never do I/O (no database, no HTTP, no Graph calls), never panic
//! on any input, never let raw markup into the plain text, and never let scripts, styles, event
//! handlers, `javascript:` URLs, iframes or forms into the display HTML. HTML is parsed with
//! html5ever (through `scraper`) and the display HTML passes through an `ammonia` allow-list as
//! the last step, so a bug in the rendering walk cannot open a hole.
//!
//! # What becomes what
//!
//! | Teams body / attachment | plain text | display HTML |
//! |---|---|---|
//! | `<p>`, `<div>`, `<br>` | line breaks | kept |
//! | `&nbsp;`, `&amp;`, … | decoded (`&nbsp;` → a space that is never collapsed) | kept |
//! | `<emoji alt="😀">`, emoji `<img itemtype=".../Emoji" alt="😀">` | `😀` | `😀` |
//! | `<at id="0">Name</at>` (also the old `<span itemtype=".../Mention">`) | `@Name` | `<span class="mention">@Name</span>` |
//! | `<a href="url">label</a>` | `label (url)`, or just `url` when the label is the URL | link, `target="_blank" rel="noopener noreferrer"`, http/https/mailto only |
//! | `<pre>`, `<codeblock>`, `<code>` | content verbatim | `<pre><code>` / `<code>` |
//! | quoted reply: `messageReference` attachment and/or `<blockquote itemtype=".../Reply">` | one line `> Author: preview` | `<blockquote class="quoted-reply">` |
//! | `reference` attachment (file) | `[File] name (url)` | link, also listed in [`RenderedContent::links`] |
//! | cards (`application/vnd.microsoft.card.*`) | `[Card] title — first text` | same, in a `<div class="card-summary">` |
//! | pasted image `<img src=".../hostedContents/{id}/$value">` | `[image]` | placeholder `<img data-hosted-content-id="{id}" alt="…">` (see below) |
//! | other images | `[image]` | a link to the image (never loaded from the browser) |
//! | `<attachment id>` with no matching attachment, unknown tags | nothing / their text only | never raw markup |
//!
//! **Quote convention.** A quoted reply is shown once, as a marker line `> Author: preview` in the
//! text (and a `quoted-reply` blockquote in the HTML) at the place where Teams put it, normally
//! the top. The quoted message's own HTML that Teams copies into the body is *not* rendered again,
//! so quoted words never count as new text. [`RenderedContent::subject_line`] skips the marker.
//!
//! **Hosted image convention.** Pasted images are not downloadable by the browser (Graph needs
//! the support user's token), so the display HTML carries a placeholder without `src`:
//! `<img data-hosted-content-id="{hosted content id}" alt="…">`. The ingest downloads each
//! [`HostedImageRef`] through `GET …/hostedContents/{id}/$value` and stores it; the web layer then
//! calls [`resolve_hosted_images`] with a lookup from hosted content id to the stored
//! attachment's URL (e.g. `/attachments/{id}`). Images whose download failed stay placeholders
//! (the browser shows the alt text) until a later retry succeeds.

mod attachments;
mod dom;
mod sanitize;
mod text;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use sanitize::HOSTED_CONTENT_ID_ATTRIBUTE;

/// Longest subject line [`subject_from_text`] returns, in characters (Unicode scalar values).
pub const SUBJECT_MAX_CHARS: usize = 80;

/// How a message body is encoded (Graph `itemBody.contentType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    /// HTML (Teams' normal case; always HTML when the message has mentions).
    #[default]
    Html,
    /// Plain text: escaped for display, never parsed as HTML.
    Text,
}

impl BodyType {
    /// Maps Graph's `body.contentType` (`"html"` / `"text"`, any case) to a [`BodyType`].
    /// Anything other than `text` is treated as HTML, which is the safe reading: it is parsed and
    /// sanitised rather than shown as typed.
    pub fn from_graph(content_type: &str) -> Self {
        if content_type.trim().eq_ignore_ascii_case("text") {
            Self::Text
        } else {
            Self::Html
        }
    }
}

/// One Teams message's content, as the ingest maps it from a Graph `chatMessage`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageContent<'a> {
    /// `body.content`.
    pub body: &'a str,
    /// `body.contentType`.
    pub body_type: BodyType,
    /// `attachments[]`.
    pub attachments: &'a [AttachmentInput],
    /// `mentions[]`.
    pub mentions: &'a [MentionInput],
}

/// One Graph `chatMessageAttachment`, field for field (all optional: Graph omits or nulls them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentInput {
    /// `id`; the body refers to it as `<attachment id="…">`.
    pub id: Option<String>,
    /// `contentType`: `reference`, `messageReference`, `application/vnd.microsoft.card.adaptive`, …
    pub content_type: Option<String>,
    /// `contentUrl` (files: the SharePoint/OneDrive URL).
    pub content_url: Option<String>,
    /// `content`: for cards and message references a JSON document *as a string*.
    pub content: Option<String>,
    /// `name` (files: the file name).
    pub name: Option<String>,
    /// `thumbnailUrl`.
    pub thumbnail_url: Option<String>,
}

/// One Graph `chatMessageMention`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MentionInput {
    /// `id` (an integer in Graph); the body refers to it as `<at id="0">`.
    pub id: i64,
    /// `mentionText`.
    pub mention_text: Option<String>,
    /// The id of whoever is mentioned (`mentioned.user.id`, `.application.id` or
    /// `.conversation.id`). Teams splits one mention of "Pat Lee" into `<at id="0">Pat</at>
    /// <at id="1">Lee</at>`; mentions with the same `mentioned_id` next to each other are shown
    /// as one `@Pat Lee`.
    pub mentioned_id: Option<String>,
    /// The mentioned identity's `displayName`, used when the `<at>` element is empty.
    pub display_name: Option<String>,
}

/// The result of [`render`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedContent {
    /// Readable plain text: no tags, entities decoded, one paragraph or `<br>` per line.
    pub text: String,
    /// Sanitised HTML for display (allow-list; hosted images as placeholders, see the module
    /// docs).
    pub html: String,
    /// First non-empty line of the sender's own text (not quotes, files, cards or images), at
    /// most [`SUBJECT_MAX_CHARS`] characters. `None` when the message has no own text (only an
    /// image or a file): the caller picks a fallback such as "Image from {sender}".
    pub subject_line: Option<String>,
    /// File (`reference`) attachments and other attachments with a web URL, as links.
    pub links: Vec<LinkAttachment>,
    /// Pasted images to download through `hostedContents`, each id once, in body order.
    pub hosted_images: Vec<HostedImageRef>,
    /// The first quoted reply, if the message quotes one (all of them are in `text`/`html`).
    pub quote: Option<QuotedReply>,
    /// No text and no attachments: the caller treats the message as deleted, never as a blank
    /// entry.
    pub is_empty: bool,
}

/// A file or other attachment shown as a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkAttachment {
    /// File name (Graph `name`, else the last segment of the URL).
    pub name: String,
    /// The attachment's URL (http or https), normalised.
    pub url: String,
}

/// A pasted image in the body, to be downloaded through Graph `hostedContents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostedImageRef {
    /// The hosted content id exactly as it appears in the URL path (not percent-decoded), so it
    /// can be put back into `/chats/{chat}/messages/{message}/hostedContents/{id}/$value`.
    pub hosted_content_id: String,
    /// The `<img src>` as found in the body.
    pub url: String,
    /// The image's `alt` text, if any.
    pub alt: Option<String>,
}

/// A quoted reply (`messageReference` attachment or Teams reply blockquote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotedReply {
    /// The quoted message's Graph id, when known.
    pub message_id: Option<String>,
    /// Display name of the quoted message's sender, when known.
    pub author: Option<String>,
    /// Plain-text preview of the quoted message (may be empty).
    pub text_preview: String,
}

/// Renders one Teams message: plain text, sanitised HTML, subject, links, hosted images, quote.
///
/// Never fails and never panics; unknown or malformed content degrades to a placeholder
/// (`[Card]`, `[attachment: …]`) or to its text.
pub fn render(content: &MessageContent<'_>) -> RenderedContent {
    let document = dom::parse_body(content);
    let full = dom::Walker::run(content, document.as_ref(), dom::Mode::Full);
    let own_text = dom::Walker::run(content, document.as_ref(), dom::Mode::OwnTextOnly)
        .text
        .finish();

    let text = full.text.finish();
    let html = sanitize::display_html(&full.html);
    let is_empty =
        text.trim().is_empty() && content.attachments.is_empty() && full.hosted_images.is_empty();

    RenderedContent {
        subject_line: subject_from_text(&own_text),
        text,
        html,
        links: full.links,
        hosted_images: full.hosted_images,
        quote: full.quotes.into_iter().next(),
        is_empty,
    }
}

/// Renders an HTML fragment to readable plain text with the same rules as [`render`] (no
/// attachments or mentions to resolve).
pub fn html_to_text(html: &str) -> String {
    let content = MessageContent {
        body: html,
        ..MessageContent::default()
    };
    dom::Walker::run(&content, None, dom::Mode::Full)
        .text
        .finish()
}

/// The first non-empty line of `text`, trimmed and cut to at most [`SUBJECT_MAX_CHARS`]
/// characters (at a character boundary, ending in `…` when cut). `None` for blank text.
pub fn subject_from_text(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    Some(text::truncate_with_ellipsis(line, SUBJECT_MAX_CHARS))
}

/// Builds the HTML body for a technician's reply (Graph `contentType: html`): `&`, `<`, `>`,
/// `"` and `'` escaped, every line break (`\r\n`, `\n`, `\r`) as `<br>`, runs of spaces and
/// leading spaces kept with `&nbsp;` (tabs count as spaces), control characters dropped.
/// Technician text is never passed through as markup.
pub fn reply_html(text: &str) -> String {
    text::reply_html(text)
}

/// Whether `candidate_html` (the body of a message found in the chat) is the reply whose body
/// we sent as `sent_html` — used by the outbox to decide whether a post with an unknown outcome
/// actually landed before sending it again.
///
/// Both sides are reduced to their plain text with whitespace runs collapsed, so Teams'
/// re-serialisation (wrapping in `<p>`, `<br/>` for `<br>`, `&#39;` for `'`, `&nbsp;` for
/// spaces, linkified URLs) does not matter; wording and letter case do. Blank text never
/// matches. If the candidate's `body.contentType` is `text`, pass `reply_html(&content)`.
pub fn reply_text_matches(sent_html: &str, candidate_html: &str) -> bool {
    let sent = comparable_text(sent_html);
    !sent.is_empty() && sent == comparable_text(candidate_html)
}

fn comparable_text(html: &str) -> String {
    html_to_text(html)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fills in the hosted-image placeholders of display HTML from [`render`]: each
/// `<img data-hosted-content-id="{id}">` gets `src` = `resolve(id)` (for example
/// `/attachments/42`; a root-relative path or an http(s) URL). Images for which `resolve`
/// returns `None` (not downloaded yet, download failed) stay placeholders. The result is
/// sanitised again, so this is safe on HTML read back from storage.
pub fn resolve_hosted_images(html: &str, resolve: impl FnMut(&str) -> Option<String>) -> String {
    sanitize::resolve_hosted_images(html, resolve)
}
