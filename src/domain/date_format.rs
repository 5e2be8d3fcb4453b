//! Dates as a CRM writes them: `[clients] date_format` (`MM/DD/YYYY`, `DD.MM.YYYY HH:mm`...)
//! checked into a [`DateFormat`] and applied to a cell, and the sentence naming the format
//! to set when a cell is a date written day-and-month-first without one. Never a guess:
//! `07/08/2025` is only read through a format someone set.
//!
//! Pure: no I/O, no clock. A time of day is read and checked, and the date is what counts
//! (a churn or return date is a day).

use chrono::NaiveDate;

/// One part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Four digits.
    Year,
    /// One or two digits (`MM` and `M` alike: spreadsheets drop leading zeros).
    Month,
    Day,
    /// One or two digits, 0–23.
    Hour,
    /// Two digits, 0–59.
    Minute,
    Second,
    /// Written as is; a space matches one or more spaces.
    Literal(char),
}

/// A checked `date_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateFormat {
    parts: Vec<Part>,
    /// The pattern as written, for messages about dates that do not follow it.
    pattern: String,
}

const TOKENS_HINT: &str = "write it with YYYY, MM, DD (or M, D) for the date and HH, mm, ss \
     for a time, with the separators your CRM uses, e.g. \"MM/DD/YYYY\" or \"DD.MM.YYYY\"";

impl DateFormat {
    /// Checks a pattern; the error says, in words, what to write instead.
    pub(crate) fn parse(pattern: &str) -> Result<DateFormat, String> {
        let chars: Vec<char> = pattern.trim().chars().collect();
        if chars.is_empty() {
            return Err(format!("is empty; {TOKENS_HINT}"));
        }
        // `dd.mm.yyyy`: in lower case, mm would be minutes; say what was surely meant.
        let lower = pattern.trim().to_lowercase();
        if !pattern.contains('Y') && lower.contains("yyyy") {
            return Err(format!(
                "must write the date parts in capitals (mm is minutes): e.g. \"{}\"",
                lower
                    .replace("yyyy", "YYYY")
                    .replace("dd", "DD")
                    .replacen("mm", "MM", 1)
                    .replace("hh", "HH")
            ));
        }
        let mut parts = Vec::new();
        let mut index = 0;
        while let Some(&c) = chars.get(index) {
            let run = chars[index..].iter().take_while(|&&x| x == c).count();
            index += run;
            let part = match (c, run) {
                ('Y', 4) => Part::Year,
                ('Y' | 'y', _) => {
                    return Err(format!(
                        "has \"{}\": write the year as YYYY (four digits); {TOKENS_HINT}",
                        c.to_string().repeat(run)
                    ));
                }
                ('M', 1 | 2) => Part::Month,
                ('D', 1 | 2) => Part::Day,
                ('H', 1 | 2) => Part::Hour,
                ('m', 2) => Part::Minute,
                ('s', 2) => Part::Second,
                ('d' | 'h', _) | ('m' | 's', 1) | ('M' | 'D' | 'H' | 'm' | 's', _) => {
                    return Err(format!(
                        "has \"{}\", which is not a part winback reads; {TOKENS_HINT}",
                        c.to_string().repeat(run)
                    ));
                }
                (c, _) if c.is_alphanumeric() => {
                    return Err(format!(
                        "has \"{c}\", which is not a part winback reads; {TOKENS_HINT}"
                    ));
                }
                (c, run) => {
                    for _ in 0..run {
                        parts.push(Part::Literal(c));
                    }
                    continue;
                }
            };
            if parts.contains(&part) {
                return Err(format!(
                    "names the same part twice (\"{}\"); {TOKENS_HINT}",
                    c.to_string().repeat(run)
                ));
            }
            parts.push(part);
        }
        let has = |part: Part| parts.contains(&part);
        if !has(Part::Year) || !has(Part::Month) || !has(Part::Day) {
            return Err(format!(
                "must name the year, the month and the day; {TOKENS_HINT}"
            ));
        }
        if (has(Part::Minute) || has(Part::Second)) && !has(Part::Hour) {
            return Err(format!(
                "has minutes or seconds but no hour (HH); {TOKENS_HINT}"
            ));
        }
        if has(Part::Second) && !has(Part::Minute) {
            return Err(format!("has seconds but no minutes (mm); {TOKENS_HINT}"));
        }
        Ok(DateFormat {
            parts,
            pattern: pattern.trim().to_owned(),
        })
    }

    /// The date `text` (trimmed) denotes, if it is written this way.
    /// The pattern as written in `[clients] date_format`.
    pub(crate) fn pattern(&self) -> &str {
        &self.pattern
    }

    pub(crate) fn date(&self, text: &str) -> Option<NaiveDate> {
        let bytes = text.trim().as_bytes();
        let mut at = 0;
        let (mut year, mut month, mut day) = (None, None, None);
        let digits = |at: &mut usize, min: usize, max: usize| -> Option<u32> {
            let count = bytes[*at..]
                .iter()
                .take(max)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if count < min {
                return None;
            }
            let value = bytes[*at..*at + count]
                .iter()
                .fold(0u32, |value, &digit| value * 10 + u32::from(digit - b'0'));
            *at += count;
            Some(value)
        };
        for part in &self.parts {
            match part {
                Part::Year => year = Some(digits(&mut at, 4, 4)?),
                Part::Month => month = Some(digits(&mut at, 1, 2)?),
                Part::Day => day = Some(digits(&mut at, 1, 2)?),
                Part::Hour => {
                    if digits(&mut at, 1, 2)? > 23 {
                        return None;
                    }
                }
                Part::Minute | Part::Second => {
                    if digits(&mut at, 2, 2)? > 59 {
                        return None;
                    }
                }
                Part::Literal(' ') => {
                    let spaces = bytes[at..].iter().take_while(|&&b| b == b' ').count();
                    if spaces == 0 {
                        return None;
                    }
                    at += spaces;
                }
                Part::Literal(c) => {
                    let mut buffer = [0u8; 4];
                    let literal = c.encode_utf8(&mut buffer).as_bytes();
                    if !bytes[at..].starts_with(literal) {
                        return None;
                    }
                    at += literal.len();
                }
            }
        }
        if at != bytes.len() {
            return None;
        }
        NaiveDate::from_ymd_opt(i32::try_from(year?).ok()?, month?, day?)
    }
}

/// For a date winback does not read without a format (`07/14/2025`, `14.07.2025`,
/// `7/14/2025 09:30`): the `date_format` to set, in words. None for anything else.
pub(crate) fn format_hint(text: &str) -> Option<String> {
    let text = text.trim();
    let (date, time) = match text.split_once(' ') {
        Some((date, time)) => (date, Some(time.trim())),
        None => (text, None),
    };
    let separator = date.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let fields: Vec<&str> = date.split(separator).collect();
    let [first, second, year] = fields[..] else {
        return None;
    };
    let small = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !small(first)
        || !small(second)
        || year.len() != 4
        || !year.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let time_pattern = match time {
        None => "",
        Some(time) => {
            let colons = time.matches(':').count();
            if !time.bytes().all(|b| b.is_ascii_digit() || b == b':') || colons == 0 {
                return None;
            }
            if colons == 1 { " HH:mm" } else { " HH:mm:ss" }
        }
    };
    let number = |s: &str| s.parse::<u32>().unwrap_or(0);
    let pattern = |a: &str, b: &str| format!("\"{a}{separator}{b}{separator}YYYY{time_pattern}\"");
    let month_first = pattern("MM", "DD");
    let day_first = pattern("DD", "MM");
    Some(if number(first) > 12 {
        format!("set [clients] date_format = {day_first} if your CRM writes dates this way")
    } else if number(second) > 12 {
        format!("set [clients] date_format = {month_first} if your CRM writes dates this way")
    } else {
        format!(
            "set [clients] date_format to how your CRM writes dates: {month_first} (month first) or {day_first} (day first)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn a_pattern_reads_the_dates_written_its_way() {
        let cases = [
            ("MM/DD/YYYY", "07/14/2025", date(2025, 7, 14)),
            ("MM/DD/YYYY", "7/4/2025", date(2025, 7, 4)),
            ("M/D/YYYY", " 12/31/2025 ", date(2025, 12, 31)),
            ("DD.MM.YYYY", "14.07.2025", date(2025, 7, 14)),
            ("DD.MM.YYYY", "14.7.2025", date(2025, 7, 14)),
            ("DD.MM.YYYY HH:mm", "14.07.2025 09:30", date(2025, 7, 14)),
            ("DD.MM.YYYY HH:mm", "14.07.2025  9:30", date(2025, 7, 14)),
            (
                "YYYY/MM/DD HH:mm:ss",
                "2025/07/14 23:59:59",
                date(2025, 7, 14),
            ),
            ("DD-MM-YYYY", "29-02-2024", date(2024, 2, 29)),
            ("MM/DD/YYYY", "14/07/2025", None),
            ("MM/DD/YYYY", "02/30/2025", None),
            ("MM/DD/YYYY", "07-14-2025", None),
            ("MM/DD/YYYY", "07/14/25", None),
            ("MM/DD/YYYY", "07/14/2025 09:30", None),
            ("MM/DD/YYYY", "2025-07-14", None),
            ("MM/DD/YYYY", "", None),
            ("MM/DD/YYYY", "07/14/20255", None),
            ("MM/DD/YYYY", "007/14/2025", None),
            ("DD.MM.YYYY HH:mm", "14.07.2025 24:00", None),
            ("DD.MM.YYYY HH:mm", "14.07.2025 09:60", None),
            ("DD.MM.YYYY HH:mm", "14.07.2025 9:5", None),
            ("DD.MM.YYYY HH:mm", "14.07.2025", None),
            ("DD. MM. YYYY", "14. 07. 2025", date(2025, 7, 14)),
            ("DD/MM/YYYY", "1\u{e9}/07/2025", None),
        ];
        for (pattern, text, expected) in cases {
            let format = DateFormat::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(format.date(text), expected, "{pattern} on {text:?}");
        }
    }

    #[test]
    fn a_bad_pattern_is_refused_in_words() {
        let cases = [
            ("", "is empty"),
            ("MM/DD/YY", "write the year as YYYY"),
            (
                "yyyy-MM-DD",
                "capitals (mm is minutes): e.g. \"YYYY-MM-DD\"",
            ),
            (
                "dd.mm.yyyy",
                "must write the date parts in capitals (mm is minutes): e.g. \"DD.MM.YYYY\"",
            ),
            ("MM/DD", "must name the year, the month and the day"),
            (
                "MMM DD YYYY",
                "has \"MMM\", which is not a part winback reads",
            ),
            (
                "DD.MM.YYYY hh:mm",
                "has \"hh\", which is not a part winback reads",
            ),
            ("DD/MM/YYYY/DD", "names the same part twice (\"DD\")"),
            ("DD.MM.YYYY mm", "has minutes or seconds but no hour"),
            ("DD.MM.YYYY HH:ss", "has seconds but no minutes"),
            (
                "DD.MM.YYYY T",
                "has \"T\", which is not a part winback reads",
            ),
        ];
        for (pattern, expected) in cases {
            match DateFormat::parse(pattern) {
                Ok(format) => panic!("{pattern:?} accepted: {format:?}"),
                Err(error) => assert!(error.contains(expected), "{pattern:?}: {error}"),
            }
        }
    }

    #[test]
    fn a_date_that_needs_a_format_names_it_and_guesses_nothing() {
        let cases = [
            ("07/14/2025", Some("date_format = \"MM/DD/YYYY\" if")),
            ("14.07.2025", Some("date_format = \"DD.MM.YYYY\" if")),
            ("14-07-2025", Some("date_format = \"DD-MM-YYYY\" if")),
            (
                "7/14/2025 9:30",
                Some("date_format = \"MM/DD/YYYY HH:mm\" if"),
            ),
            (
                "14.07.2025 09:30:15",
                Some("date_format = \"DD.MM.YYYY HH:mm:ss\" if"),
            ),
            (
                "07/08/2025",
                Some("\"MM/DD/YYYY\" (month first) or \"DD/MM/YYYY\" (day first)"),
            ),
            ("2025-07-14", None),
            ("tomorrow", None),
            ("07/14/25", None),
            ("14.07.2025 noon", None),
        ];
        for (text, expected) in cases {
            let hint = format_hint(text);
            match expected {
                None => assert_eq!(hint, None, "{text}"),
                Some(part) => {
                    let hint = hint.unwrap_or_else(|| panic!("{text}: no hint"));
                    assert!(hint.contains(part), "{text}: {hint}");
                }
            }
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn no_pattern_or_cell_panics(pattern in "\\PC{0,16}", text in "\\PC{0,24}") {
            if let Ok(format) = DateFormat::parse(&pattern) {
                let _ = format.date(&text);
            }
            let _ = format_hint(&text);
        }

        #[test]
        fn a_date_written_by_its_pattern_reads_back(
            days in 0i64..3_000_000,
            pattern in prop::sample::select(vec![
                ("MM/DD/YYYY", "%m/%d/%Y"),
                ("DD.MM.YYYY", "%d.%m.%Y"),
                ("D.M.YYYY HH:mm", "%-d.%-m.%Y %H:%M"),
                ("YYYY/MM/DD HH:mm:ss", "%Y/%m/%d %H:%M:%S"),
            ]),
        ) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Duration::days(days);
            let text = date.and_hms_opt(9, 5, 7).unwrap().format(pattern.1).to_string();
            let format = DateFormat::parse(pattern.0).unwrap();
            prop_assert_eq!(format.date(&text), Some(date), "{}", text);
        }
    }
}
