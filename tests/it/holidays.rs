//! Holiday calendars and quiet dates through the real binary: `check` reads each
//! `holidays` file relative to the configuration, refuses one it cannot use (and `run`
//! refuses it too, creating nothing), and warns about what it leaves out.

use std::path::Path;

use crate::support::{Output, Project};

const NOW: &str = "2026-06-02T14:00:00Z";

/// A valid configuration whose campaign sets `holidays` and `quiet_dates` as given.
fn config(holidays: &str, quiet_dates: &str) -> String {
    format!(
        r#"[database]
path = "data/winback.db"

[smtp]
url = "file://outbox"
from = "Acme Customer Success <success@acme.example>"

[http]
listen = "127.0.0.1:0"
public_url = "https://winback.acme.example"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield"

[templates]
dir = "templates"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"
holidays = {holidays}
quiet_dates = {quiet_dates}

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

fn shipped_us_calendar() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/holidays/us.ics");
    std::fs::read_to_string(path).expect("the shipped calendar")
}

#[test]
fn check_reads_holiday_files_and_warns_about_what_they_leave_out() {
    let project = Project::new();
    project.write_file("holidays/us.ics", &shipped_us_calendar());
    project.write_file(
        "holidays/company.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Acme//EN\r\n\
         BEGIN:VEVENT\r\nUID:1@acme\r\nSUMMARY:Founders day\r\nDTSTART;VALUE=DATE:20260612\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:2@acme\r\nSUMMARY:Staff party\r\nDTSTART:20261218T170000Z\r\nEND:VEVENT\r\n\
         END:VCALENDAR\r\n",
    );
    let text = config(
        r#"["holidays/us.ics", "holidays/company.ics"]"#,
        r#"["12-20..01-05"]"#,
    );
    project.write_config(&text);
    let out = project.winback(&["check"]);
    out.assert_success();
    assert_says(
        &out,
        &format!(
            "winback.toml:{}: campaign[1].holidays: ",
            line_of(&text, "holidays =")
        ),
    );
    assert_says(
        &out,
        "holidays/company.ics: 1 event is ignored: \"Staff party\" on 2026-12-18 has a time of day",
    );
    assert_says(
        &out,
        "holidays/company.ics: no country can be told from its name or X-WR-CALNAME, so it applies to everyone",
    );
    assert_says(
        &out,
        "kept free of mail: holidays/us.ics (11 holidays, for clients in US); \
         holidays/company.ics (1 holiday, for everyone); quiet dates 12-20..01-05 (for everyone)",
    );
    assert!(
        !out.stdout.contains("us.ics:") && !out.stderr.contains("us.ics:"),
        "the shipped calendar has nothing to warn about:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn check_and_run_refuse_a_holiday_file_they_cannot_use_and_bad_quiet_dates() {
    let cases = [
        (
            r#"["holidays/de.ics"]"#,
            "[]",
            "holidays =",
            "holidays/de.ics does not exist; write the path of an iCalendar (.ics) file, relative to this file's folder",
        ),
        (
            r#"["holidays/notes.txt"]"#,
            "[]",
            "holidays =",
            "holidays/notes.txt: is not an iCalendar file; download or export the calendar as .ics",
        ),
        (
            "[]",
            r#"["12-20..01-05", "12-32"]"#,
            "quiet_dates =",
            "\"12-32\": December has no day 32; write month-day, e.g. \"05-01\", or a range \"12-20..01-05\"",
        ),
    ];
    for (holidays, quiet_dates, key, message) in cases {
        let project = Project::new();
        project.write_file("holidays/notes.txt", "Christmas: 25 December\n");
        let text = config(holidays, quiet_dates);
        project.write_config(&text);
        let check = project.winback(&["check"]);
        check.assert_failure();
        let place = format!(
            "winback.toml:{}: campaign[1].{}: ",
            line_of(&text, key),
            key.trim_end_matches(" =")
        );
        assert_says(&check, &place);
        assert_says(&check, message);
        let run = project.winback(&["--now", NOW, "run", "--once"]);
        run.assert_failure();
        assert_says(&run, message);
        assert!(
            !project.path("data").exists(),
            "`run` refused the configuration but created data/:\n{}",
            run.stderr
        );
    }
}
