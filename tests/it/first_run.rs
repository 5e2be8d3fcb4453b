//! The first minute: the shipped config and sample clients, run as a newcomer would,
//! produce survey `.eml` files for exactly the sample clients past their quiet period.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::support::{free_port, wait_until};

/// The addresses the shipped sample should mail now, and those it must not (yet).
#[allow(clippy::disallowed_methods)] // the daemon under test runs on the real clock too
fn expected_from_sample(csv: &str) -> (Vec<String>, Vec<String>) {
    let now = Utc::now();
    let mut due = Vec::new();
    let mut not_due = Vec::new();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let email = cells[column("email")].to_string();
        let tz: Tz = cells[column("timezone")].parse().expect("a zone");
        let churned =
            NaiveDate::parse_from_str(cells[column("churned_at")], "%Y-%m-%d").expect("a date");
        let due_at = tz
            .from_local_datetime(
                &(churned + chrono::Days::new(90))
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight"),
            )
            .earliest()
            .expect("a local midnight")
            .with_timezone(&Utc);
        // Past the shipped consent horizon (730 days) or enrollment window (a survey due
        // over 365 days ago): not mailed once those keys act; either answer is right here.
        let today = now.date_naive();
        if cells[column("churn_reason")] != "we_ended"
            && (churned + chrono::Days::new(90 + 364) < today
                || churned + chrono::Days::new(729) < today)
        {
            continue;
        }
        if cells[column("churn_reason")] == "we_ended"
            || due_at > now + chrono::Duration::minutes(2)
        {
            not_due.push(email);
        } else if due_at < now - chrono::Duration::minutes(2) {
            due.push(email);
        } // within two minutes of the boundary: either answer is right
    }
    (due, not_due)
}

fn recipients_in(outbox: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(outbox) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        if entry.path().extension().is_some_and(|e| e == "eml") {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(to) = text.lines().find_map(|l| l.strip_prefix("To: ")) {
                let address = to
                    .rsplit('<')
                    .next()
                    .unwrap_or(to)
                    .trim_end_matches('>')
                    .to_string();
                found.push(address);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_shipped_config_mails_the_sample_clients_past_their_quiet_period_within_a_minute() {
    let root = crate::support::shipped_copy();
    // Only the listening port moves, so that tests can run side by side; the database
    // and outbox already land next to the copied config (../winback.db, ../outbox).
    let config_path = root.path().join("config/winback.toml");
    let shipped = fs::read_to_string(&config_path).expect("the shipped config");
    assert!(
        shipped.contains("listen = \"127.0.0.1:8080\""),
        "the shipped config listens on 127.0.0.1:8080"
    );
    fs::write(
        &config_path,
        shipped.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", free_port())),
    )
    .expect("write the config");

    let (due, not_due) = expected_from_sample(
        &fs::read_to_string(root.path().join("config/clients.csv")).expect("the sample"),
    );
    assert!(
        due.len() >= 5,
        "the sample has several clients past their quiet period: {due:?}"
    );
    assert!(
        not_due.iter().any(|e| e.starts_with("liam.oconnor")),
        "the we_ended client is never due"
    );

    // As the README says: `winback run` from the project folder, default --config.
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_winback"))
        .arg("run")
        .current_dir(root.path())
        .env_remove("WINBACK_SECRET")
        .env_remove("WINBACK_CONFIG")
        .env("WINBACK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start winback run");
    let outbox = root.path().join("outbox");
    let arrived = wait_until(Duration::from_secs(60), || {
        let found = recipients_in(&outbox);
        due.iter().all(|e| found.contains(e))
    });
    // Give a pass that might wrongly mail more a moment to show itself.
    std::thread::sleep(Duration::from_millis(500));
    terminate(&mut daemon);
    let found = recipients_in(&outbox);
    assert!(arrived, "within 60 s, surveys for {due:?}; found {found:?}");
    for email in &not_due {
        assert!(
            !found.contains(email),
            "{email} must not be mailed yet (or ever, if we_ended); found {found:?}"
        );
    }
    let mut unique = found.clone();
    unique.dedup();
    assert_eq!(unique, found, "one survey per client");
    assert!(
        root.path().join("winback.db").is_file(),
        "the database is created next to the config's ../winback.db"
    );
}

/// SIGTERM through `kill`, then a bounded wait; the daemon must exit 0.
fn terminate(child: &mut std::process::Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let mut status = None;
    for _ in 0..100 {
        if let Ok(Some(s)) = child.try_wait() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match status {
        Some(s) => assert!(s.success(), "winback run exits 0 on SIGTERM, got {s}"),
        None => {
            let _ = child.kill();
            panic!("winback run did not stop within 10 s of SIGTERM");
        }
    }
}
