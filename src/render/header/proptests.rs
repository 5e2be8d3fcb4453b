//! Property tests for header writing: whatever text a subject or a name holds, every
//! line of the header fits, nothing but a fold breaks a line, the value is ASCII, and
//! unfolded and decoded it reads as the text given.

use super::tests::displayed;
use super::*;

/// A run of spaces (a CSV name may hold one between its words) was written as plain
/// text that no fold could break: a 1,200-space run made a 1,200-octet line, which a
/// server refuses. Quote-escaping doubled a word of quotes past the fold width too.
#[test]
fn runs_of_spaces_and_escaped_quotes_still_fold() {
    let spaces = format!("Ann{}Lee", " ".repeat(1_200));
    let quotes = "\"".repeat(60);
    for text in [spaces.as_str(), quotes.as_str(), "  Ann", "Ann  "] {
        for (name, value) in [
            ("Subject", subject(text)),
            ("To", mailbox("To", Some(text), "ann@x.example")),
        ] {
            for line in format!("{name}: {value}").split("\r\n") {
                assert!(line.len() <= SOFT_LIMIT, "{} octets: {line:?}", line.len());
                assert!(!line.trim().is_empty(), "a blank line in {value:?}");
            }
        }
        assert_eq!(displayed(&subject(text)).trim(), text.trim());
    }
}
