//! Property tests for the CSV reader: any bytes are read without a panic, the same way
//! however the input is split across reads, and rows written by a CSV writer (quotes,
//! commas, line breaks inside values, any column order, CRLF) read back as written, each
//! on the line it starts on.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone};
use proptest::prelude::*;

use chrono_tz::Tz;

use super::columns::is_recognised;
use super::*;
use crate::domain::model::ChurnedAt;

/// The columns winback reads that these rows fill.
const KNOWN: [&str; 7] = [
    "email",
    "churned_at",
    "name",
    "first_name",
    "company",
    "churn_reason",
    "timezone",
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// Hands the input over in pieces of the given sizes (cycling), never more than asked.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Outcome = Result<Vec<Result<(u64, ClientRecord), RowError>>, String>;

fn read_all<R: Read>(reader: R) -> Outcome {
    let rows = read_rows(reader, now(), &crate::config::CsvFormat::default())
        .map_err(|error| error.to_string())?;
    Ok(rows.collect())
}

/// A pipe whose writer sent the byte order mark on its own: the CSV parser strips a BOM
/// from its first buffer only, and took a first buffer that held nothing else for the
/// end of the file ("the file is empty").
#[test]
fn a_byte_order_mark_read_on_its_own_is_not_the_end_of_the_file() {
    let file = "\u{feff}email,churned_at\nann@x.example,2026-01-31\n";
    let expected = read_all(file.as_bytes());
    assert!(
        matches!(&expected, Ok(rows) if rows.len() == 1 && rows[0].is_ok()),
        "{expected:?}"
    );
    for sizes in [
        vec![3],
        vec![3, 1],
        vec![3, 64],
        vec![1, 2, 64],
        vec![2, 1, 64],
    ] {
        let pieces = Pieces {
            data: file.as_bytes(),
            sizes: sizes.clone(),
            next: 0,
        };
        assert_eq!(read_all(pieces), expected, "reads of {sizes:?}");
    }
}

/// Text a CSV might hold: separators, quotes, line breaks, a BOM and the known column
/// names among arbitrary bytes.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => "[a-z0-9@.]{1,6}".prop_map(String::into_bytes),
        3 => prop::sample::select(vec![
            ",", "\"", "\n", "\r\n", "\r", " ", ";", "\t", "\u{feff}", "é", "email", "churned_at",
            "name", "first_name", "company", "churn_reason", "timezone", "2026-01-31",
            "2026-01-01T10:00:00Z", "Europe/Paris", "a@x.example", "we_ended", "\"\"",
            "Contact: Email", "Close Date", "Last Name", "Country", "returned_at", "Email 2",
            "DE", "Deutschland", "Preis zu hoch", "\u{dc}bernahme", "07/14/2025", "14.07.2025",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ];
    let header = prop::sample::select(vec![
        "",
        "email,churned_at\n",
        "email,churned_at,name,first_name,company,churn_reason,timezone,plan\n",
        "Contact: Email,Close Date,First Name,Last Name,Country,Lost Reason,returned_at,Email 2\n",
    ]);
    (header, prop::collection::vec(piece, 0..40)).prop_map(|(header, pieces)| {
        let mut bytes = header.as_bytes().to_vec();
        for piece in pieces {
            bytes.extend(piece);
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn any_bytes_are_read_the_same_way_in_any_pieces(
        bytes in prop_oneof![csv_bytes(), prop::collection::vec(any::<u8>(), 0..200)],
        sizes in prop::collection::vec(1usize..9, 1..4),
    ) {
        let whole = read_all(bytes.as_slice());
        let pieces = read_all(Pieces { data: &bytes, sizes, next: 0 });
        prop_assert_eq!(&whole, &pieces);
        if let Ok(rows) = whole {
            let lines: Vec<u64> = rows
                .iter()
                .map(|row| match row {
                    Ok((line, _)) => *line,
                    Err(error) => error.line,
                })
                .collect();
            prop_assert!(lines.iter().all(|&line| line >= 2), "{:?}", lines);
            prop_assert!(lines.windows(2).all(|pair| pair[0] < pair[1]), "{:?}", lines);
            let breaks = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            prop_assert!(lines.iter().all(|&line| line <= breaks + 1), "{:?}", lines);
        }
    }
}

/// One row as generated: the record it must read back as, and the custom values.
#[derive(Debug, Clone)]
struct Row {
    email: String,
    churned_at: ChurnedAt,
    name: Option<String>,
    first_name: Option<String>,
    company: Option<String>,
    churn_reason: Option<String>,
    timezone: Option<Tz>,
    custom: Vec<String>,
}

/// Header text as people type it (no control characters, no line separators), trimmed.
fn header_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => "[A-Za-z ,.'\"&-]{1,20}".prop_map(Some),
        1 => "[^\\p{Cc}\u{2028}\u{2029}]{1,12}".prop_map(Some),
    ]
    .prop_map(|text| text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
}

fn churned_at() -> impl Strategy<Value = ChurnedAt> {
    (0i64..13_000, 0i64..86_400, any::<bool>()).prop_map(|(days, seconds, bare)| {
        let day = now().date_naive() - Duration::days(days + 1);
        if bare {
            ChurnedAt::Date(day)
        } else {
            ChurnedAt::Instant(
                day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::seconds(seconds),
            )
        }
    })
}

fn row(custom: usize) -> impl Strategy<Value = Row> {
    (
        (
            "[a-z0-9][a-z0-9._+-]{0,10}@[a-z0-9]{1,8}\\.[a-z]{2,4}",
            churned_at(),
            header_text(),
            header_text(),
            header_text(),
        ),
        (
            prop::option::of("[a-z0-9_-]{1,12}"),
            prop::option::of(prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec())),
            prop::collection::vec(
                "[^\r\n]{0,10}|[a-z ]{0,5}(\r?\n[a-z ,\"]{0,5}){1,2}",
                custom,
            ),
        ),
    )
        .prop_map(
            |((email, churned_at, name, first_name, company), (churn_reason, timezone, custom))| {
                Row {
                    email,
                    churned_at,
                    name,
                    first_name,
                    company,
                    churn_reason,
                    timezone,
                    custom: custom
                        .into_iter()
                        .map(|value| value.trim().to_owned())
                        .collect(),
                }
            },
        )
}

fn file() -> impl Strategy<Value = (Vec<String>, Vec<Row>)> {
    prop::collection::btree_set("[a-z][a-z0-9_]{0,8}", 0..3)
        .prop_map(|names: BTreeSet<String>| {
            names
                .into_iter()
                .filter(|name| !is_recognised(name))
                .collect::<Vec<_>>()
        })
        .prop_flat_map(|custom| {
            let rows = prop::collection::vec(row(custom.len()), 0..8);
            (Just(custom), rows)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn written_rows_read_back_on_the_lines_they_start(
        (custom, rows) in file(),
        order in any::<prop::sample::Index>(),
        crlf in any::<bool>(),
        quote_all in any::<bool>(),
    ) {
        let mut columns: Vec<String> = KNOWN.iter().map(|name| name.to_string()).collect();
        columns.extend(custom.iter().cloned());
        // One of the column orders: a rotation.
        let turn = order.index(columns.len());
        columns.rotate_left(turn);
        let mut writer = csv::WriterBuilder::new()
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .quote_style(if quote_all { csv::QuoteStyle::Always } else { csv::QuoteStyle::Necessary })
            .from_writer(Vec::new());
        writer.write_record(&columns).unwrap();
        let mut expected = Vec::new();
        let mut line = 2u64;
        for row in &rows {
            let value = |column: &str| -> String {
                match column {
                    "email" => row.email.clone(),
                    "churned_at" => row.churned_at.to_string(),
                    "name" => row.name.clone().unwrap_or_default(),
                    "first_name" => row.first_name.clone().unwrap_or_default(),
                    "company" => row.company.clone().unwrap_or_default(),
                    "churn_reason" => row.churn_reason.clone().unwrap_or_default(),
                    "timezone" => row.timezone.map(|tz| tz.name().to_owned()).unwrap_or_default(),
                    other => {
                        let at = custom.iter().position(|name| name == other).unwrap();
                        row.custom[at].clone()
                    }
                }
            };
            let values: Vec<String> = columns.iter().map(|column| value(column)).collect();
            writer.write_record(&values).unwrap();
            expected.push((
                line,
                ClientRecord {
                    email: row.email.clone(),
                    name: row.name.clone(),
                    first_name: row.first_name.clone(),
                    company: row.company.clone(),
                    churned_at: row.churned_at,
                    churn_reason: row.churn_reason.clone(),
                    timezone: row.timezone,
                    fields: custom.iter().cloned().zip(row.custom.iter().cloned()).collect(),
                    country: None,
                    returned_at: None,
                    opted_out: false,
                },
            ));
            line += 1 + values.iter().map(|v| v.matches('\n').count() as u64).sum::<u64>();
        }
        let bytes = writer.into_inner().unwrap();
        let read = read_all(bytes.as_slice());
        let read: Vec<_> = match read {
            Ok(rows) => rows,
            Err(error) => return Err(TestCaseError::fail(error)),
        };
        let read: Result<Vec<_>, _> = read.into_iter().collect();
        prop_assert_eq!(read, Ok(expected), "{}", String::from_utf8_lossy(&bytes));
    }
}
