//! Domain vocabulary shared by every layer: clients, step kinds, and the states of
//! enrollments and messages. Plain data; no I/O.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// When a client left: a bare date (midnight in the client's time zone) or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChurnedAt {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl ChurnedAt {
    /// Parses `YYYY-MM-DD` or RFC 3339.
    pub(crate) fn parse(text: &str) -> Option<ChurnedAt> {
        let text = text.trim();
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Some(ChurnedAt::Date(date));
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| ChurnedAt::Instant(t.with_timezone(&Utc)))
    }

    /// The instant it denotes in `tz` (a bare date is midnight there).
    pub(crate) fn instant(&self, tz: Tz) -> DateTime<Utc> {
        match self {
            ChurnedAt::Instant(t) => *t,
            ChurnedAt::Date(d) => {
                crate::domain::calendar::local_to_utc(d.and_time(chrono::NaiveTime::MIN), tz)
            }
        }
    }
}

impl fmt::Display for ChurnedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChurnedAt::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            ChurnedAt::Instant(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// One validated row of a former-clients CSV.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClientRecord {
    /// In its one normalized form (see [`normalize_email`]).
    pub email: String,
    pub name: Option<String>,
    /// From a `first_name` column, if the file has one.
    pub first_name: Option<String>,
    pub company: Option<String>,
    pub churned_at: ChurnedAt,
    /// A slug such as `competitor` or `we_ended`; an open set.
    pub churn_reason: Option<String>,
    pub timezone: Option<Tz>,
    /// Every other column, available to templates as `fields.COLUMN`.
    pub fields: BTreeMap<String, String>,
    /// ISO 3166 country code, from a `country` column.
    pub country: Option<String>,
    /// When the CRM says they became a client again (a `returned_at` column).
    pub returned_at: Option<ChurnedAt>,
    /// The CRM marks them opted out or bounced (an opt-out flag column says so): the
    /// import opts them out of everything.
    pub opted_out: bool,
}

/// The longest address a mail server must accept (RFC 5321's path limit, less the `<>`).
pub(crate) const MAX_EMAIL_BYTES: usize = 254;

/// The one form of an address that is stored, compared and hashed: trimmed, lower-cased,
/// the domain in its ASCII (IDNA, `xn--`) form and a Unicode local part in NFC, so that
/// `bob@bücher.example` and `bob@xn--bcher-kva.example`, or a name typed with a combining
/// accent, are one mailbox. An all-ASCII address is only trimmed and lower-cased, as it
/// always was, so the hashes of existing suppressions still match. Idempotent; a domain
/// IDNA refuses is kept lower-cased (and [`parse_address`] refuses it).
pub(crate) fn normalize_email(email: &str) -> String {
    let email = email.trim();
    if email.is_ascii() {
        return email.to_ascii_lowercase();
    }
    let (local, domain) = match email.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (email, None),
    };
    let mut out: String =
        unicode_normalization::UnicodeNormalization::nfc(local.to_lowercase().as_str()).collect();
    if let Some(domain) = domain {
        out.push('@');
        match ascii_domain(domain) {
            Some(ascii) => out.push_str(&ascii),
            None => out.push_str(&domain.to_lowercase()),
        }
    }
    // IDNA drops characters such as U+FEFF, which can leave spaces at an end that the
    // first trim could not see: trim again, so that normalizing twice changes nothing.
    match out.trim() {
        trimmed if trimmed.len() == out.len() => out,
        trimmed => trimmed.to_string(),
    }
}

/// A domain's ASCII (IDNA) form, if it has a valid one.
fn ascii_domain(domain: &str) -> Option<String> {
    if domain.is_ascii() {
        return Some(domain.to_ascii_lowercase());
    }
    idna::domain_to_ascii(domain)
        .ok()
        .filter(|ascii| !ascii.is_empty())
}

/// The spelling an address had in databases from before IDNA normalization, when it was
/// only trimmed and lower-cased: with the domain in Unicode. Some if it differs from the
/// normalized form `email` (its domain has `xn--` labels), so a suppression hashed under
/// that spelling can still be found.
pub(crate) fn legacy_unicode_spelling(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    if !domain.split('.').any(|label| label.starts_with("xn--")) {
        return None;
    }
    let (unicode, result) = idna::domain_to_unicode(domain);
    result.ok()?;
    let spelled = format!("{}@{}", local.to_lowercase(), unicode.to_lowercase());
    (spelled != email).then_some(spelled)
}

/// Whether older versions may have spelt (and hashed) the normalized address `email`
/// otherwise: only then is [`legacy_spellings`] worth asking. Cheap.
pub(crate) fn may_have_legacy_spelling(email: &str) -> bool {
    !email.is_ascii() || email.contains("xn--")
}

/// Every other spelling under which versions from before normalization may have hashed
/// the normalized address `email`: they only trimmed and lower-cased it, so the domain
/// was in Unicode ([`legacy_unicode_spelling`]) and accents were as the file wrote them,
/// composed or decomposed (NFD, as some systems export). Empty for most addresses.
pub(crate) fn legacy_spellings(email: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    if !may_have_legacy_spelling(email) {
        return Vec::new();
    }
    let unicode = legacy_unicode_spelling(email);
    let mut spellings = Vec::new();
    for text in std::iter::once(email).chain(unicode.as_deref()) {
        for spelled in [text.to_string(), text.nfd().collect()] {
            if spelled != email && !spellings.contains(&spelled) {
                spellings.push(spelled);
            }
        }
    }
    spellings
}

/// Why a text is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressError {
    Missing,
    Invalid,
}

/// Reads one address as people paste it, for every command and every imported row:
/// surrounding spaces and quotes (`"ann@x.example"`), a display name (`Ann <ann@x.example>`)
/// and a `mailto:` are taken off, then the address is normalized ([`normalize_email`]) and
/// checked. Anything but exactly one valid address is refused.
pub(crate) fn parse_address(text: &str) -> Result<String, AddressError> {
    let mut text = unquoted(text.trim());
    if let Some(inner) = text
        .strip_suffix('>')
        .and_then(|rest| rest.rsplit_once('<'))
        .filter(|(name, _)| !name.contains(['<', '>']))
        .map(|(_, inner)| inner)
    {
        text = unquoted(inner.trim());
    }
    if text.len() >= 7 && text.is_char_boundary(7) && text[..7].eq_ignore_ascii_case("mailto:") {
        text = text[7..].trim();
    }
    if text.is_empty() {
        return Err(AddressError::Missing);
    }
    let email = normalize_email(text);
    if is_valid_email(&email) {
        Ok(email)
    } else {
        Err(AddressError::Invalid)
    }
}

/// `text` without one pair of matching quotes around it, and the spaces inside them.
fn unquoted(text: &str) -> &str {
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”'), ('‘', '’')] {
        if let Some(inner) = text
            .strip_prefix(open)
            .and_then(|rest| rest.strip_suffix(close))
        {
            return inner.trim();
        }
    }
    text
}

/// Deliberately simple: one `@`, a local part, a dotted ASCII domain (IDNA already
/// applied) of letters, digits and inner hyphens (RFC 5321), and nothing that could break
/// an address header.
fn is_valid_email(email: &str) -> bool {
    let breaks_header = |c: char| matches!(c, '<' | '>' | ',' | ';' | '"');
    let clean = if email.is_ascii() {
        email
            .bytes()
            .all(|b| b.is_ascii_graphic() && !breaks_header(char::from(b)))
    } else {
        !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || breaks_header(c))
    };
    if !clean || email.len() > MAX_EMAIL_BYTES {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let hostname_label = |label: &[u8]| {
        label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            && label.first().is_some_and(u8::is_ascii_alphanumeric)
            && label.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    let mut labels = domain.as_bytes().split(|&b| b == b'.');
    !local.is_empty() && labels.clone().count() >= 2 && labels.all(hostname_label)
}

/// What the daemon's last look at the CRM sync file found: shown by `status` and
/// `/metrics`, so a sync that keeps failing is seen, not only logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncReport {
    /// When the daemon read the file, or found it missing.
    pub at: DateTime<Utc>,
    pub file: String,
    pub outcome: SyncOutcome,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub bad_rows: u64,
    /// Why nothing was imported, in a sentence (the first bad row, or the read error).
    pub error: Option<String>,
    /// When a sync was last applied, this one or an earlier one.
    pub last_imported_at: Option<DateTime<Utc>>,
}

impl SyncReport {
    /// Whether this look only repeats the failure `last` found (the same file, outcome
    /// and error): kept as one more look of it rather than as a new sync. An import is
    /// never a repeat.
    pub(crate) fn repeats(&self, last: &SyncReport) -> bool {
        self.outcome != SyncOutcome::Imported
            && self.file == last.file
            && self.outcome == last.outcome
            && self.error == last.error
            && self.bad_rows == last.bad_rows
    }
}

/// A [`SyncReport`] as kept: looks in a row that found the same failure are one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SyncRun {
    #[serde(flatten)]
    pub report: SyncReport,
    /// The first of these looks (`report.at` is the latest).
    pub first_at: DateTime<Utc>,
    pub looks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SyncOutcome {
    /// Read and applied.
    Imported,
    /// Read, but bad rows (or a header problem) kept all of it out.
    Refused,
    /// The file does not exist.
    Missing,
    /// The file exists but could not be read.
    Unreadable,
}

impl SyncOutcome {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            SyncOutcome::Imported => "imported",
            SyncOutcome::Refused => "refused",
            SyncOutcome::Missing => "missing",
            SyncOutcome::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepKind {
    Survey,
    Newsletter,
    Article,
    Whitepaper,
    Greeting,
}

impl StepKind {
    pub(crate) const ALL: [StepKind; 5] = [
        StepKind::Survey,
        StepKind::Newsletter,
        StepKind::Article,
        StepKind::Whitepaper,
        StepKind::Greeting,
    ];

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            StepKind::Survey => "survey",
            StepKind::Newsletter => "newsletter",
            StepKind::Article => "article",
            StepKind::Whitepaper => "whitepaper",
            StepKind::Greeting => "greeting",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a client stands in one campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EnrollmentState {
    /// Steps remain; the next one is scheduled (or in flight).
    Active,
    /// Every step was sent.
    Completed,
    OptedOut,
    Bounced,
    Returned,
    /// Stopped: a reply said the contact has left the company (not suppressed).
    Left,
    /// Stopped: the person answered; a human takes over (not suppressed).
    Replied,
    /// Stopped: past the campaign's consent horizon (`max_days_since_churn`).
    Expired,
}

impl EnrollmentState {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            EnrollmentState::Active => "active",
            EnrollmentState::Completed => "completed",
            EnrollmentState::OptedOut => "opted_out",
            EnrollmentState::Bounced => "bounced",
            EnrollmentState::Returned => "returned",
            EnrollmentState::Left => "left",
            EnrollmentState::Replied => "replied",
            EnrollmentState::Expired => "expired",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<EnrollmentState> {
        [
            EnrollmentState::Active,
            EnrollmentState::Completed,
            EnrollmentState::OptedOut,
            EnrollmentState::Bounced,
            EnrollmentState::Returned,
            EnrollmentState::Left,
            EnrollmentState::Replied,
            EnrollmentState::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The life of one message in the outbox:
/// `sending → sent | retry | failed | uncertain | held`, `retry | held → sending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MessageState {
    /// Claimed; committed before the SMTP transaction starts.
    Sending,
    /// The server answered 250.
    Sent,
    /// A transient failure; `next_attempt_at` says when to try again.
    Retry,
    /// A permanent failure (5xx, or retries exhausted).
    Failed,
    /// Found in `sending` at start-up: the process died mid-send. Never resent blindly.
    Uncertain,
    /// Claimed but dropped before sending, because an opt-out or return arrived first.
    Cancelled,
    /// Not fit to go (a template error, a placeholder, no footer): kept until it renders.
    Held,
}

impl MessageState {
    pub(crate) const ALL: [MessageState; 7] = [
        MessageState::Sending,
        MessageState::Sent,
        MessageState::Retry,
        MessageState::Failed,
        MessageState::Uncertain,
        MessageState::Cancelled,
        MessageState::Held,
    ];

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Retry => "retry",
            MessageState::Failed => "failed",
            MessageState::Uncertain => "uncertain",
            MessageState::Cancelled => "cancelled",
            MessageState::Held => "held",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<MessageState> {
        MessageState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the server has it, or may have (`sent`, `uncertain`): it counts as sent
    /// for the timing of the next step and is never sent again unasked.
    pub(crate) fn went_out(self) -> bool {
        matches!(self, MessageState::Sent | MessageState::Uncertain)
    }

    #[cfg(test)]
    /// Whether the message takes up its person's local day for the one-message-per-day
    /// rule: it went out, may have, or is going out now.
    pub(crate) fn takes_the_day(self) -> bool {
        self == MessageState::Sending || self.went_out()
    }
}

/// `text` from outside (an SMTP server's reply, a CSV field, a survey answer) made safe
/// to print on one terminal line or log line: tabs and line breaks become spaces, and
/// every other control character (escape sequences start with one) and every bidi
/// override is removed, so nothing a server or a file sent can move the cursor, recolour
/// or rewrite what the operator reads.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if unsafe_char(c) => None,
            c => Some(c),
        })
        .collect::<String>()
        .into()
}

/// One bad row: where it starts in the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowError {
    /// 1-based line where the record starts (the header is line 1).
    pub line: u64,
    /// Every problem found in the row, as plain sentences joined by "; ".
    pub reason: String,
}

/// How the two errors that end reading begin; see [`RowError::ends_the_file`].
pub(crate) const RECORD_TOO_LONG: &str = "this record is longer than 1 MiB";
pub(crate) const UNREADABLE_REST: &str = "could not read the rest of the file";

impl RowError {
    /// Whether reading stopped here, so the rest of the file was never seen: even with
    /// `--skip-invalid`, such a file must not be half-applied.
    pub(crate) fn ends_the_file(&self) -> bool {
        self.reason.starts_with(RECORD_TOO_LONG) || self.reason.starts_with(UNREADABLE_REST)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for RowError {}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_people_paste_them() {
        let cases = [
            ("q@x.example", "q@x.example"),
            ("  Q@X.Example ", "q@x.example"),
            ("\"q@x.example\"", "q@x.example"),
            ("'q@x.example'", "q@x.example"),
            ("“q@x.example”", "q@x.example"),
            ("\" q@x.example \"", "q@x.example"),
            ("Quinn Doe <Q@x.example>", "q@x.example"),
            ("\"Doe, Quinn\" <q@x.example>", "q@x.example"),
            ("\"q@x.example\" <q@x.example>", "q@x.example"),
            ("<q@x.example>", "q@x.example"),
            ("mailto:q@x.example", "q@x.example"),
            ("bob@bücher.example", "bob@xn--bcher-kva.example"),
            ("bob@BÜCHER.example", "bob@xn--bcher-kva.example"),
            ("bob@xn--bcher-kva.example", "bob@xn--bcher-kva.example"),
            // A composed é and an e with a combining accent are one mailbox.
            ("ren\u{e9}@x.example", "ren\u{e9}@x.example"),
            ("rene\u{301}@x.example", "ren\u{e9}@x.example"),
            ("Zo\u{cb}@x.example", "zo\u{eb}@x.example"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_address(text), Ok(expected.to_string()), "{text}");
            assert_eq!(
                normalize_email(expected),
                expected,
                "idempotent: {expected}"
            );
        }
        let refused = [
            ("", AddressError::Missing),
            ("\"\"", AddressError::Missing),
            ("q", AddressError::Invalid),
            ("q@x", AddressError::Invalid),
            ("a@x.example, b@x.example", AddressError::Invalid),
            ("a@x.example b@x.example", AddressError::Invalid),
            ("<a@x.example> <b@x.example>", AddressError::Invalid),
            ("\"q@x.example", AddressError::Invalid),
            ("q@@x.example", AddressError::Invalid),
            ("q@x..example", AddressError::Invalid),
            ("q@bü cher.example", AddressError::Invalid),
        ];
        for (text, expected) in refused {
            assert_eq!(parse_address(text), Err(expected), "{text:?}");
        }
    }

    /// A domain is letters, digits and hyphens (RFC 5321), so text pasted around an
    /// address (a `mailto:` query, a closing bracket) is refused, not taken for a
    /// domain: `optout` would answer "opted out" for an address nobody has.
    #[test]
    fn a_domain_holds_only_letters_digits_and_hyphens() {
        for text in [
            "mailto:q@x.example?subject=unsubscribe",
            "q@x.example)",
            "q@x.example/",
            "q@x_y.example",
            "q@-x.example",
            "q@x-.example",
            "q@x.exam!ple",
        ] {
            assert_eq!(parse_address(text), Err(AddressError::Invalid), "{text:?}");
        }
        for text in ["q@x-y.example", "q@123.example", "q@xn--bcher-kva.example"] {
            assert_eq!(parse_address(text), Ok(text.to_string()));
        }
    }

    #[test]
    fn the_old_unicode_spelling_of_an_idna_domain_is_known() {
        assert_eq!(
            legacy_unicode_spelling("bob@xn--bcher-kva.example").as_deref(),
            Some("bob@bücher.example")
        );
        assert_eq!(legacy_unicode_spelling("bob@x.example"), None);
    }

    #[test]
    fn printable_text_carries_no_escape_sequence() {
        assert_eq!(printable("250 OK"), "250 OK");
        assert_eq!(
            printable("550 \u{1b}[2J\u{1b}]0;owned\u{7}gone\r\nnext\u{9b}31m\u{202E}txt"),
            "550 [2J]0;ownedgone  next31mtxt"
        );
        assert!(!printable("a\u{7f}b\u{0}c").chars().any(char::is_control));
    }
}
