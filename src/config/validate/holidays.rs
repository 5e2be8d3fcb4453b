//! A campaign's `holidays` (iCalendar files, read here) and `quiet_dates`.
//!
//! Part of the validator: records problems and warnings and builds the campaign's
//! [`Holidays`]; the only I/O is reading each named `.ics` file. What a calendar's text
//! means (all-day events, yearly `RRULE`s, the country it is for) is read by the pure
//! [`read_calendar`]; which dates it keeps free is `domain/holidays.rs`'s.

use std::ops::Range;
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use icalendar::parser::{Component, Property};
use toml::Spanned;

use super::Validator;
use crate::domain::country::country_code;
use crate::domain::holidays::{Holiday, HolidayCalendar, Holidays, QuietRange, YearlyRule};

/// An event longer than this is not a holiday (a season, a mistake) and is ignored.
const LONGEST_HOLIDAY_DAYS: i64 = 31;

/// What to write instead, said after each refused `quiet_dates` entry.
const QUIET_EXAMPLE: &str =
    "write month-day, e.g. \"05-01\", or a range \"12-20..01-05\" (20 December to 5 January)";

impl Validator<'_> {
    /// `holidays` and `quiet_dates`.
    pub(super) fn holidays(
        &mut self,
        files: Option<Spanned<Vec<String>>>,
        quiet_dates: Option<Spanned<Vec<String>>>,
        key: &dyn Fn(&str) -> String,
    ) -> Holidays {
        let files_span = files.as_ref().map(|f| f.span());
        let calendars = files
            .map(|f| self.holiday_files(f, &key("holidays")))
            .unwrap_or_default();
        let quiet_span = quiet_dates.as_ref().map(|q| q.span());
        let quiet = quiet_dates
            .map(|q| self.quiet_dates(q, &key("quiet_dates")))
            .unwrap_or_default();
        let holidays = Holidays { calendars, quiet };
        if let Some(year) = year_with_no_free_day(&holidays) {
            let (span, name, fix) = match (quiet_span, files_span) {
                (Some(span), _) => (span, "quiet_dates", "shorten the quiet dates"),
                (None, span) => (
                    span.unwrap_or(0..0),
                    "holidays",
                    "remove the longest events",
                ),
            };
            self.problem(
                Some(&span),
                &key(name),
                format!("with the holidays, keeps every day of {year} free, so nothing would ever be sent; {fix}"),
            );
        }
        holidays
    }

    /// Each `holidays` file, read; a missing, unreadable or useless file is a problem.
    fn holiday_files(&mut self, files: Spanned<Vec<String>>, key: &str) -> Vec<HolidayCalendar> {
        let span = files.span();
        let mut calendars = Vec::new();
        for written in files.into_inner() {
            let written = written.trim();
            if written.is_empty() {
                self.problem(Some(&span), key, "has an empty entry; write the path of an iCalendar (.ics) file, e.g. holidays = [\"holidays/us.ics\"]");
                continue;
            }
            let path = self.resolve(written);
            let Some(text) = self.calendar_text(&path, &span, key) else {
                continue;
            };
            match read_calendar(written, &text) {
                Ok((calendar, ignored)) => {
                    if !ignored.is_empty() {
                        let message = format!(
                            "{}: {} (only all-day events, once or repeating yearly, keep a day free)",
                            path.display(),
                            summarize(&ignored)
                        );
                        self.warning(&span, key, message);
                    }
                    calendars.push(calendar);
                }
                Err(why) => {
                    self.problem(Some(&span), key, format!("{}: {why}", path.display()));
                }
            }
        }
        if calendars.len() > 1 {
            for calendar in calendars.iter().filter(|c| c.country.is_none()) {
                let path = self.resolve(&calendar.name);
                self.warning(&span, key, format!(
                    "{}: no country can be told from its name or X-WR-CALNAME, so it applies to everyone, whatever their country; if it is one country's calendar, name the file after the country, e.g. \"holidays/de.ics\" or \"holidays/germany.ics\"",
                    path.display()
                ));
            }
        }
        calendars
    }

    /// The text of the calendar at `path`, or a problem saying why there is none.
    fn calendar_text(&mut self, path: &Path, span: &Range<usize>, key: &str) -> Option<String> {
        let fix = "write the path of an iCalendar (.ics) file, relative to this file's folder, e.g. holidays = [\"holidays/us.ics\"]";
        if path.is_dir() {
            self.problem(
                Some(span),
                key,
                format!("{} is a folder; {fix}", path.display()),
            );
            return None;
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problem(
                    Some(span),
                    key,
                    format!("{} does not exist; {fix}", path.display()),
                );
                return None;
            }
            Err(e) => {
                self.problem(
                    Some(span),
                    key,
                    format!(
                        "{} cannot be read ({e}); let the user winback runs as read it",
                        path.display()
                    ),
                );
                return None;
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                self.problem(Some(span), key, format!("{} is not UTF-8 text, as iCalendar files are; download or export the calendar again as .ics", path.display()));
                None
            }
        }
    }

    /// `quiet_dates`: month-days and month-day ranges.
    fn quiet_dates(&mut self, raw: Spanned<Vec<String>>, key: &str) -> Vec<QuietRange> {
        let span = raw.span();
        let mut ranges = Vec::new();
        for written in raw.into_inner() {
            match quiet_range(&written) {
                Ok(range) => ranges.push(range),
                Err(why) => self.problem(Some(&span), key, why),
            }
        }
        ranges
    }
}

/// One `quiet_dates` entry: "05-01" or "12-20..01-05" (it may wrap over the new year).
pub(crate) fn quiet_range(written: &str) -> Result<QuietRange, String> {
    let text = written.trim();
    let (from, to) = match text.split_once("..") {
        Some((from, to)) => (from.trim(), to.trim()),
        None => (text, text),
    };
    let from = month_day(written, from)?;
    let to = month_day(written, to)?;
    Ok(QuietRange { from, to })
}

/// "MM-DD" as (month, day); 29 February is a day.
fn month_day(written: &str, text: &str) -> Result<(u32, u32), String> {
    let not_a_date = || format!("\"{written}\" is not a date or a range of dates; {QUIET_EXAMPLE}");
    let (m, d) = text.split_once('-').ok_or_else(not_a_date)?;
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (Some(month), Some(day)) = (number(m), number(d)) else {
        return Err(not_a_date());
    };
    if !(1..=12).contains(&month) {
        return Err(format!(
            "\"{written}\": {month} is not a month (months are 01 to 12, written first); {QUIET_EXAMPLE}"
        ));
    }
    // 2028 is a leap year, so 02-29 is a day.
    let Some(date) = NaiveDate::from_ymd_opt(2028, month, day) else {
        return Err(format!(
            "\"{written}\": {} has no day {day}; {QUIET_EXAMPLE}",
            month_name(month)
        ));
    };
    Ok((date.month(), date.day()))
}

fn month_name(month: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES[(month.clamp(1, 12) - 1) as usize]
}

/// A year in which every day is kept free for someone every calendar applies to (the
/// most a person can have kept free), if there is one among the next years to come.
fn year_with_no_free_day(holidays: &Holidays) -> Option<i32> {
    if holidays.is_empty() {
        return None;
    }
    // A leap year and the years around it; a calendar is read once, so this is cheap.
    (2027..=2029).find(|&year| {
        let first = NaiveDate::from_ymd_opt(year, 1, 1);
        first.is_some_and(|first| {
            first
                .iter_days()
                .take_while(|d| d.year() == year)
                .all(|d| holidays.blocked(d, None).is_some())
        })
    })
}

/// "3 events are ignored: "Staff party" has a time of day; ..." (the first three).
fn summarize(ignored: &[String]) -> String {
    let shown: Vec<&str> = ignored.iter().take(3).map(String::as_str).collect();
    let more = ignored.len().saturating_sub(shown.len());
    let mut text = if ignored.len() == 1 {
        format!("1 event is ignored: {}", shown.join("; "))
    } else {
        format!("{} events are ignored: {}", ignored.len(), shown.join("; "))
    };
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

/// An iCalendar file's text, read: the calendar named `name` (as the configuration
/// writes it) with its usable events, and why each other event is ignored; or why the
/// file cannot be used at all.
pub(crate) fn read_calendar(
    name: &str,
    text: &str,
) -> Result<(HolidayCalendar, Vec<String>), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let how = "download or export the calendar as .ics (its text begins with BEGIN:VCALENDAR)";
    if !text.trim_start().starts_with("BEGIN:") {
        return Err(format!("is not an iCalendar file; {how}"));
    }
    let unfolded = icalendar::parser::unfold(text);
    let parsed = icalendar::parser::read_calendar(&unfolded).map_err(|e| {
        let first = e
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && *l != "error:")
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!("cannot be read as iCalendar ({first}); {how}")
    })?;
    let calname = parsed
        .properties
        .iter()
        .find(|p| p.name == "X-WR-CALNAME")
        .map(|p| p.val.as_str().to_string());
    let mut events = Vec::new();
    let mut ignored = Vec::new();
    let mut seen = 0;
    for component in all_events(&parsed.components) {
        seen += 1;
        match holiday(component) {
            Ok(Some(h)) => events.push(h),
            Ok(None) => {}
            Err(why) => ignored.push(why),
        }
    }
    if events.is_empty() {
        let why = if seen == 0 {
            "has no event".to_string()
        } else {
            format!(
                "has no all-day event winback can use ({})",
                summarize(&ignored)
            )
        };
        return Err(format!(
            "{why}; a holiday is an all-day event (DTSTART;VALUE=DATE:20261225), once or repeating every year (RRULE:FREQ=YEARLY); {how}"
        ));
    }
    let country = calendar_country(name, calname.as_deref());
    Ok((
        HolidayCalendar {
            name: name.to_string(),
            country,
            events,
        },
        ignored,
    ))
}

/// Every `VEVENT`, however deep (a file may hold several `VCALENDAR`s).
fn all_events<'c, 'a>(components: &'c [Component<'a>]) -> Vec<&'c Component<'a>> {
    let mut out = Vec::new();
    for c in components {
        if c.name.as_str().eq_ignore_ascii_case("VEVENT") {
            out.push(c);
        } else {
            out.extend(all_events(&c.components));
        }
    }
    out
}

fn property<'c, 'a>(event: &'c Component<'a>, name: &str) -> Option<&'c Property<'a>> {
    event
        .properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

/// One event as a holiday; `Ok(None)` for a cancelled one, `Err` with why it is ignored.
fn holiday(event: &Component<'_>) -> Result<Option<Holiday>, String> {
    if property(event, "STATUS").is_some_and(|s| s.val.as_str().eq_ignore_ascii_case("CANCELLED")) {
        return Ok(None);
    }
    let name = property(event, "SUMMARY")
        .map(|s| s.val.clone().unescape_text().as_str().trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "a holiday".to_string());
    let Some(dtstart) = property(event, "DTSTART") else {
        return Err(format!("\"{name}\" has no DTSTART"));
    };
    // Outlook may write an all-day event as midnight to midnight, marked as all-day.
    let marked_all_day = property(event, "X-MICROSOFT-CDO-ALLDAYEVENT")
        .is_some_and(|p| p.val.as_str().trim().eq_ignore_ascii_case("TRUE"));
    let start = match date_value(dtstart.val.as_str()) {
        Some(DateValue::Date(d)) => d,
        Some(DateValue::Timed(d)) if marked_all_day => d,
        Some(DateValue::Timed(d)) => {
            return Err(format!(
                "\"{name}\" on {d} has a time of day; make it an all-day event"
            ));
        }
        None => {
            return Err(format!(
                "\"{name}\" has a DTSTART that is not a date ({})",
                dtstart.val.as_str()
            ));
        }
    };
    let days = match (property(event, "DTEND"), property(event, "DURATION")) {
        (Some(end), _) => match date_value(end.val.as_str()) {
            Some(DateValue::Date(end)) => (end - start).num_days().max(1),
            Some(DateValue::Timed(end)) if marked_all_day => (end - start).num_days().max(1),
            _ => 1,
        },
        (None, Some(duration)) => match duration_days(duration.val.as_str()) {
            Some(days) if days < 1 => {
                return Err(format!(
                    "\"{name}\" from {start} has DURATION:{}, which is not a length of whole days; write P1D for one day",
                    duration.val.as_str()
                ));
            }
            Some(days) => days,
            None => 1,
        },
        (None, None) => 1,
    };
    if days > LONGEST_HOLIDAY_DAYS {
        return Err(format!(
            "\"{name}\" from {start} lasts {days} days, longer than a holiday"
        ));
    }
    let yearly = match property(event, "RRULE") {
        Some(rule) => Some(
            yearly_rule(rule.val.as_str(), start)
                .map_err(|why| format!("\"{name}\" (RRULE:{}) {why}", rule.val.as_str()))?,
        ),
        None => None,
    };
    let except = event
        .properties
        .iter()
        .filter(|p| p.name.as_str().eq_ignore_ascii_case("EXDATE"))
        .flat_map(|p| {
            p.val
                .as_str()
                .split(',')
                .filter_map(|v| match date_value(v.trim()) {
                    Some(DateValue::Date(d) | DateValue::Timed(d)) => Some(d),
                    None => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Some(Holiday {
        name,
        start,
        days: days as u32,
        yearly,
        except,
    }))
}

enum DateValue {
    /// `20261225`
    Date(NaiveDate),
    /// `20261225T100000`, `20261225T100000Z`: the day it starts on.
    Timed(NaiveDate),
}

fn date_value(text: &str) -> Option<DateValue> {
    let text = text.trim();
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    Some(match time {
        None => DateValue::Date(day),
        Some(_) => DateValue::Timed(day),
    })
}

/// `P3D`, `P1W`: whole days; other durations have a time and are not a day's length.
fn duration_days(text: &str) -> Option<i64> {
    let rest = text.trim().strip_prefix('P')?;
    if let Some(n) = rest.strip_suffix('D') {
        return n.parse().ok();
    }
    rest.strip_suffix('W')
        .and_then(|n| n.parse::<i64>().ok())
        .map(|w| w.saturating_mul(7))
}

/// An `RRULE` value read (by `rrule`) as a yearly rule for an all-day event from `start`,
/// or why it is not one winback reads.
pub(crate) fn yearly_rule(text: &str, start: NaiveDate) -> Result<YearlyRule, String> {
    let rule: rrule::RRule<rrule::Unvalidated> = text
        .trim()
        .parse()
        .map_err(|e| format!("cannot be read ({e})"))?;
    if rule.get_freq() != rrule::Frequency::Yearly {
        return Err(format!(
            "repeats {}; only yearly repeats (FREQ=YEARLY) are read",
            rule.get_freq().to_string().to_lowercase()
        ));
    }
    let unread = [
        ("BYSETPOS", !rule.get_by_set_pos().is_empty()),
        ("BYYEARDAY", !rule.get_by_year_day().is_empty()),
        ("BYWEEKNO", !rule.get_by_week_no().is_empty()),
        ("BYHOUR", !rule.get_by_hour().is_empty()),
        ("BYMINUTE", !rule.get_by_minute().is_empty()),
        ("BYSECOND", !rule.get_by_second().is_empty()),
    ];
    if let Some((part, _)) = unread.iter().find(|(_, set)| *set) {
        return Err(format!("uses {part}, which winback does not read"));
    }
    let months: Vec<u32> = rule.get_by_month().iter().map(|&m| u32::from(m)).collect();
    if let Some(m) = months.iter().find(|m| !(1..=12).contains(*m)) {
        return Err(format!("has BYMONTH={m}, not a month"));
    }
    let month_days: Vec<i32> = rule
        .get_by_month_day()
        .iter()
        .map(|&d| i32::from(d))
        .collect();
    if let Some(d) = month_days.iter().find(|d| **d == 0 || d.abs() > 31) {
        return Err(format!("has BYMONTHDAY={d}, not a day of a month"));
    }
    let weekdays: Vec<(i32, Weekday)> = rule
        .get_by_weekday()
        .iter()
        .map(|w| match *w {
            rrule::NWeekday::Every(day) => (0, day),
            rrule::NWeekday::Nth(n, day) => (i32::from(n), day),
        })
        .collect();
    let limit = if months.is_empty() { 53 } else { 5 };
    if let Some((n, _)) = weekdays.iter().find(|(n, _)| n.abs() > limit) {
        return Err(format!("asks for weekday number {n}, which no period has"));
    }
    if rule.get_count() == Some(0) {
        return Err("has COUNT=0, so it never happens".to_string());
    }
    // A date-only UNTIL is read as a local date: its date is the one written.
    let until = rule.get_until().map(|u| u.date_naive());
    if until.is_some_and(|u| u < start) {
        return Err("ends (UNTIL) before it starts".to_string());
    }
    Ok(YearlyRule {
        interval: u32::from(rule.get_interval().max(1)),
        months,
        month_days,
        weekdays,
        count: rule.get_count(),
        until,
    })
}

/// The country a calendar is for: named by its file's name (`us.ics`, `holidays-DE.ics`,
/// `germany.ics`), else by its `X-WR-CALNAME` ("Holidays in Germany", "US Holidays").
/// A country's name wins over a two-letter word, so "in" is never India; in a calendar's
/// name, codes count only in capitals.
pub(crate) fn calendar_country(file: &str, calname: Option<&str>) -> Option<String> {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let stem = base
        .rsplit_once('.')
        .map(|(stem, _)| stem)
        .filter(|s| !s.is_empty())
        .unwrap_or(base);
    country_in(stem, true)
        .or_else(|| calname.and_then(|n| country_in(n, false)))
        .map(str::to_string)
}

/// The country `text` names as a whole, in a run of its words, or by a code among them.
fn country_in(text: &str, lower_case_codes: bool) -> Option<&'static str> {
    if let Some(code) = country_code(text) {
        return Some(code);
    }
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    // Names: runs of words, longest first ("United States", "Germany"), but never a lone
    // word of three letters or fewer ("and" is Andorra's code).
    for len in (1..=words.len().min(4)).rev() {
        for run in words.windows(len) {
            if len == 1 && run[0].chars().count() <= 3 {
                continue;
            }
            if let Some(code) = country_code(&run.join(" ")) {
                return Some(code);
            }
        }
    }
    // Codes: "DE", "DEU", or "de" first or last in a file's name ("de_holidays",
    // "holidays-de"), unless it is also an English word ("my-holidays", "no-mail",
    // "it-team"): such a calendar applies to everyone rather than to one country.
    const ENGLISH: [&str; 14] = [
        "am", "as", "at", "be", "by", "do", "in", "is", "it", "me", "my", "no", "so", "to",
    ];
    let last = words.len().saturating_sub(1);
    words.iter().enumerate().find_map(|(i, w)| {
        let capitals = w.chars().all(|c| c.is_ascii_uppercase());
        let lower_code = lower_case_codes
            && (i == 0 || i == last)
            && !ENGLISH.contains(&w.to_ascii_lowercase().as_str());
        match w.len() {
            2 if capitals || lower_code => country_code(w),
            3 if capitals => country_code(w),
            _ => None,
        }
    })
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
