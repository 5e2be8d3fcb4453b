//! Table tests: fixed and yearly holidays across years, multi-day events, quiet ranges
//! over the new year and 29 February, which calendars apply to whom, a person's country.

use chrono::Weekday::{Mon, Thu};
use chrono_tz::Tz;

use super::*;

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
}

fn once(name: &str, start: &str, days: u32) -> Holiday {
    Holiday {
        name: name.to_string(),
        start: day(start),
        days,
        yearly: None,
        except: Vec::new(),
    }
}

fn yearly(name: &str, start: &str, days: u32, rule: YearlyRule) -> Holiday {
    Holiday {
        yearly: Some(YearlyRule {
            interval: rule.interval.max(1),
            ..rule
        }),
        ..once(name, start, days)
    }
}

fn in_month(month: u32, weekday: (i32, Weekday)) -> YearlyRule {
    YearlyRule {
        months: vec![month],
        weekdays: vec![weekday],
        ..YearlyRule::default()
    }
}

fn calendar(name: &str, country: Option<&str>, events: Vec<Holiday>) -> HolidayCalendar {
    HolidayCalendar {
        name: name.to_string(),
        country: country.map(str::to_string),
        events,
    }
}

fn only(holiday: Holiday) -> Holidays {
    Holidays {
        calendars: vec![calendar("us.ics", Some("US"), vec![holiday])],
        quiet: Vec::new(),
    }
}

/// (holiday, dates kept free, dates not kept free)
#[test]
fn holidays_keep_their_days_free_in_the_years_their_rule_names() {
    let thanksgiving = yearly("Thanksgiving Day", "2020-11-26", 1, in_month(11, (4, Thu)));
    let memorial = yearly("Memorial Day", "2020-05-25", 1, in_month(5, (-1, Mon)));
    let independence = yearly("Independence Day", "2020-07-04", 1, YearlyRule::default());
    let leap = yearly("Leap day", "2024-02-29", 1, YearlyRule::default());
    let cases: Vec<(Holiday, Vec<&str>, Vec<&str>)> = vec![
        (
            once("Company day", "2026-06-12", 1),
            vec!["2026-06-12"],
            vec!["2026-06-11", "2026-06-13", "2027-06-12", "2025-06-12"],
        ),
        (
            thanksgiving,
            vec![
                "2025-11-27",
                "2026-11-26",
                "2027-11-25",
                "2028-11-23",
                "2031-11-27",
            ],
            vec!["2026-11-27", "2026-11-19", "2019-11-28", "2028-11-30"],
        ),
        (
            memorial,
            vec!["2025-05-26", "2026-05-25", "2027-05-31", "2028-05-29"],
            vec!["2027-05-24", "2026-05-18", "2019-05-27"],
        ),
        (
            independence,
            vec!["2020-07-04", "2026-07-04", "2040-07-04"],
            vec!["2019-07-04", "2026-07-05"],
        ),
        // Holidays over several days, and one over the new year, every year.
        (
            once("Winter break", "2026-12-24", 3),
            vec!["2026-12-24", "2026-12-25", "2026-12-26"],
            vec!["2026-12-23", "2026-12-27", "2027-12-25"],
        ),
        (
            yearly("New Year", "2025-12-31", 2, YearlyRule::default()),
            vec!["2025-12-31", "2026-01-01", "2026-12-31", "2027-01-01"],
            vec!["2025-01-01", "2026-01-02", "2026-12-30"],
        ),
        // 29 February is a day only in leap years, as RFC 5545 reads it.
        (
            leap,
            vec!["2024-02-29", "2028-02-29"],
            vec!["2025-02-28", "2025-03-01", "2028-02-28"],
        ),
        // COUNT, UNTIL, INTERVAL and EXDATE.
        (
            yearly(
                "Three times",
                "2024-03-10",
                1,
                YearlyRule {
                    count: Some(3),
                    ..YearlyRule::default()
                },
            ),
            vec!["2024-03-10", "2026-03-10"],
            vec!["2027-03-10", "2023-03-10"],
        ),
        (
            yearly(
                "Until",
                "2024-03-10",
                1,
                YearlyRule {
                    until: Some(day("2026-03-10")),
                    ..YearlyRule::default()
                },
            ),
            vec!["2026-03-10"],
            vec!["2027-03-10"],
        ),
        (
            yearly(
                "Every other year",
                "2024-09-01",
                1,
                YearlyRule {
                    interval: 2,
                    ..YearlyRule::default()
                },
            ),
            vec!["2024-09-01", "2026-09-01"],
            vec!["2025-09-01", "2027-09-01"],
        ),
        (
            Holiday {
                except: vec![day("2026-10-03")],
                ..yearly("Unity Day", "2020-10-03", 1, YearlyRule::default())
            },
            vec!["2025-10-03", "2027-10-03"],
            vec!["2026-10-03"],
        ),
        // BYMONTHDAY from the end, and the nth weekday counted in the year without BYMONTH.
        (
            yearly(
                "Last day of February",
                "2024-02-29",
                1,
                YearlyRule {
                    months: vec![2],
                    month_days: vec![-1],
                    ..YearlyRule::default()
                },
            ),
            vec!["2024-02-29", "2025-02-28", "2028-02-29"],
            vec!["2025-03-01", "2028-02-28"],
        ),
        (
            yearly(
                "First Monday of the year",
                "2026-01-05",
                1,
                YearlyRule {
                    weekdays: vec![(1, Mon)],
                    ..YearlyRule::default()
                },
            ),
            vec!["2026-01-05", "2027-01-04"],
            vec!["2026-02-02", "2027-01-11"],
        ),
    ];
    for (holiday, free, open) in cases {
        let name = holiday.name.clone();
        let holidays = only(holiday);
        for date in free {
            assert_eq!(
                holidays.blocked(day(date), Some("US")),
                Some(format!("{name} (us.ics)")),
                "{name} on {date}"
            );
        }
        for date in open {
            assert_eq!(
                holidays.blocked(day(date), Some("US")),
                None,
                "{name} on {date}"
            );
        }
    }
}

#[test]
fn quiet_dates_wrap_over_the_new_year_and_29_february_is_28_february_in_other_years() {
    let holidays = Holidays {
        calendars: Vec::new(),
        quiet: vec![
            QuietRange {
                from: (12, 20),
                to: (1, 5),
            },
            QuietRange {
                from: (8, 1),
                to: (8, 15),
            },
            QuietRange {
                from: (5, 1),
                to: (5, 1),
            },
            QuietRange {
                from: (2, 29),
                to: (2, 29),
            },
        ],
    };
    let cases = [
        ("2026-12-19", None),
        ("2026-12-20", Some("quiet dates 12-20..01-05")),
        ("2026-12-31", Some("quiet dates 12-20..01-05")),
        ("2027-01-01", Some("quiet dates 12-20..01-05")),
        ("2027-01-05", Some("quiet dates 12-20..01-05")),
        ("2027-01-06", None),
        ("2026-07-31", None),
        ("2026-08-01", Some("quiet dates 08-01..08-15")),
        ("2026-08-15", Some("quiet dates 08-01..08-15")),
        ("2026-08-16", None),
        ("2026-05-01", Some("quiet date 05-01")),
        ("2026-05-02", None),
        ("2027-02-28", Some("quiet date 02-29")),
        ("2027-03-01", None),
        ("2028-02-28", None),
        ("2028-02-29", Some("quiet date 02-29")),
    ];
    for (date, expected) in cases {
        assert_eq!(
            holidays.blocked(day(date), Some("DE")),
            expected.map(str::to_string),
            "{date}"
        );
    }
}

#[test]
fn a_person_gets_their_countrys_calendars_and_those_of_no_country() {
    let holidays = Holidays {
        calendars: vec![
            calendar(
                "holidays/us.ics",
                Some("US"),
                vec![once("Independence Day", "2026-07-04", 1)],
            ),
            calendar(
                "holidays/de.ics",
                Some("DE"),
                vec![once("Tag der Deutschen Einheit", "2026-10-03", 1)],
            ),
            calendar(
                "holidays/company.ics",
                None,
                vec![once("Founders' day", "2026-06-12", 1)],
            ),
        ],
        quiet: vec![QuietRange {
            from: (12, 24),
            to: (12, 26),
        }],
    };
    let july = day("2026-07-04");
    let october = day("2026-10-03");
    let june = day("2026-06-12");
    let christmas = day("2026-12-25");
    // (country, July 4th, October 3rd)
    let cases = [
        (Some("US"), true, false),
        (Some("us"), true, false),
        (Some("DE"), false, true),
        (Some("FR"), false, false),
        (None, true, true),
    ];
    for (country, on_july, on_october) in cases {
        assert_eq!(
            holidays.blocked(july, country).is_some(),
            on_july,
            "{country:?}"
        );
        assert_eq!(
            holidays.blocked(october, country).is_some(),
            on_october,
            "{country:?}"
        );
        assert_eq!(
            holidays.blocked(june, country).as_deref(),
            Some("Founders' day (holidays/company.ics)"),
            "{country:?}"
        );
        assert_eq!(
            holidays.blocked(christmas, country).as_deref(),
            Some("quiet dates 12-24..12-26"),
            "{country:?}"
        );
    }
}

#[test]
fn a_persons_country_is_their_own_else_their_time_zones() {
    let berlin: Tz = "Europe/Berlin".parse().expect("a zone");
    let new_york: Tz = "America/New_York".parse().expect("a zone");
    let old_name: Tz = "US/Eastern".parse().expect("a zone");
    let cases = [
        (Some("DE"), None, Some("DE")),
        (Some("de"), Some(new_york), Some("DE")),
        (Some("Germany"), None, Some("DE")),
        (Some(" United States "), Some(berlin), Some("US")),
        (None, Some(berlin), Some("DE")),
        (Some(""), Some(new_york), Some("US")),
        (None, Some(old_name), Some("US")),
        (None, Some(Tz::UTC), None),
        (
            None,
            Some("Asia/Kolkata".parse().expect("a zone")),
            Some("IN"),
        ),
        (
            None,
            Some("Europe/Zurich".parse().expect("a zone")),
            Some("CH"),
        ),
        (None, None, None),
    ];
    for (country, zone, expected) in cases {
        assert_eq!(
            country_of(country, zone).as_deref(),
            expected,
            "{country:?} {zone:?}"
        );
    }
}

#[test]
fn the_first_free_day_skips_holidays_and_quiet_dates_for_the_persons_country() {
    let holidays = Holidays {
        calendars: vec![calendar(
            "us.ics",
            Some("US"),
            vec![yearly(
                "New Year's Day",
                "2021-01-01",
                1,
                YearlyRule::default(),
            )],
        )],
        quiet: vec![QuietRange {
            from: (12, 24),
            to: (12, 31),
        }],
    };
    // (from, country, first free day)
    let cases = [
        ("2026-12-23", Some("US"), "2026-12-23"),
        ("2026-12-24", Some("US"), "2027-01-02"),
        ("2026-12-24", Some("DE"), "2027-01-01"),
        ("2026-12-24", None, "2027-01-02"),
    ];
    for (from, country, free) in cases {
        assert_eq!(
            holidays.first_free_day(day(from), country),
            Some(day(free)),
            "{from} {country:?}"
        );
    }
    let always = Holidays {
        calendars: Vec::new(),
        quiet: vec![QuietRange {
            from: (1, 1),
            to: (12, 31),
        }],
    };
    assert_eq!(always.first_free_day(day("2026-05-05"), None), None);
}
