//! The shipped configuration shows the playbook in use (two campaigns by reason, a yearly
//! greeting, a quarterly newsletter that keeps going, accounts, the consent horizon,
//! holidays ready to switch on) and `check` accepts it; and its first minute (the
//! README's quick start: `winback run` from the project folder) mails the surveys on
//! any day of the year: Christmas, 29 February, 4 July, the greeting's own day.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

use crate::support::{Captured, free_port, wait_until};

/// The day the sample's dates are read against: each run moves them by as many days as
/// its date is after this one, so that the sample is as old on every date tried (its
/// fixed dates would otherwise drift past the consent horizon the config sets).
const SAMPLE_AS_OF: &str = "2026-12-01";

/// `winback ARGS…` on the shipped copy in `root`, from that folder with the default
/// `--config`, as the README says, and hermetic.
fn winback(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_winback"));
    command.current_dir(root).args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WINBACK_") {
            command.env_remove(key);
        }
    }
    command.env("WINBACK_LOG", "warn");
    command
}

#[test]
fn the_shipped_config_shows_the_playbook_keys_and_check_accepts_it() {
    let root = crate::support::shipped_copy();
    let text = fs::read_to_string(root.path().join("config/winback.toml")).expect("the config");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for key in [
        "include_reasons = [\"price\"]",
        "on = \"12-10\"",
        "every_days = 91",
        "account = \"company\"",
        "max_days_since_churn = 730",
        "enroll_within_days = 365",
        "holidays = [\"holidays/us.ics\"]",
        "# quiet_dates = [\"12-20..01-05\"]",
        "# paused = true",
    ] {
        assert!(lines.contains(&key), "the shipped config shows {key}");
    }
    assert!(text.contains("CASL"), "the consent horizon says why 730");
    let survey = fs::read_to_string(root.path().join("templates/survey.txt.hbs"))
        .expect("the survey template");
    assert!(
        survey.contains("{{#if (eq churn_reason \"price\")}}"),
        "the shipped survey has a sentence for one reason"
    );

    let out = winback(root.path(), &["check"])
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("  left-over-price: 3 steps")
            && stdout.contains("  former-clients: 5 steps"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("churn_reason with"),
        "no reason literal of the shipped templates is unreachable: {stdout}"
    );
}

/// One sample client, as the test reads `clients.csv`.
struct Sample {
    email: String,
    churned: NaiveDate,
    reason: String,
    timezone: String,
}

/// The sample, its dates moved on by `days`; and its clients.
fn shifted_sample(csv: &str, days: u64) -> (String, Vec<Sample>) {
    let mut lines = csv.lines();
    let header = lines.next().expect("a header");
    let columns: Vec<&str> = header.split(',').collect();
    let column = |name: &str| columns.iter().position(|h| *h == name).expect(name);
    let mut out = format!("{header}\n");
    let mut samples = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        let churned = NaiveDate::parse_from_str(&cells[column("churned_at")], "%Y-%m-%d")
            .expect("a date")
            + Days::new(days);
        cells[column("churned_at")] = churned.to_string();
        samples.push(Sample {
            email: cells[column("email")].clone(),
            churned,
            reason: cells[column("churn_reason")].clone(),
            timezone: cells[column("timezone")].clone(),
        });
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    (out, samples)
}

/// Each `.eml` in `outbox`, by its recipient.
fn mail_by_recipient(outbox: &Path) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let Ok(entries) = fs::read_dir(outbox) else {
        return found;
    };
    for entry in entries.flatten() {
        if entry.path().extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        if let Some(to) = text.lines().find_map(|l| l.strip_prefix("To: ")) {
            let address = to.rsplit('<').next().unwrap_or(to).trim_end_matches('>');
            found.entry(address.to_string()).or_default().push(text);
        }
    }
    found
}

/// The quick start on the shipped copy with the clock at `now`: the survey of every
/// sample client it should reach arrives, once, within a minute, and nobody else is mailed.
fn quick_start_at(now: &str) {
    let now: DateTime<Utc> = now.parse().expect("an instant");
    let as_of = NaiveDate::parse_from_str(SAMPLE_AS_OF, "%Y-%m-%d").expect("a date");
    let days = (now.date_naive() - as_of).num_days();
    assert!(days >= 0, "{now} is after {SAMPLE_AS_OF}");
    let root = crate::support::shipped_copy();
    let config_path = root.path().join("config/winback.toml");
    let config = fs::read_to_string(&config_path).expect("the config");
    fs::write(
        &config_path,
        config.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port())),
    )
    .expect("write the config");
    let csv_path = root.path().join("config/clients.csv");
    let (csv, samples) = shifted_sample(
        &fs::read_to_string(&csv_path).expect("the sample"),
        days as u64,
    );
    fs::write(&csv_path, csv).expect("write the sample");

    let today = now.date_naive();
    let day = |n: u64| Days::new(n);
    let due = |s: &Sample| s.reason != "we_ended" && s.churned + day(91) <= today;
    // Past the shipped consent horizon or enrollment window: not mailed once those keys
    // act; either answer is right here, where only the day of the year is at stake.
    let beyond = |s: &Sample| s.churned + day(90 + 364) < today || s.churned + day(729) < today;
    // The shipped config keeps the US federal holidays (config/holidays/us.ics) free for
    // clients in the US: the sample's US clients (by their time zone) wait on 4 July and
    // Christmas Day; everyone else is mailed.
    let us_holiday = matches!((today.month(), today.day()), (7, 4) | (12, 25));
    let in_us = |s: &Sample| {
        [
            "America/New_York",
            "America/Chicago",
            "America/Denver",
            "America/Los_Angeles",
        ]
        .contains(&s.timezone.as_str())
    };
    let held_for_holiday = |s: &Sample| us_holiday && in_us(s);
    let expected: Vec<&Sample> = samples
        .iter()
        .filter(|s| due(s) && !beyond(s) && !held_for_holiday(s))
        .collect();
    let never: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.reason == "we_ended" || s.churned + day(89) > today || held_for_holiday(s))
        .collect();
    if us_holiday {
        assert!(
            samples.iter().any(|s| due(s) && !beyond(s) && in_us(s)),
            "{now}: a US client is due, so the holiday is what holds them"
        );
    }
    assert!(expected.len() >= 5, "{now}: most of the sample is due");
    assert!(!never.is_empty(), "{now}: some of the sample is not due");

    let stamp = now.to_rfc3339();
    let mut daemon = winback(root.path(), &["run", "--now", &stamp])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start winback run");
    let outbox = root.path().join("outbox");
    let arrived = wait_until(Duration::from_secs(60), || {
        let found = mail_by_recipient(&outbox);
        expected.iter().all(|s| found.contains_key(&s.email))
    });
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let stopped = wait_until(Duration::from_secs(10), || {
        matches!(daemon.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = daemon.kill();
    }
    let found = mail_by_recipient(&outbox);
    let names: Vec<&String> = found.keys().collect();
    assert!(
        arrived,
        "{now}: within a minute, a survey for each of {:?}; found {names:?}",
        expected.iter().map(|s| &s.email).collect::<Vec<_>>()
    );
    for sample in &never {
        assert!(
            !found.contains_key(&sample.email),
            "{now}: {} is not mailed",
            sample.email
        );
    }
    for sample in &expected {
        let mail = &found[&sample.email];
        assert_eq!(mail.len(), 1, "{now}: one survey for {}", sample.email);
        let text = Captured {
            seq: 0,
            mail_from: String::new(),
            rcpt_tos: Vec::new(),
            raw: mail[0].clone(),
        }
        .text()
        .expect("a text part");
        let price = text.contains("which part felt too dear");
        assert_eq!(
            price,
            sample.reason == "price",
            "{now}: the price sentence only for those who left over price ({})",
            sample.email
        );
    }
}

#[test]
fn the_quick_start_mails_the_surveys_on_christmas_day() {
    quick_start_at("2027-12-25T15:00:00Z");
}

#[test]
fn the_quick_start_mails_the_surveys_on_29_february() {
    quick_start_at("2028-02-29T15:00:00Z");
}

#[test]
fn the_quick_start_mails_the_surveys_on_4_july() {
    quick_start_at("2027-07-04T15:00:00Z");
}

#[test]
fn the_quick_start_mails_the_surveys_on_the_greetings_day() {
    quick_start_at("2027-12-10T15:00:00Z");
}
