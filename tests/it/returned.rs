//! Returned mail in `winback report`: surveys go out to a file, real-world bounces, a
//! reputation block, replies and an out-of-office (`tests/fixtures/inbound/`) are read by
//! `winback inbound`, one is undone in `winback inbox`, and the page counts what is left
//! by outcome and per campaign step, as `status` does, and warns about the block.

use std::path::PathBuf;

use serde_json::Value;

use crate::ops::number_after;
use crate::support::Project;

const NOW: &str = "2026-06-02T14:00:00Z";
const LATER: &str = "2026-06-03T09:00:00Z";
/// The campaign of `inbound::config`.
const CAMPAIGN: &str = "former-clients";

/// Former clients whose addresses the fixtures name, each mailed the survey.
const CLIENTS: [&str; 5] = [
    "anna.berg@northwind.example",     // postfix_dsn_user_unknown: bounce
    "sara.lind@tailspin.example",      // blocked_5_7_1_reputation: blocked
    "s.krause@kontoso.example",        // unsubscribe_reply_de: unsubscribe
    "chen.wei@woodgrove.example",      // out_of_office_auto_submitted: auto_reply
    "ravi.patel@fourthcoffee.example", // human_reply_plain: reply, undone below
];

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inbound")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn report_counts_returned_mail_by_outcome_and_step_without_undone_and_warns_of_blocks() {
    let project = Project::new();
    project.write_config(&crate::inbound::config());
    let rows: String = CLIENTS
        .iter()
        .map(|email| format!("{email},2025-01-10\n"))
        .collect();
    project.write_file("clients.csv", &format!("email,churned_at\n{rows}"));
    project
        .winback(&["import", "clients.csv", "--now", NOW])
        .assert_success();
    project
        .winback(&["run", "--once", "--now", NOW])
        .assert_success();

    let files: Vec<String> = [
        "postfix_dsn_user_unknown.eml",
        "blocked_5_7_1_reputation.eml",
        "unsubscribe_reply_de.eml",
        "out_of_office_auto_submitted.eml",
        "human_reply_plain.eml",
        // About omar.haddad@litware.example, never a client: tied to no campaign.
        "delayed_dsn.eml",
    ]
    .iter()
    .map(|name| fixture(name))
    .collect();
    let mut args = vec!["inbound"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--format", "json", "--now", LATER]);
    let out = project.winback(&args);
    out.assert_success();
    let read: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let reply = read
        .iter()
        .find(|r| r["outcome"] == "reply")
        .unwrap_or_else(|| panic!("the human reply is a reply: {}", out.stdout));
    assert_eq!(reply["campaign"], CAMPAIGN, "{}", out.stdout);
    let id = reply["id"].to_string();
    project
        .winback(&["inbox", "undo", &id, "--now", LATER])
        .assert_success();

    let page = project.path("report.html");
    let out = project.winback(&["report", "--html", &page.to_string_lossy(), "--now", LATER]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("1 message refused by receivers as coming from us"),
        "the terminal hears of the block too: {}",
        out.stdout
    );
    let html = std::fs::read_to_string(&page).expect("report --html writes the page");

    let total = |outcome: &str| {
        number_after(
            &html,
            &format!("<tr data-outcome=\"{outcome}\""),
            "data-count",
        )
    };
    for (outcome, n) in [
        ("bounce", 1),
        ("blocked", 1),
        ("unsubscribe", 1),
        ("auto_reply", 1),
        ("delayed", 1),
        ("reply", 0),
        ("complaint", 0),
    ] {
        assert_eq!(total(outcome), n, "{outcome}");
    }

    // The same figures `status` shows.
    let status = project.winback(&["status", "--format", "json", "--now", LATER]);
    status.assert_success();
    let status: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let counted = status["inbound"].as_object().expect("inbound by outcome");
    assert_eq!(
        counted.len(),
        5,
        "the undone reply is left out: {counted:?}"
    );
    for (outcome, n) in counted {
        assert_eq!(Some(total(outcome)), n.as_u64(), "{outcome}");
    }

    let cell = |campaign: &str, step: &str, outcome: &str| {
        number_after(
            &html,
            &format!(
                "data-returned=\"{campaign}\" data-step=\"{step}\" data-outcome=\"{outcome}\""
            ),
            "data-count",
        )
    };
    assert_eq!(cell(CAMPAIGN, "1", "bounce"), 1);
    assert_eq!(cell(CAMPAIGN, "1", "blocked"), 1);
    assert_eq!(cell(CAMPAIGN, "1", "unsubscribe"), 1);
    assert_eq!(cell(CAMPAIGN, "1", "delayed"), 0);
    assert_eq!(cell("", "", "delayed"), 1, "not tied to a message we sent");
    assert!(
        html.contains("data-hint=\"blocked\"") && html.contains("sending reputation"),
        "the block is shown as a sender problem"
    );
}
