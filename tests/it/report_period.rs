//! `winback report` over time, through the real binary: a scripted history over months
//! (import, passes, an opt-out and returns at moved dates), then the period figures and
//! "came back after" in csv, json and table, checked against the database.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Project, SmtpServer, settings};

fn config(smtp_url: &str) -> String {
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
  template = "newsletter"
  subject = "What we've been working on"
"#,
        settings = settings(smtp_url, "127.0.0.1:0"),
    )
}

fn at(project: &Project, now: &str, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["--now", now];
    all.extend_from_slice(args);
    let out = project.winback(&all);
    out.assert_success();
    out
}

/// `(section, figure, detail, period) → (value, share)` from the report's CSV.
fn read_csv(text: &str) -> BTreeMap<(String, String, String, String), (u64, String)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("a header row").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "section", "figure", "detail", "period", "from", "to", "value", "share"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("a CSV record");
            (
                (
                    r[0].to_string(),
                    r[1].to_string(),
                    r[2].to_string(),
                    r[3].to_string(),
                ),
                (r[6].parse().expect("a count"), r[7].to_string()),
            )
        })
        .collect()
}

#[test]
fn report_over_months_counts_per_month_and_credits_returns_to_the_last_message() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(&smtp.url()));
    project.write_file(
        "clients.csv",
        "email,churned_at\nann@x.example,2026-01-05\nbob@x.example,2026-01-05\ncara@x.example,2026-01-05\ndan@x.example,2026-01-05\neve@x.example,2026-01-05\n",
    );
    at(&project, "2026-06-02T15:00:00Z", &["import", "clients.csv"]);
    at(&project, "2026-06-02T15:00:00Z", &["run", "--once"]);
    assert_eq!(smtp.messages().len(), 5);
    at(
        &project,
        "2026-06-10T09:00:00Z",
        &["optout", "dan@x.example"],
    );
    // Cara comes back after the survey, before the newsletter.
    at(
        &project,
        "2026-06-20T09:00:00Z",
        &["returned", "cara@x.example"],
    );
    at(&project, "2026-07-03T15:00:00Z", &["run", "--once"]);
    assert_eq!(smtp.messages().len(), 8, "newsletters to ann, bob and eve");
    at(
        &project,
        "2026-07-20T09:00:00Z",
        &["returned", "bob@x.example"],
    );
    // Ann comes back 135 days after her newsletter: beyond the 90-day window.
    at(
        &project,
        "2026-11-15T09:00:00Z",
        &["returned", "ann@x.example"],
    );

    let now = "2026-12-01T09:00:00Z";
    let csv_out = at(
        &project,
        now,
        &[
            "report",
            "--since",
            "2026-06-01",
            "--until",
            "2026-11-30",
            "--format",
            "csv",
        ],
    );
    let rows = read_csv(&csv_out.stdout);
    let get = |section: &str, figure: &str, detail: &str, period: &str| {
        rows.get(&(section.into(), figure.into(), detail.into(), period.into()))
            .unwrap_or_else(|| {
                panic!(
                    "no {section}/{figure}/{detail}/{period} in\n{}",
                    csv_out.stdout
                )
            })
            .clone()
    };

    // The database's own counts, month by month.
    let db = rusqlite::Connection::open(project.path("winback.db")).expect("the database");
    let sent_in = |month: &str, step: u32| -> u64 {
        db.query_row(
            "SELECT COUNT(*) FROM messages WHERE state = 'sent' AND step = ?2 AND substr(sent_at, 1, 7) = ?1",
            rusqlite::params![month, step],
            |r| r.get::<_, i64>(0),
        )
        .expect("count") as u64
    };
    let returned_in = |month: &str| -> u64 {
        db.query_row(
            "SELECT COUNT(*) FROM clients WHERE substr(returned_at, 1, 7) = ?1",
            [month],
            |r| r.get::<_, i64>(0),
        )
        .expect("count") as u64
    };
    let (source,): (String,) = db
        .query_row(
            "SELECT source FROM suppressions WHERE reason = 'opt_out'",
            [],
            |r| Ok((r.get(0)?,)),
        )
        .expect("one opt-out");

    let months = [
        "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11",
    ];
    for month in months {
        assert_eq!(
            get("period", "sent", "former-clients step 1 (survey)", month).0,
            sent_in(month, 1),
            "{month}"
        );
        assert_eq!(
            get(
                "period",
                "sent",
                "former-clients step 2 (newsletter)",
                month
            )
            .0,
            sent_in(month, 2),
            "{month}"
        );
        assert_eq!(
            get("period", "returns", "", month).0,
            returned_in(month),
            "{month}"
        );
    }
    assert_eq!(
        get(
            "period",
            "sent",
            "former-clients step 1 (survey)",
            "2026-06"
        )
        .0,
        5
    );
    assert_eq!(
        get(
            "period",
            "sent",
            "former-clients step 2 (newsletter)",
            "2026-07"
        )
        .0,
        3
    );
    assert_eq!(get("period", "opt_outs", &source, "2026-06").0, 1);
    assert_eq!(get("period", "opt_outs", &source, "2026-07").0, 0);
    assert_eq!(
        [
            get("period", "returns", "", "2026-06").0,
            get("period", "returns", "", "2026-07").0,
            get("period", "returns", "", "2026-11").0
        ],
        [1, 1, 1]
    );
    assert_eq!(get("people", "surveyed", "", "all").0, 5);
    assert_eq!(get("people", "came_back", "", "all").0, 3);
    assert_eq!(
        get("came_back_after", "returns", "former-clients step 1", "all"),
        (1, "0.3333".to_string())
    );
    assert_eq!(
        get("came_back_after", "returns", "former-clients step 2", "all"),
        (1, "0.3333".to_string())
    );
    assert_eq!(
        get(
            "came_back_after",
            "returns",
            "no message within the window",
            "all"
        )
        .0,
        1
    );

    // A longer window credits Ann's return to her newsletter.
    let json_out = at(
        &project,
        now,
        &[
            "report",
            "--since",
            "2026-06-01",
            "--until",
            "2026-11-30",
            "--format",
            "json",
            "--attribution-days",
            "200",
        ],
    );
    let doc: Value = serde_json::from_str(&json_out.stdout).expect("report JSON");
    assert_eq!(doc["grain"], "month");
    assert_eq!(doc["buckets"].as_array().map(Vec::len), Some(6));
    let credits: Vec<(Value, Value, Value)> = doc["came_back_after"]
        .as_array()
        .expect("came_back_after")
        .iter()
        .map(|c| {
            (
                c["campaign"].clone(),
                c["step"].clone(),
                c["returns"].clone(),
            )
        })
        .collect();
    assert_eq!(
        credits,
        [
            ("former-clients".into(), 1.into(), 1.into()),
            ("former-clients".into(), 2.into(), 2.into()),
        ]
    );

    // Up to 13 weeks: weekly; only the period's own events count.
    let table = at(
        &project,
        now,
        &["report", "--since", "2026-06-29", "--until", "2026-07-26"],
    );
    let text = &table.stdout;
    assert!(
        text.contains("by week") && text.contains("2026-W27") && text.contains("2026-W30"),
        "{text}"
    );
    let returns_line = text
        .lines()
        .find(|l| l.starts_with("returns"))
        .expect("a returns line");
    let cells: Vec<&str> = returns_line.split_whitespace().collect();
    assert_eq!(cells, ["returns", "0", "0", "0", "1", "1"], "{text}");
    assert!(text.contains("1 came back"), "{text}");
    for figure in ["answers", "opt_outs", "bounces"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(figure))
            .unwrap_or_else(|| panic!("{figure} in {text}"));
        assert!(line.trim_end().ends_with(" 0"), "{text}");
    }

    // The page carries the same period.
    at(
        &project,
        now,
        &[
            "report",
            "--html",
            "report.html",
            "--since",
            "2026-06-01",
            "--until",
            "2026-11-30",
        ],
    );
    let page = project.read_file("report.html");
    assert!(
        page.contains("Over time: 2026-06-01 to 2026-11-30")
            && page.contains("<th>2026-06</th>")
            && page.contains(
                "<td>former-clients step 1</td><td class=\"n\">1</td><td class=\"n\">33%</td>"
            ),
        "{page}"
    );

    let bad = project.winback(&[
        "--now",
        now,
        "report",
        "--since",
        "2026-08-01",
        "--until",
        "2026-07-01",
    ]);
    bad.assert_failure();
    assert!(bad.stderr.contains("is after --until"), "{}", bad.stderr);
}
