//! Messages not fit to go, through the real binary: a placeholder left in a template, a
//! step that fails to render for a real client, a footer only the sample sees, and a
//! partial that calls itself. Each is held (or refused by `check`), never sent, shown in
//! `status`, `plan` and `outbox list`, and goes once fixed. Also a simulated year of the
//! shipped configuration.

use std::fs;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::support::{Output, Project};

const NOW: &str = "2026-06-02T14:00:00Z";
const FOOTER_HTML: &str =
    "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a> {{sender.postal_address}}</p>";
const FOOTER_TEXT: &str = "Unsubscribe: {{unsubscribe_url}}\n{{sender.postal_address}}";

/// A survey, then `second` 30 days later, then a greeting 30 days after that; every
/// minute a send moment; mail to `url`.
fn config(url: &str, second: &str) -> String {
    format!(
        r#"{settings}
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "{second}"
  subject = "News"

  [[campaign.step]]
  kind = "greeting"
  after_days = 30
  template = "greeting"
  subject = "Greetings"
"#,
        settings = crate::support::settings(url, "127.0.0.1:0"),
    )
}

/// A project mailing to files, whose second step is `second`; Pat imported (no `plan`
/// column).
fn project(second: &str) -> Project {
    let project = Project::new();
    project.write_config(&config("file://outbox", second));
    project.write_file(
        "clients.csv",
        "email,name,churned_at\npat@client.example,Pat Smith,2025-01-10\n",
    );
    project
        .winback(&["import", "clients.csv", "--now", NOW])
        .assert_success();
    project
}

fn at(days: i64) -> String {
    let start: DateTime<Utc> = NOW.parse().expect("NOW");
    (start + Duration::days(days)).to_rfc3339()
}

#[track_caller]
fn run_once(project: &Project, now: &str) -> Output {
    let out = project.winback(&["run", "--once", "--now", now]);
    out.assert_success();
    out
}

/// Every `.eml` file written so far.
fn sent(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| fs::read_to_string(e.path()).expect("read an .eml"))
        .collect();
    found.sort();
    found
}

#[track_caller]
fn json(out: &Output) -> Value {
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn status(project: &Project, now: &str) -> Value {
    json(&project.winback(&["status", "--format", "json", "--now", now]))
}

fn plan(project: &Project, now: &str) -> Vec<Value> {
    let plan = json(&project.winback(&["plan", "--days", "90", "--format", "json", "--now", now]));
    plan.as_array().expect("plan is a list").clone()
}

/// The held entries of `plan --format json`.
fn held_in_plan(plan: &[Value]) -> Vec<&Value> {
    plan.iter()
        .filter(|p| p["held"] == Value::Bool(true))
        .collect()
}

#[test]
fn a_placeholder_is_held_and_shown_everywhere_then_goes_once_the_template_is_fixed() {
    // The shipped newsletter, as shipped: it holds [EDIT: ...] placeholders.
    let project = project("newsletter");
    let outbox = project.path("outbox");
    run_once(&project, NOW);
    assert_eq!(sent(&outbox).len(), 1, "the survey went");

    let due = at(31);
    let out = run_once(&project, &due);
    let mail = sent(&outbox);
    assert_eq!(
        mail.len(),
        1,
        "the newsletter is not sent: {:?}",
        mail.last()
    );
    assert!(mail.iter().all(|m| !m.contains("[EDIT:")));
    assert!(
        out.stderr.contains("ERROR") && out.stderr.contains("held"),
        "logged as an error: {}",
        out.stderr
    );
    let state = status(&project, &due);
    assert_eq!(state["messages"]["former-clients"]["held"], 1, "{state}");
    assert_eq!(
        state["enrollments"]["former-clients"]["active"], 1,
        "{state}"
    );
    let attention = &state["attention"][0];
    assert_eq!(attention["state"], "held", "{state}");
    assert!(
        attention["error"]
            .as_str()
            .unwrap_or_default()
            .contains("[EDIT:"),
        "{attention}"
    );
    let planned = plan(&project, &due);
    let held = held_in_plan(&planned);
    assert_eq!(held.len(), 1, "{planned:?}");
    assert_eq!(held[0]["email"], "pat@client.example");
    assert_eq!(held[0]["step"], 2);
    let table = project.winback(&["plan", "--now", &due]);
    assert!(
        table.stdout.contains("held, not sent until fixed"),
        "{}",
        table.stdout
    );
    let list = project.winback(&["outbox", "list", "--now", &due]);
    assert!(
        list.stdout.contains("held") && list.stdout.contains("[EDIT:"),
        "{}",
        list.stdout
    );

    // A pass later the same day tries nothing again (no storm of errors).
    let out = project.winback(&["run", "--once", "--now", &at(31)]);
    assert_eq!(sent(&outbox).len(), 1, "{}", out.stderr);

    // Fixed, and winback started again: the step goes, the sequence continues.
    project.write_file(
        "templates/newsletter.html.hbs",
        &format!("<p>What we changed this year.</p>\n{FOOTER_HTML}"),
    );
    project.write_file(
        "templates/newsletter.txt.hbs",
        &format!("What we changed this year.\n{FOOTER_TEXT}"),
    );
    let fixed = at(32);
    run_once(&project, &fixed);
    let mail = sent(&outbox);
    assert_eq!(mail.len(), 2, "the newsletter went once fixed");
    assert!(
        mail.iter()
            .any(|m| m.contains("What we changed this year."))
    );
    let state = status(&project, &fixed);
    assert_eq!(state["messages"]["former-clients"]["sent"], 2, "{state}");
    assert!(
        state["messages"]["former-clients"].get("held").is_none(),
        "{state}"
    );
    let planned = plan(&project, &fixed);
    assert!(held_in_plan(&planned).is_empty(), "{planned:?}");
    assert!(
        planned.iter().any(|p| p["kind"] == "greeting"),
        "the next step is planned: {planned:?}"
    );
}

#[test]
fn a_step_that_fails_to_render_is_held_not_completed_and_continues_once_fixed() {
    // The sample client has a `plan` column; Pat has none, so this fails for Pat only.
    let project = project("note");
    project.write_file(
        "templates/note.html.hbs",
        &format!("<p>Your {{{{fields.plan}}}} plan</p>\n{FOOTER_HTML}"),
    );
    project.write_file("templates/note.txt.hbs", &format!("News\n{FOOTER_TEXT}"));
    project.winback(&["check"]).assert_success();
    run_once(&project, NOW);
    let due = at(31);
    run_once(&project, &due);
    let outbox = project.path("outbox");
    assert_eq!(sent(&outbox).len(), 1, "only the survey");
    let state = status(&project, &due);
    assert_eq!(
        state["enrollments"]["former-clients"]["active"], 1,
        "{state}"
    );
    assert!(
        state["enrollments"]["former-clients"]
            .get("completed")
            .is_none(),
        "{state}"
    );
    assert_eq!(state["messages"]["former-clients"]["held"], 1, "{state}");
    assert_eq!(held_in_plan(&plan(&project, &due)).len(), 1);

    // `outbox resend` on a held message, with the template fixed: it goes.
    project.write_file(
        "templates/note.html.hbs",
        &format!("<p>News</p>\n{FOOTER_HTML}"),
    );
    let id = state["attention"][0]["id"].as_i64().expect("a message id");
    project
        .winback(&["outbox", "resend", &id.to_string(), "--now", &due])
        .assert_success();
    run_once(&project, &due);
    assert_eq!(sent(&outbox).len(), 2, "the step went");
    let planned = plan(&project, &due);
    assert!(
        planned.iter().any(|p| p["kind"] == "greeting"),
        "the sequence continues: {planned:?}"
    );
}

#[test]
fn a_footer_only_the_sample_sees_holds_the_real_message() {
    let project = project("newsletter");
    project.write_file(
        "templates/survey.html.hbs",
        &format!("<p>Why?</p>{{{{#if (eq first_name \"Jordan\")}}}}{FOOTER_HTML}{{{{/if}}}}"),
    );
    project.write_file(
        "templates/survey.txt.hbs",
        &format!("Why?\n{{{{#if (eq first_name \"Jordan\")}}}}{FOOTER_TEXT}{{{{/if}}}}"),
    );
    // The sample is Jordan: check cannot see it.
    project.winback(&["check"]).assert_success();
    let out = run_once(&project, NOW);
    assert!(sent(&project.path("outbox")).is_empty(), "{}", out.stderr);
    let state = status(&project, NOW);
    assert_eq!(state["messages"]["former-clients"]["held"], 1, "{state}");
    let error = state["attention"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("lacks the unsubscribe link"), "{error}");
    assert!(error.contains("lacks the postal address"), "{error}");
}

#[test]
fn check_fails_on_placeholders_for_a_real_server_and_warns_for_files() {
    let project = Project::new();
    project.write_config(&config("smtp://127.0.0.1:2525", "newsletter"));
    let out = project.winback(&["check"]);
    out.assert_failure();
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stdout.contains("newsletter.html.hbs") && out.stdout.contains("[EDIT:"),
        "{}",
        out.stdout
    );
    project.write_config(&config("smtps://127.0.0.1:2525", "newsletter"));
    project.winback(&["check"]).assert_failure();

    project.write_config(&config("file://outbox", "newsletter"));
    let out = project.winback(&["check"]);
    out.assert_success();
    assert!(
        out.stdout.contains("warning:") && out.stdout.contains("[EDIT:"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_template_that_could_overflow_the_stack_is_refused_by_check_and_never_rendered() {
    for (html, why) in [
        (
            "{{#*inline \"x\"}}{{> x}}{{/inline}}{{> x}}".to_string(),
            "calls itself",
        ),
        // Renders in check's main thread, but overflowed a delivery thread's stack.
        (
            format!(
                "{}x{}",
                "{{#if first_name}}".repeat(150),
                "{{/if}}".repeat(150)
            ),
            "deep",
        ),
    ] {
        let project = project("newsletter");
        project.write_file(
            "templates/survey.html.hbs",
            &format!("{html}\n{FOOTER_HTML}"),
        );
        let out = project.winback(&["check"]);
        assert_eq!(out.code(), Some(1), "exit 1, not a crash: {out:?}");
        assert!(out.stdout.contains(why), "{}", out.stdout);
        let out = project.winback(&["run", "--once", "--now", NOW]);
        assert_eq!(out.code(), Some(1), "refused, not a crash: {out:?}");
        assert!(sent(&project.path("outbox")).is_empty());
    }
}

/// `winback --config <root>/config/winback.toml ARGS…` in `root`, hermetic.
fn shipped(root: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_winback"));
    command
        .current_dir(root)
        .arg("--config")
        .arg(root.join("config/winback.toml"))
        .args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WINBACK_") {
            command.env_remove(key);
        }
    }
    let out = command
        .env("WINBACK_LOG", "warn")
        .output()
        .expect("run winback");
    assert!(
        out.status.success(),
        "winback {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_simulated_year_of_the_shipped_config_never_mails_a_placeholder() {
    let root = crate::support::shipped_copy();
    let root = root.path();
    // After the last sample client left (the sync refuses churn dates in the future).
    let start: DateTime<Utc> = "2026-11-20T15:00:00Z".parse().expect("a time");
    let end = start + Duration::days(365);
    let mut now = start;
    let mut runs = 0;
    let mut errors = String::new();
    while now <= end {
        let stamp = now.to_rfc3339();
        let out = shipped(root, &["run", "--once", "--now", &stamp]);
        errors.push_str(&String::from_utf8_lossy(&out.stderr));
        runs += 1;
        assert!(runs <= 60, "bounded: at most 60 passes");
        let state: Value = serde_json::from_slice(
            &shipped(root, &["status", "--format", "json", "--now", &stamp]).stdout,
        )
        .expect("status JSON");
        // The next send moment, but at least a week on: the shipped send_at fires every
        // minute, and held steps are tried again daily.
        let next = state["next_wake"]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .unwrap_or(end + Duration::days(1));
        now = next.max(now + Duration::days(7));
    }
    let mail = sent(&root.join("outbox"));
    assert!(
        mail.len() >= 10,
        "the surveys went: {} messages",
        mail.len()
    );
    for message in &mail {
        assert!(
            !message.contains("[EDIT:"),
            "sent with a placeholder:\n{message}"
        );
    }
    assert!(errors.contains("held"), "held steps are logged as errors");

    let stamp = end.to_rfc3339();
    let state: Value = serde_json::from_slice(
        &shipped(root, &["status", "--format", "json", "--now", &stamp]).stdout,
    )
    .expect("status JSON");
    // Summed over the shipped campaigns (one by reason, one for everyone else).
    let held: u64 = state["messages"]
        .as_object()
        .expect("messages per campaign")
        .values()
        .map(|counts| counts["held"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        held >= 6,
        "the newsletter step is held for each surveyed client: {state}"
    );
    let planned: Value = serde_json::from_slice(
        &shipped(
            root,
            &["plan", "--days", "30", "--format", "json", "--now", &stamp],
        )
        .stdout,
    )
    .expect("plan JSON");
    let planned = planned.as_array().expect("a list");
    assert_eq!(
        held_in_plan(planned).len() as u64,
        held,
        "every held step is in the plan: {planned:?}"
    );
}

#[test]
fn the_first_plan_after_a_confirmed_rename_still_shows_the_held_step() {
    let project = project("newsletter");
    run_once(&project, NOW);
    let due = at(31);
    run_once(&project, &due);
    assert_eq!(held_in_plan(&plan(&project, &due)).len(), 1);
    let renamed = config("file://outbox", "newsletter").replace(
        "name = \"former-clients\"\n",
        "name = \"former_clients\"\nrenamed_from = \"former-clients\"\n",
    );
    project.write_config(&renamed);
    let first = plan(&project, &due);
    assert_eq!(
        held_in_plan(&first).len(),
        1,
        "first plan after the rename: {first:?}"
    );
}
