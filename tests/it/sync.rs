//! Before and after the CRM sync: `import --dry-run` (what an import would change, with
//! nothing written) and how each sync is kept and shown (`status`, `report`, `/metrics`,
//! `check`).

use crate::support::Project;

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
  subject = "May we ask why you left?"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    )
}

fn winback(project: &Project, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    project.winback(&all)
}

/// The bytes of the database file and of its write-ahead log (none when absent or empty:
/// a reader may leave an empty one behind, which holds nothing).
fn database_bytes(project: &Project) -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| std::fs::read(project.path(name)).unwrap_or_default();
    (read("winback.db"), read("winback.db-wal"))
}

#[test]
fn a_dry_run_lists_what_would_change_and_writes_nothing() {
    let project = Project::new();
    project.write_config(&config(""));
    project.write_file(
        "before.csv",
        "email,name,company,churned_at,plan\n\
         anna@x.example,Anna,A,2026-01-01,pro\n\
         bob@x.example,Bob,B,2026-01-01,pro\n",
    );
    winback(&project, &["import", "before.csv"]).assert_success();
    let mut rows = String::from("email,name,company,churned_at,plan\n");
    rows.push_str("anna@x.example,Anna,Anna & Co,2026-01-01,basic\n");
    rows.push_str("bob@x.example,Bob,B,2026-01-01,pro\n");
    for i in 0..60 {
        rows.push_str(&format!("new{i:02}@x.example,Zoë {i},,2026-02-01,\n"));
    }
    project.write_file("after.csv", &rows);
    let before = database_bytes(&project);

    let dry = winback(&project, &["import", "--dry-run", "after.csv"]);
    dry.assert_success();
    for line in [
        "would add (60):",
        "  new00@x.example",
        "  … and 10 more",
        "would update (1):",
        "  anna@x.example: company \"A\" → \"Anna & Co\"; fields.plan \"pro\" → \"basic\"",
        "dry run, nothing written: importing after.csv would add 60, update 1, leave 1 unchanged, mark 0 returned and skip 0",
    ] {
        assert!(
            dry.stdout.lines().any(|l| l == line),
            "missing {line:?} in:\n{}",
            dry.stdout
        );
    }
    assert!(!dry.stdout.contains("bob@x.example"), "{}", dry.stdout);
    assert!(
        database_bytes(&project) == before,
        "the database is unchanged"
    );

    // The same as JSON, for a script.
    let json = winback(
        &project,
        &["import", "--dry-run", "--format", "json", "after.csv"],
    );
    json.assert_success();
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        (
            &json["dry_run"],
            &json["counts"]["added"],
            &json["counts"]["updated"]
        ),
        (&true.into(), &60.into(), &1.into()),
        "{json}"
    );
    assert_eq!(json["changes"]["added"].as_array().map(Vec::len), Some(50));
    assert_eq!(
        json["changes"]["updated"][0],
        serde_json::json!({"email": "anna@x.example", "fields": [
            {"field": "company", "before": "A", "after": "Anna & Co"},
            {"field": "fields.plan", "before": "pro", "after": "basic"},
        ]})
    );
    assert!(
        database_bytes(&project) == before,
        "the database is unchanged"
    );

    // With a bad row, the dry run says the import would be refused, as the import does.
    project.write_file(
        "bad.csv",
        "email,churned_at\ncid@x.example,2026-01-01\nnot-an-address,2026-01-01\n",
    );
    let refused = winback(&project, &["import", "--dry-run", "bad.csv"]);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused
            .stdout
            .contains("bad.csv: line 3: invalid email address")
            && refused
                .stdout
                .contains("dry run, nothing written: the import would change nothing: 1 bad row"),
        "{}",
        refused.stdout
    );
    assert!(
        database_bytes(&project) == before,
        "the database is unchanged"
    );

    // The real import then does what the dry run said.
    let real = winback(&project, &["import", "after.csv"]);
    real.assert_success();
    assert!(
        real.stdout
            .contains("imported after.csv: 60 added, 1 updated, 1 unchanged, 0 skipped"),
        "{}",
        real.stdout
    );
}

#[test]
fn a_dry_run_without_a_database_creates_none() {
    let project = Project::new();
    project.write_config(&config(""));
    project.write_file(
        "clients.csv",
        "email,churned_at\nann@x.example,2026-01-01\n",
    );
    let dry = winback(&project, &["import", "--dry-run", "clients.csv"]);
    dry.assert_success();
    assert!(
        dry.stdout.lines().any(|l| l == "  ann@x.example"),
        "{}",
        dry.stdout
    );
    assert!(!project.path("winback.db").exists());
}

#[test]
fn every_failed_sync_is_logged_counted_across_restarts_and_shown_everywhere() {
    let port = crate::support::free_port();
    let project = Project::new();
    let text = config("\n[clients]\nsync_file = \"crm.csv\"\ncustomers_file = \"customers.csv\"\n")
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
    project.write_config(&text);

    // `check` fails while a CRM file it names cannot be read, saying which and why.
    let check = winback(&project, &["check"]);
    assert_eq!(check.code(), Some(1), "{check:?}");
    assert!(
        check.stdout.contains("2 problems with the client files:")
            && check.stdout.contains("[clients] sync_file: ")
            && check.stdout.contains("crm.csv does not exist")
            && check.stdout.contains("[clients] customers_file: ")
            && !check.stdout.lines().any(|l| l == "ok"),
        "{}",
        check.stdout
    );

    // Each run of the daemon looks, logs an error and counts it; the count is stored.
    // (The customers file, an empty list, is read without a failure.)
    project.write_file("customers.csv", "email\n");
    for _ in 0..2 {
        let run = winback(&project, &["run", "--once"]);
        run.assert_success();
        assert!(
            run.stderr.contains("the client sync file cannot be read"),
            "{}",
            run.stderr
        );
    }
    let status = winback(&project, &["status"]);
    assert!(
        status.stdout.contains("crm.csv: MISSING: the file does not exist (the same at 2 looks since 2026-06-02T15:00:00Z); last imported: never")
            && status.stdout.lines().any(|l| l.starts_with("client sync failures so far: 2 ")),
        "{}",
        status.stdout
    );

    project.write_file("crm.csv", "email,churned_at\nann@x.example,2026-01-01\n");
    winback(&project, &["run", "--once"]).assert_success();
    let json: serde_json::Value =
        serde_json::from_str(&winback(&project, &["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["sync_failures_total"], 2, "{json}");
    assert_eq!(json["last_sync"]["outcome"], "imported", "{json}");
    assert_eq!(json["syncs"][0]["added"], 1, "{json}");

    // `/metrics` of a daemon started afterwards still counts them.
    let daemon = project.spawn_winback(&["--now", NOW, "run"]);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut metrics = String::new();
    let up = crate::support::wait_until(std::time::Duration::from_secs(30), || {
        metrics = reqwest::blocking::get(&url)
            .and_then(|r| r.text())
            .unwrap_or_default();
        metrics.contains("winback_sync_ok")
    });
    daemon.stop(std::time::Duration::from_secs(10));
    assert!(up, "{metrics}");
    let ok = format!(
        "winback_sync_ok{{file=\"{}\"}} 1",
        project.path("crm.csv").display()
    );
    for line in [
        "# TYPE winback_sync_failures_total counter",
        "winback_sync_failures_total 2",
        ok.as_str(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in:\n{metrics}"
        );
    }

    // The report lists the looks, newest first.
    winback(&project, &["report", "--html", "report.html"]).assert_success();
    let html = project.read_file("report.html");
    let syncs = &html[html
        .find("<section id=\"syncs\">")
        .expect("a CRM sync section")..];
    assert!(
        syncs.contains("2 looks so far imported nothing")
            && syncs.contains("imported: 1 added")
            && syncs.contains("(2 looks)</td>")
            && syncs.find("imported: 1 added") < syncs.find("data-outcome=\"missing\""),
        "{syncs}"
    );

    // Only the customers file is left to fix; a folder is not a file.
    std::fs::remove_file(project.path("customers.csv")).unwrap();
    std::fs::create_dir(project.path("customers.csv")).unwrap();
    let check = winback(&project, &["check"]);
    assert_eq!(check.code(), Some(1), "{check:?}");
    assert!(
        check.stdout.contains("1 problem with the client files:")
            && check.stdout.contains("customers.csv is a folder"),
        "{}",
        check.stdout
    );
    std::fs::remove_dir(project.path("customers.csv")).unwrap();
    project.write_file("customers.csv", "email\nann@x.example\n");
    winback(&project, &["check"]).assert_success();
}
