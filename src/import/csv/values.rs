//! The rules of each value in a former-client CSV row (address, dates, time zone,
//! churn-reason slug or label, country, header-safe names), each a plain function from
//! the cell's text to the value or a sentence saying what to fix. No I/O, no clock: the
//! caller passes `now`.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::date_format::{DateFormat, format_hint};
use crate::domain::model::{AddressError, ChurnedAt, parse_address};

/// Longer values are cut short when quoted in an error message.
pub(super) const MAX_QUOTED_CHARS: usize = 60;

pub(super) fn keep<T>(result: Result<T, String>, problems: &mut Vec<String>) -> Option<T> {
    result.map_err(|problem| problems.push(problem)).ok()
}

pub(super) fn parse_email(raw: &str) -> Result<String, String> {
    parse_address(raw).map_err(|error| match error {
        AddressError::Missing => "missing email".to_owned(),
        AddressError::Invalid => format!("invalid email address {}", quoted(raw.trim())),
    })
}

pub(super) fn parse_churned_at(
    raw: &str,
    format: Option<&DateFormat>,
    now: DateTime<Utc>,
    latest_date: Option<NaiveDate>,
) -> Result<ChurnedAt, String> {
    match parse_date("churned_at", raw, format, now, latest_date)? {
        Some(churned_at) => Ok(churned_at),
        None => Err("missing churned_at".to_owned()),
    }
}

/// A date column's cell (`churned_at`, `returned_at`): `YYYY-MM-DD`, RFC 3339,
/// `YYYY-MM-DD HH:MM[:SS]` (the date counts), or as `[clients] date_format` says. Empty is
/// None; a date in the future is refused.
pub(super) fn parse_date(
    column: &str,
    raw: &str,
    format: Option<&DateFormat>,
    now: DateTime<Utc>,
    latest_date: Option<NaiveDate>,
) -> Result<Option<ChurnedAt>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = match format.and_then(|format| format.date(text)) {
        Some(date) => Some(ChurnedAt::Date(date)),
        None => match parse_plain_date(text) {
            Some(date) => Some(ChurnedAt::Date(date)),
            None => ChurnedAt::parse(text).or_else(|| local_date_time(text).map(ChurnedAt::Date)),
        },
    };
    let Some(date) = parsed else {
        return Err(not_a_date(column, text, format));
    };
    let in_future = match date {
        ChurnedAt::Date(date) => latest_date.is_some_and(|latest| date > latest),
        ChurnedAt::Instant(instant) => instant > now,
    };
    if in_future {
        // `text` parsed as a date, so it is short and printable.
        return Err(format!("{column} {text} is in the future"));
    }
    Ok(Some(date))
}

fn not_a_date(column: &str, text: &str, format: Option<&DateFormat>) -> String {
    if let Some(format) = format {
        return format!(
            "{column} {} is not a date written as {:?} ([clients] date_format), nor YYYY-MM-DD",
            quoted(text),
            format.pattern()
        );
    }
    match format_hint(text) {
        // Day and month may come either way round (`07/14/2025` is month first): the
        // year is last either way.
        Some(hint) => format!(
            "{column} {} puts the year last, which winback reads only through a date format: {hint}",
            quoted(text)
        ),
        None => format!(
            "{column} {} is not a date (use YYYY-MM-DD or RFC 3339, e.g. 2026-03-31)",
            quoted(text)
        ),
    }
}

/// `YYYY-MM-DD HH:MM[:SS]` (or with a `T`), a local time without a zone: its date.
fn local_date_time(text: &str) -> Option<NaiveDate> {
    let (date, time) = text.split_at_checked(10)?;
    let date = parse_plain_date(date)?;
    let time = time.strip_prefix([' ', 'T'])?;
    chrono::NaiveTime::parse_from_str(time, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(time, "%H:%M"))
        .ok()
        .map(|_| date)
}

/// `YYYY-MM-DD`, the common case, parsed without `ChurnedAt::parse`'s format string (the
/// largest single cost in a profile); anything else is left to `ChurnedAt::parse`.
pub(super) fn parse_plain_date(text: &str) -> Option<NaiveDate> {
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

pub(super) fn parse_timezone(raw: &str) -> Result<Option<Tz>, String> {
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

/// A churn reason: a label `[clients] reasons` maps (`labels`: lower-cased label, slug),
/// a slug as is (lower-cased), or a label made into one (`Preis zu hoch` → `preis_zu_hoch`).
pub(super) fn parse_churn_reason(
    raw: &str,
    labels: &[(String, String)],
) -> Result<Option<String>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if !labels.is_empty() {
        let mapped = if text.is_ascii() {
            labels
                .iter()
                .find(|(label, _)| label.eq_ignore_ascii_case(text))
        } else {
            let lower = text.to_lowercase();
            labels.iter().find(|(label, _)| *label == lower)
        };
        if let Some((_, slug)) = mapped {
            return Ok(Some(slug.clone()));
        }
    }
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Ok(Some(text.to_ascii_lowercase()));
    }
    let slug = slug_of(text);
    if slug.is_empty() {
        return Err(format!(
            "churn_reason {} has no letters or digits to make a slug of; map it to one in the configuration: [clients] reasons = {{ {} = \"other\" }}",
            quoted(text),
            quoted(text)
        ));
    }
    Ok(Some(slug))
}

/// A label as a slug: accents taken off, lower case, each run of other characters one `_`.
pub(crate) fn slug_of(label: &str) -> String {
    let mut slug = String::with_capacity(label.len());
    let mut gap = false;
    for c in label.chars() {
        let mut buffer = [0u8; 4];
        let letters: &str = if c.is_ascii_alphanumeric() {
            c.encode_utf8(&mut buffer)
        } else if c.is_ascii() {
            ""
        } else {
            &crate::domain::country::folded(c.encode_utf8(&mut buffer))
        };
        if letters.is_empty() {
            gap = true;
            continue;
        }
        if gap && !slug.is_empty() {
            slug.push('_');
        }
        gap = false;
        slug.extend(letters.chars().map(|c| c.to_ascii_lowercase()));
    }
    slug
}

/// A country as an ISO 3166-1 alpha-2 code (`de`, `DEU`, `Germany`, `Deutschland` → `DE`).
pub(super) fn parse_country(raw: &str) -> Result<Option<String>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match crate::domain::country::country_code(text) {
        Some(code) => Ok(Some(code.to_owned())),
        None => Err(format!(
            "country {} is not a country winback knows (use its two-letter ISO code, such as DE or US)",
            quoted(text)
        )),
    }
}

/// A value that will end up in an email header (`To: "Name" <…>`, a subject): line breaks
/// and tabs become one space, any other control character is refused.
pub(super) fn parse_header_text(column: &str, raw: &str) -> Result<Option<String>, String> {
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
pub(super) fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}
