//! Property tests for calendars and quiet dates: any text, and any mix of iCalendar lines,
//! is read or refused without a panic; any yearly rule winback reads expands to the days
//! `rrule` itself gives; any month-day range written reads back as itself; and any date
//! is asked about without a panic.

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

/// Lines a calendar is made of, good and broken, to shuffle.
const LINES: &[&str] = &[
    "BEGIN:VCALENDAR",
    "END:VCALENDAR",
    "BEGIN:VEVENT",
    "END:VEVENT",
    "VERSION:2.0",
    "X-WR-CALNAME:Holidays in Germany",
    "SUMMARY:Tag der Arbeit",
    "SUMMARY:",
    "DTSTART;VALUE=DATE:20260501",
    "DTSTART:20260501T100000Z",
    "DTSTART:2026",
    "DTSTART;VALUE=DATE:20261332",
    "DTEND;VALUE=DATE:20260503",
    "DTEND;VALUE=DATE:20250101",
    "DURATION:P3D",
    "DURATION:PT1H",
    "RRULE:FREQ=YEARLY",
    "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
    "RRULE:FREQ=YEARLY;BYDAY=-1MO;COUNT=0",
    "RRULE:FREQ=YEARLY;BYMONTHDAY=0",
    "RRULE:FREQ=YEARLY;BYMONTH=13",
    "RRULE:FREQ=YEARLY;UNTIL=20200101",
    "RRULE:FREQ=WEEKLY",
    "RRULE:garbage",
    "EXDATE:20270501,2028",
    "STATUS:CANCELLED",
    " folded",
    ":",
    ";",
    "",
];

fn weekday() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["MO", "TU", "WE", "TH", "FR", "SA", "SU"])
}

/// A yearly rule winback reads, as `RRULE` text.
fn rule() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(1u32..=12, 0..3),
        prop::collection::vec(prop_oneof![1i32..=31, -31i32..=-1], 0..3),
        prop::option::of((prop_oneof![Just(0i32), 1i32..=4, -4i32..=-1], weekday())),
        prop::option::of(1u32..=3),
        prop::option::of(prop_oneof![
            (1u32..=8).prop_map(|c| format!("COUNT={c}")),
            (2022i32..=2040).prop_map(|y| format!("UNTIL={y}0615T000000Z")),
        ]),
    )
        .prop_map(|(months, month_days, by_day, interval, end)| {
            let mut parts = vec!["FREQ=YEARLY".to_string()];
            let list = |v: Vec<String>| v.join(",");
            if !months.is_empty() {
                parts.push(format!(
                    "BYMONTH={}",
                    list(months.iter().map(ToString::to_string).collect())
                ));
            }
            if !month_days.is_empty() {
                parts.push(format!(
                    "BYMONTHDAY={}",
                    list(month_days.iter().map(ToString::to_string).collect())
                ));
            }
            if let Some((n, day)) = by_day {
                parts.push(match n {
                    0 => format!("BYDAY={day}"),
                    n => format!("BYDAY={n}{day}"),
                });
            }
            if let Some(i) = interval {
                parts.push(format!("INTERVAL={i}"));
            }
            parts.extend(end);
            parts.join(";")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in any::<String>()) {
        let _ = read_calendar("x.ics", &text);
        let _ = read_calendar("x.ics", &format!("BEGIN:VCALENDAR\r\n{text}"));
    }

    #[test]
    fn any_mix_of_calendar_lines_is_read_or_refused_without_a_panic(
        lines in prop::collection::vec(prop::sample::select(LINES), 0..40),
        date in (1900i32..2200, 1u32..=366),
    ) {
        let text = lines.join("\r\n");
        if let Ok((calendar, _)) = read_calendar("de.ics", &text) {
            prop_assert!(!calendar.events.is_empty());
            let holidays = Holidays { calendars: vec![calendar], quiet: Vec::new() };
            if let Some(day) = NaiveDate::from_yo_opt(date.0, date.1) {
                let _ = holidays.blocked(day, Some("DE"));
            }
        }
    }

    #[test]
    fn any_rule_text_is_read_or_refused_without_a_panic(text in any::<String>()) {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
        let _ = yearly_rule(&text, start);
        let _ = yearly_rule(&format!("FREQ=YEARLY;{text}"), start);
    }

    #[test]
    fn any_quiet_date_text_is_read_or_refused_without_a_panic(text in any::<String>()) {
        let _ = quiet_range(&text);
    }

    #[test]
    fn a_written_range_reads_back_as_itself(
        from in (1u32..=12, 1u32..=31),
        to in (1u32..=12, 1u32..=31),
        day in (1900i32..2200, 1u32..=366),
    ) {
        let written = format!("{:02}-{:02}..{:02}-{:02}", from.0, from.1, to.0, to.1);
        let valid = |(m, d): (u32, u32)| NaiveDate::from_ymd_opt(2028, m, d).is_some();
        match quiet_range(&written) {
            Ok(range) => {
                prop_assert!(valid(from) && valid(to));
                prop_assert_eq!(range, QuietRange { from, to });
                let quiet = Holidays { calendars: Vec::new(), quiet: vec![range] };
                if let Some(day) = NaiveDate::from_yo_opt(day.0, day.1) {
                    let _ = quiet.blocked(day, None);
                }
            }
            Err(_) => prop_assert!(!(valid(from) && valid(to))),
        }
    }
}

proptest! {
    // rrule's expansion over 25 years is slow in a debug build.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn yearly_rules_expand_to_the_days_rrule_gives(rule in rule(), start in 0u32..3000) {
        // A start the rule names, as RFC 5545 asks: rrule's own first occurrence from 2021.
        let first = NaiveDate::from_ymd_opt(2021, 1, 1).expect("a date") + chrono::Duration::days(i64::from(start % 365));
        let begin = rrule::Tz::UTC.from_utc_datetime(&first.and_hms_opt(0, 0, 0).expect("midnight"));
        let end = rrule::Tz::UTC.with_ymd_and_hms(2045, 12, 31, 23, 59, 59).single().expect("an end");
        let set: rrule::RRuleSet = match format!("DTSTART:{}T000000Z\nRRULE:{rule}", first.format("%Y%m%d")).parse() {
            Ok(set) => set,
            Err(_) => return Ok(()),
        };
        let theirs: Vec<NaiveDate> = set.after(begin - chrono::Duration::days(1)).before(end).all(2000).dates.iter().map(|d| d.date_naive()).collect();
        let Some(&dtstart) = theirs.first() else { return Ok(()) };
        // With COUNT, rrule counts from its own DTSTART; restart both from the first day.
        let set: rrule::RRuleSet = format!("DTSTART:{}T000000Z\nRRULE:{rule}", dtstart.format("%Y%m%d")).parse().expect("read once");
        let from = rrule::Tz::UTC.from_utc_datetime(&dtstart.and_hms_opt(0, 0, 0).expect("midnight"));
        let theirs: Vec<NaiveDate> = set.after(from - chrono::Duration::days(1)).before(end).all(2000).dates.iter().map(|d| d.date_naive()).collect();
        let holiday = Holiday {
            name: rule.clone(),
            start: dtstart,
            days: 1,
            yearly: Some(yearly_rule(&rule, dtstart).map_err(TestCaseError::fail)?),
            except: Vec::new(),
        };
        let ours: Vec<NaiveDate> = (2021..2046).flat_map(|y| holiday.starts_in(y)).collect();
        prop_assert_eq!(ours, theirs, "{} from {}", rule, dtstart);
    }
}
