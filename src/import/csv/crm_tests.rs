//! Reading CRM exports as they come: encodings, delimiters, a report's title and footer
//! lines, and line numbers through all of them. The files in `tests/fixtures/crm/` are
//! read down to the header and rows they hold; which column feeds which field is
//! `columns.rs`'s, tested there.

use std::collections::BTreeMap;

use chrono::TimeZone;

use super::decode::Source;
use super::*;
use crate::config::CsvFormat;
use crate::domain::model::ChurnedAt;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

const NAMES: [&str; 7] = [
    "Jürgen",
    "Müller",
    "Zoë",
    "Lefèvre",
    "François",
    "Ñúñez",
    "Café Ñúñez S.L.",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/crm/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Everything read, with the summary.
fn read_with(input: &[u8], format: &CsvFormat) -> (Vec<Row>, ReadSummary) {
    let mut rows = match read_rows(input, now(), format) {
        Ok(rows) => rows,
        Err(error) => panic!("header refused: {error}"),
    };
    let read: Vec<Row> = rows.by_ref().collect();
    let one_at_a_time: Vec<Row> = match read_rows(OneByteAtATime(input), now(), format) {
        Ok(rows) => rows.collect(),
        Err(error) => panic!("header refused byte by byte: {error}"),
    };
    assert_eq!(one_at_a_time, read, "read byte by byte");
    (read, rows.into_summary())
}

fn read(input: &[u8]) -> (Vec<Row>, ReadSummary) {
    read_with(input, &CsvFormat::default())
}

/// Hands over one byte per read: byte order marks, UTF-16 code units and quotes split
/// across reads.
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

fn named(line: u64, email: &str, name: &str) -> Row {
    Ok((
        line,
        ClientRecord {
            email: email.to_owned(),
            name: Some(name.to_owned()),
            first_name: None,
            company: None,
            churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 30).unwrap()),
            churn_reason: None,
            timezone: None,
            fields: BTreeMap::new(),
            country: None,
            returned_at: None,
            opted_out: false,
        },
    ))
}

fn utf16(text: &str, little_endian: bool) -> Vec<u8> {
    let mut bytes = if little_endian {
        vec![0xff, 0xfe]
    } else {
        vec![0xfe, 0xff]
    };
    for unit in text.encode_utf16() {
        let pair = if little_endian {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        };
        bytes.extend_from_slice(&pair);
    }
    bytes
}

fn windows_1252(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable, "{text}");
    bytes.into_owned()
}

/// Every encoding a CRM or Excel writes reads the same rows, accents intact, on the same
/// lines (a name over two lines, blank lines), and the summary says which it was.
#[test]
fn every_encoding_reads_the_same_rows_on_the_same_lines() {
    let text = "email,churned_at,name\r\n\
                juergen@bergwerk.example,2025-06-30,Jürgen Müller\r\n\
                \r\n\
                zoe@atelier.example,2025-06-30,\"Zoë\r\nLefèvre\"\r\n\
                francois@boulangerie.example,2025-06-30,François Dubois €\r\n\
                ana@cafe.example,2025-06-30,Ana Ñúñez\r\n";
    let expected = vec![
        named(2, "juergen@bergwerk.example", "Jürgen Müller"),
        named(4, "zoe@atelier.example", "Zoë Lefèvre"),
        named(6, "francois@boulangerie.example", "François Dubois €"),
        named(7, "ana@cafe.example", "Ana Ñúñez"),
    ];
    let with_bom = [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("UTF-8", text.as_bytes().to_vec(), "UTF-8"),
        ("UTF-8 with a byte order mark", with_bom, "UTF-8"),
        ("UTF-16LE", utf16(text, true), "UTF-16LE"),
        ("UTF-16BE", utf16(text, false), "UTF-16BE"),
        ("Windows-1252", windows_1252(text), "windows-1252"),
    ];
    for (case, input, encoding) in cases {
        let (rows, summary) = read(&input);
        assert_eq!(rows, expected, "case: {case}");
        assert_eq!(summary.encoding, Some((encoding, true)), "case: {case}");
        assert_eq!(summary.delimiter, Some((b',', true)), "case: {case}");
        assert!(
            summary
                .lines()
                .contains(&format!("encoding: {encoding} (detected)")),
            "case: {case}: {:?}",
            summary.lines()
        );
    }
}

/// Past the sample and across the decoder's chunks, a UTF-16 file's rows and errors keep
/// their line numbers.
#[test]
fn line_numbers_stay_right_deep_into_a_utf16_file() {
    let mut text = "email\tchurned_at\tname\n".to_owned();
    let rows = 8_000;
    for index in 0..rows {
        if index == 2_000 {
            text.push_str("not an address\t2025-06-30\tZoë\n");
        } else {
            text.push_str(&format!(
                "c{index}@x.example\t2025-06-30\t\"Zoë\nNo {index}\"\n"
            ));
        }
    }
    let input = utf16(&text, true);
    assert!(input.len() > 4 * 64 * 1024, "longer than the sample");
    let (read, summary) = read(&input);
    assert_eq!(read.len(), rows);
    // Row `index` starts on line 2 + 2 × index (every good row spans two lines), less one
    // after the bad row, which spans one.
    assert_eq!(
        read[2_000],
        Err(RowError {
            line: 4_002,
            reason: "invalid email address \"not an address\"".to_owned(),
        })
    );
    assert_eq!(
        read[rows - 1],
        named(15_999, "c7999@x.example", "Zoë No 7999")
    );
    assert_eq!(summary.encoding, Some(("UTF-16LE", true)));
    assert_eq!(summary.delimiter, Some((b'\t', true)));
}

/// `filler` plain rows after a header whose name column holds `first`, past the 64 KiB
/// sample, then Jürgen in Windows-1252 (`\xfc`) and Ana.
fn late_accent(first: &str, filler: usize) -> Vec<u8> {
    let mut input = b"email,churned_at,name\n".to_vec();
    input.extend_from_slice(format!("first@x.example,2025-06-30,{first}\n").as_bytes());
    for index in 1..filler {
        input.extend_from_slice(format!("c{index}@x.example,2025-06-30,Plain\n").as_bytes());
    }
    assert!(input.len() > 64 * 1024, "the odd byte is past the sample");
    input.extend_from_slice(b"juergen@bergwerk.example,2025-06-30,J\xfcrgen M\xfcller\n");
    input.extend_from_slice(b"ana@cafe.example,2025-06-30,Ana\n");
    input
}

/// A Windows-1252 file whose first accent comes after the sample: until then it is plain
/// ASCII, which reads the same either way, so it is read as Windows-1252 from that accent
/// on, and the summary says so. One byte at a time reads the same.
#[test]
fn a_late_windows_1252_accent_after_plain_ascii_reads_the_file_as_windows_1252() {
    let filler = 3_000;
    let input = late_accent("Plain", filler);
    let line = filler as u64 + 2;
    for (rows, summary) in [
        read(&input),
        read_rows(OneByteAtATime(&input), now(), &CsvFormat::default())
            .map(|mut rows| {
                let read: Vec<Row> = rows.by_ref().collect();
                (read, rows.into_summary())
            })
            .unwrap_or_else(|error| panic!("header refused: {error}")),
    ] {
        assert_eq!(rows.len(), filler + 2);
        assert!(
            rows.iter().all(Result::is_ok),
            "{:?}",
            rows.iter().find(|row| row.is_err())
        );
        assert_eq!(
            rows[filler],
            named(line, "juergen@bergwerk.example", "Jürgen Müller")
        );
        assert_eq!(summary.encoding, Some(("windows-1252", true)));
        assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
        assert!(summary.warnings[0].contains("windows-1252"));
    }

    // An accent at the very start of a read, and a UTF-8 one that follows plain ASCII.
    let mut input = b"email,churned_at,name\n".to_vec();
    input.resize(input.len() + 70_000, b'\n');
    input.extend_from_slice("zoe@atelier.example,2025-06-30,Zoë\n".as_bytes());
    let (rows, summary) = read(&input);
    assert_eq!(rows, vec![named(70_002, "zoe@atelier.example", "Zoë")]);
    assert_eq!(summary.encoding, Some(("UTF-8", true)));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

/// A UTF-8 file with a Windows-1252 byte further on mixes two encodings: that row is held
/// with an error that says so, never dropped or garbled, and does not advise a setting
/// that would garble the UTF-8 rows. With `[clients] encoding` forced, the file is refused.
#[test]
fn a_late_byte_that_is_not_utf8_after_utf8_text_holds_its_row() {
    let filler = 3_000;
    let input = late_accent("Zoë", filler);
    let line = filler as u64 + 2;

    let (rows, summary) = read(&input);
    assert_eq!(rows.len(), filler + 2);
    assert_eq!(
        rows[filler],
        Err(RowError {
            line,
            reason: MIXED_ENCODINGS_ROW.to_owned(),
        })
    );
    assert!(!MIXED_ENCODINGS_ROW.contains("encoding = \"windows-1252\""));
    assert!(MIXED_ENCODINGS_ROW.contains("UTF-8"));
    assert!(rows[filler + 1].is_ok());
    assert_eq!(summary.encoding, Some(("UTF-8", true)));
}

/// `[clients] encoding = "windows-1252"` on a file saved as UTF-8 would turn Zoë into
/// ZoÃ«: the file is refused, naming the setting to remove. On plain ASCII it reads.
#[test]
fn a_legacy_encoding_set_for_a_utf8_file_is_refused() {
    let forced = CsvFormat {
        encoding: Some(encoding_rs::WINDOWS_1252),
        ..CsvFormat::default()
    };
    let input = "email,churned_at,name\nzoe@atelier.example,2025-06-30,Zoë\n";
    match read_rows(input.as_bytes(), now(), &forced) {
        Err(ImportError::Header(message)) => {
            assert!(message.contains("UTF-8"), "{message}");
            assert!(message.contains("encoding = \"windows-1252\""), "{message}");
            assert!(message.contains("remove"), "{message}");
        }
        Err(error) => panic!("not a header error: {error}"),
        Ok(_) => panic!("a UTF-8 file read as windows-1252"),
    }
    let (rows, summary) = read_with(
        b"email,churned_at,name\nann@x.example,2025-06-30,Ann\n",
        &forced,
    );
    assert_eq!(rows, vec![named(2, "ann@x.example", "Ann")]);
    assert_eq!(summary.encoding, Some(("windows-1252", false)));
    // The same bytes in Windows-1252 read as set.
    let (rows, _) = read_with(
        b"email,churned_at,name\nzoe@atelier.example,2025-06-30,Zo\xeb\n",
        &forced,
    );
    assert_eq!(rows, vec![named(2, "zoe@atelier.example", "Zoë")]);
}

/// A byte order mark cannot be wrong: it wins over `[clients] encoding`, with a warning.
#[test]
fn a_byte_order_mark_wins_over_the_set_encoding_and_says_so() {
    let input = utf16(
        "email,churned_at,name\nzoe@atelier.example,2025-06-30,Zoë\n",
        true,
    );
    let forced = CsvFormat {
        encoding: Some(encoding_rs::WINDOWS_1252),
        ..CsvFormat::default()
    };
    let (rows, summary) = read_with(&input, &forced);
    assert_eq!(rows, vec![named(2, "zoe@atelier.example", "Zoë")]);
    assert_eq!(summary.encoding, Some(("UTF-16LE", true)));
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert!(summary.warnings[0].contains("windows-1252"));

    // `encoding = "utf-16"` (little-endian by its label) reads a big-endian file too.
    let input = utf16(
        "email,churned_at,name\nzoe@atelier.example,2025-06-30,Zoë\n",
        false,
    );
    let utf16_set = CsvFormat {
        encoding: encoding_rs::Encoding::for_label(b"utf-16"),
        ..CsvFormat::default()
    };
    let (rows, summary) = read_with(&input, &utf16_set);
    assert_eq!(rows, vec![named(2, "zoe@atelier.example", "Zoë")]);
    assert_eq!(summary.encoding, Some(("UTF-16BE", false)));
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

/// Semicolons, tabs and pipes are found in the header; a decimal comma in a semicolon
/// file stays in its value; `[clients] delimiter` is obeyed.
#[test]
fn the_delimiter_is_found_or_set_and_decimal_commas_stay_in_their_value() {
    let amount = |value: &str| BTreeMap::from([("umsatz".to_owned(), value.to_owned())]);
    let with_amount = |line, value: &str| {
        named(line, "zoe@atelier.example", "Zoë").map(|(line, client)| {
            (
                line,
                ClientRecord {
                    fields: amount(value),
                    ..client
                },
            )
        })
    };
    type Case<'a> = (&'a str, &'a [u8], Option<u8>, u8, bool);
    let cases: [Case; 4] = [
        (
            "semicolons",
            "email;churned_at;name;Umsatz\nzoe@atelier.example;2025-06-30;Zoë;1.234,56\n"
                .as_bytes(),
            None,
            b';',
            true,
        ),
        (
            "tabs",
            "email\tchurned_at\tname\tUmsatz\nzoe@atelier.example\t2025-06-30\tZoë\t1.234,56\n"
                .as_bytes(),
            None,
            b'\t',
            true,
        ),
        (
            "pipes",
            "email|churned_at|name|Umsatz\nzoe@atelier.example|2025-06-30|Zoë|1.234,56\n"
                .as_bytes(),
            None,
            b'|',
            true,
        ),
        (
            "set: a semicolon file whose title line has more commas",
            "Lost, by owner, by date, by reason\nemail;churned_at;name;Umsatz\nzoe@atelier.example;2025-06-30;Zoë;1.234,56\n"
                .as_bytes(),
            Some(b';'),
            b';',
            false,
        ),
    ];
    for (case, input, set, delimiter, detected) in cases {
        let format = CsvFormat {
            delimiter: set,
            ..CsvFormat::default()
        };
        let (rows, summary) = read_with(input, &format);
        let line = if set.is_some() { 3 } else { 2 };
        assert_eq!(rows, vec![with_amount(line, "1.234,56")], "case: {case}");
        assert_eq!(
            summary.delimiter,
            Some((delimiter, detected)),
            "case: {case}"
        );
    }
}

/// A Salesforce report: title lines before the header and its footer after the data are
/// skipped and named by line; a footer-like line with rows after it is a row (an error),
/// as is a row without an address in the middle of the data.
#[test]
fn a_reports_title_and_footer_lines_are_skipped_and_named() {
    let report = "\"Lost Accounts - Closed Lost Opportunities\"\n\
        \"Lost Accounts by Close Date\"\n\
        \n\
        \"email\",\"churned_at\",\"name\",\"Amount\"\n\
        \"juergen@bergwerk.example\",\"2025-06-30\",\"Jürgen Müller\",\"12,500.00\"\n\
        \"zoe@atelier.example\",\"2025-06-30\",\"Zoë\",\"4,200.50\"\n\
        \n\
        \"Grand Totals (2 records)\"\n\
        \"\",\"\",\"\",\"16,700.50\"\n\
        \n\
        \n\
        \"Confidential Information - Do Not Distribute\"\n\
        \"Copyright (c) 2000-2025 salesforce.com, inc. All rights reserved.\"\n\
        \"Generated By:  Anna Schmidt  11/1/2026 9:14 AM\"\n";
    let (rows, summary) = read(report.as_bytes());
    let with_amount = |row: Row, amount: &str| {
        row.map(|(line, client)| {
            let fields = BTreeMap::from([("amount".to_owned(), amount.to_owned())]);
            (line, ClientRecord { fields, ..client })
        })
    };
    assert_eq!(
        rows,
        vec![
            with_amount(
                named(5, "juergen@bergwerk.example", "Jürgen Müller"),
                "12,500.00"
            ),
            with_amount(named(6, "zoe@atelier.example", "Zoë"), "4,200.50"),
        ]
    );
    let skipped: Vec<(u64, &str)> = summary
        .skipped_lines
        .iter()
        .map(|(line, text)| (*line, text.as_str()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (1, "Lost Accounts - Closed Lost Opportunities"),
            (2, "Lost Accounts by Close Date"),
            (8, "Grand Totals (2 records)"),
            (9, "16,700.50"),
            (12, "Confidential Information - Do Not Distribute"),
            (
                13,
                "Copyright (c) 2000-2025 salesforce.com, inc. All rights reserved."
            ),
            (14, "Generated By:  Anna Schmidt  11/1/2026 9:14 AM"),
        ]
    );
    assert!(
        summary
            .lines()
            .contains(&"line 8 skipped (not data): Grand Totals (2 records)".to_owned()),
        "{:?}",
        summary.lines()
    );

    // The same lines with a row after them are rows, each with its error, in order.
    let continued = format!("{report}\"ana@cafe.example\",\"2025-06-30\",\"Ana\",\"1\"\n");
    let (rows, summary) = read(continued.as_bytes());
    let lines: Vec<(u64, bool)> = rows
        .iter()
        .map(|row| match row {
            Ok((line, _)) => (*line, true),
            Err(error) => (error.line, false),
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (5, true),
            (6, true),
            (8, false),
            (9, false),
            (12, false),
            (13, false),
            (14, false),
            (15, true)
        ]
    );
    assert_eq!(
        rows[3],
        Err(RowError {
            line: 9,
            reason: "missing email; missing churned_at".to_owned()
        })
    );
    assert_eq!(summary.skipped_lines.len(), 2, "only the title lines");

    // A row with a name and no address, between rows: an error, in its place.
    let middle = "email,churned_at,name\n\
                  juergen@bergwerk.example,2025-06-30,Jürgen\n\
                  ,,Ann Lee\n\
                  zoe@atelier.example,2025-06-30,Zoë\n";
    let (rows, summary) = read(middle.as_bytes());
    assert_eq!(
        rows,
        vec![
            named(2, "juergen@bergwerk.example", "Jürgen"),
            Err(RowError {
                line: 3,
                reason: "missing email; missing churned_at".to_owned()
            }),
            named(4, "zoe@atelier.example", "Zoë"),
        ]
    );
    assert!(summary.skipped_lines.is_empty());
}

/// The fixtures, as each CRM writes them: detected encoding and delimiter, every accented
/// name decoded byte-exact, every row (a line with an address) as wide as the header, and
/// the report's footer lines told apart from its rows.
#[test]
fn crm_exports_decode_with_their_encoding_and_delimiter() {
    let cases = [
        ("hubspot-contacts.csv", "UTF-8", b',', 12, 0),
        ("salesforce-report-us.csv", "UTF-8", b',', 8, 6),
        ("salesforce-report-de.csv", "UTF-8", b',', 8, 6),
        ("excel-de-windows-1252.csv", "windows-1252", b';', 8, 0),
        ("excel-de-utf8-bom.csv", "UTF-8", b';', 8, 0),
        ("excel-unicode-text.txt", "UTF-16LE", b'\t', 7, 0),
        ("pipedrive-deals.csv", "UTF-8", b',', 11, 0),
    ];
    for (file, encoding, delimiter, columns, footer_lines) in cases {
        let bytes = fixture(file);
        let (mut source, chosen) = match Source::open(bytes.as_slice(), None) {
            Ok(opened) => opened,
            Err(error) => panic!("{file}: {error}"),
        };
        assert_eq!(chosen.encoding.name(), encoding, "{file}");
        assert!(chosen.detected, "{file}");
        let (sample, whole) = source.sample();
        assert!(whole, "{file}: a small file is its own sample");
        // Which column is the address is columns.rs's: here, one whose name says mail.
        let is_header = |record: &ByteRecord| {
            record.iter().any(|cell| {
                String::from_utf8_lossy(cell)
                    .to_lowercase()
                    .contains("mail")
            })
        };
        assert_eq!(
            sniff::delimiter(sample, whole, is_header),
            Some(delimiter),
            "{file}"
        );
        let mut text = String::new();
        if let Err(error) = source.read_to_string(&mut text) {
            panic!("{file}: {error}");
        }
        assert!(
            !text.starts_with('\u{feff}'),
            "{file}: the mark is not text"
        );
        for name in NAMES {
            assert!(text.contains(name), "{file}: {name} in {text}");
        }
        if file.starts_with("excel-de") {
            assert!(text.contains("Umsatz 2024 (€)"), "{file}");
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        let mut rows = 0;
        let mut footer = 0;
        for record in reader.byte_records() {
            let record = match record {
                Ok(record) => record,
                Err(error) => panic!("{file}: {error}"),
            };
            if record.iter().any(|cell| cell.contains(&b'@')) {
                rows += 1;
                assert_eq!(record.len(), columns, "{file}: {record:?}");
                assert!(
                    !sniff::is_footer_like(&record, columns, true, true),
                    "{file}"
                );
            } else if rows > 0 && !is_blank(&record) {
                // The blank lines between are not records here: each footer line is one
                // by its wording or by the footer line before it.
                assert!(
                    sniff::is_footer_like(&record, columns, false, footer > 0),
                    "{file}: {record:?}"
                );
                footer += 1;
            }
        }
        assert_eq!(rows, 4, "{file}: four people");
        assert_eq!(footer, footer_lines, "{file}");
    }
}

/// Which of UTF-8 and Windows-1252 a sample without a byte order mark is in.
#[test]
fn windows_1252_is_told_from_utf8_by_its_accents() {
    use super::decode::is_windows_1252;
    let cases: [(&str, &[u8], bool); 6] = [
        ("ASCII", b"email,name\na@b.c,Ann\n", false),
        ("UTF-8 accents", "a@b.c,Jürgen Zoë\n".as_bytes(), false),
        ("Windows-1252 accents", b"a@b.c,J\xfcrgen Zo\xeb\n", true),
        (
            "UTF-8 with two stray bytes among its accents",
            b"a@b.c,J\xc3\xbcrgen\nb@b.c,Ren\xe9 \xff\n",
            false,
        ),
        (
            "Windows-1252 with a pair that is valid UTF-8 (Ñ€, read as UTF-8: р)",
            b"a@b.c,\xd1\x80 J\xfcrgen Zo\xeb Fran\xe7ois\n",
            true,
        ),
        (
            "a character cut at the end of the sample",
            b"a@b.c,Ann\nb@b.c,J\xc3",
            false,
        ),
    ];
    for (case, sample, expected) in cases {
        let whole = !case.starts_with("a character cut");
        assert_eq!(is_windows_1252(sample, whole), expected, "case: {case}");
    }
    // Read through: the names are Windows-1252's.
    let input =
        b"email,churned_at,name\na@x.example,2025-06-30,\xd1\x80 J\xfcrgen Zo\xeb Fran\xe7ois\n";
    let (rows, summary) = read(input);
    assert_eq!(
        rows,
        vec![named(2, "a@x.example", "Ñ€ Jürgen Zoë François")]
    );
    assert_eq!(summary.encoding, Some(("windows-1252", true)));
}

/// A last row with one filled cell is a row, with its error, unless it is a footer line:
/// its one cell first, after a blank line or a footer line or in a footer's words.
#[test]
fn a_last_row_with_one_cell_is_a_row_unless_it_reads_as_a_footer() {
    type Case = (&'static str, &'static str, Vec<(u64, &'static str)>);
    let cases: [Case; 4] = [
        (
            "a name only, in its column",
            "email;churned_at;name;company;country\n\
             juergen@bergwerk.example;2025-06-30;J;;\n\
             ;;Carl Weber;;\n",
            vec![(3, "missing email; missing churned_at")],
        ),
        (
            "a mistyped address",
            "email,churned_at,name,company\n\
             juergen@bergwerk.example,2025-06-30,J,\n\
             bob(at)x.example,,,\n",
            vec![(
                3,
                "invalid email address \"bob(at)x.example\"; missing churned_at",
            )],
        ),
        (
            "a line after a blank line",
            "email,churned_at,name,company\n\
             juergen@bergwerk.example,2025-06-30,J,\n\
             \n\
             Acme Software Inc.,,,\n",
            vec![],
        ),
        (
            "a blank row of commas, then a line",
            "email,churned_at,name,company\n\
             juergen@bergwerk.example,2025-06-30,J,\n\
             ,,,\n\
             Acme Software Inc.\n",
            vec![],
        ),
    ];
    for (case, input, errors) in cases {
        let (rows, summary) = read(input.as_bytes());
        assert!(rows[0].is_ok(), "{case}: {rows:?}");
        let found: Vec<(u64, &str)> = rows[1..]
            .iter()
            .map(|row| match row {
                Err(error) => (error.line, error.reason.as_str()),
                Ok((line, _)) => (*line, "a row"),
            })
            .collect();
        assert_eq!(found, errors, "{case}");
        assert_eq!(
            summary.skipped_lines.len(),
            usize::from(errors.is_empty()),
            "{case}: {:?}",
            summary.skipped_lines
        );
    }
}

/// A report whose last footer line has no line break is read like one that has it; a
/// last line without one after the rows, or after footer lines but not a footer line
/// itself, is still refused as maybe cut short.
#[test]
fn a_reports_last_footer_line_without_a_line_break_is_footer() {
    let report = "\"email\",\"churned_at\",\"name\",\"Amount\"\n\
        \"zoe@atelier.example\",\"2025-06-30\",\"Zoë\",\"4,200.50\"\n\
        \n\
        \"Grand Totals (1 record)\"\n\
        \"\",\"\",\"\",\"4,200.50\"\n\
        \n\
        \"Confidential Information - Do Not Distribute\"\n\
        \"Acme Software Inc.\"";
    let (rows, summary) = read(report.as_bytes());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].is_ok(), "{rows:?}");
    let skipped: Vec<u64> = summary
        .skipped_lines
        .iter()
        .map(|(line, _)| *line)
        .collect();
    assert_eq!(skipped, vec![4, 5, 7, 8]);

    for (case, input, line) in [
        (
            "a row",
            "email,churned_at,name\nzoe@atelier.example,2025-06-30,Zo",
            2,
        ),
        (
            "a row after footer lines",
            "email,churned_at,name\nzoe@atelier.example,2025-06-30,Zo\n\nGrand Totals,,\nann@acme.example,2025-06-30,A",
            5,
        ),
    ] {
        let (rows, _) = read(input.as_bytes());
        let last = rows.last().cloned();
        assert_eq!(
            last,
            Some(Err(RowError {
                line,
                reason: UNTERMINATED.to_owned()
            })),
            "{case}: {rows:?}"
        );
    }
}

/// When no line is a header, the error told is the most header-like line's (the one with
/// the most cells), not the report title's before it: it lists the file's column names.
#[test]
fn a_header_error_after_title_lines_names_the_headers_columns() {
    let format = CsvFormat {
        columns: vec![(
            crate::config::clients::Field::ChurnedAt,
            "Close Date".to_owned(),
        )],
        ..CsvFormat::default()
    };
    let report = "\"Lost Opportunities\"\n\
        \n\
        \"Account Name\",\"Contact: Email\",\"Closed Date\"\n\
        \"Bergwerk\",\"juergen@bergwerk.example\",\"6/30/2025\"\n";
    let message = match read_rows(report.as_bytes(), now(), &format) {
        Err(ImportError::Header(message)) => message,
        Err(error) => panic!("not a header error: {error}"),
        Ok(_) => panic!("no column is Close Date: refused"),
    };
    for name in ["Account Name", "Contact: Email", "Closed Date"] {
        assert!(message.contains(name), "{name}: {message}");
    }
    assert!(!message.contains("Lost Opportunities"), "{message}");
}

/// Excel's trailing delimiter: an empty last header cell and rows with one more empty
/// cell read as if it were not there; a value under the nameless column is an error.
#[test]
fn a_trailing_delimiter_after_the_header_and_rows_is_read_through() {
    for (case, input) in [
        (
            "on every line",
            "email;churned_at;name;\nzoe@atelier.example;2025-06-30;Zoë;\n",
        ),
        (
            "on every line, CRLF",
            "email;churned_at;name;\r\nzoe@atelier.example;2025-06-30;Zoë;\r\n",
        ),
        (
            "on the rows only",
            "email;churned_at;name\nzoe@atelier.example;2025-06-30;Zoë;\n",
        ),
        (
            "on the header only",
            "email;churned_at;name;\nzoe@atelier.example;2025-06-30;Zoë\n",
        ),
    ] {
        let (rows, summary) = read(input.as_bytes());
        assert_eq!(rows, vec![named(2, "zoe@atelier.example", "Zoë")], "{case}");
        assert_eq!(summary.delimiter, Some((b';', true)), "{case}");
    }
    let input = "email;churned_at;name;\nzoe@atelier.example;2025-06-30;Zoë;x\n";
    let (rows, _) = read(input.as_bytes());
    assert_eq!(
        rows,
        vec![Err(RowError {
            line: 2,
            reason: "expected 3 fields (one per header column), found 4".to_owned()
        })]
    );
}
