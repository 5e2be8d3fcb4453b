//! The header values that carry a recipient's own text (the subject, the name in `To`),
//! written and folded here rather than by the mail builder: no line may pass 998 octets
//! (a server refuses the whole message), and text from a CSV that looks like an RFC 2047
//! encoded word must display literally, never as a header break. Pure functions over
//! strings; no templates, no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Lines are folded before they pass this length (RFC 5322's "SHOULD").
const SOFT_LIMIT: usize = 78;

/// A word longer than this cannot be folded to fit `SOFT_LIMIT`, so the value is encoded
/// and split across encoded words instead.
const LONG_WORD: usize = 60;

/// The longest run of spaces plain text may hold: a line then carries at most a run, a
/// word and a run less one (the fold takes the last space), which fits `SOFT_LIMIT`.
const SPACE_RUN: usize = 4;

/// Bytes of UTF-8 text in one encoded word: `=?utf-8?b?` + 52 base64 + `?=` is 64
/// characters, within RFC 2047's 75.
const CHUNK: usize = 39;

/// The `Subject` value: plain words folded at spaces when the text is short-worded
/// printable ASCII that cannot be read as an encoded word; otherwise encoded words of
/// the whole text, each on its own line.
pub(super) fn subject(value: &str) -> String {
    if is_plain(value) {
        let mut folder = Folder::new("Subject");
        for word in value.split(' ') {
            folder.word(word);
        }
        // Trailing spaces folded onto a line of their own would make a line of only
        // whitespace, which some readers take for the end of the header: encoded words
        // carry such spaces instead.
        if !folder
            .out
            .split("\r\n")
            .skip(1)
            .any(|line| line.trim().is_empty())
        {
            return folder.out;
        }
    }
    let mut folder = Folder::new("Subject");
    for word in encoded_words(value) {
        folder.word(&word);
    }
    folder.out
}

/// The value of a `To` header for one mailbox: `"Display Name" <address>` (quoted,
/// folded at spaces) or encoded words and `<address>`; the bare address without a name.
pub(super) fn mailbox(header: &str, name: Option<&str>, address: &str) -> String {
    let mut folder = Folder::new(header);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        folder.word(address);
        return folder.out;
    };
    let quoted = format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
    // Escaping may double a word's length: the quoted words must fit too.
    if is_plain(name) && quoted.split(' ').all(|word| word.len() <= LONG_WORD + 1) {
        for word in quoted.split(' ') {
            folder.word(word);
        }
    } else {
        for word in encoded_words(name) {
            folder.word(&word);
        }
    }
    folder.word(&format!("<{address}>"));
    folder.out
}

/// Printable ASCII words of at most `LONG_WORD` characters, with nothing an RFC 2047
/// decoder could take for the start or end of an encoded word, and no run of more than
/// `SPACE_RUN` spaces (a fold goes only before a word, so a run stays on one line).
fn is_plain(text: &str) -> bool {
    text.chars().all(|c| c == ' ' || c.is_ascii_graphic())
        && !text.contains("=?")
        && !text.contains("?=")
        && text.split(' ').all(|word| word.len() <= LONG_WORD)
        && !text.contains(&" ".repeat(SPACE_RUN + 1))
}

/// `text` as base64 encoded words of at most `CHUNK` bytes each, split between
/// characters. Whitespace between encoded words is not displayed, so the spaces of the
/// text travel inside them.
fn encoded_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (at, c) in text.char_indices() {
        if at + c.len_utf8() - start > CHUNK {
            words.push(encoded_word(&text[start..end]));
            start = at;
        }
        end = at + c.len_utf8();
    }
    if end > start {
        words.push(encoded_word(&text[start..end]));
    }
    words
}

fn encoded_word(text: &str) -> String {
    format!("=?utf-8?b?{}?=", BASE64.encode(text))
}

/// Joins words with a space, or with a fold (CRLF and a space) where the line would
/// pass `SOFT_LIMIT`.
struct Folder {
    out: String,
    /// Length of the current line, the header name and ": " included.
    line: usize,
    first: bool,
}

impl Folder {
    fn new(header: &str) -> Folder {
        Folder {
            out: String::new(),
            line: header.len() + 2,
            first: true,
        }
    }

    fn word(&mut self, word: &str) {
        if self.first {
            self.first = false;
        } else if self.line + 1 + word.len() > SOFT_LIMIT {
            // An empty word (a run of spaces) folds too once the line is full: else the
            // spaces after a long last word would pass the limit.
            self.out.push_str("\r\n");
            self.line = 0;
            self.out.push(' ');
            self.line += 1;
        } else {
            self.out.push(' ');
            self.line += 1;
        }
        self.out.push_str(word);
        self.line += word.len();
    }
}

/// `text` on one line: every run of whitespace that holds a control character (CR, LF,
/// TAB, ...) or a Unicode line separator becomes one space; the ends are trimmed.
pub(super) fn one_line(text: &str) -> String {
    let breaks = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_whitespace() || breaks(c) {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            out.push_str(if run.chars().any(breaks) { " " } else { &run });
            run.clear();
        }
        out.push(c);
    }
    out.trim().to_string()
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The value unfolded, its encoded words decoded, as a mail program shows it: whitespace
    /// between two encoded words is dropped, any other is kept.
    pub(crate) fn displayed(value: &str) -> String {
        let unfolded = value.replace("\r\n", "");
        let mut out = String::new();
        let mut pending_space = String::new();
        let mut last_encoded = false;
        for (index, word) in unfolded.split(' ').enumerate() {
            if index > 0 {
                pending_space.push(' ');
            }
            if word.is_empty() {
                continue;
            }
            let decoded = word
                .strip_prefix("=?utf-8?b?")
                .and_then(|w| w.strip_suffix("?="))
                .and_then(|b64| BASE64.decode(b64).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if !(last_encoded && decoded.is_some()) {
                out.push_str(&pending_space);
            }
            pending_space.clear();
            last_encoded = decoded.is_some();
            out.push_str(decoded.as_deref().unwrap_or(word));
        }
        out + &pending_space
    }

    fn lines_fit(name: &str, value: &str) {
        for line in format!("{name}: {value}").split("\r\n") {
            assert!(line.len() <= SOFT_LIMIT, "{} octets: {line:?}", line.len());
            assert!(!line.trim().is_empty(), "a blank line in {value:?}");
        }
    }

    #[test]
    fn short_ascii_stays_readable() {
        assert_eq!(
            subject("Pat, may we ask why you left?"),
            "Pat, may we ask why you left?"
        );
        assert_eq!(
            mailbox("To", Some("Pat \"P\" Smith"), "pat@x.example"),
            "\"Pat \\\"P\\\" Smith\" <pat@x.example>"
        );
        assert_eq!(mailbox("To", None, "pat@x.example"), "pat@x.example");
        assert_eq!(mailbox("To", Some(""), "pat@x.example"), "pat@x.example");
    }

    #[test]
    fn a_giant_word_is_split_into_encoded_words_that_fit() {
        let word = "W".repeat(1200);
        for text in [
            word.clone(),
            format!("{word}, may we ask why you left?"),
            format!("Zoë {word} é"),
            "a ".repeat(700).trim().to_string(),
        ] {
            let value = subject(&text);
            lines_fit("Subject", &value);
            assert_eq!(displayed(&value), text);
            let value = mailbox("To", Some(&text), "pat@x.example");
            lines_fit("To", &value);
            assert!(value.ends_with("<pat@x.example>"), "{value}");
            let name = displayed(value.trim_end_matches("<pat@x.example>").trim_end());
            assert_eq!(name.trim_matches('"'), text);
        }
    }

    #[test]
    fn text_that_looks_like_an_encoded_word_is_itself_encoded() {
        let trap = "=?utf-8?q?Bob=0D=0ABcc=3A_x@evil.example?=";
        for text in [
            trap.to_string(),
            format!("Hi {trap}, welcome"),
            "a?= b".to_string(),
        ] {
            let value = subject(&text);
            assert!(!value.contains(trap) && !value.contains("?q?"), "{value}");
            assert!(
                value
                    .split_whitespace()
                    .all(|w| w.starts_with("=?utf-8?b?")),
                "{value}"
            );
            assert_eq!(displayed(&value), text);
            let value = mailbox("To", Some(&text), "pat@x.example");
            assert!(!value.contains(trap), "{value}");
        }
    }

    #[test]
    fn one_line_collapses_breaks_only() {
        assert_eq!(one_line("a\r\nb"), "a b");
        assert_eq!(one_line("a \r\n\t b"), "a b");
        assert_eq!(one_line("a  b"), "a  b");
        assert_eq!(one_line("\n a\u{0085}b\u{2029}c \n"), "a b c");
        assert_eq!(one_line("\r\n"), "");
    }
}
