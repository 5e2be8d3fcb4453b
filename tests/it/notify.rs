//! `[inbound] notify` through the real binary: a human reply and word that a contact left,
//! read by `winback inbound`, are told to the team by the next `run --once` (to the
//! `.eml` outbox), once each however often the reply is read or the daemon runs; a survey
//! answered through the running daemon's form reaches the team through the real SMTP
//! server without waiting for the loop's next wake.

use std::time::Duration;

use crate::inbound::{LATER, reply};
use crate::recipients::{ADA, Running, survey_link};
use crate::support::{Captured, Project, wait_until};

const NOW: &str = crate::inbound::NOW;
const TEAM: &str = "team@acme.example";
const NOTIFY: &str = "\n[inbound]\nnotify = \"Success Team <team@acme.example>\"\n";

/// The `.eml` files in `outbox/` written to `to`, parsed.
fn mail_to(project: &Project, to: &str) -> Vec<Captured> {
    let mut paths: Vec<_> = std::fs::read_dir(project.path("outbox"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| Captured {
            seq: 0,
            mail_from: String::new(),
            rcpt_tos: Vec::new(),
            raw: std::fs::read_to_string(&p).expect("read an .eml"),
        })
        .filter(|m| {
            m.header("To")
                .is_some_and(|t| t.to_ascii_lowercase().contains(to))
        })
        .collect()
}

/// The Message-ID of the one message to `email` in `outbox/`.
fn sent_to(project: &Project, email: &str) -> String {
    let mail = mail_to(project, email);
    assert_eq!(mail.len(), 1, "one survey to {email}");
    mail[0].header("Message-ID").expect("a Message-ID")
}

#[test]
fn replies_and_contacts_who_left_are_told_to_the_team_once() {
    let project = Project::new();
    project.write_config(&format!("{}{NOTIFY}", crate::inbound::config()));
    project.write_file(
        "clients.csv",
        "email,name,company,churned_at\n\
         pat@client.example,Pat Smith,Globex,2025-01-10\n\
         sam@initech.example,Sam Jones,Initech,2025-01-10\n",
    );
    project
        .winback(&["import", "clients.csv", "--now", NOW])
        .assert_success();
    project
        .winback(&["run", "--once", "--now", NOW])
        .assert_success();
    let pat_survey = sent_to(&project, "pat@client.example");
    let sam_survey = sent_to(&project, "sam@initech.example");
    project.write_file(
        "returned/pat.eml",
        &reply(
            "r1@client.example",
            &pat_survey,
            "Actually, we are reviewing vendors again. Call me next week?",
        ),
    );
    project.write_file(
        "returned/sam.eml",
        &format!(
            "From: Front Desk <desk@initech.example>\r\n\
             To: success@acme.example\r\n\
             Subject: Re: May we ask why you left?\r\n\
             Message-ID: <left-1@initech.example>\r\n\
             In-Reply-To: {sam_survey}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             Sam Jones has left the company. Please update your records.\r\n"
        ),
    );
    let out = project.winback(&["inbound", "returned", "--now", LATER]);
    out.assert_success();
    // Read again before the daemon ran: still one notice each.
    project
        .winback(&["inbound", "returned", "--now", LATER])
        .assert_success();
    assert!(mail_to(&project, TEAM).is_empty(), "told only when it runs");

    project
        .winback(&["run", "--once", "--now", LATER])
        .assert_success();
    let told = mail_to(&project, TEAM);
    assert_eq!(told.len(), 2, "{told:#?}");
    let reply = told
        .iter()
        .find(|m| {
            m.header_decoded("Subject")
                .is_some_and(|s| s.starts_with("Reply from"))
        })
        .unwrap_or_else(|| panic!("no reply notice: {told:#?}"));
    assert_eq!(
        reply.header_decoded("Subject").as_deref(),
        Some("Reply from Pat Smith (Globex) <pat@client.example>")
    );
    assert!(
        reply
            .header("Reply-To")
            .is_some_and(|r| r.contains("pat@client.example")),
        "answering the notice answers Pat: {}",
        reply.raw
    );
    assert_eq!(
        reply.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    let text = reply.text().expect("a text part").replace("\r\n", "\n");
    for expected in [
        "replied to \"former-clients\", step 1",
        "    Actually, we are reviewing vendors again. Call me next week?",
        "winback inbox undo",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let left = told
        .iter()
        .find(|m| {
            m.header_decoded("Subject")
                .is_some_and(|s| s.starts_with("Contact left"))
        })
        .unwrap_or_else(|| panic!("no left-company notice: {told:#?}"));
    let text = left.text().expect("a text part");
    assert!(
        text.contains("Sam Jones (Initech) <sam@initech.example> has left their company."),
        "{text}"
    );
    assert_eq!(left.header("Reply-To"), None, "that address is gone");

    // Another run, and the reply read once more: nobody is told twice.
    project
        .winback(&["inbound", "returned/pat.eml", "--now", LATER])
        .assert_success();
    project
        .winback(&["run", "--once", "--now", LATER])
        .assert_success();
    assert_eq!(mail_to(&project, TEAM).len(), 2);
    let status = project.winback(&["status", "--now", LATER]);
    status.assert_success();
    assert!(
        status
            .stdout
            .contains("notices to the team: sent 2, waiting 0"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_survey_answer_reaches_the_team_through_the_running_daemon() {
    let mut running = Running::start_configured(NOTIFY, "warn,winback::daemon=debug");
    let survey = survey_link(&running, &running.message_to(ADA, 0));
    // Once the loop has nothing left to do, it waits (up to 30 s): the answer must wake it.
    let idle = wait_until(Duration::from_secs(20), || {
        let log = running.daemon_stderr();
        let sent = log.find("pass done");
        sent.is_some_and(|at| log[at..].contains("idle until the next thing is due"))
    });
    assert!(
        idle,
        "the loop never went idle:\n{}",
        running.daemon_stderr()
    );
    let answer = running.post_form(
        &survey,
        "reason=price&better=Cheaper+plans+for+small+teams.&would_return=maybe",
    );
    assert_eq!(answer.status, 200, "{answer:#?}");
    let mut told = Vec::new();
    let arrived = wait_until(Duration::from_secs(20), || {
        told = running
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == TEAM))
            .collect();
        !told.is_empty()
    });
    assert!(arrived, "no notice to {TEAM}:\n{}", running.daemon_stderr());
    let notice = &told[0];
    assert_eq!(
        notice.header_decoded("Subject").as_deref(),
        Some("Survey answer from Ada Lovelace (Analytical Engines Ltd) <ada@analytical.example>")
    );
    let text = notice.text().expect("a text part").replace("\r\n", "\n");
    for expected in [
        "Why they left: price",
        "Would they work with us again: maybe",
        "    Cheaper plans for small teams.",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    // The same answer posted again (a double click): no second notice.
    let again = running.post_form(
        &survey,
        "reason=price&better=Cheaper+plans+for+small+teams.&would_return=maybe",
    );
    assert_eq!(again.status, 200);
    let out = running.stop_daemon();
    out.assert_success();
    let to_team = running
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_tos.iter().any(|r| r == TEAM))
        .count();
    assert_eq!(to_team, 1);
}
