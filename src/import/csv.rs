//! Reads former-client CSV files: a streaming, validating parser that turns each row into
//! a [`ClientRecord`], or into a [`RowError`] that names the row's line and what to fix.
//! It owns the file format's rules (columns, email syntax, dates, time zones, churn-reason
//! slugs, header-safe names) and keeps memory bounded however large or broken the file is.
//! It must not touch the database or read the clock: the caller passes `now` and decides
//! what to do with bad rows.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use csv::{ByteRecord, Position};

use crate::domain::model::{AddressError, ChurnedAt, ClientRecord, parse_address};

/// A record may span several lines (line breaks inside quotes), but past this many bytes a
/// closing quote is surely missing; reading stops instead of buffering the rest of the file.
const MAX_RECORD_BYTES: u64 = 1 << 20;
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Longer values are cut short when quoted in an error message.
const MAX_QUOTED_CHARS: usize = 60;

const NOT_UTF8: &str = "not valid UTF-8 text (save the file as UTF-8)";
const EMPTY_FILE: &str =
    "the file is empty: it needs a header line such as `email,churned_at,name,company`";
/// Why a last line without its line break is never imported: a file read while it is
/// being written ends that way, and its last row may be cut inside a value (`we_ended`
/// read as `we`, a valid reason). Every complete file ends with a line break.
const UNTERMINATED: &str = "this last line does not end with a line break, so the file may \
     have been cut short while it was being written; if the file is complete, add a line \
     break at its end (or export it again)";
const SLUG_HINT: &str = "use a slug such as competitor, price or we_ended";

/// One bad row: where it starts in the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line where the record starts (the header is line 1).
    pub line: u64,
    /// Every problem found in the row, as plain sentences joined by "; ".
    pub reason: String,
}

/// How the two errors that end reading begin; see [`RowError::ends_the_file`].
const RECORD_TOO_LONG: &str = "this record is longer than 1 MiB";
const UNREADABLE_REST: &str = "could not read the rest of the file";

impl RowError {
    /// Whether reading stopped here, so the rest of the file was never seen: even with
    /// `--skip-invalid`, such a file must not be half-applied.
    pub fn ends_the_file(&self) -> bool {
        self.reason.starts_with(RECORD_TOO_LONG) || self.reason.starts_with(UNREADABLE_REST)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for RowError {}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
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
pub struct Rows<R> {
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
}

impl<R> Rows<R> {
    /// Bytes consumed from the input so far, header included: compare with the file's
    /// length for a progress bar.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

/// Reads and checks the header line, then returns the rows, unread.
pub fn read_rows<R: Read>(reader: R, now: DateTime<Utc>) -> Result<Rows<R>, ImportError> {
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
    let columns = Columns::from_header(&record).map_err(ImportError::Header)?;
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
                Ok(client) => Ok((line, client)),
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

const KNOWN: [&str; 7] = [
    "email",
    "churned_at",
    "name",
    "first_name",
    "company",
    "churn_reason",
    "timezone",
];

/// Where each known column is, and the names of the others.
#[derive(Debug)]
struct Columns {
    count: usize,
    email: usize,
    churned_at: usize,
    name: Option<usize>,
    first_name: Option<usize>,
    company: Option<usize>,
    churn_reason: Option<usize>,
    timezone: Option<usize>,
    /// Custom fields: (column index, lower-cased name).
    custom: Vec<(usize, String)>,
}

impl Columns {
    fn from_header(header: &ByteRecord) -> Result<Columns, String> {
        let mut names = Vec::with_capacity(header.len());
        for (index, raw) in header.iter().enumerate() {
            let Ok(text) = std::str::from_utf8(raw) else {
                return Err(format!("the header line is {NOT_UTF8}"));
            };
            let text = if index == 0 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            names.push(text.trim().to_lowercase());
        }
        if names.iter().all(String::is_empty) {
            return Err(EMPTY_FILE.to_owned());
        }
        if names.iter().any(|name| name.contains(['\r', '\n'])) {
            return Err(
                "a column name in the header line contains a line break: the file may \
                        use old Mac line breaks (CR only); save it again as \"CSV UTF-8\""
                    .to_owned(),
            );
        }
        if let Some(index) = names.iter().position(String::is_empty) {
            return Err(format!(
                "column {} of the header line has no name (name it, or delete the column if \
                 it is not needed)",
                index + 1
            ));
        }
        let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, name) in names.iter().enumerate() {
            if let Some(first) = first_seen.insert(name, index) {
                return Err(format!(
                    "the column `{name}` appears twice in the header line (columns {} and {})",
                    first + 1,
                    index + 1
                ));
            }
        }
        // `First Name` would otherwise become a custom field, silently.
        for name in &names {
            let canonical = name.replace([' ', '-'], "_");
            if canonical != *name && KNOWN.contains(&canonical.as_str()) {
                return Err(format!(
                    "the column `{name}` should be named `{canonical}` (with an underscore)"
                ));
            }
        }
        let position = |wanted: &str| names.iter().position(|name| name == wanted);
        let (email, churned_at) = match (position("email"), position("churned_at")) {
            (Some(email), Some(churned_at)) => (email, churned_at),
            (email, churned_at) => {
                let missing = match (email, churned_at) {
                    (None, None) => "no `email` column and no `churned_at` column",
                    (None, Some(_)) => "no `email` column",
                    _ => "no `churned_at` column",
                };
                return Err(missing_columns_message(missing, &names));
            }
        };
        let custom = names
            .iter()
            .enumerate()
            .filter(|(_, name)| !KNOWN.contains(&name.as_str()))
            .map(|(index, name)| (index, name.clone()))
            .collect();
        Ok(Columns {
            count: names.len(),
            email,
            churned_at,
            name: position("name"),
            first_name: position("first_name"),
            company: position("company"),
            churn_reason: position("churn_reason"),
            timezone: position("timezone"),
            custom,
        })
    }

    /// Checks one record; on failure, the reason names every problem in the row.
    fn parse(
        &self,
        record: &ByteRecord,
        now: DateTime<Utc>,
        latest_date: Option<NaiveDate>,
    ) -> Result<ClientRecord, String> {
        if record.len() != self.count {
            return Err(format!(
                "expected {} fields (one per header column), found {}",
                self.count,
                record.len()
            ));
        }
        // One UTF-8 check per record; a field is then valid unless it splits a character.
        let Ok(whole) = std::str::from_utf8(record.as_slice()) else {
            return Err(NOT_UTF8.to_owned());
        };
        let text = |index: usize| {
            record
                .range(index)
                .and_then(|range| whole.get(range))
                .ok_or_else(|| NOT_UTF8.to_owned())
        };
        let optional = |index: Option<usize>| index.map_or(Ok(""), text);

        let mut fields = BTreeMap::new();
        for (index, name) in &self.custom {
            fields.insert(name.clone(), text(*index)?.trim().to_owned());
        }
        let email = text(self.email)?;
        let churned_at = text(self.churned_at)?;
        let name = optional(self.name)?;
        let first_name = optional(self.first_name)?;
        let company = optional(self.company)?;
        let churn_reason = optional(self.churn_reason)?;
        let timezone = optional(self.timezone)?;

        let mut problems = Vec::new();
        let email = keep(parse_email(email), &mut problems);
        let churned_at = keep(
            parse_churned_at(churned_at, now, latest_date),
            &mut problems,
        );
        let name = keep(parse_header_text("name", name), &mut problems).flatten();
        let first_name = keep(parse_header_text("first_name", first_name), &mut problems).flatten();
        let company = keep(parse_header_text("company", company), &mut problems).flatten();
        let churn_reason = keep(parse_churn_reason(churn_reason), &mut problems).flatten();
        let timezone = keep(parse_timezone(timezone), &mut problems).flatten();
        match (email, churned_at) {
            (Some(email), Some(churned_at)) if problems.is_empty() => Ok(ClientRecord {
                email,
                name,
                first_name,
                company,
                churned_at,
                churn_reason,
                timezone,
                fields,
            }),
            _ => Err(problems.join("; ")),
        }
    }
}

fn missing_columns_message(missing: &str, names: &[String]) -> String {
    const MAX_LISTED: usize = 20;
    let mut found = names
        .iter()
        .take(MAX_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        found.push_str(", …");
    }
    let mut message = format!("the file has {missing} (columns found: {found})");
    if let [only] = names {
        for (separator, what) in [(';', "semicolons"), ('\t', "tabs")] {
            if only.contains(separator) {
                message.push_str(&format!(
                    "; the columns seem to be separated by {what}, but they must be separated \
                     by commas: save the file as \"CSV UTF-8 (comma delimited)\""
                ));
                break;
            }
        }
    }
    message
}

fn keep<T>(result: Result<T, String>, problems: &mut Vec<String>) -> Option<T> {
    result.map_err(|problem| problems.push(problem)).ok()
}

fn parse_email(raw: &str) -> Result<String, String> {
    parse_address(raw).map_err(|error| match error {
        AddressError::Missing => "missing email".to_owned(),
        AddressError::Invalid => format!("invalid email address {}", quoted(raw.trim())),
    })
}

fn parse_churned_at(
    raw: &str,
    now: DateTime<Utc>,
    latest_date: Option<NaiveDate>,
) -> Result<ChurnedAt, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("missing churned_at".to_owned());
    }
    let parsed = match parse_plain_date(text) {
        Some(date) => Some(ChurnedAt::Date(date)),
        None => ChurnedAt::parse(text),
    };
    let Some(churned_at) = parsed else {
        return Err(format!(
            "churned_at {} is not a date (use YYYY-MM-DD or RFC 3339, e.g. 2026-03-31)",
            quoted(text)
        ));
    };
    let in_future = match churned_at {
        ChurnedAt::Date(date) => latest_date.is_some_and(|latest| date > latest),
        ChurnedAt::Instant(instant) => instant > now,
    };
    if in_future {
        // `text` parsed as a date, so it is short and printable.
        return Err(format!("churned_at {text} is in the future"));
    }
    Ok(churned_at)
}

/// `YYYY-MM-DD`, the common case, parsed without `ChurnedAt::parse`'s format string (the
/// largest single cost in a profile); anything else is left to `ChurnedAt::parse`.
fn parse_plain_date(text: &str) -> Option<NaiveDate> {
    let [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = *text.as_bytes() else {
        return None;
    };
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + u32::from(digit - b'0'))
        })
    };
    let year = i32::try_from(number(&[y1, y2, y3, y4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&[m1, m2])?, number(&[d1, d2])?)
}

fn parse_timezone(raw: &str) -> Result<Option<Tz>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<Tz>().map(Some).map_err(|_| {
        let same_but_case = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(text));
        match same_but_case {
            Some(tz) => format!(
                "unknown time zone {} (names are case-sensitive: use {})",
                quoted(text),
                tz.name()
            ),
            None => format!(
                "unknown time zone {} (use an IANA name such as Europe/Paris)",
                quoted(text)
            ),
        }
    })
}

fn parse_churn_reason(raw: &str) -> Result<Option<String>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let slug = text.to_ascii_lowercase();
    if slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(Some(slug))
    } else {
        Err(format!(
            "churn_reason {} is not a slug ({SLUG_HINT})",
            quoted(text)
        ))
    }
}

/// A value that will end up in an email header (`To: "Name" <…>`, a subject): line breaks
/// and tabs become one space, any other control character is refused.
fn parse_header_text(column: &str, raw: &str) -> Result<Option<String>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(Some(text.to_owned()));
    }
    let mut clean = String::with_capacity(text.len());
    let mut after_break = false;
    for c in text.chars() {
        if matches!(c, '\r' | '\n' | '\t' | '\u{2028}' | '\u{2029}') {
            clean.truncate(clean.trim_end_matches(' ').len());
            after_break = true;
        } else if c.is_control() {
            return Err(format!(
                "{column} contains an invisible control character (U+{:04X}); remove it",
                u32::from(c)
            ));
        } else if !(after_break && c == ' ') {
            if after_break {
                clean.push(' ');
                after_break = false;
            }
            clean.push(c);
        }
    }
    Ok(Some(clean))
}

/// A value quoted for an error message: escaped onto one line, and cut short if long.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
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
mod tests {
    use super::*;
    use crate::domain::model::MAX_EMAIL_BYTES;
    use chrono::TimeZone;

    type GoodRow = (u64, ClientRecord);

    const HEADER: &str = "email,churned_at,name,first_name,company,churn_reason,timezone\n";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
    }

    fn read_all(input: &[u8]) -> Vec<Result<(u64, ClientRecord), RowError>> {
        match read_rows(input, now()) {
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
            let one_byte_at_a_time: Vec<_> = match read_rows(OneByteAtATime(input), now()) {
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
            (b"ann@acme.com,31/03/2026,,,,,", format!("churned_at \"31/03/2026\" is not a date {date_hint}")),
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
            (b"ann@acme.com,2026-03-31,,,,we ended,",
             "churn_reason \"we ended\" is not a slug (use a slug such as competitor, price or we_ended)".into()),
            (b"ann@acme.com,2026-03-31,,,,prix_\xc3\xa9lev\xc3\xa9,",
             "churn_reason \"prix_\u{e9}lev\u{e9}\" is not a slug (use a slug such as competitor, price or we_ended)".into()),
            (b"ann@acme.com,2026-03-31,Ann\x07Lee,,,,",
             "name contains an invisible control character (U+0007); remove it".into()),
            (b"ann@acme.com,2026-03-31,,An\x00n,,,",
             "first_name contains an invisible control character (U+0000); remove it".into()),
            (b"ann@acme.com,2026-03-31,,,Acme\x1b[31m,,",
             "company contains an invisible control character (U+001B); remove it".into()),
            (b"ann@acme.com,2026-03-31,,,Acme\xc2\x85Corp,,",
             "company contains an invisible control character (U+0085); remove it".into()),
            (b"ann@acme.com,2026-03-31", "expected 7 fields (one per header column), found 2".into()),
            (b"ann@acme.com,2026-03-31,,,,,,", "expected 7 fields (one per header column), found 8".into()),
            (b"ann@acme.com,2026-03-31,Ren\xe9,,,,", NOT_UTF8.into()),
            (b"ann,tomorrow,\x01,,,x y,Mars/Base", format!(
                "invalid email address \"ann\"; churned_at \"tomorrow\" is not a date {date_hint}; \
                 name contains an invisible control character (U+0001); remove it; \
                 churn_reason \"x y\" is not a slug ({SLUG_HINT}); \
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
            let one_byte_at_a_time: Vec<_> = match read_rows(OneByteAtATime(input), now()) {
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
                reason: NOT_UTF8.to_owned(),
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
        assert_eq!(
            RowError {
                line: 11,
                reason: NOT_UTF8.to_owned()
            }
            .to_string(),
            "line 11: not valid UTF-8 text (save the file as UTF-8)"
        );
        let one_byte_at_a_time: Vec<_> = match read_rows(OneByteAtATime(input), now()) {
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
             "the file has no `email` column (columns found: name, churned_at)".into()),
            ("no churned_at", b"Email,Name\nann@acme.com,Ann\n",
             "the file has no `churned_at` column (columns found: email, name)".into()),
            ("neither", b"a,b\n",
             "the file has no `email` column and no `churned_at` column (columns found: a, b)".into()),
            ("duplicate known column", b"email,churned_at, EMAIL \n",
             "the column `email` appears twice in the header line (columns 1 and 3)".into()),
            ("duplicate custom column", b"plan,email,churned_at,Plan\n",
             "the column `plan` appears twice in the header line (columns 1 and 4)".into()),
            ("near miss of an optional column", b"email,churned_at,First Name\n",
             "the column `first name` should be named `first_name` (with an underscore)".into()),
            ("near miss of a required column", b"email,Churned-At\n",
             "the column `churned-at` should be named `churned_at` (with an underscore)".into()),
            ("unnamed column", b"email,churned_at,,\n",
             "column 3 of the header line has no name (name it, or delete the column if it is not needed)".into()),
            ("non-UTF-8 header", b"email,churned_at,pr\xe9nom\n",
             "the header line is not valid UTF-8 text (save the file as UTF-8)".into()),
            ("UTF-16 file", b"\xff\xfee\x00m\x00a\x00i\x00l\x00\n\x00",
             "the header line is not valid UTF-8 text (save the file as UTF-8)".into()),
            ("semicolon-separated", b"email;churned_at;name\nann@acme.com;2026-03-31;Ann\n",
             "the file has no `email` column and no `churned_at` column (columns found: \
              email;churned_at;name); the columns seem to be separated by semicolons, but they \
              must be separated by commas: save the file as \"CSV UTF-8 (comma delimited)\"".into()),
            ("old Mac line breaks", b"email,churned_at\rann@acme.com,2026-03-31\r",
             "a column name in the header line contains a line break: the file may use old Mac \
              line breaks (CR only); save it again as \"CSV UTF-8\"".into()),
            ("no line break for over 1 MiB", long_line.as_bytes(),
             "the first line is longer than 1 MiB: this is not a CSV file, or its line breaks \
              are old Mac ones (CR only); save it again as \"CSV UTF-8\"".into()),
        ];
        for (case, input, expected) in cases {
            match read_rows(input, now()) {
                Err(ImportError::Header(message)) => assert_eq!(message, expected, "case: {case}"),
                Err(other) => panic!("case {case}: expected a header error, got {other:?}"),
                Ok(_) => panic!("case {case}: header accepted"),
            }
        }
    }

    #[test]
    fn a_read_failure_is_reported() {
        match read_rows(Failing, now()) {
            Err(error @ ImportError::Io(_)) => {
                assert_eq!(error.to_string(), "could not read the file: disk on fire")
            }
            Err(other) => panic!("expected an I/O error, got {other:?}"),
            Ok(_) => panic!("header accepted from a failing reader"),
        }
        let input = (&b"email,churned_at\nann@acme.com,2026-03-31\n"[..]).chain(Failing);
        let rows = match read_rows(input, now()) {
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
        let mut rows = match read_rows(input.as_bytes(), now()) {
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
}
