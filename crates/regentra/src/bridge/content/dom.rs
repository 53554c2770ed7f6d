//! The walk over the parsed body (html5ever via `scraper`) that writes the plain text and the
//! pre-sanitised display HTML side by side. It emits only the tags and attributes it knows;
//! `ammonia` (see `sanitize`) still cleans the HTML afterwards. Never recurses deeper than
//! [`MAX_DEPTH`] elements: anything nested deeper is kept as plain text.

use std::collections::HashSet;

use scraper::node::Element;
use scraper::{ElementRef, Html, Node};

use super::attachments::{self, AttachmentKind};
use super::sanitize::{HOSTED_CONTENT_ID_ATTRIBUTE, safe_link_url};
use super::text::{TextWriter, one_line, push_escaped};
use super::{
    AttachmentInput, BodyType, HostedImageRef, LinkAttachment, MentionInput, MessageContent,
    QuotedReply,
};

/// Nesting limit for the structured walk; keeps the recursion far from any stack limit.
const MAX_DEPTH: usize = 64;

/// Elements dropped together with their content: scripts and styles, raw-text elements whose
/// content is not markup, embedded documents, forms' inputs, and foreign (SVG/MathML) content.
#[rustfmt::skip]
const DROPPED: &[&str] = &[
    "script", "style", "template", "iframe", "frame", "frameset", "object", "embed", "applet",
    "noscript", "noembed", "noframes", "xmp", "plaintext", "textarea", "title", "head", "meta",
    "link", "base", "svg", "math", "select", "option", "optgroup", "datalist", "input", "canvas",
    "audio", "video", "source", "track", "param", "map", "area",
];

/// Block elements kept under their own name in the display HTML.
const KEPT_BLOCKS: &[&str] = &[
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tfoot", "tr",
    "caption", "dl", "dt", "dd",
];

/// Other block-level elements: a line boundary in the text, a `<div>` in the HTML.
#[rustfmt::skip]
const OTHER_BLOCKS: &[&str] = &[
    "section", "article", "header", "footer", "nav", "aside", "main", "figure", "figcaption",
    "address", "details", "summary", "center", "hgroup", "form", "fieldset", "legend", "body",
    "html",
];

/// Inline formatting kept in the display HTML.
const KEPT_INLINE: &[&str] = &[
    "b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "sub", "sup", "small", "mark",
    "span",
];

fn is_dropped(name: &str) -> bool {
    DROPPED.contains(&name)
}

fn is_block(name: &str) -> bool {
    KEPT_BLOCKS.contains(&name)
        || OTHER_BLOCKS.contains(&name)
        || matches!(
            name,
            "ul" | "ol" | "li" | "blockquote" | "pre" | "codeblock" | "hr" | "td" | "th"
        )
}

fn itemtype_is(element: &Element, kind: &str) -> bool {
    element.attr("itemtype").is_some_and(|itemtype| {
        let itemtype = itemtype.trim().to_ascii_lowercase();
        itemtype.ends_with(&format!("schema.skype.com/{}", kind.to_ascii_lowercase()))
    })
}

fn is_mention(element: &Element) -> bool {
    element.name() == "at" || (element.name() == "span" && itemtype_is(element, "Mention"))
}

/// Teams emoji pictures: marked with the Skype Emoji itemtype, an `emoji` class, or served
/// from Teams' emoticon asset folders (seen without the itemtype in some clients).
fn is_emoji_image(element: &Element) -> bool {
    let emoticon_asset = element.attr("src").is_some_and(|src| {
        let src = src.to_ascii_lowercase();
        src.contains("statics.teams.cdn.office.net")
            && (src.contains("/emoticons/") || src.contains("/skype/v2/"))
    });
    itemtype_is(element, "Emoji")
        || emoticon_asset
        || element.classes().any(|class| {
            class.eq_ignore_ascii_case("emoji") || class.eq_ignore_ascii_case("emoticon")
        })
}

/// A child of an element, in the shapes the walk cares about.
#[derive(Clone, Copy)]
enum Child<'a> {
    Text(&'a str),
    Element(ElementRef<'a>),
    Other,
}

fn children_of(element: ElementRef<'_>) -> Vec<Child<'_>> {
    element
        .children()
        .map(|node| match node.value() {
            Node::Text(text) => Child::Text(text),
            Node::Element(_) => ElementRef::wrap(node).map_or(Child::Other, Child::Element),
            _ => Child::Other,
        })
        .collect()
}

/// The text inside `element`, without markup, dropped elements or elements `skip` rejects;
/// `<br>` and block boundaries become `separator`. Iterative, so any nesting depth is fine.
fn flat_text(element: ElementRef<'_>, separator: &str, skip: &dyn Fn(&Element) -> bool) -> String {
    let mut out = String::new();
    let mut stack = vec![(element.children(), false)];
    while let Some((children, _)) = stack.last_mut() {
        let Some(node) = children.next() else {
            if let Some((_, true)) = stack.pop() {
                out.push_str(separator);
            }
            continue;
        };
        match node.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(child) => {
                let name = child.name();
                if name == "br" {
                    out.push_str(separator);
                } else if !is_dropped(name) && !skip(child) {
                    let block = is_block(name);
                    if block && !out.is_empty() && !out.ends_with(separator) {
                        out.push_str(separator);
                    }
                    stack.push((node.children(), block));
                }
            }
            _ => {}
        }
    }
    out
}

/// Code content kept verbatim: text as written, `<br>` and block boundaries as line breaks,
/// leading and trailing blank lines removed.
fn code_text(element: ElementRef<'_>) -> String {
    let code = flat_text(element, "\n", &|_| false);
    let code = code.trim_end_matches(['\n', '\r', ' ', '\t', '\u{a0}']);
    code.trim_start_matches(['\n', '\r']).to_owned()
}

/// Parses an HTML body (html5ever, as a `<body>` fragment); `None` for text bodies.
pub(super) fn parse_body(content: &MessageContent<'_>) -> Option<Html> {
    (content.body_type == BodyType::Html).then(|| Html::parse_fragment(content.body))
}

/// Which parts of the message a walk renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Everything: text, HTML, links, hosted images, quotes.
    Full,
    /// Only what the sender typed (no quotes, attachments or images): the subject's source.
    OwnTextOnly,
}

#[derive(Debug, Clone, Copy)]
enum ListKind {
    Unordered,
    Ordered { next: u64 },
}

/// One rendering pass over a message.
pub(super) struct Walker<'c> {
    attachments: &'c [AttachmentInput],
    mentions: &'c [MentionInput],
    mode: Mode,
    pub(super) text: TextWriter,
    pub(super) html: String,
    pub(super) links: Vec<LinkAttachment>,
    pub(super) hosted_images: Vec<HostedImageRef>,
    pub(super) quotes: Vec<QuotedReply>,
    rendered_attachments: Vec<bool>,
    rendered_quote_ids: HashSet<String>,
    lists: Vec<ListKind>,
}

impl<'c> Walker<'c> {
    /// Renders `content` in `mode`. `document` is the parsed body of an HTML message (parse it
    /// once with [`parse_body`] and reuse it for both passes).
    pub(super) fn run(content: &MessageContent<'c>, document: Option<&Html>, mode: Mode) -> Self {
        let mut walker = Walker {
            attachments: content.attachments,
            mentions: content.mentions,
            mode,
            text: TextWriter::new(),
            html: String::new(),
            links: Vec::new(),
            hosted_images: Vec::new(),
            quotes: Vec::new(),
            rendered_attachments: vec![false; content.attachments.len()],
            rendered_quote_ids: HashSet::new(),
            lists: Vec::new(),
        };
        match (content.body_type, document) {
            (BodyType::Html, Some(document)) => walker.html_body(document),
            (BodyType::Html, None) => walker.html_body(&Html::parse_fragment(content.body)),
            (BodyType::Text, _) => walker.text_body(content.body),
        }
        walker
    }

    fn html_body(&mut self, document: &Html) {
        let root = document.root_element();

        // Quotes come first: a quote the body never places (no `<attachment>` tag, no reply
        // blockquote) is shown at the top, where Teams shows it.
        let mut placed_ids = HashSet::new();
        for element in root.descendants().filter_map(ElementRef::wrap) {
            let element = element.value();
            match element.name() {
                "attachment" => placed_ids.extend(element.attr("id").map(str::to_owned)),
                "blockquote" if itemtype_is(element, "Reply") => {
                    placed_ids.extend(element.attr("itemid").map(str::to_owned));
                }
                _ => {}
            }
        }
        self.unplaced_quotes(&placed_ids);

        self.children(root, 0);
        self.remaining_attachments();
    }

    /// `contentType: text`: shown as typed, escaped, never parsed.
    fn text_body(&mut self, body: &str) {
        self.unplaced_quotes(&HashSet::new());
        let normalised = body.replace("\r\n", "\n").replace('\r', "\n");
        self.text.block();
        for (index, line) in normalised.split('\n').enumerate() {
            if index > 0 {
                self.text.line_break();
                self.html.push_str("<br>");
            }
            self.text.verbatim(line);
            push_escaped(&mut self.html, line);
        }
        self.text.block();
        self.remaining_attachments();
    }

    fn children(&mut self, parent: ElementRef<'_>, depth: usize) {
        let children = children_of(parent);
        let mut index = 0;
        while index < children.len() {
            match children[index] {
                Child::Text(text) => {
                    self.text.inline(text);
                    push_escaped(&mut self.html, text);
                }
                Child::Element(element) if is_mention(element.value()) => {
                    index = self.mention_run(&children, index);
                    continue;
                }
                Child::Element(element) => self.element(element, depth + 1),
                Child::Other => {}
            }
            index += 1;
        }
    }

    fn element(&mut self, element: ElementRef<'_>, depth: usize) {
        let value = element.value();
        let name = value.name();
        if is_dropped(name) {
            return;
        }
        if depth > MAX_DEPTH {
            let text = flat_text(element, " ", &|_| false);
            self.text.inline(&text);
            push_escaped(&mut self.html, &text);
            return;
        }
        match name {
            "br" => {
                self.text.line_break();
                self.html.push_str("<br>");
            }
            "hr" => {
                self.text.block();
                self.html.push_str("<hr>");
            }
            "emoji" => self.emoji(value),
            "img" => self.image(value),
            "attachment" => {
                if let Some(id) = value.attr("id") {
                    self.attachment_tag(id);
                }
            }
            "blockquote" if itemtype_is(value, "Reply") => self.reply_blockquote(element),
            "blockquote" => self.blockquote(element, depth),
            "pre" | "codeblock" => self.code_block(element),
            "code" => self.inline_code(element),
            "a" => self.link(element, depth),
            "ul" => self.list(element, depth, ListKind::Unordered),
            "ol" => {
                let start = value
                    .attr("start")
                    .and_then(|start| start.trim().parse().ok());
                self.list(
                    element,
                    depth,
                    ListKind::Ordered {
                        next: start.unwrap_or(1),
                    },
                );
            }
            "li" => self.list_item(element, depth),
            "td" | "th" => self.table_cell(element, depth, name),
            _ if KEPT_BLOCKS.contains(&name) => self.block(element, depth, name),
            _ if OTHER_BLOCKS.contains(&name) => self.block(element, depth, "div"),
            _ if KEPT_INLINE.contains(&name) => {
                self.open_tag(name);
                self.children(element, depth);
                self.close_tag(name);
            }
            // Unknown elements (Teams' own tags, `<font>`, …) are transparent: their text stays,
            // the tag never appears.
            _ => self.children(element, depth),
        }
    }

    fn open_tag(&mut self, name: &str) {
        self.html.push('<');
        self.html.push_str(name);
        self.html.push('>');
    }

    fn close_tag(&mut self, name: &str) {
        self.html.push_str("</");
        self.html.push_str(name);
        self.html.push('>');
    }

    fn block(&mut self, element: ElementRef<'_>, depth: usize, tag: &str) {
        self.text.block();
        self.open_tag(tag);
        self.children(element, depth);
        self.close_tag(tag);
        self.text.block();
    }

    fn table_cell(&mut self, element: ElementRef<'_>, depth: usize, tag: &str) {
        let follows_cell = element.prev_siblings().any(|sibling| {
            sibling
                .value()
                .as_element()
                .is_some_and(|sibling| matches!(sibling.name(), "td" | "th"))
        });
        if follows_cell {
            self.text.inline(" | ");
        }
        self.open_tag(tag);
        self.children(element, depth);
        self.close_tag(tag);
    }

    fn list(&mut self, element: ElementRef<'_>, depth: usize, kind: ListKind) {
        let tag = match kind {
            ListKind::Unordered => "ul",
            ListKind::Ordered { .. } => "ol",
        };
        self.text.block();
        match kind {
            ListKind::Ordered { next } if next != 1 => {
                self.html.push_str(&format!("<ol start=\"{next}\">"));
            }
            _ => self.open_tag(tag),
        }
        self.lists.push(kind);
        self.children(element, depth);
        self.lists.pop();
        self.close_tag(tag);
        self.text.block();
    }

    fn list_item(&mut self, element: ElementRef<'_>, depth: usize) {
        let indent = "  ".repeat(self.lists.len().saturating_sub(1));
        let marker = match self.lists.last_mut() {
            Some(ListKind::Ordered { next }) => {
                let marker = format!("{indent}{next}. ");
                *next = next.saturating_add(1);
                marker
            }
            Some(ListKind::Unordered) | None => format!("{indent}- "),
        };
        self.text.block();
        self.text.marker(&marker);
        self.open_tag("li");
        self.children(element, depth);
        self.close_tag("li");
        self.text.block();
    }

    /// A blockquote the sender wrote (not a Teams reply): its lines prefixed with `> `.
    fn blockquote(&mut self, element: ElementRef<'_>, depth: usize) {
        let outer = std::mem::replace(&mut self.text, TextWriter::new());
        self.html.push_str("<blockquote>");
        self.children(element, depth);
        self.html.push_str("</blockquote>");
        let quoted = std::mem::replace(&mut self.text, outer).finish();
        if quoted.is_empty() {
            return;
        }
        self.text.block();
        for (index, line) in quoted.split('\n').enumerate() {
            if index > 0 {
                self.text.line_break();
            }
            self.text.verbatim(if line.is_empty() { ">" } else { "> " });
            self.text.verbatim(line);
        }
        self.text.block();
    }

    fn code_block(&mut self, element: ElementRef<'_>) {
        let code = code_text(element);
        self.text.block();
        self.text.verbatim(&code);
        self.text.block();
        self.html.push_str("<pre><code>");
        push_escaped(&mut self.html, &code);
        self.html.push_str("</code></pre>");
    }

    fn inline_code(&mut self, element: ElementRef<'_>) {
        let code = flat_text(element, "\n", &|_| false);
        self.text.verbatim(&code);
        self.html.push_str("<code>");
        push_escaped(&mut self.html, &code);
        self.html.push_str("</code>");
    }

    fn link(&mut self, element: ElementRef<'_>, depth: usize) {
        let raw_href = element.value().attr("href").unwrap_or_default();
        let Some(url) = safe_link_url(raw_href) else {
            // No usable target (`javascript:`, relative, missing): keep the words only.
            self.children(element, depth);
            return;
        };
        let label = one_line(&flat_text(element, " ", &|_| false));
        self.html.push_str("<a href=\"");
        push_escaped(&mut self.html, &url);
        self.html.push_str("\">");
        let written_before = self.text.written_len();
        self.children(element, depth);
        if self.text.written_len() == written_before {
            // The label rendered to nothing (empty, or only skipped content): the URL is the
            // text.
            push_escaped(&mut self.html, &display_url(&url));
            self.text.soft_space();
            self.text.verbatim(&display_url(&url));
        } else if !same_target(&label, raw_href, &url) {
            self.text.inline(" (");
            self.text.verbatim(&display_url(&url));
            self.text.verbatim(")");
        }
        self.html.push_str("</a>");
    }

    fn emoji(&mut self, element: &Element) {
        let emoji = ["alt", "title"]
            .iter()
            .filter_map(|attribute| element.attr(attribute))
            .map(one_line)
            .find(|value| !value.is_empty());
        if let Some(emoji) = emoji {
            self.text.inline(&emoji);
            push_escaped(&mut self.html, &emoji);
        }
    }

    fn image(&mut self, element: &Element) {
        if is_emoji_image(element) {
            self.emoji(element);
            return;
        }
        if self.mode == Mode::OwnTextOnly {
            return;
        }
        let src = element.attr("src").unwrap_or_default().trim();
        let alt = element
            .attr("alt")
            .map(one_line)
            .filter(|alt| !alt.is_empty());
        self.text.soft_space();
        self.text.inline("[image]");
        self.text.soft_space();
        if let Some(hosted_content_id) = attachments::hosted_content_id(src) {
            self.html.push_str("<img ");
            self.html.push_str(HOSTED_CONTENT_ID_ATTRIBUTE);
            self.html.push_str("=\"");
            push_escaped(&mut self.html, &hosted_content_id);
            self.html.push_str("\" alt=\"");
            push_escaped(&mut self.html, alt.as_deref().unwrap_or("image"));
            self.html.push_str("\">");
            if !self
                .hosted_images
                .iter()
                .any(|image| image.hosted_content_id == hosted_content_id)
            {
                self.hosted_images.push(HostedImageRef {
                    hosted_content_id,
                    url: src.to_owned(),
                    alt,
                });
            }
        } else if let Some(url) = safe_link_url(src).filter(|url| url.starts_with("http")) {
            // Never loaded from the technician's browser (tracking pixels, Teams URLs that
            // need a token): a link to click instead.
            self.html.push_str("<a href=\"");
            push_escaped(&mut self.html, &url);
            self.html.push_str("\">[image]</a>");
        } else {
            self.html.push_str("[image]");
        }
    }

    /// `<at>` (and old-style mention spans): `@Name`. Adjacent mentions of the same identity,
    /// separated only by whitespace, are one name split by Teams and are joined.
    fn mention_run(&mut self, children: &[Child<'_>], start: usize) -> usize {
        let Child::Element(first) = children[start] else {
            return start + 1;
        };
        let identity = self.mention_identity(first.value());
        let mut names = vec![self.mention_name(first)];
        let mut next = start + 1;
        if let Some(identity) = identity {
            loop {
                let mut probe = next;
                while let Some(Child::Text(text)) = children.get(probe) {
                    if !text.chars().all(char::is_whitespace) {
                        break;
                    }
                    probe += 1;
                }
                match children.get(probe) {
                    Some(Child::Element(element))
                        if is_mention(element.value())
                            && self.mention_identity(element.value()).as_deref()
                                == Some(identity.as_str()) =>
                    {
                        names.push(self.mention_name(*element));
                        next = probe + 1;
                    }
                    _ => break,
                }
            }
        }
        let name = one_line(&names.join(" "));
        let name = name.trim_start_matches('@');
        if !name.is_empty() {
            let mention = format!("@{name}");
            self.text.inline(&mention);
            self.html.push_str("<span class=\"mention\">");
            push_escaped(&mut self.html, &mention);
            self.html.push_str("</span>");
        }
        next
    }

    fn mention_input(&self, element: &Element) -> Option<&'c MentionInput> {
        let id_attribute = if element.name() == "at" {
            "id"
        } else {
            "itemid"
        };
        let id: i64 = element.attr(id_attribute)?.trim().parse().ok()?;
        self.mentions.iter().find(|mention| mention.id == id)
    }

    fn mention_identity(&self, element: &Element) -> Option<String> {
        self.mention_input(element)?
            .mentioned_id
            .clone()
            .filter(|id| !id.trim().is_empty())
    }

    fn mention_name(&self, element: ElementRef<'_>) -> String {
        let written = one_line(&flat_text(element, " ", &|_| false));
        if !written.is_empty() {
            return written;
        }
        self.mention_input(element.value())
            .and_then(|mention| {
                [&mention.mention_text, &mention.display_name]
                    .into_iter()
                    .flatten()
                    .map(|name| one_line(name))
                    .find(|name| !name.is_empty())
            })
            .unwrap_or_default()
    }

    /// `<attachment id="…">` in the body: that attachment, rendered where it stands (once).
    fn attachment_tag(&mut self, id: &str) {
        let id = id.trim();
        let position = self
            .attachments
            .iter()
            .position(|attachment| attachment.id.as_deref().map(str::trim) == Some(id))
            .or_else(|| {
                self.attachments.iter().position(|attachment| {
                    attachment
                        .id
                        .as_deref()
                        .is_some_and(|candidate| candidate.trim().eq_ignore_ascii_case(id))
                })
            });
        if let Some(index) = position {
            self.attachment(index);
        }
    }

    /// Quotes the body never places go first.
    fn unplaced_quotes(&mut self, placed_ids: &HashSet<String>) {
        for index in 0..self.attachments.len() {
            let attachment = &self.attachments[index];
            if attachments::kind(attachment) != AttachmentKind::Quote {
                continue;
            }
            let placed = attachment
                .id
                .as_ref()
                .is_some_and(|id| placed_ids.contains(id))
                || attachments::quote(attachment)
                    .message_id
                    .is_some_and(|id| placed_ids.contains(&id));
            if !placed {
                self.attachment(index);
            }
        }
    }

    /// Attachments the body never placed go last, in their order.
    fn remaining_attachments(&mut self) {
        for index in 0..self.attachments.len() {
            self.attachment(index);
        }
    }

    fn attachment(&mut self, index: usize) {
        if self.rendered_attachments.get(index) != Some(&false) {
            return;
        }
        self.rendered_attachments[index] = true;
        if self.mode == Mode::OwnTextOnly {
            return;
        }
        let attachment = &self.attachments[index];
        match attachments::kind(attachment) {
            AttachmentKind::Quote => {
                let quote = attachments::quote(attachment);
                self.quote(quote);
            }
            AttachmentKind::Forwarded => {
                let quote = attachments::quote(attachment);
                let mut line = String::from("[Forwarded message]");
                if let Some(author) = &quote.author {
                    line.push(' ');
                    line.push_str(author);
                    line.push(':');
                }
                if !quote.text_preview.is_empty() {
                    line.push(' ');
                    line.push_str(&quote.text_preview);
                }
                self.note_block(&line, "attachment");
            }
            AttachmentKind::Card => {
                let summary = attachments::card_summary(attachment.content.as_deref());
                self.note_block(&summary, "card-summary");
            }
            AttachmentKind::Meeting => {
                let line = labelled("[Meeting]", attachment.name.as_deref());
                self.note_block(&line, "attachment");
            }
            AttachmentKind::Tab => {
                let line = labelled("[Tab]", attachment.name.as_deref());
                self.link_or_note(attachment, &line);
            }
            AttachmentKind::File => {
                let name = attachments::file_name(attachment);
                self.link_or_note(attachment, &format!("[File] {name}"));
            }
            AttachmentKind::Other(content_type) => {
                let line = match attachment.name.as_deref().map(one_line) {
                    Some(name) if !name.is_empty() => format!("[Attachment] {name}"),
                    _ => format!("[attachment: {}]", one_line(&content_type)),
                };
                self.link_or_note(attachment, &line);
            }
        }
    }

    /// A file-like attachment: `[File] name (url)` with the URL listed in `links`, or just the
    /// note when there is no web URL.
    fn link_or_note(&mut self, attachment: &AttachmentInput, line: &str) {
        let url = attachment
            .content_url
            .as_deref()
            .and_then(safe_link_url)
            .filter(|url| url.starts_with("http"));
        let Some(url) = url else {
            self.note_block(line, "attachment");
            return;
        };
        self.links.push(LinkAttachment {
            name: attachments::file_name(attachment),
            url: url.clone(),
        });
        self.text.block();
        self.text.inline(line);
        self.text.inline(" (");
        self.text.verbatim(&url);
        self.text.verbatim(")");
        self.text.block();
        self.html.push_str("<div class=\"attachment\"><a href=\"");
        push_escaped(&mut self.html, &url);
        self.html.push_str("\">");
        push_escaped(&mut self.html, line);
        self.html.push_str("</a></div>");
    }

    fn note_block(&mut self, line: &str, class: &str) {
        self.text.block();
        self.text.inline(line);
        self.text.block();
        self.html.push_str("<div class=\"");
        self.html.push_str(class);
        self.html.push_str("\">");
        push_escaped(&mut self.html, line);
        self.html.push_str("</div>");
    }

    /// Teams' copy of a quoted message in the body. The `messageReference` attachment for the
    /// same message wins (it has the sender); without one the blockquote itself is the source.
    fn reply_blockquote(&mut self, element: ElementRef<'_>) {
        let item_id = element
            .value()
            .attr("itemid")
            .map(str::trim)
            .map(str::to_owned);
        if let Some(item_id) = &item_id {
            let reference = self.attachments.iter().position(|attachment| {
                attachments::kind(attachment) == AttachmentKind::Quote
                    && (attachment.id.as_deref() == Some(item_id.as_str())
                        || attachments::quote(attachment).message_id.as_deref()
                            == Some(item_id.as_str()))
            });
            if let Some(index) = reference {
                self.attachment(index);
                return;
            }
        }
        if self.mode == Mode::OwnTextOnly {
            return;
        }
        let is_itemprop = |element: &Element, wanted: &[&str]| {
            element
                .attr("itemprop")
                .is_some_and(|itemprop| wanted.iter().any(|w| itemprop.eq_ignore_ascii_case(w)))
        };
        let find = |wanted: &'static [&'static str]| {
            element
                .descendants()
                .filter_map(ElementRef::wrap)
                .find(|candidate| is_itemprop(candidate.value(), wanted))
        };
        let author = find(&["mri"])
            .map(|author| one_line(&flat_text(author, " ", &|_| false)))
            .filter(|author| !author.is_empty());
        let preview = match find(&["preview"]) {
            Some(preview) => flat_text(preview, " ", &|_| false),
            None => flat_text(element, " ", &|candidate| {
                is_itemprop(candidate, &["mri", "time"])
            }),
        };
        self.quote(QuotedReply {
            message_id: item_id,
            author,
            text_preview: attachments::preview_text(&preview),
        });
    }

    fn quote(&mut self, quote: QuotedReply) {
        if let Some(id) = &quote.message_id
            && !self.rendered_quote_ids.insert(id.clone())
        {
            return;
        }
        let line = match (&quote.author, quote.text_preview.is_empty()) {
            (Some(author), false) => format!("> {author}: {}", quote.text_preview),
            (Some(author), true) => format!("> {author}"),
            (None, false) => format!("> {}", quote.text_preview),
            (None, true) => "> (quoted message)".to_owned(),
        };
        self.text.block();
        self.text.inline(&line);
        self.text.block();
        self.html.push_str("<blockquote class=\"quoted-reply\">");
        if let Some(author) = &quote.author {
            self.html.push_str("<strong>");
            push_escaped(&mut self.html, author);
            self.html.push_str("</strong>");
            if !quote.text_preview.is_empty() {
                self.html.push_str(": ");
            }
        }
        if quote.text_preview.is_empty() && quote.author.is_none() {
            self.html.push_str("(quoted message)");
        }
        push_escaped(&mut self.html, &quote.text_preview);
        self.html.push_str("</blockquote>");
        self.quotes.push(quote);
    }
}

fn labelled(label: &str, name: Option<&str>) -> String {
    match name.map(one_line) {
        Some(name) if !name.is_empty() => format!("{label} {name}"),
        _ => label.to_owned(),
    }
}

/// The URL as shown in text: `mailto:` links show the address.
fn display_url(url: &str) -> String {
    url.strip_prefix("mailto:").unwrap_or(url).to_owned()
}

/// Whether a link's label already says where it goes (then the text shows it only once).
fn same_target(label: &str, raw_href: &str, normalised: &str) -> bool {
    fn comparable(value: &str) -> String {
        let value = value.trim().to_lowercase();
        let value = ["mailto:", "https://", "http://"]
            .iter()
            .find_map(|prefix| value.strip_prefix(prefix))
            .unwrap_or(&value)
            .to_owned();
        value.trim_end_matches('/').to_owned()
    }
    let label = comparable(label);
    !label.is_empty() && (label == comparable(raw_href) || label == comparable(normalised))
}
