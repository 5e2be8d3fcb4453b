//! `send_at`: a crontab expression with crontab's meaning, evaluated on local wall time.
//!
//! The `cron` crate wants a seconds field, numbers weekdays 1 = Sunday, and ANDs
//! day-of-month with day-of-week. Crontab numbers 0 or 7 = Sunday, 1 = Monday, and ORs
//! the two day fields when both are restricted. This module translates, so operators
//! write what `man 5 crontab` says. Moments are computed on naive local time; mapping
//! them to instants (DST gaps and folds) is the scheduler's job.

use std::str::FromStr;

use chrono::{Duration, NaiveDateTime, TimeZone, Utc};

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A parsed `send_at` expression.
#[derive(Debug, Clone)]
pub(crate) struct SendAt {
    source: String,
    /// One schedule, or two whose union is meant (crontab's day-of-month OR day-of-week).
    schedules: Vec<cron::Schedule>,
    /// Both day fields as written, when both are restricted (so either day sends).
    either_day: Option<(String, String)>,
}

impl SendAt {
    /// Parses 5-field crontab syntax, or 6/7 fields with leading seconds (and trailing year).
    pub(crate) fn parse(expr: &str) -> Result<SendAt, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (seconds, rest, year) = match fields.len() {
            5 => ("0", &fields[..], None),
            6 => (fields[0], &fields[1..], None),
            7 => (fields[0], &fields[1..6], Some(fields[6])),
            n => {
                return Err(format!(
                    "has {n} fields; write 5: minute hour day-of-month month day-of-week, e.g. \"0 10 * * Tue-Thu\""
                ));
            }
        };
        let (minute, hour, dom, month, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
        in_range(seconds, "second", 0, 59, "seconds go from 0 to 59")?;
        in_range(minute, "minute", 0, 59, "minutes go from 0 to 59")?;
        in_range(
            hour,
            "hour",
            0,
            23,
            "hours go from 0 to 23, e.g. 14 for 2 p.m.",
        )?;
        in_range(
            dom,
            "day of month",
            1,
            31,
            "days of the month go from 1 to 31",
        )?;
        in_range(
            month,
            "month",
            1,
            12,
            "months go from 1 to 12 (or Jan to Dec)",
        )?;
        let dow_names = translate_day_of_week(dow)?;
        let dom_restricted = !(dom.starts_with('*') || dom == "?");
        let dow_restricted = !(dow.starts_with('*') || dow == "?");
        let build = |dom: &str, dow: &str| -> Result<cron::Schedule, String> {
            let mut text = format!("{seconds} {minute} {hour} {dom} {month} {dow}");
            if let Some(year) = year {
                text.push(' ');
                text.push_str(year);
            }
            cron::Schedule::from_str(&text)
                .map_err(|e| format!("is not a valid crontab expression ({e})"))
        };
        let schedules = if dom_restricted && dow_restricted {
            vec![build(dom, "*")?, build("*", &dow_names)?]
        } else {
            vec![build(dom, &dow_names)?]
        };
        let send_at = SendAt {
            source: expr.to_string(),
            schedules,
            either_day: (dom_restricted && dow_restricted)
                .then(|| (dom.to_string(), dow.to_string())),
        };
        let probe = NaiveDateTime::parse_from_str("2000-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
            .map_err(|e| e.to_string())?;
        if send_at.first_at_or_after(probe).is_none() {
            return Err("never matches any date".to_string());
        }
        Ok(send_at)
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The day-of-month and day-of-week fields when both are restricted: crontab then
    /// sends on a day matching either, which people rarely mean.
    pub(crate) fn either_day(&self) -> Option<(&str, &str)> {
        self.either_day
            .as_ref()
            .map(|(dom, dow)| (dom.as_str(), dow.as_str()))
    }

    /// The first moment at or after `t`, on naive local time.
    pub(crate) fn first_at_or_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let from = Utc.from_utc_datetime(&(t - Duration::seconds(1)));
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next())
            .min()
            .map(|m| m.naive_utc())
    }

    /// The last moment at or before `t`, on naive local time.
    pub(crate) fn last_at_or_before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let from = Utc.from_utc_datetime(&(t + Duration::seconds(1)));
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next_back())
            .filter(|m| m.naive_utc() <= t)
            .max()
            .map(|m| m.naive_utc())
    }

    /// The expression with its day-of-month field set to `*`: "only on these weekdays".
    pub(crate) fn without_day_of_month(&self) -> String {
        self.with_star(2)
    }

    /// The expression with its day-of-week field set to `*`: "only on these dates".
    pub(crate) fn without_day_of_week(&self) -> String {
        self.with_star(4)
    }

    /// The source with field `index` of the five crontab fields (after any seconds) set
    /// to `*`.
    fn with_star(&self, index: usize) -> String {
        let mut fields: Vec<&str> = self.source.split_whitespace().collect();
        let index = if fields.len() == 5 { index } else { index + 1 };
        if let Some(field) = fields.get_mut(index) {
            *field = "*";
        }
        fields.join(" ")
    }
}

/// Refuses a number outside `min..=max` in a crontab field (`25`, `1-25`, `*/70`), in
/// words: the parser underneath would say "Hours must be less than 23". Names and
/// anything else are left to it.
fn in_range(field: &str, what: &str, min: u32, max: u32, rule: &str) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        for part in range.split('-') {
            if let Ok(n) = part.parse::<u32>()
                && !(min..=max).contains(&n)
            {
                return Err(format!("has {what} {n}, which does not exist: {rule}"));
            }
        }
        if let Some(Ok(n)) = step.map(str::parse::<u32>)
            && (n == 0 || n > max)
        {
            return Err(format!(
                "has a {what} step of {n}, which never repeats: write */N with N from 1 to {max}"
            ));
        }
    }
    Ok(())
}

/// Turns a crontab day-of-week field into an explicit list of day names for the `cron`
/// crate, so no numbering convention crosses the boundary.
fn translate_day_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".to_string());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("day-of-week step \"{step}\" must be a positive number")
                })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (first, last) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day_number(a)?, day_number(b)?)
        } else {
            let a = day_number(range)?;
            // `5/2` means from Friday on, every second day.
            (a, if item.contains('/') { 7 } else { a })
        };
        if first > last {
            return Err(format!(
                "day-of-week range \"{range}\" runs backwards; write it as two ranges, e.g. \"Fri-Sat,Sun-Mon\""
            ));
        }
        let mut day = first;
        while day <= last {
            days[(day % 7) as usize] = true;
            day += step;
        }
    }
    let names: Vec<&str> = (0..7).filter(|d| days[*d]).map(|d| DAY_NAMES[d]).collect();
    Ok(names.join(","))
}

/// 0–7 (0 and 7 are Sunday) or a day name (`Mon`, `monday`).
fn day_number(text: &str) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!(
                "day of week {n} is out of range (0-7, 0 and 7 are Sunday)"
            ))
        };
    }
    let lower = text.to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|name| {
            lower.get(..3) == Some(name.to_ascii_lowercase().as_str()) && is_day_word(&lower)
        })
        .map(|p| p as u32)
        .ok_or_else(|| format!("\"{text}\" is not a day of the week (use 0-7 or Sun, Mon, … Sat)"))
}

fn is_day_word(lower: &str) -> bool {
    const FULL: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    lower.len() == 3 || FULL.contains(&lower)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, Weekday};

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    /// The weekdays on which `expr` fires at least once, over one week from Sunday 2026-03-01.
    fn weekdays(expr: &str) -> Vec<Weekday> {
        let send_at = SendAt::parse(expr).unwrap();
        let mut found = Vec::new();
        let mut t = at("2026-03-01 00:00");
        while let Some(m) = send_at.first_at_or_after(t) {
            if m >= at("2026-03-08 00:00") {
                break;
            }
            if !found.contains(&m.weekday()) {
                found.push(m.weekday());
            }
            t = m + Duration::minutes(1);
        }
        found
    }

    #[test]
    fn day_of_week_has_crontab_meaning() {
        use Weekday::*;
        let cases: &[(&str, &[Weekday])] = &[
            ("0 10 * * 1-5", &[Mon, Tue, Wed, Thu, Fri]),
            ("0 10 * * 0", &[Sun]),
            ("0 10 * * 7", &[Sun]),
            ("0 10 * * 1", &[Mon]),
            ("0 10 * * 6,0", &[Sun, Sat]),
            ("0 10 * * 5-7", &[Sun, Fri, Sat]),
            ("0 10 * * Tue-Thu", &[Tue, Wed, Thu]),
            ("0 10 * * mon,fri", &[Mon, Fri]),
            ("0 10 * * */2", &[Sun, Tue, Thu, Sat]),
            ("0 10 * * 1-5/2", &[Mon, Wed, Fri]),
            ("0 10 * * *", &[Sun, Mon, Tue, Wed, Thu, Fri, Sat]),
            ("0 0 10 * * 2", &[Tue]),
            ("0 0 10 * * 2 *", &[Tue]),
        ];
        for (expr, expected) in cases {
            assert_eq!(&weekdays(expr), expected, "send_at = {expr:?}");
        }
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // Crontab: the 1st of the month OR any Monday.
        let send_at = SendAt::parse("0 9 1 * Mon").unwrap();
        let first = send_at.first_at_or_after(at("2026-03-01 10:00")).unwrap();
        assert_eq!(first, at("2026-03-02 09:00")); // a Monday
        let april = send_at.first_at_or_after(at("2026-03-31 10:00")).unwrap();
        assert_eq!(april, at("2026-04-01 09:00")); // a Wednesday, the 1st
    }

    #[test]
    fn both_day_fields_are_reported_with_the_weekday_only_form() {
        let send_at = SendAt::parse("0 10 1-20 * Tue-Thu").unwrap();
        assert_eq!(send_at.either_day(), Some(("1-20", "Tue-Thu")));
        assert_eq!(send_at.without_day_of_month(), "0 10 * * Tue-Thu");
        assert_eq!(send_at.without_day_of_week(), "0 10 1-20 * *");
        let seconds = SendAt::parse("0 0 10 1 * Mon").unwrap();
        assert_eq!(seconds.without_day_of_month(), "0 0 10 * * Mon");
        for one in ["0 10 * * Tue-Thu", "0 10 1-20 * *", "0 10 1 * ?"] {
            assert_eq!(SendAt::parse(one).unwrap().either_day(), None, "{one}");
        }
    }

    #[test]
    fn first_and_last_moment_include_the_bound() {
        let send_at = SendAt::parse("0 10 * * *").unwrap();
        assert_eq!(
            send_at.first_at_or_after(at("2026-03-03 10:00")),
            Some(at("2026-03-03 10:00"))
        );
        assert_eq!(
            send_at.first_at_or_after(at("2026-03-03 10:01")),
            Some(at("2026-03-04 10:00"))
        );
        assert_eq!(
            send_at.last_at_or_before(at("2026-03-03 10:00")),
            Some(at("2026-03-03 10:00"))
        );
        assert_eq!(
            send_at.last_at_or_before(at("2026-03-03 09:59")),
            Some(at("2026-03-02 10:00"))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        let cases = [
            ("0 10 * *", "has 4 fields"),
            ("0 10 * * 8", "out of range"),
            ("0 10 * * Thu-Tue", "runs backwards"),
            ("0 10 * * Funday", "not a day of the week"),
            (
                "0 25 * * *",
                "has hour 25, which does not exist: hours go from 0 to 23",
            ),
            ("0 23 * * *", ""),
            ("60 10 * * *", "has minute 60"),
            ("0 9-24 * * *", "has hour 24"),
            ("0 10 32 * *", "has day of month 32"),
            ("0 10 0 * *", "has day of month 0"),
            ("0 10 * 13 *", "has month 13"),
            ("*/0 10 * * *", "a minute step of 0"),
            ("0 0 30 2 *", "never matches"),
        ];
        for (expr, expected) in cases {
            match SendAt::parse(expr) {
                Ok(_) => assert!(expected.is_empty(), "{expr:?} was accepted"),
                Err(err) => assert!(
                    !expected.is_empty() && err.contains(expected),
                    "{expr:?}: {err}"
                ),
            }
        }
        let _ = NaiveDate::from_ymd_opt(2026, 1, 1);
    }
}
