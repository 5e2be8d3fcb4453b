//! `winback send-test` through the real binary and the real SMTP server: the step goes to
//! the address given, marked `[TEST]`, rendered for the client named, with links that
//! verify nothing; the database is the same afterwards; a message the daemon would hold
//! is refused unless `--anyway`.

use std::time::Duration;

use rusqlite::types::Value as Sql;
use serde_json::Value;

use crate::support::{Project, SmtpServer};

const NOW: &str = "2026-06-02T14:00:00Z";

fn project(smtp: &SmtpServer) -> Project {
    let project = Project::new();
    project.write_config(&format!(
        r#"{settings}
[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
timezone = "UTC"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{{{#if (eq churn_reason \"price\")}}}}{{{{first_name}}}}, was it the price?{{{{else}}}}May we ask why you left?{{{{/if}}}}"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "News"
"#,
        settings = crate::support::settings(&smtp.url(), "127.0.0.1:0"),
    ));
    project.write_file(
        "clients.csv",
        "email,name,churned_at,churn_reason\npat@client.example,Pat Smith,2025-01-10,price\n",
    );
    project
        .winback(&["import", "clients.csv", "--now", NOW])
        .assert_success();
    project
}

/// Every row of every table, as text: what "the database is unchanged" compares.
fn dump(project: &Project) -> Vec<String> {
    let db = rusqlite::Connection::open(project.path("winback.db")).expect("the database");
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("list tables")
        .query_map([], |r| r.get(0))
        .expect("list tables")
        .collect::<Result<_, _>>()
        .expect("table names");
    let mut rows = Vec::new();
    for table in tables {
        let mut statement = db
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .expect("read a table");
        let columns = statement.column_count();
        let mut found = statement.query([]).expect("read a table");
        while let Some(row) = found.next().expect("a row") {
            let cells: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get::<_, Sql>(i).expect("a cell")))
                .collect();
            rows.push(format!("{table}: {}", cells.join(" | ")));
        }
    }
    rows
}

#[test]
fn send_test_mails_the_step_marked_test_to_the_address_given_and_records_nothing() {
    let smtp = SmtpServer::start(Value::Null);
    let project = project(&smtp);
    project.fill_placeholders();
    let before = dump(&project);
    assert!(
        before.iter().any(|r| r.starts_with("clients:")),
        "the import wrote Pat: {before:#?}"
    );

    let out = project.winback(&[
        "send-test",
        "--campaign",
        "former-clients",
        "--step",
        "1",
        "--to",
        "Tester <tester@acme.example>",
        "--email",
        "pat@client.example",
        "--now",
        NOW,
    ]);
    out.assert_success();
    assert!(
        out.stdout.contains("Nothing was recorded"),
        "{}",
        out.stdout
    );

    let messages = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.rcpt_tos, ["tester@acme.example"]);
    let to = message.header("To").expect("a To header");
    assert!(to.contains("tester@acme.example"), "{to}");
    assert!(
        !message.raw.contains("pat@client.example"),
        "{}",
        message.raw
    );
    // Rendered for Pat, who left over the price.
    assert_eq!(
        message.header_decoded("Subject").as_deref(),
        Some("[TEST] Pat, was it the price?")
    );
    let text = message.text().expect("a text part");
    assert!(
        text.contains("https://winback.acme.example/u/TEST-MESSAGE-NOT-A-REAL-LINK"),
        "{text}"
    );

    assert_eq!(dump(&project), before, "send-test changed the database");
}

#[test]
fn send_test_shows_what_the_daemon_would_hold_and_sends_it_only_with_anyway() {
    let smtp = SmtpServer::start(Value::Null);
    // The shipped templates still hold their [EDIT: ...] placeholders.
    let project = project(&smtp);
    let args = [
        "send-test",
        "--campaign",
        "former-clients",
        "--step",
        "2",
        "--to",
        "tester@acme.example",
        "--now",
        NOW,
    ];
    let refused = project.winback(&args);
    refused.assert_failure();
    assert!(
        refused.stdout.contains("would hold this message")
            && refused.stdout.contains("placeholder")
            && refused.stdout.contains("--anyway"),
        "{}",
        refused.stdout
    );
    assert!(
        smtp.messages().is_empty(),
        "nothing is sent without --anyway"
    );

    let mut anyway = args.to_vec();
    anyway.push("--anyway");
    project.winback(&anyway).assert_success();
    let messages = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(messages[0].rcpt_tos, ["tester@acme.example"]);
    assert_eq!(
        messages[0].header_decoded("Subject").as_deref(),
        Some("[TEST] News")
    );
    assert!(messages[0].raw.contains("[EDIT:"), "sent as it is");
}
