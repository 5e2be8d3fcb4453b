//! Returned mail through the real binary: `winback run --once` mails a survey to a file,
//! then `winback inbound` reads hand-written answers to it (files, a folder, standard
//! input), prints one line or JSON object per message, applies each once however often
//! it is read, refuses what is not mail without applying anything, and `winback inbox`
//! lists what came back and undoes what one did.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::support::{Output, Project};

pub(crate) const NOW: &str = "2026-06-02T14:00:00Z";
pub(crate) const LATER: &str = "2026-06-03T09:00:00Z";
const PAT: &str = "pat@client.example";

pub(crate) fn config() -> String {
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
  subject = "News"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    )
}

/// Pat imported and mailed the survey (to `outbox/`); returns the project and the
/// survey's Message-ID, angle brackets included.
pub(crate) fn mailed() -> (Project, String) {
    let project = Project::new();
    project.write_config(&config());
    project.write_file(
        "clients.csv",
        &format!("email,name,churned_at\n{PAT},Pat Smith,2025-01-10\n"),
    );
    project
        .winback(&["import", "clients.csv", "--now", NOW])
        .assert_success();
    project
        .winback(&["run", "--once", "--now", NOW])
        .assert_success();
    let sent = eml_files(&project.path("outbox"));
    assert_eq!(sent.len(), 1, "one survey mailed");
    let text = std::fs::read_to_string(&sent[0]).expect("read the sent message");
    let id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID:")
                .or_else(|| l.strip_prefix("Message-Id:"))
        })
        .expect("the sent message has a Message-ID")
        .trim()
        .to_string();
    (project, id)
}

fn eml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A human reply to our message `in_reply_to`.
pub(crate) fn reply(message_id: &str, in_reply_to: &str, body: &str) -> String {
    format!(
        "From: Pat Smith <{PAT}>\r\n\
         To: Acme Customer Success <success@acme.example>\r\n\
         Subject: Re: May we ask why you left?\r\n\
         Date: Wed, 03 Jun 2026 08:12:00 +0000\r\n\
         Message-ID: <{message_id}>\r\n\
         In-Reply-To: {in_reply_to}\r\n\
         References: {in_reply_to}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}\r\n\
         \r\n\
         > May we ask why you left?\r\n"
    )
}

/// The JSON objects `inbound --format json` printed, one a line.
#[track_caller]
fn lines(out: &Output) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[track_caller]
pub(crate) fn inbox(project: &Project) -> Vec<Value> {
    let out = project.winback(&["inbox", "--format", "json", "--now", LATER]);
    out.assert_success();
    let list: Value = serde_json::from_str(&out.stdout).expect("inbox is JSON");
    list.as_array().expect("inbox is a list").clone()
}

fn stdin_inbound(project: &Project, message: &str) -> std::process::Output {
    let mut child = project
        .command(&["inbound", "--format", "json", "--now", LATER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start winback inbound");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("write the message");
    child.wait_with_output().expect("winback inbound ends")
}

#[test]
fn inbound_reads_files_folders_and_stdin_applies_each_once_and_refuses_what_is_not_mail() {
    let (project, survey_id) = mailed();
    let file = project.write_file(
        "reply.eml",
        &reply("r1@client.example", &survey_id, "Thanks, not now."),
    );
    let file = file.to_str().expect("utf-8 path");
    let out = project.winback(&["inbound", file, "--format", "json", "--now", LATER]);
    out.assert_success();
    let first = lines(&out);
    assert_eq!(first.len(), 1, "{}", out.stdout);
    for key in ["id", "outcome", "email", "campaign", "step", "effect"] {
        assert!(first[0].get(key).is_some(), "{key} missing: {}", out.stdout);
    }
    assert_eq!(first[0]["already_seen"], Value::Bool(false));

    // Read again: the same message, recorded once.
    let out = project.winback(&["inbound", file, "--format", "json", "--now", LATER]);
    out.assert_success();
    let again = lines(&out);
    assert_eq!(again[0]["already_seen"], Value::Bool(true));
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(inbox(&project).len(), 1);

    // A folder of .eml files (the one already read among them), one line each.
    project.write_file(
        "returned/a.eml",
        &reply("r2@client.example", &survey_id, "Call me."),
    );
    std::fs::copy(file, project.path("returned/b.eml")).expect("copy");
    project.write_file("returned/notes.txt", "not a message file");
    let out = project.winback(&["inbound", "returned", "--now", LATER]);
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("already read; nothing changed"),
        "{}",
        out.stdout
    );
    assert_eq!(inbox(&project).len(), 2);

    // A path that is not there: refused before anything is read.
    project.write_file(
        "third.eml",
        &reply("r3@client.example", &survey_id, "Hello."),
    );
    let out = project.winback(&["inbound", "third.eml", "missing.eml", "--now", LATER]);
    out.assert_failure();
    assert!(
        out.stderr.contains("missing.eml: no such file"),
        "{}",
        out.stderr
    );
    assert_eq!(inbox(&project).len(), 2, "nothing applied");

    // Not a mail message: exit 1, a clear error, nothing recorded for it; the others go.
    project.write_file("empty.eml", "");
    let out = project.winback(&["inbound", "empty.eml", "third.eml", "--now", LATER]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("empty.eml: not a mail message"),
        "{}",
        out.stderr
    );
    assert_eq!(inbox(&project).len(), 3);

    // No argument: one message on standard input, as a Postfix pipe hands it over.
    let out = stdin_inbound(&project, &reply("r4@client.example", &survey_id, "Piped."));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert_eq!(inbox(&project).len(), 4);
    let out = stdin_inbound(&project, "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(inbox(&project).len(), 4);

    let out = project.winback(&["inbox", "undo", "999", "--now", LATER]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stdout.contains("no inbound message 999"),
        "{}",
        out.stdout
    );
}

/// A reply naming our Message-ID stops Pat's sequence as `replied`, once; `inbox undo`
/// resumes it.
#[test]
fn a_reply_to_our_message_stops_the_sequence_once_and_undo_resumes_it() {
    let (project, survey_id) = mailed();
    let file = project.write_file(
        "reply.eml",
        &reply(
            "r1@client.example",
            &survey_id,
            "Actually, we are reviewing vendors again. Can we talk?",
        ),
    );
    let file = file.to_str().expect("utf-8 path");
    let out = project.winback(&["inbound", file, "--format", "json", "--now", LATER]);
    out.assert_success();
    let applied = &lines(&out)[0];
    assert_eq!(applied["outcome"], "reply", "{}", out.stdout);
    assert_eq!(applied["email"], PAT);
    assert_eq!(applied["campaign"], "former-clients");
    assert_eq!(applied["step"], 1);
    assert_eq!(applied["effect"], "replied");
    let status = |project: &Project| -> Value {
        let out = project.winback(&["status", "--format", "json", "--now", LATER]);
        out.assert_success();
        serde_json::from_str::<Value>(&out.stdout).expect("status JSON")["enrollments"]
            ["former-clients"]
            .clone()
    };
    assert_eq!(status(&project)["replied"], 1);
    let out = project.winback(&["status", "--now", LATER]);
    assert!(
        out.stdout.contains("returned mail: reply 1"),
        "{}",
        out.stdout
    );

    let out = project.winback(&["inbound", file, "--now", LATER]);
    out.assert_success();
    assert!(
        out.stdout.contains("already read; nothing changed"),
        "{}",
        out.stdout
    );

    let id = applied["id"].to_string();
    let out = project.winback(&["inbox", "undo", &id, "--now", LATER]);
    out.assert_success();
    assert!(out.stdout.contains("1 sequence resumed"), "{}", out.stdout);
    assert_eq!(status(&project)["active"], 1);
    let listed = inbox(&project);
    assert!(listed[0]["undone_at"].is_string(), "{listed:?}");
}
