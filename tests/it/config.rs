//! The configuration through the real binary: what `check` refuses, `run` refuses too,
//! before it creates anything; and the sentences both print.

use crate::support::{Output, Project};

const NOW: &str = "2026-06-02T14:00:00Z";

/// A valid configuration with `smtp_url` and `public_url`.
fn config(smtp_url: &str, public_url: &str) -> String {
    format!(
        r#"[database]
path = "data/winback.db"

[smtp]
url = "{smtp_url}"
from = "Acme Customer Success <success@acme.example>"

[http]
listen = "127.0.0.1:0"
public_url = "{public_url}"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield"

[templates]
dir = "templates"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"
"#
    )
}

/// The 1-based line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?}"))
        + 1
}

#[track_caller]
fn assert_says(out: &Output, expected: &str) {
    assert!(
        out.stdout.contains(expected) || out.stderr.contains(expected),
        "expected {expected:?} in:\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
}

/// `check` fails saying `expected`; `run --once` fails too, and leaves no database, lock
/// file or folder behind.
#[track_caller]
fn refused_by_check_and_run(project: &Project, expected: &str) {
    let check = project.winback(&["check"]);
    check.assert_failure();
    assert_says(&check, expected);
    let run = project.winback(&["--now", NOW, "run", "--once"]);
    run.assert_failure();
    assert_says(&run, expected);
    for left in ["data/winback.db", "data/winback.db.lock", "data"] {
        assert!(
            !project.path(left).exists(),
            "`run` refused the configuration but created {left}:\n{}",
            run.stderr
        );
    }
}

#[test]
fn check_refuses_what_run_refuses_and_run_creates_nothing_first() {
    let project = Project::new();

    // A password in the url, and a port that is not a number.
    let text = config(
        "smtp://bob:hunter2@localhost:notaport",
        "https://winback.acme.example",
    );
    project.write_config(&text);
    let line = line_of(&text, "url =");
    refused_by_check_and_run(
        &project,
        &format!("winback.toml:{line}: smtp.url: the password must not be written in the url"),
    );
    let check = project.winback(&["check"]);
    assert!(!check.stdout.contains("hunter2"), "{}", check.stdout);

    let text = config("smtp://localhost:notaport", "https://winback.acme.example");
    project.write_config(&text);
    refused_by_check_and_run(
        &project,
        &format!(
            "winback.toml:{line}: smtp.url: the port \"notaport\" is not a number from 1 to 65535"
        ),
    );

    // A login without its password in the environment.
    project.write_config(&config(
        "smtp://bob@localhost:2525",
        "https://winback.acme.example",
    ));
    refused_by_check_and_run(
        &project,
        "smtp.url logs in as \"bob\" but WINBACK_SMTP_PASSWORD is not set",
    );

    // A broken page template.
    project.write_config(&config("file://outbox", "https://winback.acme.example"));
    project.write_file(
        "templates/pages/layout.hbs",
        "{{#if title}}<h1>{{title}}</h1>\n",
    );
    refused_by_check_and_run(&project, "layout.hbs");
}

/// A campaign renamed without `renamed_from` is refused by `run` as by `check`, before
/// the lock file is made: the database the import created is all there is.
#[test]
fn run_refuses_an_unconfirmed_rename_before_it_creates_its_lock_file() {
    let project = Project::new();
    let text = config("file://outbox", "https://winback.acme.example");
    project.write_config(&text);
    project.write_file(
        "clients.csv",
        "email,name,churned_at\nada@analytical.example,Ada,2025-11-01\n",
    );
    project
        .winback(&["--now", NOW, "import", "clients.csv"])
        .assert_success();
    assert!(project.path("data/winback.db").exists());

    project.write_config(&text.replace("name = \"former-clients\"", "name = \"former_clients\""));
    let expected =
        "add renamed_from = \"former-clients\" to the [[campaign]] named \"former_clients\"";
    let check = project.winback(&["check"]);
    check.assert_failure();
    assert_says(&check, expected);
    let run = project.winback(&["--now", NOW, "run", "--once"]);
    run.assert_failure();
    assert_says(&run, expected);
    assert!(
        !project.path("data/winback.db.lock").exists(),
        "`run` refused the configuration but created its lock file:\n{}",
        run.stderr
    );
    assert!(!project.path("outbox").exists(), "{}", run.stderr);
}

#[test]
fn links_nobody_can_open_fail_check_when_mail_goes_to_a_server() {
    let project = Project::new();
    let text = config("smtp://127.0.0.1:2525", "http://127.0.0.1:8080");
    project.write_config(&text);
    let line = line_of(&text, "public_url =");
    refused_by_check_and_run(
        &project,
        &format!(
            "winback.toml:{line}: http.public_url: \"http://127.0.0.1:8080\" cannot be opened by the people you mail"
        ),
    );

    // Written to files, the same links are only worth a warning.
    project.write_config(&config("file://outbox", "http://127.0.0.1:8080"));
    let check = project.winback(&["check"]);
    check.assert_success();
    assert_says(
        &check,
        &format!(
            "warning: {}:{line}: http.public_url: \"http://127.0.0.1:8080\" cannot be opened",
            project.config_path().display()
        ),
    );

    project.write_config(&config(
        "smtp://127.0.0.1:2525",
        "https://winback.acme.example",
    ));
    project.winback(&["check"]).assert_success();
}

#[test]
fn check_explains_mistakes_in_a_marketers_words() {
    let project = Project::new();
    let valid = config("file://outbox", "https://winback.acme.example");
    let cases = [
        (
            "send_at = \"0 10 * * Tue-Thu\"",
            "quiet_days = \"90\"\nsend_at = \"0 10 * * Tue-Thu\"",
            "quiet_days",
            "campaign[1].quiet_days: is written as text (\"90\"); write the number without quotes: quiet_days = 90",
        ),
        (
            "send_at = \"0 10 * * Tue-Thu\"",
            "send_at = \u{201c}0 10 * * Tue-Thu\u{201d}",
            "send_at",
            "campaign[1].send_at: has curly quotes",
        ),
        (
            "send_at = \"0 10 * * Tue-Thu\"",
            "send_at = \"0 25 * * *\"",
            "send_at",
            "campaign[1].send_at: \"0 25 * * *\" has hour 25, which does not exist: hours go from 0 to 23",
        ),
        (
            "timezone = \"America/New_York\"",
            "timezone = \"Europe/Paris \"",
            "timezone",
            "campaign[1].timezone: \"Europe/Paris \" has a space before or after the name; remove it: timezone = \"Europe/Paris\"",
        ),
    ];
    for (from, to, key, expected) in cases {
        let text = valid.replace(from, to);
        project.write_config(&text);
        let out = project.winback(&["check"]);
        out.assert_failure();
        assert_says(
            &out,
            &format!("winback.toml:{}: {expected}", line_of(&text, key)),
        );
        for jargon in [
            "invalid type",
            "expected i64",
            "literal string",
            "less than 23",
        ] {
            assert!(
                !out.stdout.contains(jargon),
                "{jargon:?} in:\n{}",
                out.stdout
            );
        }
    }

    // A block left open in a template: which tag, in which file, on which line.
    project.write_config(&valid);
    let survey = project.read_file("templates/survey.txt.hbs");
    project.write_file(
        "templates/survey.txt.hbs",
        &format!("{{{{#if first_name}}}}\nHello {{{{first_name}}}},\n{survey}"),
    );
    let out = project.winback(&["check"]);
    out.assert_failure();
    assert_says(
        &out,
        "survey.txt.hbs:1: campaign[1].step[1].template: the {{#if}} opened on line 1 is never closed; add {{/if}} where its part ends",
    );
}

#[test]
fn check_warns_that_both_day_fields_send_on_either() {
    let project = Project::new();
    let text = config("file://outbox", "https://winback.acme.example")
        .replace("0 10 * * Tue-Thu", "0 10 1-20 * Tue-Thu");
    project.write_config(&text);
    let out = project.winback(&["check"]);
    out.assert_success();
    assert_says(
        &out,
        &format!(
            "winback.toml:{}: campaign[1].send_at: \"0 10 1-20 * Tue-Thu\" sends on every day that is either day 1-20 of the month or a Tue-Thu day",
            line_of(&text, "send_at")
        ),
    );
    assert_says(
        &out,
        "crontab cannot say \"both\": to send only on Tue-Thu, write \"0 10 * * Tue-Thu\"; only on days 1-20, write \"0 10 1-20 * *\"",
    );
}
