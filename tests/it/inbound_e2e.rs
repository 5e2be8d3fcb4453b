//! Returned mail end to end: a campaign's survey goes out through the test SMTP server
//! with a VERP return path; the bounces, reports and replies its recipients' servers and
//! people would send back are built from what that server captured and APPENDed to a
//! real Dovecot INBOX, half before and half after a daemon restart (with a second copy
//! of one already read); the running daemon applies each exactly once, and the next step
//! goes only to the people still in sequence.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::delivery::{COLUMNS, Env, csv};
use crate::support::imap::{Dovecot, IMAP_PASSWORD};
use crate::support::{Captured, Project, wait_until};

/// The survey goes out at 10:00 New York time once the quiet period is over...
const SURVEY_AT: &str = "2026-04-08T14:00:05Z";
/// ...the daemon reads returned mail that afternoon...
const READING: &str = "2026-04-08T16:00:00Z";
/// ...and the newsletter is due 30 days after the survey, just past that day's 10:00, so
/// it goes at the next one.
const NEWSLETTER_AT: &str = "2026-05-09T14:00:05Z";
/// How long one daemon may take to read what is in the mailbox.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

const POSTFIX_BOUNCE: &str = "ana.berg@northwind.example";
const QUOTED_BOUNCE: &str = "ola.nordmann@fjord.example";
const BLOCKED: &str = "sara.lind@tailspin.example";
const DELAYED: &str = "omar.haddad@litware.example";
const COMPLAINT: &str = "maria.rossi@mailprovider.example";
const AWAY: &str = "chen.wei@woodgrove.example";
const UNSUBSCRIBE: &str = "lee.kim@lucerne.example";
const REPLY: &str = "ravi.patel@fourthcoffee.example";

/// What the test knows of the survey each person was sent.
struct Sent {
    email: String,
    /// The envelope sender, `bounces+REF@acme.example`.
    verp: String,
    /// With angle brackets.
    message_id: String,
}

impl Sent {
    fn from(message: &Captured) -> Sent {
        assert_eq!(message.rcpt_tos.len(), 1, "{message:?}");
        Sent {
            email: message.rcpt_tos[0].to_lowercase(),
            verp: message.mail_from.clone(),
            message_id: message
                .header("Message-ID")
                .unwrap_or_else(|| panic!("no Message-ID in {:?}", message.headers())),
        }
    }
}

/// `text` with `\n` line ends made `\r\n`, as mail is stored.
fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// A Postfix DSN: 550 5.1.1 user unknown, delivered to the VERP address.
fn postfix_bounce(sent: &Sent) -> String {
    let Sent {
        email,
        verp,
        message_id,
    } = sent;
    format!(
        r#"Return-Path: <>
Delivered-To: {verp}
Date: Wed,  8 Apr 2026 14:00:09 +0000 (UTC)
From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4QwZ1k3Lr2z9t.1775656809/mx.acme.example"
Message-Id: <20260408140009.4QwZ1k3Lr2z9t@mx.acme.example>

This is a MIME-encapsulated message.

--4QwZ1k3Lr2z9t.1775656809/mx.acme.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.acme.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{email}>: host mx.northwind.example[198.51.100.25] said:
    550 5.1.1 <{email}>: Recipient address rejected: User
    unknown in virtual mailbox table (in reply to RCPT TO command)

--4QwZ1k3Lr2z9t.1775656809/mx.acme.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.example
X-Postfix-Queue-ID: 4QwZ1k3Lr2z9t
X-Postfix-Sender: rfc822; {verp}
Arrival-Date: Wed,  8 Apr 2026 14:00:06 +0000 (UTC)

Final-Recipient: rfc822; {email}
Original-Recipient: rfc822;{email}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.northwind.example
Diagnostic-Code: smtp; 550 5.1.1 <{email}>: Recipient
    address rejected: User unknown in virtual mailbox table

--4QwZ1k3Lr2z9t.1775656809/mx.acme.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
From: Acme Customer Success <success@acme.example>
To: <{email}>
Subject: survey
Message-ID: {message_id}

--4QwZ1k3Lr2z9t.1775656809/mx.acme.example--
"#
    )
}

/// A relay's non-delivery report sent to the human `From` address (no VERP), naming no
/// address in its own words: only the original headers it quotes tie it to our message.
fn quoted_headers_bounce(sent: &Sent) -> String {
    let Sent {
        email, message_id, ..
    } = sent;
    format!(
        r#"Return-Path: <>
Delivered-To: success@acme.example
From: Microsoft Outlook <postmaster@fjord.example>
To: <success@acme.example>
Subject: Undeliverable: survey
Date: Wed, 8 Apr 2026 14:00:12 +0000
Message-ID: <a3f1c2d4-ndr@AM0PR01MB0001.fjord.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="ndr-boundary-7731"

--ndr-boundary-7731
Content-Type: text/plain; charset="us-ascii"

Your message couldn't be delivered. The email address couldn't be found,
or is invalid.

Remote server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound;
Recipient not found by SMTP address lookup'

--ndr-boundary-7731
Content-Type: text/rfc822-headers

Received: from winback.acme.example (203.0.113.7) by AM0PR01MB0001.fjord.example
From: Acme Customer Success <success@acme.example>
To: <{email}>
Subject: survey
Message-ID: {message_id}
MIME-Version: 1.0

--ndr-boundary-7731--
"#
    )
}

/// A 550 5.7.1 reputation block: the receiver refused us, not the address.
fn blocked(sent: &Sent) -> String {
    let Sent {
        email,
        verp,
        message_id,
    } = sent;
    format!(
        r#"Return-Path: <>
Delivered-To: {verp}
From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
Date: Wed,  8 Apr 2026 14:00:11 +0000 (UTC)
Message-Id: <20260408140011.4QxC1d8Me0z2r@mx.acme.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4QxC1d8Me0z2r.1775656811/mx.acme.example"

--4QxC1d8Me0z2r.1775656811/mx.acme.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

<{email}>: host tailspin-example.mail.protection.outlook.com[52.101.68.1]
    said: 550 5.7.1 Service unavailable, Client host [203.0.113.7] blocked using
    Spamhaus. Requested action not taken: mailbox unavailable

--4QxC1d8Me0z2r.1775656811/mx.acme.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.example

Final-Recipient: rfc822; {email}
Action: failed
Status: 5.7.1
Diagnostic-Code: smtp; 550 5.7.1 Service unavailable, Client host [203.0.113.7]
    blocked using Spamhaus. Requested action not taken: mailbox unavailable

--4QxC1d8Me0z2r.1775656811/mx.acme.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Acme Customer Success <success@acme.example>
To: <{email}>
Message-ID: {message_id}

--4QxC1d8Me0z2r.1775656811/mx.acme.example--
"#
    )
}

/// `Action: delayed`: still being retried, so nothing to do.
fn delayed(sent: &Sent) -> String {
    let Sent {
        email,
        verp,
        message_id,
    } = sent;
    format!(
        r#"Return-Path: <>
Delivered-To: {verp}
From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: {verp}
Auto-Submitted: auto-replied
Date: Wed,  8 Apr 2026 18:00:11 +0000 (UTC)
Message-Id: <20260408180011.4QxD2e9Nf1z3s@mx.acme.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4QxD2e9Nf1z3s.1775671211/mx.acme.example"

--4QxD2e9Nf1z3s.1775671211/mx.acme.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #

<{email}>: connect to mx.litware.example[198.51.100.90]:25:
    Connection timed out

--4QxD2e9Nf1z3s.1775671211/mx.acme.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.example

Final-Recipient: rfc822; {email}
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.litware.example[198.51.100.90]:25:
    Connection timed out

--4QxD2e9Nf1z3s.1775671211/mx.acme.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Acme Customer Success <success@acme.example>
To: <{email}>
Message-ID: {message_id}

--4QxD2e9Nf1z3s.1775671211/mx.acme.example--
"#
    )
}

/// An ARF (RFC 5965) abuse report: the person marked our message as spam.
fn complaint(sent: &Sent) -> String {
    let Sent {
        email,
        verp,
        message_id,
    } = sent;
    format!(
        r#"Delivered-To: {verp}
From: <staff@fbl.mailprovider.example>
Date: Wed, 08 Apr 2026 15:01:22 +0000
Subject: FW: survey
To: <{verp}>
Message-ID: <fbl.20260408150122.5531@fbl.mailprovider.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP
203.0.113.7 on Wed, 08 Apr 2026 14:00:06 +0000.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{verp}>
Original-Rcpt-To: <{email}>
Arrival-Date: Wed, 08 Apr 2026 14:00:06 +0000
Source-IP: 203.0.113.7
Reported-Domain: acme.example

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: Acme Customer Success <success@acme.example>
To: <{email}>
Subject: survey
Date: Wed, 08 Apr 2026 14:00:05 +0000
Message-ID: {message_id}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

It has been a while.

--part1_13d.2e68ed54_boundary--
"#
    )
}

/// An out-of-office note, marked `Auto-Submitted`.
fn out_of_office(sent: &Sent) -> String {
    let Sent {
        email, message_id, ..
    } = sent;
    format!(
        r#"Return-Path: <>
Delivered-To: success@acme.example
From: Chen Wei <{email}>
To: Acme Customer Success <success@acme.example>
Subject: Automatic reply: survey
Date: Wed, 8 Apr 2026 14:00:13 +0000
Message-ID: <ooo.a1b2c3d4e5f6@WG1PR01MB0001.woodgrove.example>
In-Reply-To: {message_id}
References: {message_id}
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/plain; charset="us-ascii"

Thank you for your message. I am out of the office until 20 April with
limited access to email.
"#
    )
}

/// A person's own reply to our message: `body`, then the quoted survey.
fn person_reply(sent: &Sent, name: &str, id: &str, body: &str) -> String {
    let Sent {
        email, message_id, ..
    } = sent;
    format!(
        r#"Delivered-To: success@acme.example
From: "{name}" <{email}>
To: success@acme.example
Subject: Re: survey
Date: Wed, 8 Apr 2026 15:30:00 +0000
Message-ID: <{id}>
In-Reply-To: {message_id}
References: {message_id}
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"

{body}

On Wed, Apr 8, 2026 at 10:00 AM Acme <success@acme.example> wrote:
> May we ask why you left?
"#
    )
}

/// The messages the daemon printed it read (`returned mail read`), as (UID, already seen).
fn read_lines(daemon_log: &str) -> Vec<(u32, bool)> {
    daemon_log
        .lines()
        .filter(|line| line.contains("returned mail read"))
        .map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
                    .to_string()
            };
            let uid = field("uid=")
                .parse()
                .unwrap_or_else(|e| panic!("uid in {line}: {e}"));
            (uid, field("already_seen=") == "true")
        })
        .collect()
}

/// Starts the daemon, waits until it has read the message with UID `last` (UIDs are read
/// in order, so every one before it too), stops it with SIGTERM; its log.
fn read_until(project: &Project, server: &Dovecot, last: u32) -> String {
    let daemon = project.spawn_winback(&["--now", READING, "run"]);
    let read = wait_until(READ_TIMEOUT, || {
        read_lines(&daemon.stderr_so_far())
            .iter()
            .any(|(uid, _)| *uid == last)
    });
    let out = daemon.stop(READ_TIMEOUT);
    assert!(
        read,
        "the daemon did not read UID {last}:\n{}\n--- dovecot ---\n{}",
        out.stderr,
        server.log()
    );
    assert!(out.success(), "{}", out.stderr);
    out.stderr
}

/// `winback inbox --format json`: one object per message read.
fn inbox(project: &Project) -> Vec<Value> {
    let out = project.winback(&["inbox", "--format", "json", "--now", READING]);
    out.assert_success();
    let list: Value = serde_json::from_str(&out.stdout).expect("inbox is JSON");
    list.as_array().expect("inbox is a list").clone()
}

/// `winback export EMAIL`: everything stored about the person.
fn person(project: &Project, email: &str) -> Value {
    let out = project.winback(&["export", email, "--now", READING]);
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The person's suppression as (reason, source), if any.
fn suppression(person: &Value) -> Option<(String, String)> {
    let row = person.get("suppression").filter(|s| !s.is_null())?;
    Some((
        row["reason"].as_str().unwrap_or_default().to_string(),
        row["source"].as_str().unwrap_or_default().to_string(),
    ))
}

/// The state of the person's one enrollment.
fn state(person: &Value) -> String {
    let enrollments = person["enrollments"].as_array().expect("enrollments");
    assert_eq!(enrollments.len(), 1, "{person}");
    enrollments[0]["state"]
        .as_str()
        .expect("a state")
        .to_string()
}

#[test]
fn the_daemon_hears_every_answer_from_its_mailbox_once_across_a_restart() {
    let server = Dovecot::start();
    let mut env = Env::start(
        json!({}),
        "\n[inbound]\nreturn_path = \"bounces@acme.example\"\nfeedback_id = \"acme-mail\"\n",
        "0 10 * * *",
        &[("survey", 0), ("newsletter", 30)],
    );
    let people = [
        POSTFIX_BOUNCE,
        QUOTED_BOUNCE,
        BLOCKED,
        DELAYED,
        COMPLAINT,
        AWAY,
        UNSUBSCRIBE,
        REPLY,
    ];
    let rows: Vec<[&str; 6]> = people
        .iter()
        .map(|email| [*email, "Pat Doe", "Client Co", "2026-01-08", "price", ""])
        .collect();
    let rows: Vec<&[&str]> = rows.iter().map(|row| &row[..]).collect();
    env.import(&csv(COLUMNS, &rows), "2026-04-01T00:00:00Z");

    // 1. The survey goes to everyone through the SMTP server, each with its VERP sender.
    let surveys = env.pass(SURVEY_AT);
    assert_eq!(surveys.len(), people.len(), "{surveys:?}");
    let sent: BTreeMap<String, Sent> = surveys
        .iter()
        .map(Sent::from)
        .map(|s| (s.email.clone(), s))
        .collect();
    for s in sent.values() {
        assert!(
            s.verp.starts_with("bounces+") && s.verp.ends_with("@acme.example"),
            "{}",
            s.verp
        );
    }
    let to = |email: &str| &sent[email];

    // 2. What comes back, built from what went out.
    let first_half = [
        crlf(&postfix_bounce(to(POSTFIX_BOUNCE))),
        crlf(&blocked(to(BLOCKED))),
        crlf(&complaint(to(COMPLAINT))),
        crlf(&person_reply(
            to(REPLY),
            "Ravi Patel",
            "CAB7k2Pq9Z@mail.gmail.com",
            "We're reviewing vendors again, call me.\n\nRavi",
        )),
    ];
    // The same bounce handed over again by another hop: other bytes, same Message-ID.
    let again = [
        b"Received: from mx2.acme.example by imap.acme.example; Wed, 8 Apr 2026 14:05:00 +0000\r\n"
            .to_vec(),
        first_half[0].clone(),
    ]
    .concat();
    let second_half = [
        crlf(&quoted_headers_bounce(to(QUOTED_BOUNCE))),
        crlf(&delayed(to(DELAYED))),
        crlf(&out_of_office(to(AWAY))),
        crlf(&person_reply(
            to(UNSUBSCRIBE),
            "Lee Kim",
            "DB9PR01MB7777@lucerne.example",
            "Please remove me from your list.\n\nLee",
        )),
        again,
    ];

    // 3. Half before the first start; the rest, and the copy, while it is stopped.
    let config = env.project.read_file("winback.toml");
    assert!(config.contains("[inbound]\n"), "{config}");
    env.project.write_config(&config.replacen(
        "[inbound]\n",
        &format!("[inbound]\nmailboxes = [\"{}\"]\n", server.url("INBOX")),
        1,
    ));
    env.project.set_env("WINBACK_IMAP_PASSWORD", IMAP_PASSWORD);
    // Each message the daemon reads is logged: what `read_lines` counts.
    env.project
        .set_env("WINBACK_LOG", "warn,winback::daemon::mailboxes=info");
    env.project.winback(&["check"]).assert_success();

    let first_uids: Vec<u32> = first_half
        .iter()
        .map(|raw| server.append("INBOX", raw))
        .collect();
    let first_log = read_until(&env.project, &server, *first_uids.last().expect("UIDs"));
    assert_eq!(
        read_lines(&first_log),
        first_uids
            .iter()
            .map(|uid| (*uid, false))
            .collect::<Vec<_>>(),
        "each message read once, in order: {first_log}"
    );
    assert_eq!(inbox(&env.project).len(), first_half.len());

    let second_uids: Vec<u32> = second_half
        .iter()
        .map(|raw| server.append("INBOX", raw))
        .collect();
    let second_log = read_until(&env.project, &server, *second_uids.last().expect("UIDs"));
    // Only what arrived while it was down is read (nothing before the restart again),
    // and the copy is recognised as read.
    let mut expected: Vec<(u32, bool)> = second_uids.iter().map(|uid| (*uid, false)).collect();
    if let Some(copy) = expected.last_mut() {
        copy.1 = true;
    }
    assert_eq!(read_lines(&second_log), expected, "{second_log}");

    // 4. One row per distinct message, each with its outcome and effect.
    let listed = inbox(&env.project);
    let mut outcomes: BTreeMap<String, (String, String)> = BTreeMap::new();
    for row in &listed {
        let email = row["email"]
            .as_str()
            .unwrap_or_else(|| panic!("no address in {row}"))
            .to_string();
        let previous = outcomes.insert(
            email.clone(),
            (
                row["outcome"].as_str().unwrap_or_default().to_string(),
                row["effect"].as_str().unwrap_or_default().to_string(),
            ),
        );
        assert!(previous.is_none(), "{email} recorded twice: {listed:#?}");
        assert_eq!(row["campaign"], "former-clients", "{row}");
        assert_eq!(row["step"], 1, "{row}");
    }
    let expected: BTreeMap<String, (String, String)> = [
        (POSTFIX_BOUNCE, "bounce", "bounce"),
        (QUOTED_BOUNCE, "bounce", "bounce"),
        (BLOCKED, "blocked", "none"),
        (DELAYED, "delayed", "none"),
        (COMPLAINT, "complaint", "opt_out"),
        (AWAY, "auto_reply", "none"),
        (UNSUBSCRIBE, "unsubscribe", "opt_out"),
        (REPLY, "reply", "replied"),
    ]
    .into_iter()
    .map(|(email, outcome, effect)| (email.to_string(), (outcome.to_string(), effect.to_string())))
    .collect();
    assert_eq!(outcomes, expected, "{listed:#?}");

    // The effect on each person, as `winback export` shows it.
    let expected_people = [
        (POSTFIX_BOUNCE, Some(("bounce", "inbound")), "bounced"),
        (QUOTED_BOUNCE, Some(("bounce", "inbound")), "bounced"),
        (BLOCKED, None, "active"),
        (DELAYED, None, "active"),
        (COMPLAINT, Some(("opt_out", "complaint")), "opted_out"),
        (AWAY, None, "active"),
        (UNSUBSCRIBE, Some(("opt_out", "reply")), "opted_out"),
        (REPLY, None, "replied"),
    ];
    for (email, suppressed, expected_state) in expected_people {
        let stored = person(&env.project, email);
        let suppressed = suppressed.map(|(r, s)| (r.to_string(), s.to_string()));
        assert_eq!(suppression(&stored), suppressed, "{email}: {stored:#}");
        assert_eq!(state(&stored), expected_state, "{email}: {stored:#}");
    }

    // The daemons sent nothing while reading; the next step reaches only those still in
    // sequence.
    assert_eq!(env.server.messages().len(), people.len());
    let newsletters = env.pass(NEWSLETTER_AT);
    let mut reached: Vec<String> = newsletters
        .iter()
        .map(|m| m.rcpt_tos[0].to_lowercase())
        .collect();
    reached.sort();
    let mut still_in = vec![BLOCKED, DELAYED, AWAY];
    still_in.sort();
    assert_eq!(reached, still_in, "{newsletters:?}");
}
