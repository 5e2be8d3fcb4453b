//! Reads former-client CSV files: a streaming, validating parser that turns each row into
//! a [`ClientRecord`], or into a [`RowError`] that names the row's line and what to fix.
//! It owns the file format's rules (columns, email syntax, dates, time zones, churn-reason
//! slugs, header-safe names) and which lines of a CRM export are data (a report's title
//! lines and footer are not), and keeps memory bounded however large or broken the file
//! is. It must not touch the database or read the clock: the caller passes `now` and
//! decides what to do with bad rows.

mod columns;
mod decode;
mod sniff;
mod summary;
mod values;

pub(crate) use columns::names_email;
pub(crate) use summary::ReadSummary;

use std::collections::VecDeque;
use std::io::{self, Read};

use chrono::{DateTime, NaiveDate, Utc};
use csv::{ByteRecord, Position};

use crate::config::CsvFormat;
use crate::domain::model::{ClientRecord, RECORD_TOO_LONG, RowError, UNREADABLE_REST};
use columns::{Columns, EMPTY_FILE};
use decode::Source;

const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Why a last line without its line break is never imported: a file read while it is
/// being written ends that way, and its last row may be cut inside a value (`we_ended`
/// read as `we`, a valid reason). Every complete file ends with a line break.
const UNTERMINATED: &str = "this last line does not end with a line break, so the file may \
     have been cut short while it was being written; if the file is complete, add a line \
     break at its end (or export it again)";
/// A row with bytes that are not UTF-8 in a file read as UTF-8: its start was UTF-8 (or
/// `[clients] encoding` said so), so the row is held rather than guessed at.
const NOT_UTF8_ROW: &str = "this line has characters that are not UTF-8, though the start of \
     the file is: the file was probably saved by Excel or an older CRM in Windows' own \
     encoding; write encoding = \"windows-1252\" under [clients] in the configuration (or \
     save the file again as \"CSV UTF-8\")";

/// A row with bytes that are not UTF-8 in a file that has UTF-8 characters before it:
/// the file mixes two encodings, and no setting reads both.
const MIXED_ENCODINGS_ROW: &str = "this line has characters that are not UTF-8, though the \
     file has UTF-8 ones before it: the file mixes two encodings (rows pasted in from another \
     file?); correct the accented letters on this line, or save the file again as \
     \"CSV UTF-8\"";

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error("could not read the file: {0}")]
    Io(#[from] io::Error),
    /// A header problem, as a sentence for the operator (who may not be a programmer).
    #[error("{0}")]
    Header(String),
}

type Row = Result<(u64, ClientRecord), RowError>;

/// The validated rows of a file, read one at a time.
///
/// Yields `(line, record)` for good rows and a [`RowError`] for bad ones; reading goes on
/// after a bad row. Blank lines and rows whose fields are all empty are skipped, and so
/// are footer lines after the last row (see [`sniff::is_footer_like`]). A read failure
/// (or a record longer than 1 MiB) is yielded once as a [`RowError`], then the iterator
/// ends. `reader` is buffered internally: a `BufReader` around it is not needed.
pub(crate) struct Rows<R> {
    reader: csv::Reader<Source<R>>,
    /// Reused for every record: the parser allocates nothing per row but the record itself.
    record: ByteRecord,
    columns: Columns,
    /// Columns in the header line: footer lines are told apart in files of several.
    header_len: usize,
    delimiter: u8,
    now: DateTime<Utc>,
    /// The latest bare `churned_at` date that is not in the future: somewhere on Earth it
    /// may already be the day after `now`'s UTC date.
    latest_date: Option<NaiveDate>,
    bytes_read: u64,
    finished: bool,
    /// Lines that look like a footer, held until a row follows them (then they are rows,
    /// and their errors are yielded) or the file ends (then they are skipped and named).
    held: Vec<(u64, ByteRecord)>,
    /// The record being read follows a blank line (a footer is set apart by one).
    after_blank: bool,
    /// Rows ready to be yielded before the next read: held lines and the row after them.
    ready: VecDeque<Row>,
    /// What reading found out about the file, for the import's summary.
    summary: ReadSummary,
}

impl<R: Read> Rows<R> {
    /// What reading found out about the file; complete once every row was read.
    pub(crate) fn into_summary(self) -> ReadSummary {
        let mut summary = self.summary;
        if self.reader.get_ref().switched_to_windows_1252 {
            summary.encoding = Some((encoding_rs::WINDOWS_1252.name(), true));
            summary.warnings.push(
                "the start of the file is plain ASCII and its first accented letter further \
                 on is not UTF-8, so the file was read as windows-1252 (as Excel and older \
                 CRMs save it); check an accented name with winback export"
                    .to_owned(),
            );
        }
        summary.warnings.extend(self.columns.row_warnings());
        summary
    }

    #[cfg(test)]
    /// Bytes consumed from the input so far, header included: compare with the file's
    /// length for a progress bar.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

/// Chooses the encoding and delimiter (from the start of the file, unless `format` sets
/// them), finds the header line (the first of the first non-blank lines whose column
/// names can be read: a report's title lines before it are skipped), and returns the
/// rows, unread.
pub(crate) fn read_rows<R: Read>(
    reader: R,
    now: DateTime<Utc>,
    format: &CsvFormat,
) -> Result<Rows<R>, ImportError> {
    let (source, chosen) = Source::open(reader, format.encoding)?;
    if chosen.set_but_utf8 {
        return Err(ImportError::Header(format!(
            "the file is saved as UTF-8, but [clients] encoding = \"{}\" is set: its \
             accented letters would be read wrong (Zoë as ZoÃ«); remove the encoding line \
             under [clients] in the configuration",
            chosen.encoding.name().to_lowercase()
        )));
    }
    let mut summary = ReadSummary {
        encoding: Some((chosen.encoding.name(), chosen.detected)),
        ..ReadSummary::default()
    };
    if let Some(set) = chosen.overridden {
        summary.warnings.push(format!(
            "the file starts with a {} byte order mark, so it was read as {}, not as the {} \
             set by [clients] encoding",
            chosen.encoding.name(),
            chosen.encoding.name(),
            set.name()
        ));
    }
    let (delimiter, detected) = match format.delimiter {
        Some(delimiter) => (delimiter, false),
        None => {
            let (sample, whole) = source.sample();
            let is_header = |record: &ByteRecord| {
                let mut record = record.clone();
                drop_empty_last_cell(&mut record);
                Columns::from_header(&record, format).is_ok()
            };
            (
                sniff::delimiter(sample, whole, is_header).unwrap_or(b','),
                true,
            )
        }
    };
    summary.delimiter = Some((delimiter, detected));
    // Every record ends at a `\n`: with `\r` as a terminator too, csv's line counter falls
    // behind in CRLF files. A `\r` before the `\n` stays in the last field, and every value
    // is trimmed; a CRLF blank line becomes a blank record, which is skipped.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(READ_BUFFER_BYTES)
        .from_reader(source);
    let mut record = ByteRecord::new();
    // The error of the most header-like line (the most filled cells, the first of those):
    // a report's title lines come before its header, and the header's error is the useful one.
    let mut best_error: Option<(usize, String)> = None;
    let mut tried = 0;
    let columns = loop {
        let before = reader.position().clone();
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(error) => {
                if reader.get_ref().record_too_long {
                    return Err(ImportError::Header(
                        "the first line is longer than 1 MiB: this is not a CSV file, or its \
                         line breaks are old Mac ones (CR only); save it again as \"CSV UTF-8\""
                            .to_owned(),
                    ));
                }
                // Only I/O errors can happen here (records are flexible and read as bytes).
                let message = error.to_string();
                return Err(match error.into_kind() {
                    csv::ErrorKind::Io(error) => ImportError::Io(error),
                    _ => ImportError::Header(message),
                });
            }
        };
        if !more {
            return Err(ImportError::Header(
                best_error.map_or_else(|| EMPTY_FILE.to_owned(), |(_, error)| error),
            ));
        }
        let line = start_line(&reader, &record, &before);
        reader.get_mut().record_start = reader.position().byte();
        if is_blank(&record) {
            continue;
        }
        drop_empty_last_cell(&mut record);
        match Columns::from_header(&record, format) {
            Ok(columns) => break columns,
            Err(error) => {
                let filled = record
                    .iter()
                    .filter(|cell| !cell.iter().all(u8::is_ascii_whitespace))
                    .count();
                if best_error.as_ref().is_none_or(|(most, _)| filled > *most) {
                    best_error = Some((filled, error));
                }
                tried += 1;
                if tried == sniff::MAX_LINES_BEFORE_HEADER {
                    let error = best_error.map(|(_, error)| error).unwrap_or_default();
                    return Err(ImportError::Header(error));
                }
                summary
                    .skipped_lines
                    .push((line, sniff::shown(&record, delimiter)));
            }
        }
    };
    summary.columns = columns.used().to_vec();
    summary.warnings.extend(columns.warnings().iter().cloned());
    let bytes_read = reader.position().byte();
    reader.get_mut().record_start = bytes_read;
    Ok(Rows {
        reader,
        header_len: record.len(),
        record,
        columns,
        delimiter,
        now,
        latest_date: now.date_naive().succ_opt(),
        bytes_read,
        finished: false,
        held: Vec::new(),
        after_blank: false,
        ready: VecDeque::new(),
        summary,
    })
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Row;

    fn next(&mut self) -> Option<Self::Item> {
        let row = self.next_row()?;
        if let Ok((_, client)) = &row {
            self.summary.saw_reason(client.churn_reason.as_deref());
        }
        Some(row)
    }
}

impl<R: Read> Rows<R> {
    /// The next row, footer lines held back until it is known what they are.
    fn next_row(&mut self) -> Option<Row> {
        if let Some(row) = self.ready.pop_front() {
            return Some(row);
        }
        while !self.finished {
            let before = self.reader.position().clone();
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    self.bytes_read = self.reader.position().byte();
                    // Nothing followed them: a footer, not rows.
                    for (line, record) in std::mem::take(&mut self.held) {
                        let text = sniff::shown(&record, self.delimiter);
                        self.summary.skipped_lines.push((line, text));
                    }
                    return None;
                }
                Err(error) => {
                    self.finished = true;
                    let reason = if self.reader.get_ref().record_too_long {
                        format!(
                            "{RECORD_TOO_LONG}: a closing quote (\") is probably missing; nothing \
                             after it was read"
                        )
                    } else {
                        format!("{UNREADABLE_REST}: {error}")
                    };
                    let line = before.line();
                    return self.after_held(Err(RowError { line, reason }));
                }
            }
            let line = start_line(&self.reader, &self.record, &before);
            self.bytes_read = self.reader.position().byte();
            self.reader.get_mut().record_start = self.bytes_read;
            if is_blank(&self.record) {
                self.after_blank = true;
                continue;
            }
            let after_blank = std::mem::take(&mut self.after_blank) || line > before.line();
            let after_footer = !self.held.is_empty();
            if ended_with_file(&self.reader) {
                // A report's last footer line often has no line break: after footer lines,
                // a line that is one too ends the report, not a row cut short.
                if after_footer
                    && sniff::is_footer_like(&self.record, self.header_len, after_blank, true)
                {
                    self.held.push((line, self.record.clone()));
                    continue;
                }
                return self.after_held(Err(RowError {
                    line,
                    reason: UNTERMINATED.to_owned(),
                }));
            }
            if sniff::is_footer_like(&self.record, self.header_len, after_blank, after_footer) {
                self.held.push((line, self.record.clone()));
                continue;
            }
            // Excel's trailing delimiter (`a@b.c;2026-01-01;`): one empty cell past the header.
            if self.record.len() == self.header_len + 1 {
                drop_empty_last_cell(&mut self.record);
            }
            let row = self.parse(line, &self.record);
            return self.after_held(row);
        }
        None
    }
}

impl<R: Read> std::iter::FusedIterator for Rows<R> {}

impl<R: Read> Rows<R> {
    fn parse(&self, line: u64, record: &ByteRecord) -> Row {
        match self.columns.parse(line, record, self.now, self.latest_date) {
            Ok(client) => Ok((line, client)),
            Err(_) if std::str::from_utf8(record.as_slice()).is_err() => Err(RowError {
                line,
                reason: if self.summary.encoding == Some(("UTF-8", true)) {
                    MIXED_ENCODINGS_ROW.to_owned()
                } else {
                    NOT_UTF8_ROW.to_owned()
                },
            }),
            Err(reason) => Err(RowError { line, reason }),
        }
    }

    /// `row`, after the held lines that came before it: a row followed them, so they are
    /// rows too (in the middle of the data, a line with one cell is a row with an error).
    fn after_held(&mut self, row: Row) -> Option<Row> {
        if self.held.is_empty() {
            return Some(row);
        }
        for (line, record) in std::mem::take(&mut self.held) {
            let held = self.parse(line, &record);
            self.ready.push_back(held);
        }
        self.ready.push_back(row);
        self.ready.pop_front()
    }
}

/// Whether the record just read ended with the file, without a line break.
fn ended_with_file<R: Read>(reader: &csv::Reader<Source<R>>) -> bool {
    let source = reader.get_ref();
    source.at_end && reader.position().byte() == source.delivered && source.last_byte != Some(b'\n')
}

/// The line on which the record just read starts. csv's line counter is at the line
/// where the previous record ended; this read consumed the blank lines before the
/// record, the line breaks inside its quoted fields and its terminating `\n` (unless
/// the file ended first). Only the blank lines move the start.
fn start_line<R: Read>(
    reader: &csv::Reader<Source<R>>,
    record: &ByteRecord,
    before: &Position,
) -> u64 {
    let after = reader.position();
    let terminator = u64::from(!ended_with_file(reader));
    let mut blank_lines = after
        .line()
        .saturating_sub(before.line())
        .saturating_sub(terminator);
    if blank_lines > 0 {
        let inside = record
            .as_slice()
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count();
        blank_lines = blank_lines.saturating_sub(inside as u64);
    }
    before.line() + blank_lines
}

/// Drops the last cell of a record of several when it is empty: a header line or a row
/// ending with a delimiter (Excel writes one when a column past the data was touched), so
/// that the header has no nameless column and the rows are as wide as it.
fn drop_empty_last_cell(record: &mut ByteRecord) {
    let len = record.len();
    if len >= 2
        && record
            .get(len - 1)
            .is_some_and(|cell| cell.iter().all(u8::is_ascii_whitespace))
    {
        record.truncate(len - 1);
    }
}

/// True for blank lines and rows like `,,,` that spreadsheets leave after the data.
fn is_blank(record: &ByteRecord) -> bool {
    record
        .iter()
        .all(|field| field.iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod crm_tests;

#[cfg(test)]
mod decode_proptests;

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests;
