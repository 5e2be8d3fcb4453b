//! The rules of each value in a former-client CSV row (address, churn date, time zone,
//! churn-reason slug, header-safe names), each a plain function from the cell's text to
//! the value or a sentence saying what to fix. No I/O, no clock: the caller passes `now`.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::model::{AddressError, ChurnedAt, parse_address};

/// Longer values are cut short when quoted in an error message.
pub(super) const MAX_QUOTED_CHARS: usize = 60;
pub(super) const SLUG_HINT: &str = "use a slug such as competitor, price or we_ended";

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

pub(super) fn parse_churn_reason(raw: &str) -> Result<Option<String>, String> {
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
