//! Property tests for `send_at`: any text is parsed or refused without a panic, and an
//! accepted expression's moments are found without one; an expression written from sets
//! of minutes, hours, days of the month and weekdays (numbers 0-7 or names, lists, ranges)
//! fires exactly at the moments crontab's rules give, the next one and the last one.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Timelike};
use proptest::prelude::*;

use super::*;

/// A day-of-week field whose third byte falls inside a character: `check` and the
/// daemon's start panicked on it instead of saying it is not a day.
#[test]
fn a_day_name_cut_inside_a_character_is_refused() {
    for text in [
        "0 10 * * <ஐ",
        "0 10 * * Mö",
        "0 10 * * Moñday",
        "0 10 * * ஐஐ",
    ] {
        let error = SendAt::parse(text).expect_err(text);
        assert!(
            error.contains("is not a day of the week"),
            "{text}: {error}"
        );
    }
}

fn expression_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        prop::sample::select(vec![
            "*",
            "?",
            "*/2",
            "*/0",
            "*/60",
            "1-5",
            "5-1",
            "0",
            "7",
            "8",
            "59",
            "60",
            "99999999999",
            "-",
            ",",
            "1,",
            ",1",
            "/",
            "1/",
            "/2",
            "Mon",
            "mon-fri",
            "Sun-Sat",
            "Funday",
            "L",
            "5#2",
            "JAN",
            "1-5/2",
            "0-7",
            "Fri-Mon",
            "2/0",
            "monday",
            "32",
            "13",
            "",
        ])
        .prop_map(str::to_owned),
        "[0-9*/,-]{1,6}",
        any::<String>(),
    ];
    prop::collection::vec(field, 0..9).prop_map(|fields| fields.join(" "))
}

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_parsed_or_refused_and_its_moments_found(
        text in expression_text(),
        minutes in 0i64..(10 * 366 * 1440),
    ) {
        if let Ok(send_at) = SendAt::parse(&text) {
            let t = start() + Duration::minutes(minutes);
            if let Some(next) = send_at.first_at_or_after(t) {
                prop_assert!(next >= t);
                prop_assert_eq!(send_at.first_at_or_after(next), Some(next));
            }
            if let Some(last) = send_at.last_at_or_before(t) {
                prop_assert!(last <= t);
            }
            let _ = (send_at.without_day_of_month(), send_at.without_day_of_week(), send_at.either_day());
        }
    }
}

/// A set as a crontab list: single numbers and ranges of consecutive ones.
fn list(values: &BTreeSet<u32>, name: impl Fn(u32) -> String) -> String {
    let values: Vec<u32> = values.iter().copied().collect();
    let mut items = Vec::new();
    let mut index = 0;
    while index < values.len() {
        let mut end = index;
        while end + 1 < values.len() && values[end + 1] == values[end] + 1 {
            end += 1;
        }
        if end > index {
            items.push(format!("{}-{}", name(values[index]), name(values[end])));
        } else {
            items.push(name(values[index]));
        }
        index = end + 1;
    }
    items.join(",")
}

#[derive(Debug, Clone)]
struct Rule {
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    days: Option<BTreeSet<u32>>,
    /// Crontab numbers, 0 = Sunday; Sunday written as 7 when `sunday_seven`.
    weekdays: Option<BTreeSet<u32>>,
    sunday_seven: bool,
    names: bool,
}

impl Rule {
    fn expression(&self) -> String {
        let number = |n: u32| n.to_string();
        let days = self
            .days
            .as_ref()
            .map_or("*".to_owned(), |d| list(d, number));
        let weekdays = match &self.weekdays {
            None => "*".to_owned(),
            Some(set) => {
                let mut set = set.clone();
                if self.sunday_seven && set.remove(&0) {
                    set.insert(7);
                }
                list(&set, |n| {
                    if self.names {
                        // A range ending on Sunday ends on 7: "Sat-Sun" runs backwards.
                        [
                            "sun", "Mon", "tue", "WED", "Thursday", "Fri", "saturday", "7",
                        ][n as usize]
                            .to_owned()
                    } else {
                        n.to_string()
                    }
                })
            }
        };
        format!(
            "{} {} {days} * {weekdays}",
            list(&self.minutes, number),
            list(&self.hours, number)
        )
    }

    fn day_matches(&self, day: NaiveDate) -> bool {
        let by_date = self.days.as_ref().map(|d| d.contains(&day.day()));
        let by_weekday = self
            .weekdays
            .as_ref()
            .map(|w| w.contains(&day.weekday().num_days_from_sunday()));
        match (by_date, by_weekday) {
            (Some(a), Some(b)) => a || b,
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => true,
        }
    }

    fn matches(&self, t: NaiveDateTime) -> bool {
        t.second() == 0
            && self.minutes.contains(&t.minute())
            && self.hours.contains(&t.hour())
            && self.day_matches(t.date())
    }

    /// The first matching minute at or after `t`, searched day by day.
    fn first_at_or_after(&self, t: NaiveDateTime) -> NaiveDateTime {
        let mut day = t.date();
        loop {
            if self.day_matches(day) {
                for &hour in &self.hours {
                    for &minute in &self.minutes {
                        let moment = day.and_hms_opt(hour, minute, 0).unwrap();
                        if moment >= t {
                            return moment;
                        }
                    }
                }
            }
            day = day.succ_opt().unwrap();
        }
    }

    fn last_at_or_before(&self, t: NaiveDateTime) -> NaiveDateTime {
        let mut day = t.date();
        loop {
            if self.day_matches(day) {
                for &hour in self.hours.iter().rev() {
                    for &minute in self.minutes.iter().rev() {
                        let moment = day.and_hms_opt(hour, minute, 0).unwrap();
                        if moment <= t {
                            return moment;
                        }
                    }
                }
            }
            day = day.pred_opt().unwrap();
        }
    }
}

fn set(range: std::ops::Range<u32>, most: usize) -> impl Strategy<Value = BTreeSet<u32>> {
    prop::collection::btree_set(range, 1..most)
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        set(0..60, 5),
        set(0..24, 4),
        prop::option::of(set(1..29, 4)),
        prop::option::of(set(0..7, 4)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(minutes, hours, days, weekdays, sunday_seven, names)| Rule {
                minutes,
                hours,
                days,
                weekdays,
                sunday_seven,
                names,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_expression_fires_exactly_when_crontab_says(
        rule in rule(),
        seconds in 0i64..(3 * 366 * 86_400),
    ) {
        let expression = rule.expression();
        let send_at = SendAt::parse(&expression);
        prop_assert!(send_at.is_ok(), "{:?}: {:?}", expression, send_at);
        let send_at = send_at.unwrap();
        let t = start() + Duration::seconds(seconds);
        let next = send_at.first_at_or_after(t);
        prop_assert_eq!(next, Some(rule.first_at_or_after(t)), "{}", expression);
        let last = send_at.last_at_or_before(t);
        prop_assert_eq!(last, Some(rule.last_at_or_before(t)), "{}", expression);
        prop_assert!(rule.matches(next.unwrap()));
        prop_assert_eq!(
            send_at.either_day().is_some(),
            rule.days.is_some() && rule.weekdays.is_some()
        );
    }
}
