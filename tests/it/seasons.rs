//! The playbook's timing through the real binary, the clock moved with `--now` from one
//! wake-up to the next over three simulated years: a greeting only on its date, a
//! newsletter every N days, never two messages to one person on one day, nothing past
//! the consent horizon; a paused campaign sends nothing and catches up at a `send_at`
//! moment; `plan` shows the seasonal and recurring sends with their reasons, and why a
//! pass moved a message it could not send yet.

use std::collections::BTreeMap;
use std::fs;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::support::Project;
use crate::support::wakeups::{rfc3339, run_until_with};

/// Survey, a newsletter 30 days later and then every 91 days, a greeting on 10 December;
/// every day at 10:00 UTC; `extra` adds campaign keys.
fn config(extra: &str) -> String {
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    text.push_str(&format!(
        r#"
[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"
timezone = "UTC"
{extra}

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  every_days = 91
  template = "newsletter"
  subject = "Our news"

  [[campaign.step]]
  kind = "greeting"
  on = "12-10"
  template = "greeting"
  subject = "Season's greetings"
"#
    ));
    text
}

/// Every message in `outbox/`: (recipient, sent at, subject), in send order.
fn sent(project: &Project) -> Vec<(String, DateTime<Utc>, String)> {
    let Ok(entries) = fs::read_dir(project.path("outbox")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, DateTime<Utc>, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .map(|eml| {
            let header = |name: &str| {
                eml.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                    .unwrap_or_else(|| panic!("no {name} in {eml}"))
            };
            let date = DateTime::parse_from_rfc2822(&header("Date:"))
                .unwrap_or_else(|e| panic!("Date of {eml}: {e}"))
                .with_timezone(&Utc);
            let to = header("To:");
            let address = match (to.find('<'), to.rfind('>')) {
                (Some(open), Some(close)) => to[open + 1..close].to_string(),
                _ => to,
            };
            (address, date, header("Subject:"))
        })
        .collect();
    out.sort_by_key(|(to, at, _)| (*at, to.clone()));
    out
}

/// Runs one pass at each wake-up the daemon asks for, from `start` to `end`, each `lag`
/// after the wake-up (a real pass sends a moment after its `send_at` moment, or later when
/// the daemon was busy or down).
fn run_until(project: &Project, start: &str, end: &str, lag: Duration) {
    run_until_with(project, (start, end), lag, 200, |now| {
        project
            .winback(&["--now", now, "run", "--once"])
            .assert_success();
    });
}

fn project(extra: &str) -> Project {
    let project = Project::new();
    project.write_config(&config(extra));
    project.fill_placeholders();
    project.write_file(
        "clients.csv",
        "email,name,churned_at\nada@analytical.example,Ada,2025-11-01\nbob@builders.example,Bob,2025-12-20\n",
    );
    project
        .winback(&["--now", "2026-01-05T09:00:00Z", "import", "clients.csv"])
        .assert_success();
    project
}

#[test]
fn three_years_of_greetings_on_their_date_and_newsletters_every_91_days_until_the_horizon() {
    // Ada left 1 November 2025, Bob 20 December 2025; the consent horizon is 1000 days:
    // nothing may start after 27 July 2028 for Ada, 15 September 2028 for Bob.
    let project = project("max_days_since_churn = 1000");
    run_until(
        &project,
        "2026-01-05T09:00:00Z",
        "2029-01-31T00:00:00Z",
        Duration::seconds(3),
    );
    let messages = sent(&project);
    let mut by_person: BTreeMap<&str, Vec<(DateTime<Utc>, &str)>> = BTreeMap::new();
    for (to, at, subject) in &messages {
        by_person
            .entry(to.as_str())
            .or_default()
            .push((*at, subject.as_str()));
    }
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let horizon = [
        ("ada@analytical.example", date(2028, 7, 28)),
        ("bob@builders.example", date(2028, 9, 16)),
    ];
    for (person, last_day) in horizon {
        let theirs = by_person
            .get(person)
            .unwrap_or_else(|| panic!("nothing to {person}: {messages:#?}"));
        let days: Vec<NaiveDate> = theirs.iter().map(|(at, _)| at.date_naive()).collect();
        // Never two on one day, never past the horizon.
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(
            unique, days,
            "{person}: two messages on one day: {theirs:#?}"
        );
        assert!(
            days.iter().all(|d| *d < last_day),
            "{person}: a message past the horizon: {theirs:#?}"
        );
        // One survey, first.
        assert_eq!(theirs[0].1, "May we ask why you left?");
        assert_eq!(
            theirs
                .iter()
                .filter(|(_, s)| *s == "May we ask why you left?")
                .count(),
            1
        );
        // Greetings only on 10 December, one each year from the first December after
        // the survey + 14 days: 2026 and 2027 (2028's is past the horizon).
        let greetings: Vec<NaiveDate> = theirs
            .iter()
            .filter(|(_, s)| *s == "Season's greetings")
            .map(|(at, _)| at.date_naive())
            .collect();
        assert_eq!(
            greetings,
            [date(2026, 12, 10), date(2027, 12, 10)],
            "{person}"
        );
        // Newsletters keep going, 91 days apart to the day, though each went a moment
        // after 10:00: the next counts from the 10:00 moment it went at. (None falls
        // within min_gap_days of a greeting here; giving way to one is a unit test.)
        let news: Vec<DateTime<Utc>> = theirs
            .iter()
            .filter(|(_, s)| *s == "Our news")
            .map(|(at, _)| *at)
            .collect();
        assert!(news.len() >= 9, "{person}: newsletters {news:#?}");
        for pair in news.windows(2) {
            let gap = (pair[1].date_naive() - pair[0].date_naive()).num_days();
            assert_eq!(gap, 91, "{person}: newsletters {gap} days apart: {news:#?}");
        }
        for n in &news {
            for (at, subject) in theirs {
                if at != n {
                    assert!(
                        (*at - *n).num_days().abs() >= 7,
                        "{person}: newsletter {n} within 7 days of {subject} at {at}"
                    );
                }
            }
        }
        // All at 10:00.
        assert!(
            theirs
                .iter()
                .all(|(at, _)| at.format("%H:%M").to_string() == "10:00")
        );
    }
    // Both sequences ended at the horizon, and status says so.
    let status = project.winback(&["--now", "2029-01-31T00:00:00Z", "status"]);
    status.assert_success();
    assert!(status.stdout.contains("expired 2"), "{}", status.stdout);
}

#[test]
fn a_paused_campaign_sends_nothing_then_catches_up_at_a_send_at_moment() {
    let project = project("paused = true");
    // Ada's survey was due 30 January 2026: paused, nothing goes.
    project
        .winback(&["--now", "2026-02-03T10:00:00Z", "run", "--once"])
        .assert_success();
    assert!(sent(&project).is_empty(), "{:#?}", sent(&project));
    let plan = project.winback(&["--now", "2026-02-03T10:00:00Z", "plan", "--days", "30"]);
    plan.assert_success();
    assert!(
        !plan.stdout.contains("ada@analytical.example"),
        "{}",
        plan.stdout
    );
    // Unpaused at 15:00, past the catch-up window of 10:00: nothing at once...
    project.write_config(&config(""));
    project
        .winback(&["--now", "2026-02-03T15:00:00Z", "run", "--once"])
        .assert_success();
    assert!(sent(&project).is_empty(), "{:#?}", sent(&project));
    // ... the survey goes at the next 10:00.
    project
        .winback(&["--now", "2026-02-04T10:00:00Z", "run", "--once"])
        .assert_success();
    let messages = sent(&project);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].0, "ada@analytical.example");
    assert_eq!(rfc3339(messages[0].1), "2026-02-04T10:00:00Z");
}

#[test]
fn plan_over_400_days_shows_seasonal_and_recurring_sends_with_their_reasons() {
    let project = project("");
    let out = project.winback(&["--now", "2026-01-05T09:00:00Z", "plan", "--days", "400"]);
    out.assert_success();
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("ada@analytical.example"))
        .collect();
    // Survey 30 January, newsletters from 1 March every 91 days, the greeting on 10
    // December 2026.
    let expect = [
        (
            "2026-01-30 10:00",
            "1 survey",
            "churned 2025-11-01 + 90 quiet days",
        ),
        (
            "2026-03-01 10:00",
            "2 newsletter",
            "step 1 planned 2026-01-30 + 30 days",
        ),
        ("2026-05-31 10:00", "2 newsletter", "every 91 days"),
        ("2026-08-30 10:00", "2 newsletter", "every 91 days"),
        ("2026-11-29 10:00", "2 newsletter", "every 91 days"),
        ("2026-12-10 10:00", "3 greeting", "seasonal: 12-10"),
    ];
    assert!(lines.len() >= expect.len(), "{}", out.stdout);
    for (line, (when, step, why)) in lines.iter().zip(expect) {
        assert!(
            line.starts_with(when) && line.contains(step) && line.contains(why),
            "{line:?} is not {when} {step} ({why})\n{}",
            out.stdout
        );
    }
}

/// What `plan --format json` lists: (recipient, local date, subject), in send order.
fn planned(project: &Project, now: &str, days: &str) -> Vec<(String, NaiveDate, String)> {
    let out = project.winback(&["--now", now, "plan", "--days", days, "--format", "json"]);
    out.assert_success();
    let lines: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("plan is JSON");
    lines
        .iter()
        .map(|line| {
            let at = DateTime::parse_from_rfc3339(line["at"].as_str().expect("at"))
                .expect("an instant")
                .with_timezone(&Utc);
            let subject = match line["kind"].as_str().expect("kind") {
                "survey" => "May we ask why you left?",
                "newsletter" => "Our news",
                "greeting" => "Season's greetings",
                "article" => "A read",
                other => panic!("a step of kind {other}: {}", out.stdout),
            };
            let email = line["email"].as_str().expect("email").to_string();
            (email, at.date_naive(), subject.to_string())
        })
        .collect()
}

#[test]
fn the_daemon_sends_each_step_on_the_day_plan_shows_though_it_sends_after_the_moment() {
    // A pass sends a moment after its 10:00 moment (3 s), or catching up later (90 min,
    // within catch_up_hours): either way each next step goes on the date plan showed
    // before anything went, not a day later.
    for lag in [Duration::seconds(3), Duration::minutes(90)] {
        let project = project("");
        let plan = planned(&project, "2026-01-05T09:00:00Z", "400");
        // The survey, a newsletter 30 days on and every 91 days, the greeting: the plan
        // runs the whole window, so it must cover several steps of each person.
        assert!(plan.len() >= 10, "{plan:#?}");
        run_until(
            &project,
            "2026-01-05T09:00:00Z",
            "2027-02-09T09:00:00Z",
            lag,
        );
        let went: Vec<(String, NaiveDate, String)> = sent(&project)
            .into_iter()
            .map(|(to, at, subject)| (to, at.date_naive(), subject))
            .collect();
        let by_person = |list: &[(String, NaiveDate, String)], who: &str| {
            list.iter()
                .filter(|(to, _, _)| to == who)
                .map(|(_, day, subject)| (*day, subject.clone()))
                .collect::<Vec<_>>()
        };
        for who in ["ada@analytical.example", "bob@builders.example"] {
            assert_eq!(
                by_person(&went, who),
                by_person(&plan, who),
                "{who}, each pass {lag} after its wake-up: sent (left) and planned (right)"
            );
        }
    }
}

#[test]
fn the_step_after_a_newsletter_a_quiet_date_moved_keeps_min_gap_days_from_it_in_plan_and_run() {
    // Ada: survey 30 January, newsletter 1 March and every 91 days (31 May, moved to 5
    // June by the quiet dates), an article 99 days after the first newsletter (8 June).
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    text.push_str(
        r#"
[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"
timezone = "UTC"
quiet_dates = ["05-31..06-04"]

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  every_days = 91
  template = "newsletter"
  subject = "Our news"

  [[campaign.step]]
  kind = "article"
  after_days = 99
  template = "article"
  subject = "A read"
"#,
    );
    let project = Project::new();
    project.write_config(&text);
    project.fill_placeholders();
    project.write_file(
        "clients.csv",
        "email,name,churned_at\nada@analytical.example,Ada,2025-11-01\n",
    );
    project
        .winback(&["--now", "2026-01-05T09:00:00Z", "import", "clients.csv"])
        .assert_success();
    let ada = |now: &str| -> Vec<(NaiveDate, String)> {
        planned(&project, now, "200")
            .into_iter()
            .filter(|(to, _, _)| to == "ada@analytical.example")
            .map(|(_, day, subject)| (day, subject))
            .collect()
    };
    let date = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
    let expected = [
        (date(6, 5), "Our news".to_string()),
        (date(6, 12), "A read".to_string()),
    ];
    let before = ada("2026-01-05T09:00:00Z");
    assert!(
        before.windows(2).any(|w| w == expected),
        "plan before anything went: {before:#?}"
    );
    run_until(
        &project,
        "2026-01-05T09:00:00Z",
        "2026-06-05T11:00:00Z",
        Duration::seconds(3),
    );
    // The newsletter went; plan counts it from the database.
    let after = ada("2026-06-05T11:00:00Z");
    assert_eq!(
        after.first(),
        Some(&expected[1]),
        "plan after it went: {after:#?}"
    );
    run_until(
        &project,
        "2026-06-05T11:00:00Z",
        "2026-06-30T00:00:00Z",
        Duration::seconds(3),
    );
    let days: Vec<(NaiveDate, String)> = sent(&project)
        .into_iter()
        .map(|(_, at, subject)| (at.date_naive(), subject))
        .collect();
    assert_eq!(&days[days.len() - 2..], expected, "{days:#?}");
}

/// Ada's survey, due 30 January, falls on the quiet dates: the pass that day moves it to
/// 2 February. `plan` (every format) still says why it goes then, though it starts from
/// that stored moment; once it went, nothing more is said of the move.
#[test]
fn plan_keeps_saying_why_a_pass_moved_a_message_until_it_went() {
    let project = project(r#"quiet_dates = ["01-30..02-01"]"#);
    let why = "moved: 2026-01-30 is kept free (quiet dates 01-30..02-01)";
    project
        .winback(&["--now", "2026-01-30T10:00:05Z", "run", "--once"])
        .assert_success();
    assert!(sent(&project).is_empty(), "{:#?}", sent(&project));
    let ada = |now: &str, format: &str| -> String {
        let out = project.winback(&["--now", now, "plan", "--days", "40", "--format", format]);
        out.assert_success();
        let first = match format {
            "json" => {
                let lines: Vec<serde_json::Value> =
                    serde_json::from_str(&out.stdout).expect("plan is JSON");
                lines
                    .into_iter()
                    .find(|l| l["email"] == "ada@analytical.example")
                    .map(|l| format!("{} {} {}", l["at"], l["step"], l["reason"]))
            }
            _ => out
                .stdout
                .lines()
                .find(|l| l.contains("ada@analytical.example"))
                .map(str::to_string),
        };
        first.unwrap_or_else(|| panic!("no line for Ada in {}", out.stdout))
    };
    for format in ["table", "json", "csv"] {
        let line = ada("2026-01-30T10:01:00Z", format);
        assert!(
            line.contains("2026-02-02") && line.contains(why),
            "{format}: {line}"
        );
    }
    project
        .winback(&["--now", "2026-02-02T10:00:05Z", "run", "--once"])
        .assert_success();
    assert_eq!(sent(&project).len(), 1, "{:#?}", sent(&project));
    for format in ["table", "json", "csv"] {
        let line = ada("2026-02-02T10:01:00Z", format);
        assert!(
            line.contains("2026-03-04") && !line.contains("kept free"),
            "{format}: {line}"
        );
    }
}
