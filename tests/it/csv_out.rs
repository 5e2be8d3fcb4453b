//! `--format csv` through the real binary: `plan`, `status`, `survey`, `outbox list` and
//! `inbox` print RFC 4180 CSV with a header row that the `csv` crate reads back, values
//! as the JSON output has them, recipients' text round-tripped except the `'` put before
//! a formula-like start; `import` and `inbound` refuse csv and change nothing.

use crate::inbound::{LATER, NOW, mailed, reply};
use crate::recipients::{ADA, BOB, Running, survey_link};
use crate::support::{Output, Project};

/// The header and the rows of a command's CSV output (CRLF line ends checked).
#[track_caller]
fn table(out: &Output) -> (Vec<String>, Vec<Vec<String>>) {
    out.assert_success();
    assert!(
        out.stdout.ends_with("\r\n"),
        "RFC 4180 rows end in CRLF: {:?}",
        out.stdout
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_bytes());
    let header = reader
        .headers()
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
        .iter()
        .map(String::from)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
                .iter()
                .map(String::from)
                .collect()
        })
        .collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn plan_status_inbox_and_outbox_list_print_csv() {
    let project = Project::new();
    project.write_config(&crate::inbound::config());
    project.write_file(
        "clients.csv",
        "email,name,churned_at\npat@client.example,Pat Smith,2025-01-10\n",
    );
    project
        .winback(&["import", "clients.csv", "--now", NOW])
        .assert_success();

    let (header, rows) = table(&project.winback(&["plan", "--format", "csv", "--now", NOW]));
    assert_eq!(
        header,
        [
            "at",
            "recipient_time",
            "email",
            "campaign",
            "step",
            "kind",
            "why",
            "held",
            "message"
        ]
    );
    assert_eq!(rows.len(), 2, "the survey and the newsletter: {rows:?}");
    let row = &rows[0];
    assert_eq!(row[2], "pat@client.example");
    assert_eq!(row[3], "former-clients");
    assert_eq!((row[4].as_str(), row[5].as_str()), ("1", "survey"));
    assert_eq!((row[7].as_str(), row[8].as_str()), ("no", ""));
    assert_eq!(row[0], "2026-06-02T14:00:00Z");
    assert_eq!(row[1], "2026-06-02 14:00 UTC (Tue)");
    assert!(row[6].contains("90 quiet days"), "{row:?}");
    assert_eq!(
        (rows[1][4].as_str(), rows[1][5].as_str()),
        ("2", "newsletter")
    );
    assert_eq!(rows[1][0], "2026-07-02T14:00:00Z");

    drop(project);
    let (project, survey_id) = mailed();
    let body = "=HYPERLINK(\"x\"), said Smith, \"Jo\"\nWe are back!";
    project.write_file("reply.eml", &reply("r1@client.example", &survey_id, body));
    project
        .winback(&["inbound", "reply.eml", "--now", LATER])
        .assert_success();
    let (header, rows) = table(&project.winback(&["inbox", "--format", "csv", "--now", LATER]));
    assert_eq!(header[0], "id");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[column(&header, "outcome")], "reply");
    assert_eq!(row[column(&header, "email")], "pat@client.example");
    assert_eq!(row[column(&header, "step")], "1");
    assert_eq!(row[column(&header, "applied")], "yes");
    let excerpt = &row[column(&header, "excerpt")];
    assert!(
        excerpt.starts_with("'=HYPERLINK(\"x\"), said Smith, \"Jo\"\nWe are back!"),
        "the excerpt, neutralised and whole: {excerpt:?}"
    );

    let (header, rows) = table(&project.winback(&["status", "--format", "csv", "--now", LATER]));
    assert_eq!(header, ["what", "campaign", "state", "count"]);
    let count = |what: &str, campaign: &str, state: &str| {
        rows.iter()
            .find(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()) == (what, campaign, state))
            .map(|r| r[3].clone())
            .unwrap_or_else(|| panic!("no {what},{campaign},{state} in {rows:?}"))
    };
    assert_eq!(count("clients", "", ""), "1");
    assert_eq!(count("messages", "former-clients", "sent"), "1");
    assert_eq!(count("returned_mail", "", "reply"), "1");

    let (header, rows) = table(&project.winback(&["outbox", "list", "--format", "csv"]));
    assert_eq!(
        header,
        [
            "id",
            "state",
            "updated_at",
            "email",
            "campaign",
            "step",
            "attempts",
            "error"
        ]
    );
    assert!(rows.is_empty(), "nothing needs attention: {rows:?}");
}

#[test]
fn import_and_inbound_refuse_csv_and_change_nothing() {
    let (project, _) = mailed();
    project.write_file(
        "more.csv",
        "email,churned_at\nnew@client.example,2025-01-10\n",
    );
    let out = project.winback(&["import", "more.csv", "--format", "csv", "--now", NOW]);
    out.assert_failure();
    assert!(
        out.stderr.contains("--format table or --format json"),
        "{}",
        out.stderr
    );
    let (_, rows) = table(&project.winback(&["status", "--format", "csv", "--now", NOW]));
    assert!(
        rows.iter().any(|r| r[0] == "clients" && r[3] == "1"),
        "{rows:?}"
    );
    let out = project.winback(&["inbound", "more.csv", "--format", "csv", "--now", NOW]);
    out.assert_failure();
    assert!(
        out.stderr.contains("--format table or --format json"),
        "{}",
        out.stderr
    );
}

#[test]
fn survey_answers_print_as_csv_with_the_text_whole() {
    let running = Running::start();
    let link = survey_link(&running, &running.message_to(ADA, 0));
    let thanks = running.post_form(
        &link,
        "reason=price&better=%3DSUM%28A1%29%2C+%22quoted%22%0D%0Asecond+line&would_return=maybe",
    );
    assert_eq!(thanks.status, 200, "{thanks:#?}");
    let (header, rows) = table(&running.winback(&["survey", "--format", "csv"]));
    assert_eq!(
        header,
        [
            "answered_at",
            "updated_at",
            "email",
            "name",
            "company",
            "campaign",
            "reason",
            "would_return",
            "better"
        ]
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[2], ADA);
    assert_ne!(row[2], BOB);
    assert_eq!(row[3], "Ada Lovelace");
    assert_eq!(row[4], "Analytical Engines Ltd");
    assert_eq!(row[5], "former-clients");
    assert_eq!((row[6].as_str(), row[7].as_str()), ("price", "maybe"));
    assert_eq!(row[8], "'=SUM(A1), \"quoted\"\nsecond line");
}
