//! Plain-text building blocks: the line/whitespace-aware text writer used by the DOM walk,
//! HTML escaping, and the outbound reply body. Never emits control characters (a terminal
//! showing ticket text must not receive escape sequences).

/// HTML whitespace (what html5ever collapses); other Unicode spaces are ordinary characters.
fn is_html_whitespace(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\n' | '\r' | '\u{0c}')
}

const NO_BREAK_SPACE: char = '\u{a0}';

/// Accumulates readable text: collapses HTML whitespace, keeps `&nbsp;` as a real space, turns
/// block boundaries and `<br>` into line breaks.
#[derive(Debug, Default)]
pub(super) struct TextWriter {
    out: String,
    /// Collapsible whitespace seen since the last character.
    pending_space: bool,
    /// Line breaks requested since the last character (`<br>` adds one, a block boundary
    /// asks for at least one).
    pending_newlines: usize,
    /// A list marker was just written: the `<p>` inside the `<li>` must not break the line.
    after_marker: bool,
}

impl TextWriter {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Ordinary flowing text: HTML whitespace collapses to one space.
    pub(super) fn inline(&mut self, text: &str) {
        for ch in text.chars() {
            if is_html_whitespace(ch) {
                self.pending_space = true;
            } else if ch == NO_BREAK_SPACE {
                self.push_char(' ');
            } else if !ch.is_control() {
                self.push_char(ch);
            }
        }
    }

    /// Text kept as written (code): spaces, tabs and line breaks survive.
    pub(super) fn verbatim(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(ch) = chars.next() {
            match ch {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    self.push_char('\n');
                }
                '\n' | '\t' | ' ' => self.push_char(ch),
                NO_BREAK_SPACE => self.push_char(' '),
                ch if ch.is_control() => {}
                ch => self.push_char(ch),
            }
        }
    }

    /// A list marker such as `- ` or `2. `; a block boundary right after it is ignored.
    pub(super) fn marker(&mut self, marker: &str) {
        self.verbatim(marker);
        self.after_marker = true;
    }

    /// Whitespace that separates words if anything follows on the same line (around `[image]`).
    pub(super) fn soft_space(&mut self) {
        self.pending_space = true;
    }

    /// `<br>`: one more line break.
    pub(super) fn line_break(&mut self) {
        self.pending_newlines += 1;
        self.pending_space = false;
        self.after_marker = false;
    }

    /// A block boundary (`<p>`, `<div>`, `<li>` …): the next text starts on a new line.
    pub(super) fn block(&mut self) {
        if self.after_marker {
            return;
        }
        self.pending_newlines = self.pending_newlines.max(1);
        self.pending_space = false;
    }

    /// Bytes written so far; changes whenever visible text was added.
    pub(super) fn written_len(&self) -> usize {
        self.out.len()
    }

    fn push_char(&mut self, ch: char) {
        if self.pending_newlines > 0 {
            if !self.out.is_empty() {
                for _ in 0..self.pending_newlines {
                    self.out.push('\n');
                }
            }
            self.pending_newlines = 0;
            self.pending_space = false;
        } else if self.pending_space {
            // A collapsible space never doubles an existing one (`&nbsp; ` reads as one space)
            // and never starts a line.
            if !self.out.is_empty() && !self.out.ends_with([' ', '\n']) {
                self.out.push(' ');
            }
            self.pending_space = false;
        }
        self.after_marker = false;
        self.out.push(ch);
    }

    /// The text: trailing whitespace of every line and blank lines at both ends removed.
    pub(super) fn finish(self) -> String {
        let lines: Vec<&str> = self.out.split('\n').map(str::trim_end).collect();
        lines.join("\n").trim_matches('\n').to_owned()
    }
}

/// Appends `text` HTML-escaped (safe in element content and in double- or single-quoted
/// attribute values).
pub(super) fn push_escaped(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
}

/// One line of plain text from anything: whitespace runs (HTML or Unicode) become one space,
/// control characters are dropped, ends trimmed.
pub(super) fn one_line(text: &str) -> String {
    text.split(|ch: char| ch.is_whitespace() || ch.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` cut to at most `max_chars` characters at a character boundary, ending in `…` when cut.
pub(super) fn truncate_with_ellipsis(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// See [`super::reply_html`].
pub(super) fn reply_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut at_line_start = true;
    let mut after_space = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\r' | '\n' => {
                if ch == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
                at_line_start = true;
                after_space = false;
                continue;
            }
            // HTML collapses a run of spaces and drops them at a line start; `&nbsp;` keeps
            // what the technician typed.
            ' ' | '\t' => {
                if at_line_start || after_space {
                    out.push_str("&nbsp;");
                } else {
                    out.push(' ');
                }
                after_space = true;
                continue;
            }
            ch if ch.is_control() || ch == '\u{feff}' => continue,
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
        at_line_start = false;
        after_space = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_text_collapses_html_whitespace_but_keeps_no_break_spaces() {
        let mut writer = TextWriter::new();
        writer.inline("  a \n\t b\u{a0}\u{a0}c \u{a0}d");
        // `\u{a0}` is a space the sender typed on purpose: it never collapses.
        assert_eq!(writer.finish(), "a b  c  d");
    }

    #[test]
    fn block_boundaries_and_breaks_make_lines() {
        let mut writer = TextWriter::new();
        writer.block();
        writer.inline("one");
        writer.block();
        writer.block();
        writer.inline("two");
        writer.line_break();
        writer.line_break();
        writer.inline(" three ");
        writer.line_break();
        assert_eq!(writer.finish(), "one\ntwo\n\nthree");
    }

    #[test]
    fn control_characters_never_reach_the_text() {
        let mut writer = TextWriter::new();
        writer.inline("a\u{1b}[31mred\u{7}");
        writer.verbatim("\u{1b}]0;title\u{7}");
        assert_eq!(writer.finish(), "a[31mred]0;title");
    }

    #[test]
    fn truncation_cuts_at_a_character_boundary() {
        assert_eq!(truncate_with_ellipsis("short", 80), "short");
        let long = "é".repeat(100);
        let cut = truncate_with_ellipsis(&long, 80);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with("é…"));
        assert_eq!(truncate_with_ellipsis("word word", 6), "word…");
    }

    #[test]
    fn reply_html_escapes_markup_and_keeps_line_breaks_and_spaces() {
        assert_eq!(
            reply_html("Hi <Pat> & \"you\" 'all'\r\nline2\nline3\rline4"),
            "Hi &lt;Pat&gt; &amp; &quot;you&quot; &#39;all&#39;<br>line2<br>line3<br>line4"
        );
        assert_eq!(
            reply_html("  indented  twice"),
            "&nbsp;&nbsp;indented &nbsp;twice"
        );
        assert_eq!(
            reply_html("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }
}
