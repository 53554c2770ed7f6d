//! The `ammonia` allow-lists that every piece of display HTML passes through last, URL checks,
//! and filling in hosted-image placeholders. Must never let scripts, styles, event handlers,
//! `javascript:`/`data:` URLs, iframes or forms through, whatever the rendering walk produced.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ammonia::{Builder, UrlRelative};
use scraper::{ElementRef, Html, Node};
use url::Url;

use super::text::push_escaped;

/// Attribute that marks a pasted-image placeholder in display HTML; its value is the hosted
/// content id (see the module docs of `content`).
pub const HOSTED_CONTENT_ID_ATTRIBUTE: &str = "data-hosted-content-id";

#[rustfmt::skip]
const ALLOWED_TAGS: &[&str] = &[
    "p", "div", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody",
    "tfoot", "tr", "td", "th", "caption", "dl", "dt", "dd", "ul", "ol", "li", "blockquote", "pre",
    "code", "a", "img", "b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "sub", "sup",
    "small", "mark", "span",
];

/// Removed together with their content (ammonia keeps the text of other removed tags).
const CLEAN_CONTENT_TAGS: &[&str] = &[
    "script", "style", "iframe", "noscript", "textarea", "title", "xmp", "noembed", "noframes",
    "template", "svg", "math", "object", "embed", "select",
];

const LINK_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// `raw` as a normalised absolute URL if it is http, https or mailto; `None` for anything
/// else (`javascript:`, `data:`, relative, unparsable).
pub(super) fn safe_link_url(raw: &str) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    LINK_SCHEMES
        .contains(&url.scheme())
        .then(|| url.to_string())
}

fn builder(allow_image_src: bool) -> Builder<'static> {
    let mut image_attributes = HashSet::from(["alt", HOSTED_CONTENT_ID_ATTRIBUTE]);
    if allow_image_src {
        image_attributes.insert("src");
    }
    let mut builder = Builder::empty();
    builder
        .tags(ALLOWED_TAGS.iter().copied().collect())
        .clean_content_tags(CLEAN_CONTENT_TAGS.iter().copied().collect())
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([
            ("a", HashSet::from(["href"])),
            ("img", image_attributes),
            ("ol", HashSet::from(["start"])),
        ]))
        .url_schemes(LINK_SCHEMES.iter().copied().collect())
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .allowed_classes(HashMap::from([
            ("span", HashSet::from(["mention"])),
            ("div", HashSet::from(["attachment", "card-summary"])),
            ("blockquote", HashSet::from(["quoted-reply"])),
        ]))
        .strip_comments(true);
    if allow_image_src {
        // Stored attachments are served by our own web layer under a root-relative path;
        // links stay absolute-only.
        builder
            .url_relative(UrlRelative::PassThrough)
            .attribute_filter(|element, attribute, value| match (element, attribute) {
                ("a", "href") if Url::parse(value).is_err() => None,
                ("img", "src") if Url::parse(value).is_err() && !is_root_relative(value) => None,
                _ => Some(Cow::Borrowed(value)),
            });
    } else {
        builder.url_relative(UrlRelative::Deny);
    }
    builder
}

fn is_root_relative(value: &str) -> bool {
    value.starts_with('/') && !value.starts_with("//") && !value.starts_with("/\\")
}

/// The final display HTML: `html` through the display allow-list.
pub(super) fn display_html(html: &str) -> String {
    builder(false).clean(html).to_string()
}

/// See [`super::resolve_hosted_images`].
pub(super) fn resolve_hosted_images(
    html: &str,
    mut resolve: impl FnMut(&str) -> Option<String>,
) -> String {
    let document = Html::parse_fragment(html);
    let mut out = String::with_capacity(html.len() + 64);
    write_with_image_sources(document.root_element(), &mut out, &mut resolve);
    builder(true).clean(&out).to_string()
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

const VOID_TAGS: &[&str] = &["br", "hr", "img", "wbr"];

/// Writes the parsed (already sanitised) HTML back out, adding `src` to resolved hosted-image
/// placeholders. Iterative, so nesting depth does not matter; ammonia cleans the result.
fn write_with_image_sources(
    root: ElementRef<'_>,
    out: &mut String,
    resolve: &mut dyn FnMut(&str) -> Option<String>,
) {
    let mut stack = vec![(root.children(), None::<String>)];
    while let Some((children, _)) = stack.last_mut() {
        let Some(node) = children.next() else {
            if let Some((_, Some(name))) = stack.pop() {
                out.push_str("</");
                out.push_str(&name);
                out.push('>');
            }
            continue;
        };
        match node.value() {
            Node::Text(text) => push_escaped(out, text),
            Node::Element(element) => {
                let name = element.name();
                if !is_plain_name(name) {
                    stack.push((node.children(), None));
                    continue;
                }
                out.push('<');
                out.push_str(name);
                for (attribute, value) in element.attrs() {
                    if is_plain_name(attribute) && attribute != "src" {
                        out.push(' ');
                        out.push_str(attribute);
                        out.push_str("=\"");
                        push_escaped(out, value);
                        out.push('"');
                    }
                }
                if name == "img"
                    && let Some(src) = element
                        .attr(HOSTED_CONTENT_ID_ATTRIBUTE)
                        .and_then(&mut *resolve)
                {
                    out.push_str(" src=\"");
                    push_escaped(out, &src);
                    out.push('"');
                }
                out.push('>');
                if !VOID_TAGS.contains(&name) {
                    stack.push((node.children(), Some(name.to_owned())));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_https_and_mailto_links_are_safe() {
        assert_eq!(
            safe_link_url(" https://example.com/a b ").as_deref(),
            Some("https://example.com/a%20b")
        );
        assert_eq!(
            safe_link_url("mailto:pat@example.com").as_deref(),
            Some("mailto:pat@example.com")
        );
        for unsafe_url in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:x",
            "/relative",
            "//evil.example/x",
            "",
        ] {
            assert_eq!(safe_link_url(unsafe_url), None, "{unsafe_url}");
        }
    }

    #[test]
    fn display_allow_list_strips_everything_dangerous() {
        let html = display_html(
            r#"<p onclick="x()" style="color:red" class="mention">hi</p><script>alert(1)</script><style>p{}</style><iframe src="https://e.example"></iframe><form action="https://e.example"><input name="q"><button>Go</button></form><a href="javascript:alert(1)">bad</a><a href="https://ok.example/">ok</a><img src="https://tracker.example/p.gif" onerror="x()"><span class="mention other">@Pat</span>"#,
        );
        assert_eq!(
            html,
            "<p>hi</p>Go<a target=\"_blank\" rel=\"noopener noreferrer\">bad</a><a href=\"https://ok.example/\" target=\"_blank\" rel=\"noopener noreferrer\">ok</a><img><span class=\"mention\">@Pat</span>"
        );
    }

    #[test]
    fn resolving_fills_in_only_placeholders_the_lookup_knows() {
        let html = r#"<p>see <img data-hosted-content-id="aGM=" alt="image"> and <img data-hosted-content-id="b2" alt="image"></p><a href="https://x.example/" target="_blank" rel="noopener noreferrer">x</a>"#;
        let resolved = resolve_hosted_images(html, |id| {
            (id == "aGM=").then(|| "/attachments/7".to_owned())
        });
        assert_eq!(
            resolved,
            "<p>see <img alt=\"image\" data-hosted-content-id=\"aGM=\" src=\"/attachments/7\"> and <img alt=\"image\" data-hosted-content-id=\"b2\"></p><a href=\"https://x.example/\" target=\"_blank\" rel=\"noopener noreferrer\">x</a>"
        );
        let hostile = resolve_hosted_images(
            r#"<img data-hosted-content-id="a" onerror="x()"><a href="/admin">x</a><script>y()</script>"#,
            |_| Some("javascript:alert(1)".to_owned()),
        );
        assert_eq!(
            hostile,
            "<img data-hosted-content-id=\"a\"><a rel=\"noopener noreferrer\" target=\"_blank\">x</a>"
        );
    }
}
