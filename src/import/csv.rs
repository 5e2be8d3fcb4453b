//! Reads former-client CSV files: a streaming, validating parser that turns each row into
//! a [`ClientRecord`], or into a [`RowError`] that names the row's line and what to fix.
//! It owns the file format's rules (columns, email syntax, dates, time zones, churn-reason
//! slugs, header-safe names) and keeps memory bounded however large or broken the file is.
//! It must not touch the database or read the clock: the caller passes `now` and decides
//! what to do with bad rows.

mod columns;
mod summary;
mod values;

pub(crate) use summary::ReadSummary;

use std::io::{self, Read};

use chrono::{DateTime, NaiveDate, Utc};
use csv::{ByteRecord, Position};

use crate::config::CsvFormat;
use crate::domain::model::{ClientRecord, RECORD_TOO_LONG, RowError, UNREADABLE_REST};
use columns::{Columns, EMPTY_FILE};

/// A record may span several lines (line breaks inside quotes), but past this many bytes a
/// closing quote is surely missing; reading stops instead of buffering the rest of the file.
const MAX_RECORD_BYTES: u64 = 1 << 20;
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Why a last line without its line break is never imported: a file read while it is
/// being written ends that way, and its last row may be cut inside a value (`we_ended`
/// read as `we`, a valid reason). Every complete file ends with a line break.
const UNTERMINATED: &str = "this last line does not end with a line break, so the file may \
     have been cut short while it was being written; if the file is complete, add a line \
     break at its end (or export it again)";

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error("could not read the file: {0}")]
    Io(#[from] io::Error),
    /// A header problem, as a sentence for the operator (who may not be a programmer).
    #[error("{0}")]
    Header(String),
}

/// The validated rows of a file, read one at a time.
///
/// Yields `(line, record)` for good rows and a [`RowError`] for bad ones; reading goes on
/// after a bad row. Blank lines and rows whose fields are all empty are skipped. A read
/// failure (or a record longer than 1 MiB) is yielded once as a [`RowError`], then the
/// iterator ends. `reader` is buffered internally: a `BufReader` around it is not needed.
pub(crate) struct Rows<R> {
    reader: csv::Reader<Source<R>>,
    /// Reused for every record: the parser allocates nothing per row but the record itself.
    record: ByteRecord,
    columns: Columns,
    now: DateTime<Utc>,
    /// The latest bare `churned_at` date that is not in the future: somewhere on Earth it
    /// may already be the day after `now`'s UTC date.
    latest_date: Option<NaiveDate>,
    bytes_read: u64,
    finished: bool,
    /// What reading found out about the file, for the import's summary.
    summary: ReadSummary,
}

impl<R> Rows<R> {
    /// What reading found out about the file; complete once every row was read.
    pub(crate) fn into_summary(self) -> ReadSummary {
        self.summary
    }

    #[cfg(test)]
    /// Bytes consumed from the input so far, header included: compare with the file's
    /// length for a progress bar.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

/// Reads and checks the header line, then returns the rows, unread, read as `format`
/// says.
pub(crate) fn read_rows<R: Read>(
    reader: R,
    now: DateTime<Utc>,
    format: &CsvFormat,
) -> Result<Rows<R>, ImportError> {
    // Every record ends at a `\n`: with `\r` as a terminator too, csv's line counter falls
    // behind in CRLF files. A `\r` before the `\n` stays in the last field, and every value
    // is trimmed; a CRLF blank line becomes a blank record, which is skipped.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(READ_BUFFER_BYTES)
        .from_reader(Source::new(reader));
    let mut record = ByteRecord::new();
    let has_header = match reader.read_byte_record(&mut record) {
        Ok(has_header) => has_header,
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
    if !has_header {
        return Err(ImportError::Header(EMPTY_FILE.to_owned()));
    }
    let columns = Columns::from_header(&record, format).map_err(ImportError::Header)?;
    let summary = ReadSummary {
        columns: columns.used().to_vec(),
        warnings: columns.warnings().to_vec(),
        ..ReadSummary::default()
    };
    let bytes_read = reader.position().byte();
    reader.get_mut().record_start = bytes_read;
    Ok(Rows {
        reader,
        record,
        columns,
        now,
        latest_date: now.date_naive().succ_opt(),
        bytes_read,
        finished: false,
        summary,
    })
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Result<(u64, ClientRecord), RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let before = self.reader.position().clone();
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    self.bytes_read = self.reader.position().byte();
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
                    return Some(Err(RowError {
                        line: before.line(),
                        reason,
                    }));
                }
            }
            let line = self.start_line(&before);
            self.bytes_read = self.reader.position().byte();
            self.reader.get_mut().record_start = self.bytes_read;
            if is_blank(&self.record) {
                continue;
            }
            if self.ended_with_file() {
                return Some(Err(RowError {
                    line,
                    reason: UNTERMINATED.to_owned(),
                }));
            }
            let parsed = self.columns.parse(&self.record, self.now, self.latest_date);
            return Some(match parsed {
                Ok(client) => {
                    self.summary.saw_reason(client.churn_reason.as_deref());
                    Ok((line, client))
                }
                Err(reason) => Err(RowError { line, reason }),
            });
        }
        None
    }
}

impl<R: Read> std::iter::FusedIterator for Rows<R> {}

impl<R: Read> Rows<R> {
    /// Whether the record just read ended with the file, without a line break.
    fn ended_with_file(&self) -> bool {
        let source = self.reader.get_ref();
        source.at_end
            && self.reader.position().byte() == source.delivered
            && source.last_byte != Some(b'\n')
    }

    /// The line on which the record just read starts. csv's line counter is at the line
    /// where the previous record ended; this read consumed the blank lines before the
    /// record, the line breaks inside its quoted fields and its terminating `\n` (unless
    /// the file ended first). Only the blank lines move the start.
    fn start_line(&self, before: &Position) -> u64 {
        let after = self.reader.position();
        let terminator = u64::from(!self.ended_with_file());
        let mut blank_lines = after
            .line()
            .saturating_sub(before.line())
            .saturating_sub(terminator);
        if blank_lines > 0 {
            let inside = self
                .record
                .as_slice()
                .iter()
                .filter(|&&byte| byte == b'\n')
                .count();
            blank_lines = blank_lines.saturating_sub(inside as u64);
        }
        before.line() + blank_lines
    }
}

/// True for blank lines and rows like `,,,` that spreadsheets leave after the data.
fn is_blank(record: &ByteRecord) -> bool {
    record
        .iter()
        .all(|field| field.iter().all(u8::is_ascii_whitespace))
}

/// The input, counted: what the csv reader's line counter cannot tell (did the last record
/// end with the file?), and a cap on how far one record may run.
struct Source<R> {
    inner: R,
    /// Bytes handed to the csv reader so far.
    delivered: u64,
    /// The last byte handed over: whether the file ends with a line break.
    last_byte: Option<u8>,
    at_end: bool,
    /// Where the record being read starts (the csv reader's byte position after the last one).
    record_start: u64,
    record_too_long: bool,
}

impl<R> Source<R> {
    fn new(inner: R) -> Source<R> {
        Source {
            inner,
            delivered: 0,
            last_byte: None,
            at_end: false,
            record_start: 0,
            record_too_long: false,
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.record_start) > MAX_RECORD_BYTES {
            self.record_too_long = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record too long",
            ));
        }
        let mut read = self.read_inner(buf)?;
        // csv strips a byte order mark from its first buffer only, and takes a first
        // buffer that held nothing else for the end of the file: the first read hands
        // over more than a BOM (a pipe may deliver it on its own), unless the file ends.
        while self.delivered == 0 && (1..4).contains(&read) && read < buf.len() {
            match self.read_inner(&mut buf[read..])? {
                0 => break,
                more => read += more,
            }
        }
        match buf.get(..read).and_then(<[u8]>::last) {
            Some(&byte) => {
                self.last_byte = Some(byte);
                self.delivered += read as u64;
            }
            None => self.at_end = read == 0 && !buf.is_empty(),
        }
        Ok(read)
    }
}

impl<R: Read> Source<R> {
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests;
