//! The operator's commands through the real binary: check, import, plan, optout.

use serde_json::Value;

use crate::support::Project;

const NOW: &str = "2026-06-02T14:00:00Z";

fn config(send_at: &str) -> String {
    format!(
        r#"{settings}
[[campaign]]
name = "former-clients"
send_at = "{send_at}"
timezone = "America/New_York"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "News"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    )
}

fn project() -> Project {
    let project = Project::new();
    project.write_config(&config("0 10 * * Tue-Thu"));
    project
}

fn status(project: &Project) -> Value {
    let out = project.winback(&["--now", NOW, "status", "--format", "json"]);
    out.assert_success();
    serde_json::from_str(&out.stdout).expect("status is JSON")
}

fn plan(project: &Project, days: &str) -> Vec<Value> {
    let out = project.winback(&["--now", NOW, "plan", "--days", days, "--format", "json"]);
    out.assert_success();
    serde_json::from_str(&out.stdout).expect("plan is JSON")
}

#[test]
fn check_names_file_line_key_and_fix_and_exits_1() {
    let project = Project::new();
    let text = config("0 10 * * Tue-Thu").replace("send_at =", "quiet_days = 30\nsend_at =");
    project.write_config(&text);
    let out = project.winback(&["check"]);
    out.assert_failure();
    let line = text
        .lines()
        .position(|l| l.starts_with("quiet_days"))
        .expect("the line")
        + 1;
    let expected = format!(
        "winback.toml:{line}: campaign[1].quiet_days: is 30; the quiet period must be at least 90 days"
    );
    assert!(
        out.stdout.contains(&expected),
        "expected {expected:?} in:\n{}",
        out.stdout
    );

    project.write_config(&config("0 10 * * Tue-Thu"));
    let out = project.winback(&["check"]);
    out.assert_success();
    assert!(out.stdout.lines().any(|l| l == "ok"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("former-clients: 2 steps (survey → newsletter)"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_file_with_bad_rows_changes_nothing_and_lists_every_bad_line() {
    let project = project();
    project.write_file(
        "clients.csv",
        "email,name,churned_at,timezone\n\
         ada@example.com,Ada,2026-01-05,Europe/London\n\
         not-an-email,Bob,2026-01-05,\n\
         cy@example.com,Cy,2027-01-01,\n\
         dee@example.com,Dee,2026-01-05,Mars/Olympus\n\
         eve@example.com,Eve,,\n",
    );
    let out = project.winback(&["--now", NOW, "import", "clients.csv"]);
    out.assert_failure();
    for (line, reason) in [
        (3, "invalid email"),
        (4, "in the future"),
        (5, "unknown time zone"),
        (6, "missing churned_at"),
    ] {
        let found = out
            .stdout
            .lines()
            .any(|l| l.contains(&format!("line {line}:")) && l.contains(reason));
        assert!(found, "line {line} reported as {reason:?}:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("nothing imported"), "{}", out.stdout);
    assert_eq!(
        status(&project)["clients"],
        0,
        "nothing of the file was applied"
    );

    let out = project.winback(&["--now", NOW, "import", "--skip-invalid", "clients.csv"]);
    assert!(
        out.stdout
            .contains("1 added, 0 updated, 0 unchanged, 4 skipped"),
        "{}",
        out.stdout
    );
    assert_eq!(status(&project)["clients"], 1);
}

#[test]
fn hostile_rows_are_kept_verbatim_and_non_utf8_is_a_clear_error() {
    let project = project();
    project.write_file(
        "clients.csv",
        "email,name,company,churned_at,notes\n\
         \"bob@example.com\",\"Robert \"\"Bob\"\" Tables\",\"'); DROP TABLE clients;--\",2026-01-05,\"multi\r\nline\"\n\
         \"eve@example.com\",\"Eve\r\nBcc: x@evil.example\",Evil Corp,2026-01-05,x\n",
    );
    let out = project.winback(&["--now", NOW, "import", "clients.csv"]);
    out.assert_success();
    assert!(out.stdout.contains("2 added"), "{}", out.stdout);
    let export = project.winback(&["export", "bob@example.com"]);
    export.assert_success();
    let person: Value = serde_json::from_str(&export.stdout).expect("export is JSON");
    let text = person.to_string();
    assert!(text.contains("Robert \\\"Bob\\\" Tables"), "{text}");
    assert!(text.contains("'); DROP TABLE clients;--"), "{text}");
    let eve = project.winback(&["export", "eve@example.com"]);
    assert!(
        eve.stdout.contains("Eve Bcc: x@evil.example"),
        "a line break in a name becomes a space: {}",
        eve.stdout
    );

    let mut bytes = b"email,name,churned_at\nzoe@example.com,Zo".to_vec();
    bytes.extend_from_slice(&[0xeb]); // Latin-1 "ë"
    bytes.extend_from_slice(b",2026-01-05\n");
    std::fs::write(project.path("latin1.csv"), bytes).expect("write");
    let out = project.winback(&["--now", NOW, "import", "latin1.csv"]);
    out.assert_success();
    assert!(
        out.stdout.contains("encoding: windows-1252 (detected)"),
        "{}",
        out.stdout
    );
    let zoe = project.winback(&["export", "zoe@example.com"]);
    assert!(
        zoe.stdout.contains("\"Zoë\""),
        "read intact: {}",
        zoe.stdout
    );

    // UTF-8 with one stray Latin-1 byte: that line is held, saying the file mixes encodings.
    let mut bytes =
        "email,name,churned_at\nchloe@example.com,Chloé,2026-01-05\nann@example.com,Ren"
            .as_bytes()
            .to_vec();
    bytes.extend_from_slice(&[0xe9]); // Latin-1 "é"
    bytes.extend_from_slice(b",2026-01-05\n");
    std::fs::write(project.path("mixed.csv"), bytes).expect("write");
    let out = project.winback(&["--now", NOW, "import", "mixed.csv"]);
    out.assert_failure();
    assert!(
        out.stdout
            .contains("line 3: this line has characters that are not UTF-8"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("the file mixes two encodings"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("encoding = \"windows-1252\""),
        "{}",
        out.stdout
    );
}

#[test]
fn reimport_counts_unchanged_and_updated_and_an_opt_out_survives_it() {
    let project = project();
    let csv =
        "email,name,churned_at\nada@example.com,Ada,2026-01-05\nbob@example.com,Bob,2026-01-06\n";
    project.write_file("clients.csv", csv);
    let out = project.winback(&["--now", NOW, "import", "clients.csv"]);
    assert!(
        out.stdout.contains("2 added, 0 updated, 0 unchanged"),
        "{}",
        out.stdout
    );
    project.write_file("clients.csv", &csv.replace("Bob,", "Robert,"));
    let out = project.winback(&["--now", NOW, "import", "clients.csv"]);
    assert!(
        out.stdout.contains("0 added, 1 updated, 1 unchanged"),
        "{}",
        out.stdout
    );

    // Both surveys are due 90 days after churn: planned, at 10:00 New York time.
    let planned = plan(&project, "200");
    let surveys: Vec<&Value> = planned.iter().filter(|p| p["step"] == 1).collect();
    assert_eq!(surveys.len(), 2, "{planned:?}");
    let ada = surveys
        .iter()
        .find(|p| p["email"] == "ada@example.com")
        .expect("ada planned");
    // 2026-01-05 + 90 days = 2026-04-05 (a Sunday); overdue at NOW (Tue 2026-06-02 14:00Z =
    // 10:00 EDT, a send_at moment): it goes out now (the clock has run on a few ms).
    let at = ada["at"].as_str().unwrap_or_default();
    assert!(at.starts_with("2026-06-02T14:00:0"), "{ada}");

    project
        .winback(&["--now", NOW, "optout", "ada@example.com"])
        .assert_success();
    project
        .winback(&["--now", NOW, "optout", "never.imported@example.com"])
        .assert_success();
    project.write_file(
        "clients.csv",
        &format!("{csv}never.imported@example.com,Nev,2026-01-07\n"),
    );
    project
        .winback(&["--now", NOW, "import", "clients.csv"])
        .assert_success();
    let planned = plan(&project, "200");
    let emails: Vec<&str> = planned.iter().filter_map(|p| p["email"].as_str()).collect();
    assert!(emails.contains(&"bob@example.com"), "{emails:?}");
    assert!(
        !emails.contains(&"ada@example.com"),
        "an opt-out survives a re-import: {emails:?}"
    );
    assert!(
        !emails.contains(&"never.imported@example.com"),
        "an opt-out before import holds: {emails:?}"
    );
    assert_eq!(status(&project)["suppressions"]["opt_out"], 2);
}

#[test]
fn plan_never_shows_a_we_ended_client_and_respects_the_quiet_period() {
    let project = project();
    project.write_file(
        "clients.csv",
        "email,churned_at,churn_reason,timezone\n\
         gone@example.com,2026-03-01,we_ended,\n\
         tokyo@example.com,2026-03-10,price,Asia/Tokyo\n",
    );
    project
        .winback(&["--now", NOW, "import", "clients.csv"])
        .assert_success();
    let planned = plan(&project, "400");
    assert!(
        planned.iter().all(|p| p["email"] != "gone@example.com"),
        "{planned:?}"
    );
    let survey = planned
        .iter()
        .find(|p| p["email"] == "tokyo@example.com" && p["step"] == 1)
        .expect("planned");
    // 2026-03-10 + 90 days = 2026-06-08 (Mon) in Tokyo; first Tue-Thu 10:00 there is
    // Tue 2026-06-09 10:00 JST = 01:00Z.
    assert_eq!(survey["at"], "2026-06-09T01:00:00Z", "{survey}");
    assert!(
        survey["reason"]
            .as_str()
            .unwrap_or("")
            .contains("90 quiet days"),
        "{survey}"
    );
}
