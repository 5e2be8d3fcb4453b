//! Table tests for the timing keys: `on`, `every_days`, `max_days_since_churn`.

use std::path::{Path, PathBuf};

use super::parse_month_day;
use crate::config::Config;
use crate::domain::campaign::MonthDay;

/// A campaign of three steps; `STEP2` and `STEP3` and `CAMPAIGN` are replaced by keys.
const BASE: &str = r#"[smtp]
from = "Acme Customer Success <success@acme.example>"

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
CAMPAIGN

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "May we ask why you left?"
STEP1

[[campaign.step]]
kind = "newsletter"
template = "newsletter"
subject = "News"
STEP2
"#;

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml")
}

fn config(campaign: &str, step1: &str, step2: &str) -> Result<Config, String> {
    let text = BASE
        .replace("CAMPAIGN", campaign)
        .replace("STEP1", step1)
        .replace("STEP2", step2);
    Config::parse(&path(), &text).map_err(|e| e.to_string())
}

#[test]
fn month_days_are_read_as_written_and_29_february_is_allowed() {
    let cases: &[(&str, Option<(u32, u32)>)] = &[
        ("12-10", Some((12, 10))),
        ("1-5", Some((1, 5))),
        ("02-29", Some((2, 29))),
        ("02-30", None),
        ("04-31", None),
        ("13-01", None),
        ("00-10", None),
        ("12/10", None),
        ("12-10-2026", None),
        ("Dec 10", None),
        ("-12-10", None),
        ("", None),
        ("+1-+2", None),
    ];
    for (text, expected) in cases {
        assert_eq!(
            parse_month_day(text),
            expected.map(|(month, day)| MonthDay { month, day }),
            "{text:?}"
        );
    }
}

#[test]
fn timing_keys_are_checked_with_a_fix_in_words() {
    // (campaign keys, step 1 keys, step 2 keys, Ok(()) or a fragment of the error)
    let cases: &[(&str, &str, &str, Result<(), &str>)] = &[
        ("", "", "on = \"12-10\"", Ok(())),
        ("", "", "on = \"02-29\"\nafter_days = 30", Ok(())),
        ("", "", "after_days = 30\nevery_days = 91", Ok(())),
        ("max_days_since_churn = 730", "", "after_days = 30", Ok(())),
        (
            "",
            "",
            "on = \"12-32\"",
            Err("campaign[1].step[2].on: \"12-32\" is not a month and day; write \"MM-DD\""),
        ),
        (
            "",
            "on = \"12-10\"",
            "after_days = 30",
            Err("campaign[1].step[1].on: the survey is timed by the campaign's quiet_days"),
        ),
        (
            "",
            "every_days = 90",
            "after_days = 30",
            Err("campaign[1].step[1].every_days: the survey goes once per departure"),
        ),
        (
            "",
            "",
            "on = \"12-10\"\nevery_days = 90",
            Err("already recurs every year on that date"),
        ),
        (
            "",
            "",
            "after_days = 30\nevery_days = 3",
            Err("campaign[1].step[2].every_days: is 3; use between 7 (weekly) and 3650 days"),
        ),
        (
            "",
            "",
            "after_days = 30\nevery_days = 4000",
            Err("is 4000; use between 7"),
        ),
        (
            "",
            "",
            "every_days = 30",
            Err("campaign[1].step[2].after_days: is missing"),
        ),
        (
            "max_days_since_churn = 60",
            "",
            "after_days = 30",
            Err(
                "campaign[1].max_days_since_churn: is 60, not more than the quiet period (90 days)",
            ),
        ),
        (
            "max_days_since_churn = 40000",
            "",
            "after_days = 30",
            Err("is 40000; write a number of days between 1 and 36500"),
        ),
    ];
    for (campaign, step1, step2, expected) in cases {
        let got = config(campaign, step1, step2);
        match (expected, &got) {
            (Ok(()), Ok(_)) => {}
            (Err(fragment), Err(text)) => {
                assert!(
                    text.contains(fragment),
                    "{campaign:?} {step1:?} {step2:?}: {text}"
                )
            }
            _ => panic!(
                "{campaign:?} {step1:?} {step2:?}: expected {expected:?}, got {:?}",
                got.map(|_| ())
            ),
        }
    }
}

#[test]
fn a_seasonal_step_without_after_days_waits_two_weeks_and_keeps_its_date() {
    let config = config("", "", "on = \"02-29\"").unwrap_or_else(|e| panic!("{e}"));
    let step = &config.campaigns[0].steps[1];
    assert_eq!(step.on, Some(MonthDay { month: 2, day: 29 }));
    assert_eq!(step.after_days, 14);
    assert_eq!(step.every_days, None);
}

#[test]
fn every_days_below_min_gap_days_is_a_warning_and_runs() {
    let config = config("min_gap_days = 30", "", "after_days = 30\nevery_days = 14")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.campaigns[0].steps[1].every_days, Some(14));
    let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("campaign[1].step[2].every_days")
                && w.contains("below the campaign's min_gap_days (30)")),
        "{warnings:?}"
    );
}
