//! The test IMAP server itself: Dovecot starts unprivileged on 127.0.0.1, takes messages
//! by IMAP APPEND byte for byte, and gives them back in order; and the daemon reading
//! returned mail from it.

use std::time::Duration;

use crate::inbound::{NOW, inbox, mailed, reply};
use crate::support::imap::{Dovecot, IMAP_PASSWORD};
use crate::support::wait_until;

const FIRST: &[u8] = b"From: mailer-daemon@mx.example\r\nTo: bounces@acme.example\r\nSubject: Undelivered Mail\r\nMessage-ID: <one@mx.example>\r\n\r\nThe first one.\r\n";
const SECOND: &[u8] = b"From: ann@client.example\r\nTo: success@acme.example\r\nSubject: Re: hello\r\nMessage-ID: <two@client.example>\r\n\r\nCaf\xc3\xa9 {3}\r\nA second one, with a brace.\r\n";

#[test]
fn dovecot_takes_appended_messages_and_gives_them_back() {
    let server = Dovecot::start();
    let first = server.append("INBOX", FIRST);
    let second = server.append("INBOX", SECOND);
    assert!(second > first, "UIDs grow: {first}, {second}");
    server.append("Bounces", FIRST);

    let inbox = server.messages("INBOX");
    assert_eq!(
        inbox,
        vec![(first, FIRST.to_vec()), (second, SECOND.to_vec())],
        "{}",
        server.log()
    );
    assert_eq!(server.messages("Bounces").len(), 1);
    assert!(!server.any_seen("INBOX"), "reading back marks nothing read");

    server.recreate("Bounces");
    assert!(server.messages("Bounces").is_empty());
}

/// An out-of-office note: automatic, changes nothing.
const AWAY: &str = "From: Pat Smith <pat@client.example>\r\nTo: success@acme.example\r\nSubject: Automatic reply: May we ask why you left?\r\nAuto-Submitted: auto-replied\r\nMessage-ID: <away@client.example>\r\n\r\nI am out of the office until Monday.\r\n";

/// How many inbound events `winback inbox` lists with `outcome`.
fn events(project: &crate::support::Project, outcome: &str) -> usize {
    inbox(project)
        .iter()
        .filter(|e| e["outcome"] == outcome)
        .count()
}

/// The running daemon reads `[inbound] mailboxes`: a reply appended to the mailbox stops
/// Pat's sequence; after a restart, mail appended while it was down is read, and nothing
/// read before is applied again.
#[test]
fn the_daemon_reads_a_mailbox_and_applies_each_message_once_across_a_restart() {
    let server = Dovecot::start();
    let (mut project, survey_id) = mailed();
    let config = project.read_file("winback.toml");
    project.write_config(&format!(
        "{config}\n[inbound]\nmailboxes = [\"{}\"]\n",
        server.url("INBOX")
    ));
    project.set_env("WINBACK_IMAP_PASSWORD", IMAP_PASSWORD);
    server.append(
        "INBOX",
        reply("r1@client.example", &survey_id, "We chose a cheaper tool.").as_bytes(),
    );

    let daemon = project.spawn_winback(&["--now", NOW, "run"]);
    let heard = wait_until(Duration::from_secs(30), || events(&project, "reply") == 1);
    let first = daemon.stop(Duration::from_secs(30));
    assert!(heard, "the reply was not applied: {}", first.stderr);
    let status = project.winback(&["status", "--format", "json"]);
    assert!(status.stdout.contains("replied"), "{}", status.stdout);

    server.append("INBOX", AWAY.as_bytes());
    let daemon = project.spawn_winback(&["--now", NOW, "run"]);
    let heard = wait_until(Duration::from_secs(30), || {
        events(&project, "auto_reply") == 1
    });
    let second = daemon.stop(Duration::from_secs(30));
    assert!(
        heard,
        "the out-of-office note was not read: {}",
        second.stderr
    );
    assert_eq!(events(&project, "reply"), 1, "{:?}", inbox(&project));
    assert_eq!(inbox(&project).len(), 2, "{:?}", inbox(&project));
    assert_eq!(server.messages("INBOX").len(), 2, "nothing deleted");
}
