//! Former clients through the real binary: what a re-import keeps, how every command reads
//! an address, and the CRM sync file (when it is read, and what `status` and `/metrics`
//! say about the last sync).
//!
//! Mail goes to a `file://` outbox, so counting messages is counting `.eml` files.

use serde_json::Value;

use std::time::Duration;

use crate::support::{Project, free_port, wait_until};

/// A Tuesday afternoon: anyone who left before early March 2026 is due.
const NOW: &str = "2026-06-02T15:00:00Z";

fn config(extra: &str) -> String {
    format!(
        r#"{settings}{extra}
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "America/New_York"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{{{#if first_name}}}}{{{{first_name}}}}, may{{{{else}}}}May{{{{/if}}}} we ask why you left?"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    )
}

fn project() -> Project {
    let project = Project::new();
    project.write_config(&config(""));
    project
}

/// `winback --now NOW ARGS…`.
fn winback(project: &Project, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    project.winback(&all)
}

fn status(project: &Project) -> Value {
    let out = winback(project, &["status", "--format", "json"]);
    out.assert_success();
    serde_json::from_str(&out.stdout).expect("status is JSON")
}

/// The messages written to the outbox.
fn sent(project: &Project) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(project.path("outbox")) else {
        return Vec::new();
    };
    let mut messages: Vec<String> = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    messages.sort();
    messages
}

#[test]
fn a_partial_reimport_keeps_the_reason_we_let_a_client_go() {
    let project = project();
    project.write_file(
        "full.csv",
        "email,first_name,churned_at,churn_reason\n\
         fired@x.example,Fred,2026-01-01,we_ended\n\
         kept@x.example,Kim,2026-01-01,price\n",
    );
    winback(&project, &["import", "full.csv"]).assert_success();
    project.write_file(
        "partial.csv",
        "email,churned_at\nfired@x.example,2026-01-01\nkept@x.example,2026-01-01\n",
    );
    winback(&project, &["import", "partial.csv"]).assert_success();
    project.write_file(
        "empty_cells.csv",
        "email,first_name,churned_at,churn_reason\nfired@x.example,,2026-01-02,\n",
    );
    winback(&project, &["import", "empty_cells.csv"]).assert_success();
    winback(&project, &["run", "--once"]).assert_success();
    let messages = sent(&project);
    assert_eq!(messages.len(), 1, "only Kim is surveyed");
    assert!(
        messages[0].contains("Kim, may we ask why you left?"),
        "{}",
        messages[0]
    );
    let export = winback(&project, &["export", "fired@x.example"]);
    export.assert_success();
    assert!(export.stdout.contains("\"we_ended\""), "{}", export.stdout);
    assert!(export.stdout.contains("\"Fred\""), "{}", export.stdout);
}

/// The plan's rows, as JSON.
fn plan(project: &Project) -> Vec<Value> {
    let out = winback(project, &["plan", "--days", "30", "--format", "json"]);
    out.assert_success();
    serde_json::from_str(&out.stdout).expect("plan is JSON")
}

fn planned_emails(project: &Project) -> Vec<String> {
    let mut emails: Vec<String> = plan(project)
        .iter()
        .filter_map(|row| row["email"].as_str().map(str::to_string))
        .collect();
    emails.sort();
    emails
}

#[test]
fn every_command_reads_an_address_as_import_does_and_refuses_anything_else() {
    let project = project();
    project.write_file(
        "clients.csv",
        "email,churned_at\nq@x.example,2026-01-01\nr@x.example,2026-01-01\n\
         s@x.example,2026-01-01\nt@x.example,2026-01-01\n",
    );
    winback(&project, &["import", "clients.csv"]).assert_success();
    assert_eq!(
        planned_emails(&project),
        ["q@x.example", "r@x.example", "s@x.example", "t@x.example"]
    );

    winback(&project, &["optout", "\"q@x.example\""]).assert_success();
    winback(&project, &["returned", "Rae Doe <R@X.example>"]).assert_success();
    let export = winback(&project, &["export", " 'S@x.Example' "]);
    export.assert_success();
    assert!(export.stdout.contains("s@x.example"), "{}", export.stdout);
    winback(&project, &["forget", "“s@x.example”"]).assert_success();
    assert_eq!(planned_emails(&project), ["t@x.example"]);

    for refused in [
        "t@x.example, q@x.example",
        "t@x.example q@x.example",
        "t",
        "\"t@x.example",
        "",
    ] {
        for command in ["optout", "returned", "export", "forget"] {
            let out = winback(&project, &[command, refused]);
            assert_eq!(out.code(), Some(1), "{command} {refused:?}: {out:?}");
            assert!(
                out.stderr.contains("is not one valid email address"),
                "{command} {refused:?}: {}",
                out.stderr
            );
        }
    }
    assert_eq!(planned_emails(&project), ["t@x.example"], "nothing changed");
}

#[test]
fn two_spellings_of_an_international_domain_are_one_mailbox() {
    let project = project();
    winback(&project, &["optout", "bob@bücher.example"]).assert_success();
    project.write_file(
        "clients.csv",
        "email,first_name,churned_at\n\
         bob@xn--bcher-kva.example,Bob,2026-01-01\n\
         ann@bücher.example,Ann,2026-01-01\n\
         ann@xn--bcher-kva.example,Ann,2026-01-01\n\
         ANN@BÜCHER.example,Ann,2026-01-01\n",
    );
    let import = winback(&project, &["import", "clients.csv"]);
    import.assert_success();
    assert!(
        import.stdout.contains("2 added, 0 updated, 2 unchanged"),
        "{}",
        import.stdout
    );
    winback(&project, &["run", "--once"]).assert_success();
    let messages = sent(&project);
    assert_eq!(messages.len(), 1, "Ann once, Bob never: {messages:#?}");
    assert!(
        messages[0].contains("ann@xn--bcher-kva.example"),
        "{}",
        messages[0]
    );
    let export = winback(&project, &["export", "Bob <bob@BÜCHER.example>"]);
    export.assert_success();
    assert!(export.stdout.contains("opt_out"), "{}", export.stdout);
}

/// A project whose daemon syncs `crm.csv` and answers on `port`.
fn syncing_project(port: u16) -> Project {
    let project = Project::new();
    let text = config("\n[clients]\nsync_file = \"crm.csv\"\n").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    project.write_config(&text);
    project
}

fn last_sync(project: &Project) -> Value {
    status(project)["last_sync"].clone()
}

#[test]
fn a_sync_file_cut_short_is_never_imported() {
    let project = syncing_project(free_port());
    // The CRM's export, read while it was being written: the last row stops inside
    // `we_ended`, and `we` would be a valid reason.
    project.write_file(
        "crm.csv",
        "email,first_name,churned_at,churn_reason\n\
         kim@x.example,Kim,2026-01-01,price\n\
         fred@x.example,Fred,2026-01-01,we",
    );
    winback(&project, &["run", "--once"]).assert_success();
    assert_eq!(sent(&project).len(), 0);
    assert_eq!(last_sync(&project)["outcome"], "refused");
    // The same file given to `import` is refused too, naming the line and the fix;
    // `--skip-invalid` takes the complete rows only.
    let import = winback(&project, &["import", "crm.csv"]);
    assert_eq!(import.code(), Some(1), "{import:?}");
    assert!(
        import
            .stdout
            .contains("crm.csv: line 3: this last line does not end with a line break"),
        "{}",
        import.stdout
    );
    let skipped = winback(&project, &["import", "--skip-invalid", "crm.csv"]);
    assert!(skipped.stdout.contains("1 added"), "{}", skipped.stdout);
    winback(&project, &["run", "--once"]).assert_success();
    let messages = sent(&project);
    assert_eq!(messages.len(), 1, "Kim only");
    assert!(messages[0].contains("Kim, may we ask"), "{}", messages[0]);
}

#[test]
fn the_last_sync_is_shown_and_every_failure_is_logged() {
    let port = free_port();
    let project = syncing_project(port);

    // Missing: `check` fails, the daemon logs an error, `status` shows it.
    let check = winback(&project, &["check"]);
    assert_eq!(check.code(), Some(1), "{check:?}");
    assert!(
        check.stdout.contains("[clients] sync_file: ")
            && check.stdout.contains("crm.csv does not exist"),
        "{}",
        check.stdout
    );
    let run = winback(&project, &["run", "--once"]);
    run.assert_success();
    assert!(
        run.stderr.contains("the client sync file cannot be read"),
        "{}",
        run.stderr
    );
    let sync = last_sync(&project);
    assert_eq!(sync["outcome"], "missing", "{sync}");
    assert_eq!(sync["last_imported_at"], Value::Null, "{sync}");

    // Imported.
    project.write_file(
        "crm.csv",
        "email,churned_at\nann@x.example,2026-01-01\nbob@x.example,2026-01-01\n",
    );
    winback(&project, &["run", "--once"]).assert_success();
    let sync = last_sync(&project);
    assert_eq!(
        (&sync["outcome"], &sync["added"], &sync["bad_rows"]),
        (&"imported".into(), &2.into(), &0.into()),
        "{sync}"
    );
    let imported_at = sync["last_imported_at"].clone();
    assert_ne!(imported_at, Value::Null);

    // Refused: one bad row. Logged, shown in `status` (with the last good sync) and
    // in `/metrics`.
    project.write_file(
        "crm.csv",
        "email,churned_at\nann@x.example,2026-01-01\nnot-an-address,2026-01-01\n",
    );
    let mut daemon = project.spawn_winback(&["--now", NOW, "run"]);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let mut text = String::new();
    let shown = wait_until(Duration::from_secs(30), || {
        text = reqwest::blocking::get(&metrics_url)
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .any(|l| l.starts_with("winback_sync_ok{file=") && l.ends_with(" 0"))
    });
    assert!(shown, "{text}\n{}", daemon.stderr_so_far());
    assert!(
        text.lines()
            .any(|l| l.starts_with("winback_sync_bad_rows{file=") && l.ends_with("crm.csv\"} 1")),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("winback_sync_last_success_timestamp_seconds{file=")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
    assert!(daemon.is_running());
    let stopped = daemon.stop(Duration::from_secs(10));
    assert!(
        stopped.stderr.contains("invalid email address")
            && stopped.stderr.contains("client file not imported"),
        "{}",
        stopped.stderr
    );
    let sync = last_sync(&project);
    assert_eq!(
        (&sync["outcome"], &sync["bad_rows"]),
        (&"refused".into(), &1.into()),
        "{sync}"
    );
    assert_eq!(sync["last_imported_at"], imported_at);
    let table = winback(&project, &["status"]);
    assert!(
        table
            .stdout
            .contains("crm.csv: NOT IMPORTED, 1 bad row (line 3: invalid email address"),
        "{}",
        table.stdout
    );
}
