//! Property tests for header writing: whatever text a subject or a name holds, every
//! line of the header fits, nothing but a fold breaks a line, the value is ASCII, and
//! unfolded and decoded it reads as the text given.

use proptest::prelude::*;

use super::tests::displayed;
use super::*;

/// A run of spaces (a CSV name may hold one between its words) was written as plain
/// text that no fold could break: a 1,200-space run made a 1,200-octet line, which a
/// server refuses. Quote-escaping doubled a word of quotes past the fold width too. A
/// short run stays plain ("Hi " when a first name is empty).
#[test]
fn runs_of_spaces_and_escaped_quotes_still_fold() {
    let spaces = format!("Ann{}Lee", " ".repeat(1_200));
    let quotes = "\"".repeat(60);
    let runs = format!("    {}    {}    ", "a".repeat(60), "b".repeat(60));
    // Spaces after a long last word, where the line is nearly full: 79 octets before.
    let trailing = format!("a,A0!'!Aa'A!   {}   ", "a".repeat(57));
    for text in [
        spaces.as_str(),
        quotes.as_str(),
        runs.as_str(),
        trailing.as_str(),
        "  Ann",
        "Ann  ",
    ] {
        for (name, value) in [
            ("Subject", subject(text)),
            ("To", mailbox("To", Some(text), "ann@x.example")),
        ] {
            for line in format!("{name}: {value}").split("\r\n") {
                assert!(line.len() <= SOFT_LIMIT, "{} octets: {line:?}", line.len());
                assert!(!line.trim().is_empty(), "a blank line in {value:?}");
            }
        }
        assert_eq!(displayed(&subject(text)), text);
    }
    assert_eq!(subject("Hi  Ann "), "Hi  Ann ");
    assert_eq!(subject("   "), "   ");
    // Spaces at the end of a full line would fold onto a line of only whitespace.
    let full = "A'A,,aA0a,a    ''AA0aAa!0A0a0A0a0'A'!AA!!0aa!,!aaa0Aa,A,a0,0'a0!A!0   ";
    let value = subject(full);
    for line in format!("Subject: {value}").split("\r\n") {
        assert!(!line.trim().is_empty(), "a blank line in {value:?}");
    }
    assert_eq!(displayed(&value), full);
    assert_eq!(
        mailbox("To", Some("Ann  Lee"), "a@x.example"),
        "\"Ann  Lee\" <a@x.example>"
    );
}

/// Text a subject or a name may hold: words, runs of spaces, long words, text that looks
/// like encoded words, quotes and backslashes, and any character.
fn header_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[A-Za-z0-9,.!'-]{1,12}",
        2 => " {1,3}",
        1 => " {70,120}",
        1 => "[a-z]{55,130}",
        1 => prop::sample::select(vec!["=?", "?=", "=?utf-8?q?x?=", "\"", "\\", "\r\n", "\t", "é", "🙂", "\u{301}"])
            .prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

fn check_lines(name: &str, value: &str) -> Result<(), TestCaseError> {
    prop_assert!(value.is_ascii(), "{:?}", value);
    let header = format!("{name}: {value}");
    for (index, line) in header.split("\r\n").enumerate() {
        prop_assert!(
            line.len() <= SOFT_LIMIT,
            "{} octets: {:?}",
            line.len(),
            line
        );
        prop_assert!(
            !line.contains(['\r', '\n']),
            "a bare line break: {:?}",
            value
        );
        prop_assert!(!line.trim().is_empty(), "a blank line: {:?}", value);
        if index > 0 {
            prop_assert!(line.starts_with(' '), "a fold without a space: {:?}", value);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn a_subject_fits_and_reads_as_written(text in prop_oneof![header_text(), any::<String>()]) {
        let value = subject(&text);
        check_lines("Subject", &value)?;
        prop_assert_eq!(displayed(&value), text);
    }

    #[test]
    fn a_name_in_to_fits_and_reads_as_written(
        name in prop_oneof![header_text(), any::<String>()],
        address in "[a-z0-9.+-]{1,30}@[a-z0-9]{1,20}\\.[a-z]{2,6}",
    ) {
        let value = mailbox("To", Some(&name), &address);
        check_lines("To", &value)?;
        let bracketed = format!("<{address}>");
        if name.is_empty() {
            prop_assert_eq!(value, address);
        } else {
            prop_assert!(value.ends_with(&bracketed), "{:?}", value);
            let shown = displayed(value[..value.len() - bracketed.len()].trim_end());
            let unquoted = shown
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .map(|inner| inner.replace("\\\"", "\"").replace("\\\\", "\\"));
            prop_assert!(
                unquoted.as_deref() == Some(name.as_str()) || shown == name,
                "{:?} shown as {:?}",
                name,
                shown
            );
        }
    }
}
