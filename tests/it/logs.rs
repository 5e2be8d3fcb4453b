//! The daemon's logs through the real binary: JSON a parser reads whole, and human lines
//! without colour escapes when they go to a file.

use serde_json::Value;

use crate::support::Project;

const NOW: &str = "2026-06-02T14:00:00Z";

/// A project whose one client is due for the survey at `NOW`, mailed to `outbox/`.
fn project() -> Project {
    let mut project = Project::new();
    project.write_config(
        &(crate::support::settings("file://outbox", "127.0.0.1:0")
            + r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"
"#),
    );
    project.write_file(
        "clients.csv",
        "email,name,churned_at\nada@analytical.example,Ada,2025-11-01\n",
    );
    project
        .winback(&["--now", NOW, "import", "clients.csv"])
        .assert_success();
    project.set_env("WINBACK_LOG", "info");
    project
}

#[test]
fn json_logs_have_one_message_key_and_name_the_outbox_row() {
    let project = project();
    let out = project.winback(&["--now", NOW, "--log-format", "json", "run", "--once"]);
    out.assert_success();
    let mut sent = None;
    for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
        // serde_json keeps the last of two equal keys; count them in the text itself.
        assert_eq!(
            line.matches("\"message\":").count(),
            1,
            "one \"message\" key per line: {line}"
        );
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        if entry["fields"]["message"] == "sent" {
            sent = Some(entry);
        }
    }
    let sent = sent.unwrap_or_else(|| panic!("no \"sent\" line in:\n{}", out.stderr));
    assert!(sent["fields"]["outbox_id"].is_u64(), "{sent:#}");
    assert_eq!(sent["fields"]["to"], "ada@analytical.example", "{sent:#}");
}

#[test]
fn human_logs_to_a_file_carry_no_colour_escapes() {
    let project = project();
    let out = project.winback(&["--now", NOW, "run", "--once"]);
    out.assert_success();
    assert!(out.stderr.contains("sent"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "escapes in:\n{:?}",
        out.stderr
    );
}
