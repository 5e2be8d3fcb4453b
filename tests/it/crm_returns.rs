//! Returns and opt-outs from the CRM, through the real binary: `optout --file` and
//! `returned --file` (every line checked first, bad lines named, nothing applied unless
//! all are valid or `--skip-invalid`, a summary of what changed), and the daemon's syncs
//! (`returned_at` in `[clients] sync_file`, `[clients] customers_file`) stopping
//! sequences before the next pass, with a moved clock and a real SMTP server.

use serde_json::Value;

use crate::support::{Project, SmtpServer, settings};

/// Everyone below left in January: past their 90 quiet days.
const NOW: &str = "2026-06-02T15:00:00Z";
/// 31 days after `NOW`: the newsletter (30 days after the survey) is due.
const LATER: &str = "2026-07-03T15:00:00Z";

fn config(smtp_url: &str, clients: &str) -> String {
    format!(
        r#"{settings}
{clients}

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
  template = "newsletter"
  subject = "What we've been working on"
"#,
        settings = settings(smtp_url, "127.0.0.1:0"),
    )
}

fn winback(project: &Project, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    project.winback(&all)
}

/// The suppression `export` shows for an address, if any.
fn suppressed(project: &Project, email: &str) -> bool {
    let out = winback(project, &["export", email]);
    out.stdout.contains("\"opt_out\"")
}

/// The state of each of the person's sequences, from `export`.
fn states(project: &Project, email: &str) -> Vec<String> {
    let out = winback(project, &["export", email]);
    out.assert_success();
    let document: Value = serde_json::from_str(&out.stdout).expect("export is JSON");
    document["enrollments"]
        .as_array()
        .unwrap_or_else(|| panic!("enrollments in {document}"))
        .iter()
        .map(|e| e["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_bulk_opt_out_with_a_bad_line_changes_nothing_unless_told_to_skip_it() {
    let project = Project::new();
    project.write_config(&config("file://outbox", ""));
    project.write_file(
        "clients.csv",
        "email,churned_at\nann@x.example,2026-01-05\nbob@x.example,2026-01-05\nkim@x.example,2026-01-05\n",
    );
    winback(&project, &["import", "clients.csv"]).assert_success();
    winback(&project, &["optout", "bob@x.example"]).assert_success();
    project.write_file(
        "do-not-contact.txt",
        "ann@x.example\n\"BOB@x.example\"\nnot an address\nCara Jones <cara@x.example>\n  ann@X.example \n",
    );

    let refused = winback(&project, &["optout", "--file", "do-not-contact.txt"]);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "do-not-contact.txt: line 3: \"not an address\" is not one valid email address"
        ) && refused.stderr.contains("nothing changed")
            && refused.stderr.contains("--skip-invalid"),
        "{}",
        refused.stderr
    );
    assert!(!suppressed(&project, "ann@x.example"));
    assert!(!suppressed(&project, "cara@x.example"));

    let applied = winback(
        &project,
        &["optout", "--file", "do-not-contact.txt", "--skip-invalid"],
    );
    applied.assert_success();
    assert!(
        applied
            .stdout
            .contains("3 addresses; 1 repeated line counted once; 1 bad line skipped")
            && applied
                .stdout
                .contains("opted out now: 2; already opted out: 1.")
            && applied.stdout.contains("1 of them was never imported"),
        "{}",
        applied.stdout
    );
    assert!(suppressed(&project, "ann@x.example"));
    assert!(
        suppressed(&project, "cara@x.example"),
        "never imported, opted out all the same"
    );
    // Kim alone is mailed.
    winback(&project, &["run", "--once"]).assert_success();
    let outbox: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("the outbox")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].contains("To: kim@x.example"), "{}", outbox[0]);
}

#[test]
fn a_bulk_return_reads_a_csv_export_and_says_who_is_unknown() {
    let project = Project::new();
    project.write_config(&config("file://outbox", ""));
    project.write_file(
        "clients.csv",
        "email,churned_at\nann@x.example,2026-01-05\nbob@x.example,2026-01-05\n",
    );
    winback(&project, &["import", "clients.csv"]).assert_success();
    project.write_file(
        "won.csv",
        "Company;Email Address;Amount\nAcme;ann@x.example;1.200,50\nGlobex;bob@x;300\nInitech;new@y.example;10\n",
    );
    let refused = winback(&project, &["returned", "--file", "won.csv"]);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("won.csv: line 3: \"bob@x\" is not one valid email address"),
        "{}",
        refused.stderr
    );
    assert_eq!(states(&project, "ann@x.example"), ["active"]);

    project.write_file(
        "won.csv",
        "Company;Email Address;Amount\nAcme;ann@x.example;1.200,50\nInitech;new@y.example;10\n",
    );
    let applied = winback(&project, &["returned", "--file", "won.csv"]);
    applied.assert_success();
    assert!(
        applied
            .stdout
            .contains("2 addresses from the column \"Email Address\"")
            && applied.stdout.contains("recorded as returned: 1")
            && applied.stdout.contains("already returned: 0")
            && applied
                .stdout
                .contains("1 address is not a known former client"),
        "{}",
        applied.stdout
    );
    assert_eq!(states(&project, "ann@x.example"), ["returned"]);
    assert_eq!(states(&project, "bob@x.example"), ["active"]);
    let again = winback(&project, &["returned", "--file", "won.csv"]);
    assert!(
        again.stdout.contains("recorded as returned: 0")
            && again.stdout.contains("already returned: 1"),
        "{}",
        again.stdout
    );
    // The one-address form is as it was.
    let one = winback(&project, &["returned", "bob@x.example"]);
    one.assert_success();
    assert!(
        one.stdout.contains("bob@x.example came back"),
        "{}",
        one.stdout
    );
}

/// The daemon, moved a month on: a client whose CRM row gains a `returned_at`, and one
/// who appears in the customers file, get no newsletter; the third one does.
#[test]
fn returns_from_the_sync_file_and_the_customers_file_stop_the_next_step() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(
        &smtp.url(),
        "[clients]\nsync_file = \"crm.csv\"\ncustomers_file = \"customers.csv\"\n",
    ));
    project.write_file(
        "crm.csv",
        "email,churned_at\nann@x.example,2026-01-05\nbob@x.example,2026-01-05\ncara@x.example,2026-01-05\n",
    );
    project.write_file(
        "customers.csv",
        "Email,Company\nold@customer.example,Old Co\n",
    );
    let run = project.winback(&["run", "--once", "--now", NOW]);
    run.assert_success();
    let surveys = smtp.messages();
    assert_eq!(surveys.len(), 3, "{}", run.stderr);

    project.write_file(
        "crm.csv",
        "email,churned_at,returned_at\nann@x.example,2026-01-05,\nbob@x.example,2026-01-05,2026-06-20\ncara@x.example,2026-01-05,\n",
    );
    project.write_file(
        "customers.csv",
        "Email,Company\nold@customer.example,Old Co\nCARA@x.example,Cara Co\n",
    );
    let run = project.winback(&["run", "--once", "--now", LATER]);
    run.assert_success();
    let after: Vec<Vec<String>> = smtp.messages()[surveys.len()..]
        .iter()
        .map(|m| m.rcpt_tos.clone())
        .collect();
    assert_eq!(after, [["ann@x.example"]], "{}", run.stderr);
    assert_eq!(states(&project, "bob@x.example"), ["returned"]);
    assert_eq!(states(&project, "cara@x.example"), ["returned"]);

    // Cara's return is kept when she leaves the list: nothing more is sent to anyone.
    project.write_file(
        "customers.csv",
        "Email,Company\nold@customer.example,Old Co\n",
    );
    project
        .winback(&["run", "--once", "--now", "2026-09-01T15:00:00Z"])
        .assert_success();
    assert_eq!(smtp.messages().len(), surveys.len() + 1);
    assert_eq!(states(&project, "cara@x.example"), ["returned"]);
}

#[test]
fn an_import_records_a_returned_at_and_refuses_one_in_the_future() {
    let project = Project::new();
    project.write_config(&config("file://outbox", ""));
    project.write_file(
        "crm.csv",
        "email,churned_at,returned_at\nann@x.example,2026-01-05,2026-05-01\nbob@x.example,2026-01-05,2026-07-01\n",
    );
    let refused = winback(&project, &["import", "crm.csv"]);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused
            .stdout
            .contains("line 3: returned_at 2026-07-01 is in the future"),
        "{}",
        refused.stdout
    );
    project.write_file(
        "crm.csv",
        "email,churned_at,returned_at\nann@x.example,2026-01-05,2026-05-01\nbob@x.example,2026-01-05,\n",
    );
    let first = winback(&project, &["import", "crm.csv"]);
    first.assert_success();
    assert!(
        first.stdout.contains("2 added") && first.stdout.contains("1 recorded as returned"),
        "{}",
        first.stdout
    );
    // The same file again: nothing more.
    let again = winback(&project, &["import", "crm.csv"]);
    assert!(
        again.stdout.contains("2 unchanged") && !again.stdout.contains("recorded as returned"),
        "{}",
        again.stdout
    );
    assert_eq!(states(&project, "ann@x.example"), ["returned"]);
    assert_eq!(states(&project, "bob@x.example"), ["active"]);
    winback(&project, &["run", "--once"]).assert_success();
    let outbox: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("the outbox")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].contains("To: bob@x.example"), "{}", outbox[0]);
}

#[test]
fn an_opt_out_list_mixing_utf8_and_windows_1252_lines_keeps_every_accent() {
    let project = Project::new();
    project.write_config(&config("file://outbox", ""));
    // A UTF-8 line pasted into a Windows-1252 list (`zoë` in UTF-8, `jürgen` in 1252).
    std::fs::write(
        project.path("do-not-contact.txt"),
        b"zo\xc3\xab@x.example\nj\xfcrgen@x.example\n",
    )
    .expect("writing the list");
    winback(&project, &["optout", "--file", "do-not-contact.txt"]).assert_success();
    assert!(
        suppressed(&project, "zoë@x.example"),
        "zoë's opt-out is hers"
    );
    assert!(suppressed(&project, "jürgen@x.example"));
    assert!(
        !suppressed(&project, "zoã«@x.example"),
        "no garbled address"
    );
}

/// The customers file is kept once read: a current customer whom a later import adds
/// is never mailed by the running daemon, which reads that file again only when it
/// changes.
#[test]
fn a_customer_a_later_import_adds_is_never_mailed() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(
        &smtp.url(),
        "[clients]\nsync_file = \"crm.csv\"\ncustomers_file = \"customers.csv\"\n",
    ));
    project.write_file("crm.csv", "email,churned_at\nbob@x.example,2026-01-05\n");
    project.write_file("customers.csv", "Email\nann@x.example\n");
    let daemon = project.spawn_winback(&["--now", NOW, "run"]);
    let wait = std::time::Duration::from_secs(60);
    assert_eq!(
        smtp.wait_for(1, wait).len(),
        1,
        "bob's survey never went out"
    );

    project.write_file(
        "more.csv",
        "email,churned_at\nann@x.example,2026-01-05\ncara@x.example,2026-01-05\n",
    );
    project
        .winback(&["--now", NOW, "import", "more.csv"])
        .assert_success();
    // Cara's survey goes in the pass that would have mailed Ann.
    let mailed = smtp.wait_for(2, wait);
    let out = daemon.stop(std::time::Duration::from_secs(10));
    let to: Vec<_> = mailed.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    assert_eq!(to, ["bob@x.example", "cara@x.example"], "{}", out.stderr);
    assert_eq!(states(&project, "ann@x.example"), ["returned"]);
}

/// A bad line in the customers file is logged and counted in `status`; the valid
/// addresses around it are recorded as returned all the same.
#[test]
fn a_bad_line_in_the_customers_file_never_keeps_the_others_mailed() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(
        &smtp.url(),
        "[clients]\nsync_file = \"crm.csv\"\ncustomers_file = \"customers.csv\"\n",
    ));
    project.write_file(
        "crm.csv",
        "email,churned_at\nann@x.example,2026-01-05\nbob@x.example,2026-01-05\n",
    );
    project.write_file("customers.csv", "Email\nnot an address\nann@x.example\n");
    let run = project.winback(&["run", "--once", "--now", NOW]);
    run.assert_success();
    let to: Vec<_> = smtp
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    assert_eq!(to, ["bob@x.example"], "{}", run.stderr);
    assert_eq!(states(&project, "ann@x.example"), ["returned"]);
    assert!(run.stderr.contains("bad line"), "{}", run.stderr);
    let status = winback(&project, &["status", "--format", "json"]);
    let json: Value = serde_json::from_str(&status.stdout).expect("status is JSON");
    let customers = json["syncs"]
        .as_array()
        .and_then(|syncs| {
            syncs.iter().find(|s| {
                s["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("customers.csv"))
            })
        })
        .unwrap_or_else(|| panic!("no customers sync in {json}"));
    assert_eq!(customers["outcome"], "imported", "{json}");
    assert_eq!(customers["bad_rows"], 1, "{json}");
}

/// A deals export (one row per deal): the rows of one address merge, a `we_ended` from
/// any of them is kept, and the import says how many addresses were merged.
#[test]
fn an_import_merges_the_rows_of_one_address_and_says_so() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(&smtp.url(), ""));
    project.write_file(
        "deals.csv",
        "email,churned_at,churn_reason\nann@x.example,2026-01-05,we_ended\nann@x.example,2025-12-01,price\nbob@x.example,2026-01-05,price\n",
    );
    let out = winback(&project, &["import", "deals.csv"]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("1 address appears on several rows: merged, the latest churn kept"),
        "{}",
        out.stdout
    );
    let run = winback(&project, &["run", "--once"]);
    run.assert_success();
    let to: Vec<_> = smtp
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    assert_eq!(to, ["bob@x.example"], "{}", run.stderr);
}

/// A dry run lists each return it would record once, only the ones the import records
/// (a return before the churn is history), and says in JSON that nothing was applied.
#[test]
fn a_dry_run_lists_each_return_once_and_applies_nothing() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(&smtp.url(), ""));
    project.write_file(
        "crm.csv",
        "email,churned_at,returned_at\nann@x.example,2025-12-01,2026-02-01\nbob@x.example,2026-01-05,2025-11-01\n",
    );
    let dry = winback(&project, &["import", "--dry-run", "crm.csv"]);
    dry.assert_success();
    assert!(dry.stdout.contains("mark 1 returned"), "{}", dry.stdout);
    let json = winback(
        &project,
        &["import", "--dry-run", "--format", "json", "crm.csv"],
    );
    json.assert_success();
    let json: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        json["changes"]["returned"],
        serde_json::json!(["ann@x.example"]),
        "{json}"
    );
    assert_eq!(json["applied"], false, "{json}");
    assert_eq!(json["would_apply"], true, "{json}");
}
