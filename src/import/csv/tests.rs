use std::collections::BTreeMap;

use super::decode::MAX_RECORD_BYTES;
use super::values::{MAX_QUOTED_CHARS, parse_plain_date, quoted};
use super::*;
use crate::config::CsvFormat;
use crate::config::clients::Field;
use crate::domain::model::ChurnedAt;
use crate::domain::model::MAX_EMAIL_BYTES;
use chrono::TimeZone;

type GoodRow = (u64, ClientRecord);

const HEADER: &str = "email,churned_at,name,first_name,company,churn_reason,timezone\n";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

fn read_all(input: &[u8]) -> Vec<Result<(u64, ClientRecord), RowError>> {
    match read_rows(input, now(), &crate::config::CsvFormat::default()) {
        Ok(rows) => rows.collect(),
        Err(error) => panic!("header refused: {error}"),
    }
}

fn client(email: &str, churned_at: &str) -> ClientRecord {
    ClientRecord {
        email: email.to_owned(),
        name: None,
        first_name: None,
        company: None,
        churned_at: ChurnedAt::parse(churned_at).unwrap(),
        churn_reason: None,
        timezone: None,
        fields: BTreeMap::new(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

/// Hands over one byte per read: BOMs, quotes and line breaks split across reads.
struct OneByteAtATime<'a>(&'a [u8]);

impl Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&byte, rest)), Some(slot)) => {
                *slot = byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn good_rows() {
    let long_email = format!("{}@acme.com", "a".repeat(MAX_EMAIL_BYTES - 9));
    let long_email_file = format!("email,churned_at\n{long_email},2026-03-31\n");
    let cases: Vec<(&str, &[u8], Vec<GoodRow>)> = vec![
        (
            "an address as mail programs copy it, read as every command reads one",
            "email,churned_at\n\"\"\"Ann Lee\"\" <Ann@ACME.com>\",2026-03-31\nbob@b\u{fc}cher.example,2026-03-31\n".as_bytes(),
            vec![
                (2, client("ann@acme.com", "2026-03-31")),
                (3, client("bob@xn--bcher-kva.example", "2026-03-31")),
            ],
        ),
        (
            "bare date",
            b"email,churned_at\nann@acme.com,2026-03-31\n",
            vec![(2, client("ann@acme.com", "2026-03-31"))],
        ),
        (
            "RFC 3339 instant, stored in UTC",
            b"email,churned_at\nann@acme.com,2026-03-31T09:30:00+02:00\n",
            vec![(2, ClientRecord {
                churned_at: ChurnedAt::Instant(Utc.with_ymd_and_hms(2026, 3, 31, 7, 30, 0).unwrap()),
                ..client("ann@acme.com", "2026-03-31")
            })],
        ),
        (
            "every known column, trimmed",
            b"email,churned_at,name,first_name,company,churn_reason,timezone\n\
              ann@acme.com, 2026-03-31 ,  Ann Lee , Ann ,Acme GmbH, We_Ended ,Europe/Paris\n",
            vec![(2, ClientRecord {
                name: some("Ann Lee"),
                first_name: some("Ann"),
                company: some("Acme GmbH"),
                churn_reason: some("we_ended"),
                timezone: Some(chrono_tz::Europe::Paris),
                ..client("ann@acme.com", "2026-03-31")
            })],
        ),
        (
            "BOM, upper-case and padded header names, any column order",
            "\u{feff} Company ,CHURNED_AT, Email \nAcme,2026-03-31,ann@acme.com\n".as_bytes(),
            vec![(2, ClientRecord { company: some("Acme"), ..client("ann@acme.com", "2026-03-31") })],
        ),
        (
            "custom fields: lower-cased names, values trimmed, empty kept",
            b"email,churned_at,Plan,Seats,account_manager\nann@acme.com,2026-03-31, Pro ,,Zo\xc3\xab\n",
            vec![(2, ClientRecord {
                fields: fields(&[("plan", "Pro"), ("seats", ""), ("account_manager", "Zoë")]),
                ..client("ann@acme.com", "2026-03-31")
            })],
        ),
        (
            "mixed-case email normalized",
            b"email,churned_at\n  Ann.Lee@ACME.Example.com ,2026-03-31\n",
            vec![(2, client("ann.lee@acme.example.com", "2026-03-31"))],
        ),
        (
            "empty optional values are None",
            b"email,churned_at,name,first_name,company,churn_reason,timezone\nann@acme.com,2026-03-31,,  ,\t,,\n",
            vec![(2, client("ann@acme.com", "2026-03-31"))],
        ),
        (
            "the future starts after tomorrow (UTC) for dates, after now for instants",
            b"email,churned_at\nann@acme.com,2026-11-02\nbob@acme.com,2026-11-01T12:00:00Z\n",
            vec![
                (2, client("ann@acme.com", "2026-11-02")),
                (3, client("bob@acme.com", "2026-11-01T12:00:00Z")),
            ],
        ),
        (
            "blank lines, whitespace lines and empty rows skipped; a last blank row without a line break",
            b"email,churned_at,name\n\nann@acme.com,2026-03-31,Ann\n,,\n   \n , ,\n\nbob@acme.com,2026-01-01,Bob\n,,",
            vec![
                (3, ClientRecord { name: some("Ann"), ..client("ann@acme.com", "2026-03-31") }),
                (8, ClientRecord { name: some("Bob"), ..client("bob@acme.com", "2026-01-01") }),
            ],
        ),
        (
            "CRLF line breaks, blank CRLF lines, quoted last field",
            b"email,churned_at,name\r\n\r\nann@acme.com,2026-03-31,\"Ann\"\r\nbob@acme.com,2026-01-01,Bob\r\n",
            vec![
                (3, ClientRecord { name: some("Ann"), ..client("ann@acme.com", "2026-03-31") }),
                (4, ClientRecord { name: some("Bob"), ..client("bob@acme.com", "2026-01-01") }),
            ],
        ),
        (
            "email of exactly 254 bytes",
            long_email_file.as_bytes(),
            vec![(2, client(&long_email, "2026-03-31"))],
        ),
        ("header only", b"email,churned_at\n", vec![]),
    ];
    for (case, input, expected) in cases {
        let expected: Vec<_> = expected.into_iter().map(Ok).collect();
        assert_eq!(read_all(input), expected, "case: {case}");
        let one_byte_at_a_time: Vec<_> = match read_rows(
            OneByteAtATime(input),
            now(),
            &crate::config::CsvFormat::default(),
        ) {
            Ok(rows) => rows.collect(),
            Err(error) => panic!("case {case}: header refused when read byte by byte: {error}"),
        };
        assert_eq!(
            one_byte_at_a_time, expected,
            "case read byte by byte: {case}"
        );
    }
}

#[test]
fn bad_rows_name_their_line_and_reason() {
    let date_hint = "(use YYYY-MM-DD or RFC 3339, e.g. 2026-03-31)";
    let long_local = "a".repeat(250);
    let long_email_row = format!("{long_local}@acme.com,2026-03-31,,,,,");
    let email_255_row = format!("{}@acme.com,2026-03-31,,,,,", "b".repeat(255 - 9));
    let email_255_reason = format!(
        "invalid email address \"{}\"…",
        "b".repeat(MAX_QUOTED_CHARS)
    );
    let long_email_reason = format!(
        "invalid email address \"{}\"…",
        "a".repeat(MAX_QUOTED_CHARS)
    );
    let cases: Vec<(&[u8], String)> = vec![
        (b",2026-03-31,,,,,", "missing email".into()),
        (b"   ,2026-03-31,,,,,", "missing email".into()),
        (b"ann,2026-03-31,,,,,", "invalid email address \"ann\"".into()),
        (b"ann@@acme.com,2026-03-31,,,,,", "invalid email address \"ann@@acme.com\"".into()),
        (b"ann@bob@acme.com,2026-03-31,,,,,", "invalid email address \"ann@bob@acme.com\"".into()),
        (b"@acme.com,2026-03-31,,,,,", "invalid email address \"@acme.com\"".into()),
        (b"ann@acme,2026-03-31,,,,,", "invalid email address \"ann@acme\"".into()),
        (b"ann@acme..com,2026-03-31,,,,,", "invalid email address \"ann@acme..com\"".into()),
        (b"ann@.acme.com,2026-03-31,,,,,", "invalid email address \"ann@.acme.com\"".into()),
        (b"ann@acme.com.,2026-03-31,,,,,", "invalid email address \"ann@acme.com.\"".into()),
        (b"Ann Lee@acme.com,2026-03-31,,,,,", "invalid email address \"Ann Lee@acme.com\"".into()),
        (b"\"Ann <ann@acme.com>, Bob <bob@acme.com>\",2026-03-31,,,,,",
         "invalid email address \"Ann <ann@acme.com>, Bob <bob@acme.com>\"".into()),
        (b"ann;bob@acme.com,2026-03-31,,,,,", "invalid email address \"ann;bob@acme.com\"".into()),
        (b"\"ann,bob@acme.com\",2026-03-31,,,,,", "invalid email address \"ann,bob@acme.com\"".into()),
        (b"\"a\"\"b@acme.com\",2026-03-31,,,,,", "invalid email address \"a\\\"b@acme.com\"".into()),
        (b"\"ann@acme.com\nBcc: x@evil.com\",2026-03-31,,,,,",
         "invalid email address \"ann@acme.com\\nBcc: x@evil.com\"".into()),
        (long_email_row.as_bytes(), long_email_reason),
        (email_255_row.as_bytes(), email_255_reason),
        (b"ann@acme.com,,,,,,", "missing churned_at".into()),
        (b"ann@acme.com,31/03/2026,,,,,", "churned_at \"31/03/2026\" puts the year last, which \
          winback reads only through a date format: set [clients] date_format = \"DD/MM/YYYY\" if \
          your CRM writes dates this way".into()),
        (b"ann@acme.com,07/08/2026,,,,,", "churned_at \"07/08/2026\" puts the year last, which \
          winback reads only through a date format: set [clients] date_format to how your CRM writes \
          dates: \"MM/DD/YYYY\" (month first) or \"DD/MM/YYYY\" (day first)".into()),
        (b"ann@acme.com,2026-03-31 25:00,,,,,", format!("churned_at \"2026-03-31 25:00\" is not a date {date_hint}")),
        (b"ann@acme.com,2026-02-30,,,,,", format!("churned_at \"2026-02-30\" is not a date {date_hint}")),
        (b"ann@acme.com,2026-11-03,,,,,", "churned_at 2026-11-03 is in the future".into()),
        (b"ann@acme.com,2027-01-01,,,,,", "churned_at 2027-01-01 is in the future".into()),
        (b"ann@acme.com,2026-11-01T12:00:01Z,,,,,", "churned_at 2026-11-01T12:00:01Z is in the future".into()),
        (b"ann@acme.com,2026-11-01T13:00:01+01:00,,,,,",
         "churned_at 2026-11-01T13:00:01+01:00 is in the future".into()),
        (b"ann@acme.com,2026-03-31,,,,,Paris",
         "unknown time zone \"Paris\" (use an IANA name such as Europe/Paris)".into()),
        (b"ann@acme.com,2026-03-31,,,,,europe/paris",
         "unknown time zone \"europe/paris\" (names are case-sensitive: use Europe/Paris)".into()),
        (b"ann@acme.com,2026-03-31,,,,,Europe/Pariss",
         "unknown time zone \"Europe/Pariss\" (use an IANA name such as Europe/Paris)".into()),
        (b"ann@acme.com,2026-03-31,,,,\xe2\x80\x94 \xe6\x9c\xaa,",
         "churn_reason \"\u{2014} \u{672a}\" has no letters or digits to make a slug of; map it to one \
          in the configuration: [clients] reasons = { \"\u{2014} \u{672a}\" = \"other\" }".into()),
        (b"ann@acme.com,2026-03-31,Ann\x07Lee,,,,",
         "name contains an invisible control character (U+0007); remove it".into()),
        (b"ann@acme.com,2026-03-31,,An\x00n,,,",
         "first_name contains an invisible control character (U+0000); remove it".into()),
        (b"ann@acme.com,2026-03-31,,,Acme\x1b[31m,,",
         "company contains an invisible control character (U+001B); remove it".into()),
        (b"ann@acme.com,2026-03-31,,,Acme\xc2\x85Corp,,",
         "company contains an invisible control character (U+0085); remove it".into()),
        (b"ann@acme.com,2026-03-31", "expected 7 fields (one per header column), found 2".into()),
        (b"ann@acme.com,2026-03-31,,,,,,x", "expected 7 fields (one per header column), found 8".into()),
        (b"ann@acme.com,2026-03-31,,,,,,,", "expected 7 fields (one per header column), found 9".into()),
        (b"ann@acme.com,2026-03-31,Ren\xe9,,,,", MIXED_ENCODINGS_ROW.into()),
        (b"ann,tomorrow,\x01,,,\xe2\x80\x94,Mars/Base", format!(
            "invalid email address \"ann\"; churned_at \"tomorrow\" is not a date {date_hint}; \
             name contains an invisible control character (U+0001); remove it; \
             churn_reason \"\u{2014}\" has no letters or digits to make a slug of; map it to one \
             in the configuration: [clients] reasons = {{ \"\u{2014}\" = \"other\" }}; \
             unknown time zone \"Mars/Base\" (use an IANA name such as Europe/Paris)"
        )),
    ];
    let mut input = HEADER.as_bytes().to_vec();
    let mut expected = Vec::new();
    let mut line = 2;
    for (row, reason) in cases {
        input.extend_from_slice(row);
        input.push(b'\n');
        expected.push(Err(RowError { line, reason }));
        line += 1 + row.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    input.extend_from_slice(b"zoe@acme.com,2026-03-31,,,,,\n");
    expected.push(Ok((line, client("zoe@acme.com", "2026-03-31"))));
    let actual = read_all(&input);
    assert_eq!(actual.len(), expected.len());
    for (actual, expected) in actual.iter().zip(&expected) {
        assert_eq!(actual, expected);
    }
}

/// A file read while it is being written ends inside its last line; that line is
/// never taken as a row, whether it is cut in a value or in a quoted field.
#[test]
fn a_last_line_without_its_line_break_is_refused() {
    let error = RowError {
        line: 4,
        reason: UNTERMINATED.to_owned(),
    };
    let cases: [&[u8]; 3] = [
        b"email,churned_at,churn_reason\nann@acme.com,2026-03-31,price\n\nfred@acme.com,2026-01-01,we",
        b"email,churned_at,name\r\nann@acme.com,2026-03-31,Ann\r\n\r\nfred@acme.com,2026-01-01,\"Fred\r\nFl",
        b"email,churned_at,name\nann@acme.com,2026-03-31,Ann\n\nfred@acme.com,2026-01-01,Fred\r",
    ];
    for input in cases {
        let rows = read_all(input);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(matches!(rows[0], Ok((2, _))), "{rows:?}");
        assert_eq!(rows[1], Err(error.clone()));
        let one_byte_at_a_time: Vec<_> = match read_rows(
            OneByteAtATime(input),
            now(),
            &crate::config::CsvFormat::default(),
        ) {
            Ok(rows) => rows.collect(),
            Err(error) => panic!("header refused: {error}"),
        };
        assert_eq!(one_byte_at_a_time, rows);
        assert!(
            !error.ends_the_file(),
            "--skip-invalid imports the rows before it"
        );
    }
}

#[test]
fn row_error_display() {
    let error = RowError {
        line: 12,
        reason: "missing email".to_owned(),
    };
    assert_eq!(error.to_string(), "line 12: missing email");
}

#[test]
fn hostile_rows_are_kept_verbatim_or_made_header_safe() {
    let input: &[u8] = b"email,churned_at,name,company,notes\r\n\
        \"o'brien@acme.com\",2026-03-31,\"O'Brien, Pat\",\"Acme, \"\"The Best\"\" Inc.\",\"'); DROP TABLE clients;--\"\r\n\
        bob@acme.com,2026-03-31,\"Bob \r\n Smith\r\n\r\n\tJr\",Acme,\"multi\r\nline note\"\r\n\
        carol@acme.com,2026-03-31,Carol,\"Evil\r\nBcc: x@evil.com\",<script>alert(1)</script>\r\n\
        dave@acme.com,2026-03-31,\"Dave\xe2\x80\xa8Bcc: y@evil.com\",Acme,=HYPERLINK(\"http://x\")\r\n\
        erin@acme.com,2026-03-31,Erin,Acme,\xff\xfe\r\n\
        \"frank@acme.com\r\n\",2026-03-31,Frank,\"\",\"\"\r\n";
    let expected = vec![
        Ok((
            2,
            ClientRecord {
                name: some("O'Brien, Pat"),
                company: some("Acme, \"The Best\" Inc."),
                fields: fields(&[("notes", "'); DROP TABLE clients;--")]),
                ..client("o'brien@acme.com", "2026-03-31")
            },
        )),
        Ok((
            3,
            ClientRecord {
                name: some("Bob Smith Jr"),
                company: some("Acme"),
                fields: fields(&[("notes", "multi\r\nline note")]),
                ..client("bob@acme.com", "2026-03-31")
            },
        )),
        Ok((
            8,
            ClientRecord {
                name: some("Carol"),
                company: some("Evil Bcc: x@evil.com"),
                fields: fields(&[("notes", "<script>alert(1)</script>")]),
                ..client("carol@acme.com", "2026-03-31")
            },
        )),
        Ok((
            10,
            ClientRecord {
                name: some("Dave Bcc: y@evil.com"),
                company: some("Acme"),
                fields: fields(&[("notes", "=HYPERLINK(\"http://x\")")]),
                ..client("dave@acme.com", "2026-03-31")
            },
        )),
        Err(RowError {
            line: 11,
            reason: MIXED_ENCODINGS_ROW.to_owned(),
        }),
        Ok((
            12,
            ClientRecord {
                name: some("Frank"),
                fields: fields(&[("notes", "")]),
                ..client("frank@acme.com", "2026-03-31")
            },
        )),
    ];
    assert_eq!(read_all(input), expected);
    assert!(
        RowError {
            line: 11,
            reason: MIXED_ENCODINGS_ROW.to_owned()
        }
        .to_string()
        .starts_with("line 11: this line has characters that are not UTF-8")
    );
    let one_byte_at_a_time: Vec<_> = match read_rows(
        OneByteAtATime(input),
        now(),
        &crate::config::CsvFormat::default(),
    ) {
        Ok(rows) => rows.collect(),
        Err(error) => panic!("header refused: {error}"),
    };
    assert_eq!(one_byte_at_a_time, expected);
}

#[test]
fn header_errors() {
    let long_line = format!("email,churned_at,{}", "x".repeat(2 << 20));
    let cases: Vec<(&str, &[u8], String)> = vec![
        ("empty file", b"", EMPTY_FILE.into()),
        ("only blank lines", b"\n\r\n  \n", EMPTY_FILE.into()),
        ("only a BOM", b"\xef\xbb\xbf", EMPTY_FILE.into()),
        ("no email", b"name,churned_at\n",
         "the file has no email column (columns found: name, churned_at); if one of these holds \
          it, name it in the configuration: [clients] columns = { email = \"\u{2026}\" }".into()),
        ("no churned_at", b"Email,Name,Plan\nann@acme.com,Ann\n",
         "the file has no churned_at column (columns found: Email, Name, Plan); if one of these \
          holds it, name it in the configuration: [clients] columns = { churned_at = \"\u{2026}\" }".into()),
        ("neither", b"a,b\n",
         "the file has no email column and no churned_at column (columns found: a, b); if one of \
          these holds it, name it in the configuration: [clients] columns = { email = \"\u{2026}\" }".into()),
        ("an email column only under another object", b"Account Owner: Email,Churn Date\n",
         "the file has no email column (columns found: Account Owner: Email, Churn Date); if one of \
          these holds it, name it in the configuration: [clients] columns = { email = \"\u{2026}\" }".into()),
        ("a close date is not taken for the churn date", b"Email,Close Date\n",
         "the file has no churned_at column (columns found: Email, Close Date); if one of these \
          holds it, name it in the configuration: [clients] columns = { churned_at = \"\u{2026}\" }".into()),
        ("unnamed column", b"email,churned_at,,\n",
         "column 3 of the header line has no name (name it, or delete the column if it is not needed)".into()),
        ("UTF-16 file, read as such", b"\xff\xfee\x00m\x00a\x00i\x00l\x00\n\x00",
         "the file has no churned_at column (columns found: email); if one of these holds it, \
          name it in the configuration: [clients] columns = { churned_at = \"\u{2026}\" }".into()),
        ("no header in the first 20 lines: the first line's problem",
         b"Lost accounts\n\"As of 2026\"\n\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\nemail,churned_at\n",
         "the file has no email column and no churned_at column (columns found: Lost accounts); \
          if one of these holds it, name it in the configuration: [clients] columns = { email = \"\u{2026}\" }".into()),
        ("old Mac line breaks", b"email,churned_at\rann@acme.com,2026-03-31\r",
         "a column name in the header line contains a line break: the file may use old Mac \
          line breaks (CR only); save it again as \"CSV UTF-8\"".into()),
        ("no line break for over 1 MiB", long_line.as_bytes(),
         "the first line is longer than 1 MiB: this is not a CSV file, or its line breaks \
          are old Mac ones (CR only); save it again as \"CSV UTF-8\"".into()),
    ];
    for (case, input, expected) in cases {
        match read_rows(input, now(), &crate::config::CsvFormat::default()) {
            Err(ImportError::Header(message)) => assert_eq!(message, expected, "case: {case}"),
            Err(other) => panic!("case {case}: expected a header error, got {other:?}"),
            Ok(_) => panic!("case {case}: header accepted"),
        }
    }
}

#[test]
fn a_read_failure_is_reported() {
    match read_rows(Failing, now(), &crate::config::CsvFormat::default()) {
        Err(error @ ImportError::Io(_)) => {
            assert_eq!(error.to_string(), "could not read the file: disk on fire")
        }
        Err(other) => panic!("expected an I/O error, got {other:?}"),
        Ok(_) => panic!("header accepted from a failing reader"),
    }
    let input = (&b"email,churned_at\nann@acme.com,2026-03-31\n"[..]).chain(Failing);
    let rows = match read_rows(input, now(), &crate::config::CsvFormat::default()) {
        Ok(rows) => rows,
        Err(error) => panic!("header refused: {error}"),
    };
    let results: Vec<_> = rows.collect();
    assert_eq!(
        results,
        vec![
            Ok((2, client("ann@acme.com", "2026-03-31"))),
            Err(RowError {
                line: 3,
                reason: "could not read the rest of the file: disk on fire".into()
            }),
        ]
    );
}

#[test]
fn a_runaway_quote_stops_reading_with_bounded_memory() {
    let mut input =
        b"email,churned_at,name\nann@acme.com,2026-03-31,Ann\nbob@acme.com,2026-03-31,\"Bob\n"
            .to_vec();
    input.extend(std::iter::repeat_n(b'x', 3 << 20));
    input.extend_from_slice(b"\ncarol@acme.com,2026-03-31,Carol\n");
    let results = read_all(&input);
    assert_eq!(
        results,
        vec![
            Ok((
                2,
                ClientRecord {
                    name: some("Ann"),
                    ..client("ann@acme.com", "2026-03-31")
                }
            )),
            Err(RowError {
                line: 3,
                reason: "this record is longer than 1 MiB: a closing quote (\") is probably \
                     missing; nothing after it was read"
                    .into(),
            }),
        ]
    );
}

#[test]
fn bytes_read_follows_the_input() {
    let input =
        format!("{HEADER}ann@acme.com,2026-03-31,,,,,\r\n\"bob@acme.com\",2026-03-31,,,,,\n\n");
    let mut rows = match read_rows(
        input.as_bytes(),
        now(),
        &crate::config::CsvFormat::default(),
    ) {
        Ok(rows) => rows,
        Err(error) => panic!("header refused: {error}"),
    };
    assert_eq!(rows.bytes_read(), HEADER.len() as u64);
    assert!(matches!(rows.next(), Some(Ok((2, _)))));
    assert_eq!(rows.bytes_read(), (HEADER.len() + 30) as u64);
    assert!(matches!(rows.next(), Some(Ok((3, _)))));
    assert!(rows.next().is_none());
    assert_eq!(rows.bytes_read(), input.len() as u64);
    assert!(rows.next().is_none(), "stays finished");
}

#[test]
fn a_large_file_reads_through() {
    let rows = 40_000;
    let mut input = HEADER.to_owned();
    for index in 0..rows {
        input.push_str(&format!(
            "client{index}@acme.com,2025-06-30,Client {index},,,price,UTC\r\n"
        ));
    }
    assert!(
        input.len() as u64 > 2 * MAX_RECORD_BYTES,
        "longer than the record cap"
    );
    let results = read_all(input.as_bytes());
    assert_eq!(results.len(), rows);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        results.last(),
        Some(&Ok((
            rows as u64 + 1,
            ClientRecord {
                name: some("Client 39999"),
                churn_reason: some("price"),
                timezone: Some(chrono_tz::UTC),
                ..client("client39999@acme.com", "2025-06-30")
            }
        )))
    );
}

#[test]
fn plain_dates_parse_like_churned_at_parse() {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
    let cases = [
        ("2026-03-31", date(2026, 3, 31)),
        ("2024-02-29", date(2024, 2, 29)),
        ("0001-01-01", date(1, 1, 1)),
        ("9999-12-31", date(9999, 12, 31)),
        ("2026-02-29", None),
        ("2026-13-01", None),
        ("2026-00-10", None),
        ("2026-04-31", None),
        ("2026-1-01", None),
        ("2026/03/31", None),
        ("2026-03-3a", None),
        ("+2026-03-31", None),
        ("2026-03-31T00:00:00Z", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_plain_date(text), expected, "{text}");
        if let Some(date) = expected {
            assert_eq!(
                ChurnedAt::parse(text),
                Some(ChurnedAt::Date(date)),
                "{text}"
            );
        }
    }
}

#[test]
fn quoted_values_are_escaped_and_cut_short() {
    let cases = [
        ("x", "\"x\""),
        ("it's \"quoted\"", "\"it's \\\"quoted\\\"\""),
        ("a\r\nb\tc", "\"a\\r\\nb\\tc\""),
        ("Zoë", "\"Zoë\""),
    ];
    for (input, expected) in cases {
        assert_eq!(quoted(input), expected);
    }
    let long = "é".repeat(100);
    assert_eq!(
        quoted(&long),
        format!("\"{}\"…", "é".repeat(MAX_QUOTED_CHARS))
    );
}

fn read_with(input: &[u8], format: &CsvFormat) -> (Vec<Result<GoodRow, RowError>>, ReadSummary) {
    let mut rows = match read_rows(input, now(), format) {
        Ok(rows) => rows,
        Err(error) => panic!("header refused: {error}"),
    };
    let read: Vec<_> = rows.by_ref().collect();
    (read, rows.into_summary())
}

fn mapping(pairs: &[(Field, &str)]) -> CsvFormat {
    CsvFormat {
        columns: pairs.iter().map(|(f, h)| (*f, h.to_string())).collect(),
        ..CsvFormat::default()
    }
}

#[test]
fn crm_exports_read_through_their_own_headers() {
    use Field::*;
    let date =
        |y, m, d| crate::domain::model::ChurnedAt::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
    /// (what, format, file, the record, which header fed which field)
    type Case<'a> = (
        &'a str,
        CsvFormat,
        &'a str,
        ClientRecord,
        Vec<(Field, &'a str)>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "HubSpot contacts: names, company, country and zone by their labels",
            CsvFormat::default(),
            "Record ID,First Name,Last Name,Email,Company Name,Country/Region,Time Zone,Churned At\n\
             501,J\u{fc}rgen,M\u{fc}ller,Juergen@Example.DE,M\u{fc}ller & S\u{f6}hne,Germany,Europe/Berlin,2026-03-31\n",
            ClientRecord {
                name: some("J\u{fc}rgen M\u{fc}ller"),
                first_name: some("J\u{fc}rgen"),
                company: some("M\u{fc}ller & S\u{f6}hne"),
                timezone: Some(chrono_tz::Europe::Berlin),
                country: some("DE"),
                fields: fields(&[("record id", "501")]),
                ..client("juergen@example.de", "2026-03-31")
            },
            vec![
                (Email, "Email"),
                (ChurnedAt, "Churned At"),
                (FirstName, "First Name"),
                (LastName, "Last Name"),
                (Company, "Company Name"),
                (Timezone, "Time Zone"),
                (Country, "Country/Region"),
            ],
        ),
        (
            "Salesforce report: Object: Field headers, US dates",
            CsvFormat {
                date_format: some("MM/DD/YYYY"),
                ..mapping(&[(ChurnedAt, "Close Date")])
            },
            "Contact: First Name,Contact: Last Name,Contact: Email,Account: Account Name,Close Date,Loss Reason,Opportunity Owner\n\
             Zo\u{eb},Lef\u{e8}vre,zoe@client.example,Acme,07/14/2025,Moved to competitor,Pat\n",
            ClientRecord {
                name: some("Zo\u{eb} Lef\u{e8}vre"),
                first_name: some("Zo\u{eb}"),
                company: some("Acme"),
                churned_at: date(2025, 7, 14),
                churn_reason: some("moved_to_competitor"),
                fields: fields(&[("opportunity owner", "Pat")]),
                ..client("zoe@client.example", "2025-07-14")
            },
            vec![
                (Email, "Contact: Email"),
                (ChurnedAt, "Close Date"),
                (FirstName, "Contact: First Name"),
                (LastName, "Contact: Last Name"),
                (Company, "Account: Account Name"),
                (ChurnReason, "Loss Reason"),
            ],
        ),
        (
            "Salesforce DE: German dates with a time, mapped columns",
            CsvFormat {
                date_format: some("DD.MM.YYYY HH:mm"),
                ..mapping(&[(Email, "Kontakt E-Mail"), (ChurnedAt, "Verloren seit")])
            },
            "Kontakt E-Mail,Verloren seit,Vorname,Nachname,Firma,Land\n\
             fran\u{e7}ois@client.example,14.07.2025 09:30,Fran\u{e7}ois,Ch\u{e2}teau,Ch\u{e2}teau SARL,Frankreich\n",
            ClientRecord {
                name: some("Fran\u{e7}ois Ch\u{e2}teau"),
                first_name: some("Fran\u{e7}ois"),
                company: some("Ch\u{e2}teau SARL"),
                churned_at: date(2025, 7, 14),
                country: some("FR"),
                // Headers a template could name as fields.<header> still are.
                fields: fields(&[
                    ("firma", "Ch\u{e2}teau SARL"),
                    ("land", "Frankreich"),
                    ("nachname", "Ch\u{e2}teau"),
                    ("vorname", "Fran\u{e7}ois"),
                ]),
                ..client("fran\u{e7}ois@client.example", "2025-07-14")
            },
            vec![
                (Email, "Kontakt E-Mail"),
                (ChurnedAt, "Verloren seit"),
                (FirstName, "Vorname"),
                (LastName, "Nachname"),
                (Company, "Firma"),
                (Country, "Land"),
            ],
        ),
        (
            "Pipedrive deals: Object - Field headers, a return date",
            mapping(&[(Email, "Person - Email - Work")]),
            "Deal - Title,Person - Name,Person - Email - Work,Organization - Name,Deal - Lost time,Deal - Lost reason,Returned At\n\
             Renewal,Se\u{f1}or L\u{f3}pez,lopez@client.example,L\u{f3}pez SL,2025-01-31 17:45:00,Preis zu hoch,2026-10-01\n",
            ClientRecord {
                name: some("Se\u{f1}or L\u{f3}pez"),
                company: some("L\u{f3}pez SL"),
                churned_at: date(2025, 1, 31),
                churn_reason: some("preis_zu_hoch"),
                returned_at: Some(date(2026, 10, 1)),
                fields: fields(&[("deal - title", "Renewal")]),
                ..client("lopez@client.example", "2025-01-31")
            },
            vec![
                (Email, "Person - Email - Work"),
                (ChurnedAt, "Deal - Lost time"),
                (Name, "Person - Name"),
                (Company, "Organization - Name"),
                (ChurnReason, "Deal - Lost reason"),
                (ReturnedAt, "Returned At"),
            ],
        ),
        (
            "a mapping wins over a spelling, and its field is not looked for elsewhere",
            mapping(&[(Company, "Parent Account")]),
            "email,churned_at,Company,Parent Account\nann@acme.com,2026-03-31,Acme EMEA,Acme\n",
            ClientRecord {
                company: some("Acme"),
                fields: fields(&[("company", "Acme EMEA")]),
                ..client("ann@acme.com", "2026-03-31")
            },
            vec![
                (Email, "email"),
                (ChurnedAt, "churned_at"),
                (Company, "Parent Account"),
            ],
        ),
        (
            "a name column comes first; first and last make one only when it is empty",
            CsvFormat::default(),
            "Email,Churned At,Name,First Name,Last Name\nann@acme.com,2026-03-31,Ann Lee,Annie,Lee\n",
            ClientRecord {
                name: some("Ann Lee"),
                first_name: some("Annie"),
                ..client("ann@acme.com", "2026-03-31")
            },
            vec![
                (Email, "Email"),
                (ChurnedAt, "Churned At"),
                (Name, "Name"),
                (FirstName, "First Name"),
                (LastName, "Last Name"),
            ],
        ),
    ];
    for (what, format, file, record, columns) in cases {
        let (rows, summary) = read_with(file.as_bytes(), &format);
        assert_eq!(rows, vec![Ok((2, record))], "{what}");
        let columns: Vec<(Field, String)> = columns
            .into_iter()
            .map(|(f, h)| (f, h.to_string()))
            .collect();
        assert_eq!(summary.columns, columns, "{what}");
    }
}

#[test]
fn a_column_that_looks_like_a_field_but_feeds_none_is_named() {
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "a second email column",
            "Email,Churned At,Email 2\nann@acme.com,2026-03-31,ann@home.example\n",
            vec![
                "the column \"Email 2\" looks like email but is not read as it (email is read from \
                 \"Email\"); templates get it as fields.email 2; if it is the one, set [clients] \
                 columns = { email = \"Email 2\" }",
            ],
        ),
        (
            "the same name twice",
            "email,churned_at, EMAIL ,Plan,plan\nann@acme.com,2026-03-31,x,a,b\n",
            vec![
                "the column \"EMAIL\" looks like email but is not read as it (email is read from \
                 \"email\"); templates get it as fields.email; if it is the one, set [clients] \
                 columns = { email = \"EMAIL\" }",
                "the column \"plan\" appears twice (columns 4 and 5): templates get the first as \
                 fields.plan, the second is not read",
            ],
        ),
        (
            "a second spelling of a field",
            "Email,Churned At,Company,Company Name\nann@acme.com,2026-03-31,Acme,Acme Inc\n",
            vec![
                "the column \"Company Name\" looks like company but is not read as it (company is \
                 read from \"Company\"); templates get it as fields.company name; if it is the one, \
                 set [clients] columns = { company = \"Company Name\" }",
            ],
        ),
        (
            "nothing alike",
            "email,churned_at,plan\nann@acme.com,2026-03-31,Pro\n",
            vec![],
        ),
    ];
    for (what, file, expected) in cases {
        let (rows, summary) = read_with(file.as_bytes(), &CsvFormat::default());
        assert!(rows.iter().all(Result::is_ok), "{what}: {rows:?}");
        assert_eq!(summary.warnings, expected, "{what}");
    }
}

#[test]
fn a_mapped_column_the_file_lacks_is_named_with_the_key() {
    let format = mapping(&[(Field::Email, "Contact: Email")]);
    match read_rows(&b"Email,Close Date\n"[..], now(), &format) {
        Err(ImportError::Header(message)) => assert_eq!(
            message,
            "[clients] columns maps email to \"Contact: Email\", but the file has no such column \
             (columns found: Email, Close Date); write the name as it appears in the header line"
        ),
        Err(other) => panic!("expected a header error, got {other:?}"),
        Ok(_) => panic!("header accepted"),
    }
    // A title line above a report's header is refused, not taken for one.
    for line in [
        &b"Closed Lost Opportunities\n"[..],
        b"\"Acme, Inc.\",,\n",
        b"Total,12\n",
    ] {
        assert!(
            read_rows(line, now(), &CsvFormat::default()).is_err(),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn reason_labels_become_slugs_and_are_listed() {
    let format = CsvFormat {
        reasons: vec![
            ("Moved to competitor".to_string(), "competitor".to_string()),
            ("\u{dc}bernahme".to_string(), "acquisition".to_string()),
            ("price".to_string(), "budget".to_string()),
        ],
        ..CsvFormat::default()
    };
    // (cell, slug)
    let cases = [
        ("Moved to competitor", "competitor"),
        ("  moved TO competitor ", "competitor"),
        ("\u{fc}bernahme", "acquisition"),
        ("PRICE", "budget"),
        ("We_Ended", "we_ended"),
        ("we-ended", "we-ended"),
        ("Preis zu hoch", "preis_zu_hoch"),
        ("\u{dc}bernahme durch Konzern", "ubernahme_durch_konzern"),
        ("Too expensive (budget cut!)", "too_expensive_budget_cut"),
        ("Stra\u{df}e / Umzug", "strasse_umzug"),
    ];
    let mut file = String::from("email,churned_at,churn_reason\n");
    for (index, (cell, _)) in cases.iter().enumerate() {
        file.push_str(&format!("c{index}@acme.com,2026-03-31,\"{cell}\"\n"));
    }
    let (rows, summary) = read_with(file.as_bytes(), &format);
    for ((cell, slug), row) in cases.iter().zip(&rows) {
        match row {
            Ok((_, record)) => assert_eq!(record.churn_reason.as_deref(), Some(*slug), "{cell}"),
            Err(error) => panic!("{cell}: {error}"),
        }
    }
    let seen: Vec<&str> = summary.reasons_seen.iter().map(String::as_str).collect();
    assert_eq!(
        seen,
        vec![
            "acquisition",
            "budget",
            "competitor",
            "preis_zu_hoch",
            "strasse_umzug",
            "too_expensive_budget_cut",
            "ubernahme_durch_konzern",
            "we-ended",
            "we_ended",
        ]
    );
}

#[test]
fn dates_countries_and_returns_name_what_to_write() {
    let header = "email,churned_at,country,returned_at\n";
    let cases: Vec<(CsvFormat, &str, Result<(), String>)> = vec![
        (CsvFormat::default(), "ann@acme.com,2026-03-31,de,", Ok(())),
        (
            CsvFormat::default(),
            "ann@acme.com,2026-03-31 09:30,,",
            Ok(()),
        ),
        (
            CsvFormat::default(),
            "ann@acme.com,2026-03-31T09:30:00,,",
            Ok(()),
        ),
        // An unknown country is warned about, not refused (columns::tests).
        (
            CsvFormat::default(),
            "ann@acme.com,2026-03-31,Atlantis,",
            Ok(()),
        ),
        (
            CsvFormat::default(),
            "ann@acme.com,2026-03-31,,10/01/2026",
            Err(
                "returned_at \"10/01/2026\" puts the year last, which winback reads \
                 only through a date format: set [clients] date_format to how your CRM writes \
                 dates: \"MM/DD/YYYY\" (month first) or \"DD/MM/YYYY\" (day first)"
                    .into(),
            ),
        ),
        (
            CsvFormat::default(),
            "ann@acme.com,2026-03-31,,2026-11-05",
            Err("returned_at 2026-11-05 is in the future".into()),
        ),
        (
            CsvFormat {
                date_format: some("DD.MM.YYYY"),
                ..CsvFormat::default()
            },
            "ann@acme.com,31.03.2026,,2026-10-01",
            Ok(()),
        ),
        (
            CsvFormat {
                date_format: some("DD.MM.YYYY"),
                ..CsvFormat::default()
            },
            "ann@acme.com,03/31/2026,,",
            Err(
                "churned_at \"03/31/2026\" is not a date written as \"DD.MM.YYYY\" ([clients] \
                 date_format), nor YYYY-MM-DD"
                    .into(),
            ),
        ),
    ];
    for (format, row, expected) in cases {
        let (rows, _) = read_with(format!("{header}{row}\n").as_bytes(), &format);
        let got = match &rows[..] {
            [Ok(_)] => Ok(()),
            [Err(error)] => Err(error.reason.clone()),
            other => panic!("{row}: {other:?}"),
        };
        assert_eq!(got, expected, "{row}");
    }
}
