//! Reading calendars (the shipped one, yearly rules against `rrule`'s own expansion,
//! ignored events, the country a file is for), `quiet_dates`, and the campaign's
//! `holidays` and `quiet_dates` keys as `check` reports them.

use std::path::{Path, PathBuf};

use chrono::TimeZone;

use super::*;
use crate::config::{Config, ConfigErrors, Problem};

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
}

fn ics(events: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n")
}

fn event(lines: &str) -> String {
    format!("BEGIN:VEVENT\r\nUID:x@test\r\n{lines}END:VEVENT\r\n")
}

fn holidays_of(calendar: HolidayCalendar) -> Holidays {
    Holidays {
        calendars: vec![calendar],
        quiet: Vec::new(),
    }
}

#[test]
fn the_shipped_us_calendar_keeps_the_federal_holidays_free() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/holidays/us.ics");
    let text = std::fs::read_to_string(&file).expect("the shipped calendar");
    let (calendar, ignored) = read_calendar("holidays/us.ics", &text).expect("readable");
    assert!(ignored.is_empty(), "{ignored:?}");
    assert_eq!(calendar.country.as_deref(), Some("US"));
    assert_eq!(calendar.events.len(), 11);
    // As the US Office of Personnel Management lists them.
    let federal = [
        ("2026-01-01", "New Year's Day"),
        ("2026-01-19", "Birthday of Martin Luther King, Jr."),
        ("2026-02-16", "Washington's Birthday"),
        ("2026-05-25", "Memorial Day"),
        ("2026-06-19", "Juneteenth National Independence Day"),
        ("2026-07-04", "Independence Day"),
        ("2026-09-07", "Labor Day"),
        ("2026-10-12", "Columbus Day"),
        ("2026-11-11", "Veterans Day"),
        ("2026-11-26", "Thanksgiving Day"),
        ("2026-12-25", "Christmas Day"),
        ("2027-01-18", "Birthday of Martin Luther King, Jr."),
        ("2027-02-15", "Washington's Birthday"),
        ("2027-05-31", "Memorial Day"),
        ("2027-09-06", "Labor Day"),
        ("2027-10-11", "Columbus Day"),
        ("2027-11-25", "Thanksgiving Day"),
        ("2028-01-17", "Birthday of Martin Luther King, Jr."),
        ("2028-05-29", "Memorial Day"),
        ("2028-11-23", "Thanksgiving Day"),
    ];
    let holidays = holidays_of(calendar);
    for (date, name) in federal {
        assert_eq!(
            holidays.blocked(day(date), Some("US")),
            Some(format!("{name} (holidays/us.ics)")),
            "{date}"
        );
        assert_eq!(
            holidays.blocked(day(date), Some("DE")),
            None,
            "{date} in DE"
        );
    }
    let mut free = 0;
    let mut date = day("2026-01-01");
    while date <= day("2026-12-31") {
        free += usize::from(holidays.blocked(date, Some("US")).is_none());
        date = date.succ_opt().expect("a next day");
    }
    assert_eq!(free, 365 - 11);
}

/// Each rule, expanded here and by `rrule` itself, gives the same days over 25 years.
#[test]
fn yearly_rules_expand_as_rrule_expands_them() {
    let cases = [
        ("20211125", "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"),
        ("20210531", "FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO"),
        ("20210118", "FREQ=YEARLY;BYMONTH=1;BYDAY=3MO"),
        ("20210704", "FREQ=YEARLY"),
        ("20240229", "FREQ=YEARLY"),
        ("20240229", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1"),
        ("20210101", "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1"),
        (
            "20211102",
            "FREQ=YEARLY;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
        ),
        ("20210104", "FREQ=YEARLY;BYDAY=1MO"),
        ("20211231", "FREQ=YEARLY;BYDAY=-1FR"),
        ("20210310", "FREQ=YEARLY;COUNT=4"),
        ("20210310", "FREQ=YEARLY;INTERVAL=3;COUNT=5"),
        ("20210310", "FREQ=YEARLY;UNTIL=20300101T000000Z"),
        ("20210915", "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=15"),
        ("20210906", "FREQ=YEARLY;BYMONTH=9;BYDAY=1MO;INTERVAL=2"),
    ];
    for (start, rule) in cases {
        let start_day = NaiveDate::parse_from_str(start, "%Y%m%d").expect("a start");
        let holiday = Holiday {
            name: rule.to_string(),
            start: start_day,
            days: 1,
            yearly: Some(yearly_rule(rule, start_day).expect(rule)),
            except: Vec::new(),
        };
        let ours: Vec<NaiveDate> = (2015..2046).flat_map(|y| holiday.starts_in(y)).collect();
        let dtstart =
            rrule::Tz::UTC.from_utc_datetime(&start_day.and_hms_opt(0, 0, 0).expect("midnight"));
        let set: rrule::RRuleSet = format!("DTSTART:{start}T000000Z\nRRULE:{rule}")
            .parse()
            .expect(rule);
        let end = rrule::Tz::UTC
            .with_ymd_and_hms(2045, 12, 31, 23, 59, 59)
            .single()
            .expect("an end");
        let theirs: Vec<NaiveDate> = set
            .after(dtstart - chrono::Duration::days(1))
            .before(end)
            .all(500)
            .dates
            .iter()
            .map(|d| d.date_naive())
            .collect();
        assert!(!ours.is_empty(), "{rule}");
        assert_eq!(ours, theirs, "{start} {rule}");
    }
}

#[test]
fn a_duration_that_is_not_whole_days_forward_is_refused_not_wrapped() {
    let text = ics(&[
        event("SUMMARY:Backwards\r\nDTSTART;VALUE=DATE:20260601\r\nDURATION:P-3D\r\n"),
        event("SUMMARY:Huge\r\nDTSTART;VALUE=DATE:20260701\r\nDURATION:P2000000000000000000W\r\n"),
        event("SUMMARY:Kept\r\nDTSTART;VALUE=DATE:20260801\r\nDURATION:P1D\r\n"),
    ]
    .concat());
    let (calendar, ignored) = read_calendar("company.ics", &text).expect("readable");
    assert_eq!(calendar.events.len(), 1, "{:?}", calendar.events);
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(
        ignored[0].contains("\"Backwards\"") && ignored[0].contains("P-3D"),
        "{ignored:?}"
    );
    assert!(
        ignored[1].contains("\"Huge\"") && ignored[1].contains("longer than a holiday"),
        "{ignored:?}"
    );
}

#[test]
fn calendars_keep_all_day_events_and_say_why_others_are_ignored() {
    let text = ics(&[
        event("SUMMARY:Winter break\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261227\r\n"),
        event("SUMMARY:Retreat\r\nDTSTART;VALUE=DATE:20260601\r\nDURATION:P2D\r\n"),
        event("SUMMARY:Founders\\, day\r\nDTSTART:20260612\r\nRRULE:FREQ=YEARLY;UNTIL=20280612\r\n"),
        event("SUMMARY:Unity Day\r\nDTSTART;VALUE=DATE:20201003\r\nRRULE:FREQ=YEARLY\r\nEXDATE;VALUE=DATE:20261003\r\n"),
        event("SUMMARY:Staff party\r\nDTSTART:20261218T170000Z\r\nDTEND:20261218T230000Z\r\n"),
        event("SUMMARY:Standup\r\nDTSTART;VALUE=DATE:20260105\r\nRRULE:FREQ=WEEKLY\r\n"),
        event("SUMMARY:Moved\r\nDTSTART;VALUE=DATE:20260105\r\nSTATUS:CANCELLED\r\n"),
        event("SUMMARY:Summer\r\nDTSTART;VALUE=DATE:20260601\r\nDTEND;VALUE=DATE:20260901\r\n"),
        event("SUMMARY;LANGUAGE=de:Reformationstag\r\nDTSTART;TZID=W. Europe Standard Time:20261031T000000\r\nDTEND;TZID=W. Europe Standard Time:20261101T000000\r\nX-MICROSOFT-CDO-ALLDAYEVENT:TRUE\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n"),
    ]
    .concat());
    let (calendar, ignored) = read_calendar("company.ics", &text).expect("readable");
    assert_eq!(calendar.country, None);
    assert_eq!(calendar.events.len(), 5, "{:?}", calendar.events);
    assert_eq!(ignored.len(), 3, "{ignored:?}");
    assert!(
        ignored[0].contains("\"Staff party\" on 2026-12-18 has a time of day"),
        "{ignored:?}"
    );
    assert!(
        ignored[1].contains("\"Standup\" (RRULE:FREQ=WEEKLY) repeats weekly"),
        "{ignored:?}"
    );
    assert!(
        ignored[2].contains("\"Summer\" from 2026-06-01 lasts 92 days"),
        "{ignored:?}"
    );
    let holidays = holidays_of(calendar);
    let cases = [
        ("2026-12-23", None),
        ("2026-12-24", Some("Winter break")),
        ("2026-12-26", Some("Winter break")),
        ("2026-12-27", None),
        ("2026-06-01", Some("Retreat")),
        ("2026-06-02", Some("Retreat")),
        ("2026-06-03", None),
        ("2027-06-12", Some("Founders, day")),
        ("2028-06-12", Some("Founders, day")),
        ("2029-06-12", None),
        ("2025-10-03", Some("Unity Day")),
        ("2026-10-03", None),
        ("2026-12-18", None),
        ("2026-01-12", None),
        ("2026-10-30", None),
        ("2026-10-31", Some("Reformationstag")),
        ("2026-11-01", None),
    ];
    for (date, name) in cases {
        assert_eq!(
            holidays.blocked(day(date), None),
            name.map(|n| format!("{n} (company.ics)")),
            "{date}"
        );
    }
}

#[test]
fn a_calendar_without_a_usable_event_is_refused_with_why() {
    let timed = ics(&event(
        "SUMMARY:Staff party\r\nDTSTART:20261218T170000Z\r\n",
    ));
    let cases = [
        (
            "name,date\nNew Year,2026-01-01\n",
            "is not an iCalendar file",
        ),
        ("", "is not an iCalendar file"),
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
            "has no event",
        ),
        (
            timed.as_str(),
            "has no all-day event winback can use (1 event is ignored: \"Staff party\" on 2026-12-18 has a time of day; make it an all-day event)",
        ),
    ];
    for (text, fragment) in cases {
        match read_calendar("x.ics", text) {
            Ok(read) => panic!("{text:?} accepted: {read:?}"),
            Err(why) => assert!(why.contains(fragment), "{text:?}: {why}"),
        }
    }
}

#[test]
fn a_calendars_country_is_told_by_its_file_name_or_its_calendar_name() {
    let cases = [
        ("us.ics", None, Some("US")),
        ("holidays/us.ics", Some("Feiertage"), Some("US")),
        ("holidays/holidays-DE.ics", None, Some("DE")),
        ("holidays/de_holidays.ics", None, Some("DE")),
        ("germany.ics", None, Some("DE")),
        ("holidays/united-states.ics", None, Some("US")),
        ("feiertage-deutschland.ics", None, Some("DE")),
        ("holidays/DEU.ics", None, Some("DE")),
        ("company.ics", None, None),
        ("my-holidays.ics", None, None),
        ("no-mail.ics", None, None),
        ("to-skip.ics", None, None),
        ("it-team.ics", None, None),
        ("holidays-fr.ics", None, Some("FR")),
        ("team-de-days.ics", None, None),
        ("basic.ics", Some("Holidays in Germany"), Some("DE")),
        (
            "basic.ics",
            Some("Holidays and observances in the United States"),
            Some("US"),
        ),
        ("basic.ics", Some("US Holidays"), Some("US")),
        ("basic.ics", Some("Holidays in Berlin"), None),
        ("basic.ics", Some("Company days off"), None),
    ];
    for (file, calname, expected) in cases {
        assert_eq!(
            calendar_country(file, calname).as_deref(),
            expected,
            "{file} {calname:?}"
        );
    }
}

#[test]
fn quiet_dates_are_month_days_or_ranges_and_mistakes_say_how_to_write_them() {
    let ok = [
        ("12-20..01-05", ((12, 20), (1, 5))),
        (" 08-01 .. 08-15 ", ((8, 1), (8, 15))),
        ("05-01", ((5, 1), (5, 1))),
        ("5-1", ((5, 1), (5, 1))),
        ("02-29", ((2, 29), (2, 29))),
    ];
    for (text, (from, to)) in ok {
        assert_eq!(quiet_range(text), Ok(QuietRange { from, to }), "{text}");
    }
    let refused = [
        (
            "12/20",
            "is not a date or a range of dates; write month-day",
        ),
        ("", "is not a date or a range of dates"),
        ("2026-12-20", "is not a date or a range of dates"),
        ("12-20..", "is not a date or a range of dates"),
        (
            "20-12",
            "20 is not a month (months are 01 to 12, written first)",
        ),
        ("02-30", "February has no day 30"),
        ("04-31..05-02", "April has no day 31"),
    ];
    for (text, fragment) in refused {
        match quiet_range(text) {
            Ok(range) => panic!("{text:?} read as {range:?}"),
            Err(why) => assert!(why.contains(fragment), "{text:?}: {why}"),
        }
    }
}

/// A configuration in a folder of its own, its campaign's lines 13 and 14 written by the test.
const BASE: &str = r#"[smtp]
from = "Acme <success@acme.example>"
[http]
public_url = "https://winback.acme.example"
[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield, IL 62701, USA"
[templates]
dir = "."
[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
HOLIDAYS
QUIET
[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Hello"
"#;

fn config(dir: &Path, holidays: &str, quiet: &str) -> (PathBuf, String) {
    let text = BASE.replace("HOLIDAYS", holidays).replace("QUIET", quiet);
    (dir.join("winback.toml"), text)
}

fn problems(dir: &Path, holidays: &str, quiet: &str) -> Vec<Problem> {
    let (path, text) = config(dir, holidays, quiet);
    match Config::parse(&path, &text) {
        Ok(_) => panic!("accepted: {holidays} {quiet}"),
        Err(ConfigErrors(problems)) => problems,
    }
}

#[test]
fn holiday_files_and_quiet_dates_are_checked_naming_the_line_the_file_and_the_fix() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path();
    std::fs::create_dir(root.join("holidays")).expect("a folder");
    std::fs::write(root.join("holidays/notes.txt"), "Christmas: 25 December\n").expect("a file");
    std::fs::write(
        root.join("holidays/meetings.ics"),
        ics(&event("SUMMARY:Review\r\nDTSTART:20261218T170000Z\r\n")),
    )
    .expect("a file");
    std::fs::write(
        root.join("holidays/latin1.ics"),
        b"BEGIN:VCALENDAR\r\nX-WR-CALNAME:F\xeate\r\nEND:VCALENDAR\r\n",
    )
    .expect("a file");
    let cases: [(&str, &str, &str, &[&str]); 7] = [
        (
            "holidays = [\"holidays/gone.ics\"]",
            "",
            "holidays",
            &[
                "holidays/gone.ics does not exist",
                "relative to this file's folder",
                "holidays = [\"holidays/us.ics\"]",
            ],
        ),
        (
            "holidays = [\"holidays\"]",
            "",
            "holidays",
            &["holidays is a folder"],
        ),
        (
            "holidays = [\" \"]",
            "",
            "holidays",
            &["has an empty entry"],
        ),
        (
            "holidays = [\"holidays/notes.txt\"]",
            "",
            "holidays",
            &[
                "holidays/notes.txt: is not an iCalendar file",
                "BEGIN:VCALENDAR",
            ],
        ),
        (
            "holidays = [\"holidays/meetings.ics\"]",
            "",
            "holidays",
            &[
                "holidays/meetings.ics: has no all-day event winback can use",
                "\"Review\" on 2026-12-18 has a time of day",
                "DTSTART;VALUE=DATE:",
            ],
        ),
        (
            "holidays = [\"holidays/latin1.ics\"]",
            "",
            "holidays",
            &["is not UTF-8 text"],
        ),
        (
            "",
            "quiet_dates = [\"12-20..01-05\", \"31-12\"]",
            "quiet_dates",
            &["\"31-12\": 31 is not a month", "\"12-20..01-05\""],
        ),
    ];
    for (holidays, quiet, key, fragments) in cases {
        let found = problems(root, holidays, quiet);
        assert_eq!(found.len(), 1, "{holidays} {quiet}: {found:#?}");
        let line = if key == "holidays" { 13 } else { 14 };
        assert_eq!(found[0].line, Some(line), "{}", found[0]);
        assert_eq!(found[0].key, format!("campaign[1].{key}"), "{}", found[0]);
        for fragment in fragments {
            assert!(
                found[0].message.contains(fragment),
                "{} lacks {fragment:?}",
                found[0]
            );
        }
    }
    // Quiet dates that leave no day free would hold every message for ever.
    let found = problems(
        root,
        "",
        "quiet_dates = [\"01-01..06-30\", \"07-01..12-31\"]",
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("keeps every day of 2027 free, so nothing would ever be sent"),
        "{}",
        found[0]
    );
    // As would a calendar of month-long events.
    let months: String = (1..=12)
        .map(|m| event(&format!("SUMMARY:Month {m}\r\nDTSTART;VALUE=DATE:2026{m:02}01\r\nDURATION:P31D\r\nRRULE:FREQ=YEARLY\r\n")))
        .collect();
    std::fs::write(root.join("holidays/months.ics"), ics(&months)).expect("a file");
    let found = problems(root, "holidays = [\"holidays/months.ics\"]", "");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (found[0].line, found[0].key.as_str()),
        (Some(13), "campaign[1].holidays")
    );
    assert!(
        found[0].message.contains(
            "keeps every day of 2027 free, so nothing would ever be sent; remove the longest events"
        ),
        "{}",
        found[0]
    );
}

#[test]
fn holiday_files_are_read_relative_to_the_configuration_and_oddities_are_warnings() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path();
    std::fs::create_dir(root.join("holidays")).expect("a folder");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/holidays/us.ics");
    std::fs::copy(shipped, root.join("holidays/us.ics")).expect("a copy");
    std::fs::write(
        root.join("holidays/company.ics"),
        ics(&[
            event("SUMMARY:Founders day\r\nDTSTART;VALUE=DATE:20260612\r\nRRULE:FREQ=YEARLY\r\n"),
            event("SUMMARY:Staff party\r\nDTSTART:20261218T170000Z\r\n"),
        ]
        .concat()),
    )
    .expect("a file");
    let (path, text) = config(
        root,
        "holidays = [\"holidays/us.ics\", \"holidays/company.ics\"]",
        "quiet_dates = [\"12-20..01-05\", \"02-29\"]",
    );
    let config = Config::parse(&path, &text).expect("valid");
    let holidays = &config.campaigns[0].holidays;
    let countries: Vec<Option<&str>> = holidays
        .calendars
        .iter()
        .map(|c| c.country.as_deref())
        .collect();
    assert_eq!(countries, [Some("US"), None]);
    assert_eq!(
        holidays.quiet,
        [
            QuietRange {
                from: (12, 20),
                to: (1, 5)
            },
            QuietRange {
                from: (2, 29),
                to: (2, 29)
            },
        ]
    );
    assert_eq!(
        holidays.blocked(day("2026-11-26"), Some("US")).as_deref(),
        Some("Thanksgiving Day (holidays/us.ics)")
    );
    assert_eq!(holidays.blocked(day("2026-11-26"), Some("DE")), None);
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.contains(":13: campaign[1].holidays: ")),
        "{warnings:#?}"
    );
    assert!(warnings[0].contains("holidays/company.ics: 1 event is ignored: \"Staff party\" on 2026-12-18 has a time of day"), "{warnings:#?}");
    assert!(warnings[1].contains("holidays/company.ics: no country can be told from its name or X-WR-CALNAME, so it applies to everyone"), "{warnings:#?}");
}
