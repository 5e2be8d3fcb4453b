//! A list of addresses from a file, for `optout --file`, `returned --file` and
//! `[clients] customers_file`: one address per line, or a CSV export with an email column.
//! Each address is read as an imported one is (`parse_address`: quotes, `Name <addr>`,
//! case and spaces); each bad line is named with its number and what to write instead.
//!
//! Reads and validates only: what the addresses are for is the caller's. No database, no
//! clock.

use std::collections::HashSet;
use std::path::Path;

use crate::config::{CsvFormat, Field, normalize_header};
use crate::domain::model::{AddressError, RowError, parse_address, printable};
use crate::import::csv::names_email;

/// How an email column's header is spelt by the CRMs and spreadsheets people export
/// from, as [`normalize_header`] makes them.
const EMAIL_HEADERS: [&str; 10] = [
    "email",
    "emailaddress",
    "mail",
    "contact:email",
    "contactemail",
    "personemail",
    "primaryemail",
    "workemail",
    "emailadresse",
    "adresseemail",
];

/// How many non-blank lines a report's title may take before its header.
const HEADER_SEARCH_LINES: usize = 20;

/// The addresses a list file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AddressList {
    /// Each valid address once, normalized, in file order.
    pub addresses: Vec<String>,
    /// The lines that are not one valid address, in file order.
    pub invalid: Vec<RowError>,
    /// The header of the column addresses were read from, for a CSV file.
    pub column: Option<String>,
    /// Addresses given again on a later line (counted once).
    pub repeated: u64,
}

/// Why a list file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Content { path: String, reason: String },
}

/// Reads the list in `path`; `format` is `[clients]`'s (its `columns.email`, `encoding`
/// and `delimiter`, if set, are used).
pub(crate) fn read_list_file(path: &Path, format: &CsvFormat) -> Result<AddressList, ListError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ListError::Read {
        path: shown.clone(),
        source,
    })?;
    read_list(&bytes, format).map_err(|reason| ListError::Content {
        path: shown,
        reason,
    })
}

/// Reads a list from its bytes: UTF-8 (a BOM is dropped), UTF-16 with a BOM, else each
/// line UTF-8 if it is valid UTF-8 and Windows-1252 if not, unless `format` forces an encoding. A first line that names an email
/// column makes it a CSV file; otherwise every line is one address.
pub(crate) fn read_list(bytes: &[u8], format: &CsvFormat) -> Result<AddressList, String> {
    let text = decode(bytes, format);
    let Some((first_index, first)) = text
        .split('\n')
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty())
    else {
        return Err(
            "the file is empty: write one address per line, such as jane@example.com".to_owned(),
        );
    };
    // A report's title lines come before its header: the header is the first of the
    // first lines that names an email column (unless the file starts with an address).
    let header = if parse_address(first).is_ok() {
        None
    } else {
        text.split('\n')
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .take(HEADER_SEARCH_LINES)
            .find_map(|(index, line)| {
                email_column(line, format)
                    .map(|(delimiter, column, header)| (index, delimiter, column, header))
            })
    };
    if let Some((index, delimiter, column, header)) = header {
        return read_csv(&text, delimiter, column, header, index as u64 + 1);
    }
    match email_column(first, format) {
        Some((delimiter, column, header)) => {
            read_csv(&text, delimiter, column, header, first_index as u64 + 1)
        }
        None if parse_address(first).is_err() && looks_like_a_header(first, format) => {
            Err(format!(
                "the first line {:?} names no email column: name the column with the \
                 addresses `email` (or set [clients] columns.email to its name), or give one \
                 address per line",
                printable(first.trim())
            ))
        }
        None => Ok(read_lines(&text)),
    }
}

fn decode<'a>(bytes: &'a [u8], format: &CsvFormat) -> std::borrow::Cow<'a, str> {
    if let Some(encoding) = format.encoding {
        return encoding.decode_with_bom_removal(bytes).0;
    }
    if let Some((encoding, _)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding.decode_with_bom_removal(bytes).0;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(decode_line_by_line(bytes)),
    }
}

/// A file that is not UTF-8 as a whole may still be mostly UTF-8: lists pasted together
/// from two exports mix both. Each line that is valid UTF-8 is read as UTF-8, every
/// other as Windows-1252, so no address is garbled by its neighbours.
fn decode_line_by_line(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + bytes.len() / 8);
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        if index > 0 {
            text.push('\n');
        }
        match std::str::from_utf8(line) {
            Ok(line) => text.push_str(line),
            Err(_) => text.push_str(
                &encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(line)
                    .0,
            ),
        }
    }
    text
}

/// The delimiters a header is tried with: the one `format` forces, else the usual ones.
fn delimiters(format: &CsvFormat) -> Vec<u8> {
    match format.delimiter {
        Some(delimiter) => vec![delimiter],
        None => vec![b',', b';', b'\t'],
    }
}

fn cells(line: &str, delimiter: u8) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // Records end at `\n` only: with `\r\n` csv's line counter falls behind. A `\r`
        // left at the end of the last cell is trimmed with the rest.
        .terminator(csv::Terminator::Any(b'\n'))
        .delimiter(delimiter)
        .from_reader(line.as_bytes());
    reader
        .records()
        .next()
        .and_then(Result::ok)
        .map(|record| record.iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The delimiter, index and header of the email column, if `line` is a header naming
/// one: the column `[clients] columns.email` names, else a usual spelling of it.
fn email_column(line: &str, format: &CsvFormat) -> Option<(u8, usize, String)> {
    let mapped = format
        .columns
        .iter()
        .find(|(field, _)| *field == Field::Email)
        .map(|(_, header)| normalize_header(header));
    let split: Vec<(u8, Vec<String>)> = delimiters(format)
        .into_iter()
        .map(|delimiter| (delimiter, cells(line, delimiter)))
        .collect();
    let find = |wanted: &dyn Fn(&str) -> bool| {
        split.iter().find_map(|(delimiter, cells)| {
            let index = cells
                .iter()
                .position(|cell| wanted(&normalize_header(cell)))?;
            Some((*delimiter, index, cells[index].trim().to_owned()))
        })
    };
    mapped
        .and_then(|mapped| find(&|name| name == mapped))
        .or_else(|| find(&|name| EMAIL_HEADERS.contains(&name)))
        .or_else(|| {
            split.iter().find_map(|(delimiter, cells)| {
                let index = cells.iter().position(|cell| names_email(cell))?;
                Some((*delimiter, index, cells[index].trim().to_owned()))
            })
        })
}

/// Whether `line` has several cells: a header without an email column, not an address.
fn looks_like_a_header(line: &str, format: &CsvFormat) -> bool {
    delimiters(format)
        .into_iter()
        .any(|delimiter| cells(line, delimiter).len() > 1)
}

fn reason(raw: &str, error: AddressError, csv: bool) -> String {
    let hint = if csv {
        "write one address in the cell, such as jane@example.com"
    } else {
        "write one address per line, such as jane@example.com"
    };
    match error {
        AddressError::Missing => format!("no address ({hint})"),
        AddressError::Invalid => format!(
            "{:?} is not one valid email address ({hint})",
            printable(raw.trim())
        ),
    }
}

/// Keeps each address once.
#[derive(Default)]
struct Collector {
    list: AddressList,
    seen: HashSet<String>,
}

impl Collector {
    fn take(&mut self, line: u64, raw: &str, csv: bool) {
        match parse_address(raw) {
            Ok(address) => {
                if self.seen.insert(address.clone()) {
                    self.list.addresses.push(address);
                } else {
                    self.list.repeated += 1;
                }
            }
            Err(error) => self.list.invalid.push(RowError {
                line,
                reason: reason(raw, error, csv),
            }),
        }
    }
}

/// One address per line; blank lines are skipped.
fn read_lines(text: &str) -> AddressList {
    let mut collector = Collector::default();
    for (index, line) in text.split('\n').enumerate() {
        if !line.trim().is_empty() {
            collector.take(index as u64 + 1, line, false);
        }
    }
    collector.list
}

/// A CSV file whose header is on line `header_line`; rows whose cells are all empty are
/// skipped.
fn read_csv(
    text: &str,
    delimiter: u8,
    column: usize,
    header: String,
    header_line: u64,
) -> Result<AddressList, String> {
    let mut collector = Collector::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // Records end at `\n` only: with `\r\n` csv's line counter falls behind. A `\r`
        // left at the end of the last cell is trimmed with the rest.
        .terminator(csv::Terminator::Any(b'\n'))
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    // A report's footer (`Grand Totals (4 records)`, a totals row, `Confidential
    // Information`) follows its data: from a line with one cell only, rows without an
    // address are held back, and read as rows only if an address follows them.
    let mut footer: Option<Vec<(u64, String)>> = None;
    let header_cells = text
        .split('\n')
        .nth((header_line as usize).saturating_sub(1))
        .map_or(0, |line| cells(line, delimiter).len());
    // csv's own line counter falls behind after blank lines it skips: a record's line is
    // counted from where it starts (its position is where the previous one ended, before
    // the blank lines), newlines counted once as the reading moves.
    let (mut counted_to, mut counted_lines) = (0usize, 1u64);
    let mut line_at = |byte: usize| {
        let mut byte = byte.min(text.len());
        while matches!(text.as_bytes().get(byte), Some(b'\n' | b'\r')) {
            byte += 1;
        }
        if byte > counted_to {
            let newlines = text.as_bytes()[counted_to..byte]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted_lines += newlines as u64;
            counted_to = byte;
        }
        counted_lines
    };
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| line_at(p.byte() as usize));
                return Err(format!("line {line}: {error}"));
            }
        };
        let line = record.position().map_or(0, |p| line_at(p.byte() as usize));
        if line <= header_line || record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let raw = record.get(column).unwrap_or("");
        let footer_like = record.len() == 1 && header_cells > 1 && column > 0;
        if raw.trim().is_empty() || footer_like {
            if let Some(held) = footer.as_mut() {
                held.push((line, raw.to_owned()));
                continue;
            }
            if footer_like {
                footer = Some(vec![(line, raw.to_owned())]);
                continue;
            }
        }
        for (held_line, held_raw) in footer.take().unwrap_or_default() {
            collector.take(held_line, &held_raw, true);
        }
        collector.take(line, raw, true);
    }
    collector.list.column = Some(header);
    Ok(collector.list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> AddressList {
        read_list(text.as_bytes(), &CsvFormat::default()).unwrap()
    }

    #[test]
    fn one_address_per_line_is_read_as_an_import_reads_it() {
        let list = read(
            "ann@x.example\n\n  \"Bob@X.example\" \r\nCara Smith <cara@x.example>\nnot an address\nann@x.example\n",
        );
        assert_eq!(
            list.addresses,
            ["ann@x.example", "bob@x.example", "cara@x.example"]
        );
        assert_eq!(list.repeated, 1);
        assert_eq!(list.column, None);
        assert_eq!(list.invalid.len(), 1);
        assert_eq!(list.invalid[0].line, 5);
        assert!(
            list.invalid[0]
                .reason
                .starts_with("\"not an address\" is not one valid email address"),
            "{:?}",
            list.invalid
        );
    }

    #[test]
    fn a_csv_export_is_read_from_its_email_column() {
        let list = read(
            "First Name;E-Mail;Company\nAnn;ann@x.example;\"Acme; Inc\"\n;;\nBob;;Globex\nCara;CARA@x.example;\n",
        );
        assert_eq!(list.column.as_deref(), Some("E-Mail"));
        assert_eq!(list.addresses, ["ann@x.example", "cara@x.example"]);
        assert_eq!(list.invalid.len(), 1);
        assert_eq!(list.invalid[0].line, 4);
        assert!(list.invalid[0].reason.starts_with("no address"));

        // The column the configuration maps.
        let format = CsvFormat {
            columns: vec![(Field::Email, "Contact: Email".to_string())],
            ..CsvFormat::default()
        };
        let list = read_list(b"Name,Contact: Email\nAnn,ann@x.example\n", &format).unwrap();
        assert_eq!(list.addresses, ["ann@x.example"]);
        // A list with the usual header is still read with a mapping set.
        let list = read_list(b"email\nann@x.example\n", &format).unwrap();
        assert_eq!(list.addresses, ["ann@x.example"]);
    }

    #[test]
    fn a_report_is_read_from_its_header_to_its_footer_as_an_import_reads_it() {
        let report = include_bytes!("../../tests/fixtures/crm/salesforce-report-us.csv");
        let list = read_list(report, &CsvFormat::default()).unwrap();
        assert_eq!(list.column.as_deref(), Some("Contact: Email"));
        assert_eq!(list.addresses.len(), 4, "{list:?}");
        assert_eq!(list.invalid, [], "{list:?}");

        let pipedrive = "Deal - Title,Person - Email - Work\nRenewal,ann@x.example\n";
        let list = read_list(pipedrive.as_bytes(), &CsvFormat::default()).unwrap();
        assert_eq!(list.addresses, ["ann@x.example"]);
        // A row without an address before more data is still named.
        let list = read("Name,Email\nAnn,\nTotal\nBob,bob@x.example\n");
        let lines: Vec<u64> = list.invalid.iter().map(|error| error.line).collect();
        assert_eq!(lines, [2, 3], "{list:?}");
        assert_eq!(list.addresses, ["bob@x.example"]);
    }

    #[test]
    fn a_bad_line_after_blank_lines_is_named_by_its_own_number() {
        let list = read(
            "\n\"Do not contact\"\n\nName,Email\n\nAnn,ann@x.example\n\n\nBob,bob(at)x.example\n",
        );
        let lines: Vec<u64> = list.invalid.iter().map(|error| error.line).collect();
        assert_eq!(lines, [9], "{list:?}");
        assert_eq!(list.addresses, ["ann@x.example"]);
    }

    #[test]
    fn a_header_without_an_email_column_and_an_empty_file_are_refused() {
        let error = read_list(b"name,company\nAnn,Acme\n", &CsvFormat::default()).unwrap_err();
        assert!(error.contains("names no email column"), "{error}");
        let error = read_list(b"\n \n", &CsvFormat::default()).unwrap_err();
        assert!(error.starts_with("the file is empty"), "{error}");
    }

    #[test]
    fn utf16_and_windows_1252_lists_are_read() {
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "email\r\nzoë@x.example\r\n".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let list = read_list(&utf16, &CsvFormat::default()).unwrap();
        assert_eq!(list.addresses, ["zoë@x.example"], "{list:?}");
        // Lines pasted from a UTF-8 export next to Windows-1252 ones keep their accents.
        let mixed = b"email\nzo\xc3\xab@x.example\nj\xfcrgen@x.example\n";
        assert_eq!(
            read_list(mixed, &CsvFormat::default()).unwrap().addresses,
            ["zoë@x.example", "jürgen@x.example"]
        );
        let latin = b"J\xfcrgen <juergen@x.example>\n";
        assert_eq!(
            read_list(latin, &CsvFormat::default()).unwrap().addresses,
            ["juergen@x.example"]
        );
    }
}

#[cfg(test)]
mod proptests;
