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
pub struct SendAt {
    source: String,
    /// One schedule, or two whose union is meant (crontab's day-of-month OR day-of-week).
    schedules: Vec<cron::Schedule>,
}

impl SendAt {
    /// Parses 5-field crontab syntax, or 6/7 fields with leading seconds (and trailing year).
    pub fn parse(expr: &str) -> Result<SendAt, String> {
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
        };
        let probe = NaiveDateTime::parse_from_str("2000-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
            .map_err(|e| e.to_string())?;
        if send_at.first_at_or_after(probe).is_none() {
            return Err("never matches any date".to_string());
        }
        Ok(send_at)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first moment at or after `t`, on naive local time.
    pub fn first_at_or_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let from = Utc.from_utc_datetime(&(t - Duration::seconds(1)));
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next())
            .min()
            .map(|m| m.naive_utc())
    }

    /// The last moment at or before `t`, on naive local time.
    pub fn last_at_or_before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let from = Utc.from_utc_datetime(&(t + Duration::seconds(1)));
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next_back())
            .filter(|m| m.naive_utc() <= t)
            .max()
            .map(|m| m.naive_utc())
    }
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
            lower.len() >= 3 && name.to_ascii_lowercase() == lower[..3] && is_day_word(&lower)
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
            ("0 25 * * *", "not a valid crontab expression"),
            ("0 0 30 2 *", "never matches"),
        ];
        for (expr, expected) in cases {
            let err = SendAt::parse(expr).unwrap_err();
            assert!(err.contains(expected), "{expr:?}: {err}");
        }
        let _ = NaiveDate::from_ymd_opt(2026, 1, 1);
    }
}
