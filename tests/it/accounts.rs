//! Accounts through the real binary: `[clients] account = "company"` makes Ann and Bob of
//! ACME one relationship. Ann's return (the `returned` command, the CRM file's
//! `returned_at`, the customers file) stops Bob's sequence too; Ann's reply stops Bob's
//! until it is undone; Ann's opt-out is hers alone. A real SMTP server, a moved clock.

use serde_json::Value;

use crate::support::{Captured, Project, SmtpServer, settings};

/// Everyone below left in January: past their 90 quiet days.
const NOW: &str = "2026-06-02T15:00:00Z";
const NEXT_DAY: &str = "2026-06-03T15:00:00Z";
/// 31 days after `NOW`: the newsletter (30 days after the survey) is due.
const LATER: &str = "2026-07-03T15:00:00Z";

const ANN: &str = "ann@acme.example";
const BOB: &str = "bob@acme.example";
const DAN: &str = "dan@globex.example";

const CRM: &str = "email,name,company,churned_at\n\
    ann@acme.example,Ann,ACME,2026-01-05\n\
    bob@acme.example,Bob, Acme ,2026-01-05\n\
    dan@globex.example,Dan,Globex,2026-01-05\n";

/// `account_gap_days = 0`: every contact may be mailed the same day, so what is tested
/// here is who is stopped, not when the account's turn comes.
fn config(smtp_url: &str, clients: &str) -> String {
    format!(
        r#"{settings}
[clients]
sync_file = "crm.csv"
account = "company"
{clients}

[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"
account_gap_days = 0

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

/// Ann, Bob and Dan imported by the daemon's sync and surveyed at `NOW`.
fn surveyed(clients: &str) -> (Project, SmtpServer, Vec<Captured>) {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config(&smtp.url(), clients));
    project.write_file("crm.csv", CRM);
    let run = project.winback(&["run", "--once", "--now", NOW]);
    run.assert_success();
    let surveys = smtp.messages();
    assert_eq!(recipients(&surveys), [ANN, BOB, DAN], "{}", run.stderr);
    (project, smtp, surveys)
}

fn recipients(messages: &[Captured]) -> Vec<String> {
    let mut to: Vec<String> = messages.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    to.sort();
    to
}

/// Who the daemon mails at `at` (a pass after `before` messages were captured).
fn mailed_at(project: &Project, smtp: &SmtpServer, at: &str) -> Vec<String> {
    let before = smtp.messages().len();
    let run = project.winback(&["run", "--once", "--now", at]);
    run.assert_success();
    recipients(&smtp.messages()[before..])
}

fn export(project: &Project, email: &str) -> Value {
    let out = project.winback(&["export", email, "--now", LATER]);
    out.assert_success();
    serde_json::from_str(&out.stdout).expect("export is JSON")
}

/// The state of each of the person's sequences.
fn states(project: &Project, email: &str) -> Vec<String> {
    export(project, email)["enrollments"]
        .as_array()
        .expect("enrollments")
        .iter()
        .map(|e| e["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The details of the person's events of `kind`.
fn events(project: &Project, email: &str, kind: &str) -> Vec<String> {
    export(project, email)["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// After Ann's return, Bob (same company, other spelling) gets nothing more; Dan, of
/// another company, gets his newsletter. Bob is stopped, not counted as a win.
fn only_the_other_account_goes_on(project: &Project, smtp: &SmtpServer) {
    assert_eq!(mailed_at(project, smtp, LATER), [DAN]);
    assert_eq!(states(project, ANN), ["returned"]);
    assert_eq!(states(project, BOB), ["returned"]);
    let bob = export(project, BOB);
    assert!(bob["client"]["returned_at"].is_null(), "{bob}");
    let why = events(project, BOB, "account_returned");
    assert!(
        why.len() == 1 && why[0].contains(ANN),
        "the event names Ann: {why:?}"
    );
    assert!(mailed_at(project, smtp, "2026-09-01T15:00:00Z").is_empty());
}

#[test]
fn a_return_recorded_by_the_command_stops_the_whole_account() {
    let (project, smtp, _) = surveyed("");
    let out = project.winback(&["returned", ANN, "--now", NEXT_DAY]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("1 sequence of other contacts at their account stopped too"),
        "{}",
        out.stdout
    );
    only_the_other_account_goes_on(&project, &smtp);
}

#[test]
fn a_return_in_the_crm_file_stops_the_whole_account() {
    let (project, smtp, _) = surveyed("");
    project.write_file(
        "crm.csv",
        "email,name,company,churned_at,returned_at\n\
         ann@acme.example,Ann,ACME,2026-01-05,2026-06-20\n\
         bob@acme.example,Bob, Acme ,2026-01-05,\n\
         dan@globex.example,Dan,Globex,2026-01-05,\n",
    );
    only_the_other_account_goes_on(&project, &smtp);
}

#[test]
fn a_return_in_the_customers_file_stops_the_whole_account() {
    let (project, smtp, _) = surveyed("customers_file = \"customers.csv\"");
    project.write_file("customers.csv", "Email,Company\nANN@acme.example,ACME\n");
    only_the_other_account_goes_on(&project, &smtp);
    // A colleague the CRM adds later is stopped at once, with the reason.
    let mut crm = CRM.to_string();
    crm.push_str("eve@acme.example,Eve,ACME,2026-01-05\n");
    project.write_file("crm.csv", &crm);
    assert!(mailed_at(&project, &smtp, "2026-09-02T15:00:00Z").is_empty());
    assert_eq!(states(&project, "eve@acme.example"), ["returned"]);
}

/// A human reply from Ann to her survey.
fn reply_from_ann(in_reply_to: &str) -> String {
    format!(
        "From: Ann <{ANN}>\r\n\
         To: Acme Customer Success <success@acme.example>\r\n\
         Subject: Re: May we ask why you left?\r\n\
         Date: Wed, 03 Jun 2026 08:12:00 +0000\r\n\
         Message-ID: <r1@acme.example>\r\n\
         In-Reply-To: {in_reply_to}\r\n\
         References: {in_reply_to}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         We are reviewing vendors again; Bob and I would like to talk.\r\n"
    )
}

#[test]
fn a_reply_from_one_contact_stops_the_account_until_it_is_undone() {
    let (project, smtp, surveys) = surveyed("");
    let anns = surveys
        .iter()
        .find(|m| m.rcpt_tos == [ANN])
        .and_then(|m| m.header("Message-ID"))
        .expect("Ann's survey has a Message-ID");
    let file = project.write_file("reply.eml", &reply_from_ann(&anns));
    let out = project.winback(&[
        "inbound",
        file.to_str().expect("utf-8 path"),
        "--format",
        "json",
        "--now",
        NEXT_DAY,
    ]);
    out.assert_success();
    let applied: Value = serde_json::from_str(out.stdout.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(applied["effect"], "replied", "{applied}");
    assert_eq!(states(&project, ANN), ["replied"]);
    assert_eq!(states(&project, BOB), ["replied"]);
    assert!(events(&project, BOB, "account_replied")[0].contains(ANN));
    assert_eq!(mailed_at(&project, &smtp, LATER), [DAN]);

    // The reply was read wrong: undone, both pick up where they stood.
    let id = applied["id"].to_string();
    let out = project.winback(&["inbox", "undo", &id, "--now", LATER]);
    out.assert_success();
    assert!(out.stdout.contains("2 sequences resumed"), "{}", out.stdout);
    assert_eq!(
        mailed_at(&project, &smtp, "2026-07-03T16:00:00Z"),
        [ANN, BOB]
    );
}

#[test]
fn an_opt_out_stays_personal() {
    let (project, smtp, _) = surveyed("");
    project
        .winback(&["optout", ANN, "--now", NEXT_DAY])
        .assert_success();
    assert_eq!(mailed_at(&project, &smtp, LATER), [BOB, DAN]);
    assert_eq!(states(&project, ANN), ["opted_out"]);
    assert_eq!(
        states(&project, BOB),
        ["completed"],
        "his last step went out"
    );
    let status = project.winback(&["status", "--now", LATER]);
    assert!(
        status
            .stdout
            .contains("accounts: 1 with several contacts (2 clients)"),
        "{}",
        status.stdout
    );
}

#[test]
fn check_refuses_an_account_column_the_crm_file_lacks_and_a_person_field() {
    let project = Project::new();
    project.fill_placeholders();
    project.write_file("crm.csv", CRM);
    project.write_config(
        &config("file://outbox", "").replace("account = \"company\"", "account = \"account_id\""),
    );
    let out = project.winback(&["check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stdout.contains(
            "[clients] account names the column \"account_id\", but the file has no such column"
        ) && out
            .stdout
            .contains("columns found: email, name, company, churned_at"),
        "{}",
        out.stdout
    );
    project.write_file(
        "crm.csv",
        "email,churned_at,Account ID\nann@acme.example,2026-01-05,A-17\n",
    );
    project.winback(&["check"]).assert_success();

    project.write_config(
        &config("file://outbox", "").replace("account = \"company\"", "account = \"email\""),
    );
    let out = project.winback(&["check"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stdout.contains("clients.account")
            && out.stdout.contains("write \"company\", \"domain\""),
        "{}",
        out.stdout
    );
}

/// A campaign added later places contacts no campaign took before: one whose company
/// came back is placed and stopped at once, and never mailed.
#[test]
fn a_campaign_added_after_the_account_came_back_does_not_mail_its_contacts() {
    let smtp = SmtpServer::start(Value::Null);
    let project = Project::new();
    project.fill_placeholders();
    let price_only = config(&smtp.url(), "").replace(
        "account_gap_days = 0\n",
        "account_gap_days = 0\ninclude_reasons = [\"price\"]\n",
    );
    project.write_config(&price_only);
    project.write_file(
        "crm.csv",
        "email,name,company,churned_at,churn_reason\n\
         ann@acme.example,Ann,ACME,2026-01-05,price\n\
         bob@acme.example,Bob, Acme ,2026-01-05,competitor\n\
         dan@globex.example,Dan,Globex,2026-01-05,competitor\n",
    );
    let run = project.winback(&["run", "--once", "--now", NOW]);
    run.assert_success();
    assert_eq!(recipients(&smtp.messages()), [ANN], "{}", run.stderr);
    project
        .winback(&["returned", ANN, "--now", NEXT_DAY])
        .assert_success();
    // Everyone else gets a campaign of their own.
    let everyone = r#"
[[campaign]]
name = "everyone-else"
send_at = "* * * * *"
timezone = "UTC"
account_gap_days = 0

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"
"#;
    project.write_config(&format!("{price_only}{everyone}"));
    assert_eq!(
        mailed_at(&project, &smtp, "2026-06-04T15:00:00Z"),
        [DAN],
        "Bob's company came back: he is not surveyed"
    );
    assert_eq!(states(&project, BOB), ["returned"]);
    let why = events(&project, BOB, "account_returned");
    assert!(why.len() == 1 && why[0].contains(ANN), "{why:?}");
    assert!(mailed_at(&project, &smtp, "2026-09-01T15:00:00Z").is_empty());
}

/// An account of more than 50 contacts is named by `import` and `check`, with what it
/// means; "N/A" groups nobody.
#[test]
fn import_and_check_name_an_account_of_more_than_50_contacts() {
    let project = Project::new();
    project.fill_placeholders();
    project.write_config(&config("file://outbox", ""));
    let mut crm = String::from("email,name,company,churned_at\n");
    for i in 0..51 {
        crm.push_str(&format!(
            "p{i}@reseller.example,P{i},Big Reseller,2026-01-05\n"
        ));
    }
    for i in 0..60 {
        crm.push_str(&format!("f{i}@freelance.example,F{i},N/A,2026-01-05\n"));
    }
    crm.push_str("ann@acme.example,Ann,ACME,2026-01-05\n");
    project.write_file("crm.csv", &crm);
    let import = project.winback(&["import", "crm.csv", "--now", NOW]);
    import.assert_success();
    for out in [&import.stdout, &project.winback(&["check"]).stdout] {
        let warnings: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("warning: the account"))
            .collect();
        assert_eq!(warnings.len(), 1, "{out}");
        assert!(
            warnings[0].starts_with("warning: the account \"big reseller\" has 51 contacts")
                && warnings[0].contains("account_gap_days is 0")
                && warnings[0].contains("a return or reply of any one stops them all"),
            "{out}"
        );
    }
}
