//! Table tests for `[inbound]`: each key good and bad, the line and words of each
//! problem, and the defaults when the section is absent.

use std::path::Path;

use crate::config::{Config, ConfigErrors, ImapSecurity, Inbound, Problem};

/// A valid configuration whose `[inbound]` section is line 18, `section` from line 19.
fn text(section: &str) -> String {
    format!(
        r#"[smtp]
url = "file://outbox"
from = "Acme <success@acme.example>"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme"
postal_address = "1 Main Street"

[templates]
dir = "."

[[campaign]]
name = "former-clients"
send_at = "* * * * *"
[inbound]
{section}

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Hi"
"#
    )
}

fn parse(section: &str) -> Result<Config, ConfigErrors> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml");
    Config::parse(&path, &text(section))
}

fn read(section: &str) -> (Inbound, Vec<Problem>) {
    let config = parse(section).unwrap_or_else(|e| panic!("{section}: {e}"));
    (config.inbound, config.warnings)
}

/// The one problem `section` has: its line, key and message.
fn refused(section: &str) -> (Option<usize>, String, String) {
    let errors = parse(section).expect_err(section).0;
    assert_eq!(errors.len(), 1, "{section}: {errors:?}");
    let p = &errors[0];
    (p.line, p.key.clone(), p.message.clone())
}

#[test]
fn without_the_section_inbound_is_off_with_the_default_soft_bounce_rule() {
    let without = text("").replace("[inbound]\n", "");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml");
    let config = Config::parse(&path, &without).unwrap();
    assert_eq!(config.inbound, Inbound::default());
    assert_eq!(config.inbound.return_path, None);
    assert!(config.inbound.mailboxes.is_empty());
    assert_eq!(
        (
            config.inbound.soft_bounce_limit,
            config.inbound.soft_bounce_days
        ),
        (3, 14)
    );
}

#[test]
fn every_key_is_read() {
    let (inbound, warnings) = read(
        r#"return_path = "bounces@acme.example"
feedback_id = "acme-mail"
mailboxes = ["imaps://winback@imap.acme.example/INBOX", "imap://me@127.0.0.1:1143/Bounces"]
processed_folder = "winback"
notify = "Success Team <success@acme.example>"
soft_bounce_limit = 4
soft_bounce_days = 30"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        inbound.return_path.map(|a| a.to_string()).as_deref(),
        Some("bounces@acme.example")
    );
    assert_eq!(inbound.feedback_id.as_deref(), Some("acme-mail"));
    assert_eq!(inbound.mailboxes.len(), 2);
    assert_eq!(inbound.mailboxes[0].security, ImapSecurity::Tls);
    assert_eq!(
        (
            inbound.mailboxes[1].port,
            inbound.mailboxes[1].folder.as_str()
        ),
        (1143, "Bounces")
    );
    assert_eq!(
        inbound.mailboxes[1].security,
        ImapSecurity::StartTlsIfOffered
    );
    assert_eq!(inbound.processed_folder.as_deref(), Some("winback"));
    assert_eq!(
        inbound.notify.map(|m| m.email.to_string()).as_deref(),
        Some("success@acme.example")
    );
    assert_eq!(
        (inbound.soft_bounce_limit, inbound.soft_bounce_days),
        (4, 30)
    );
}

#[test]
fn a_bad_value_of_each_key_is_refused_with_its_line_key_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "return_path = \"bounces\"",
            "inbound.return_path",
            "is not an email address",
        ),
        (
            "return_path = \"Acme <bounces@acme.example>\"",
            "inbound.return_path",
            "bare address",
        ),
        (
            "return_path = \"bouncés@acme.example\"",
            "inbound.return_path",
            "plain ASCII",
        ),
        (
            "return_path = \"a-very-long-bounce-mailbox-name@acme.example\"",
            "inbound.return_path",
            "at most",
        ),
        (
            "feedback_id = \"acme:mail\"",
            "inbound.feedback_id",
            "letters, digits",
        ),
        (
            "feedback_id = \"\"",
            "inbound.feedback_id",
            "letters, digits",
        ),
        (
            "mailboxes = [\"pop3://u@host\"]",
            "inbound.mailboxes",
            "imaps://",
        ),
        (
            "mailboxes = [\"imaps://imap.acme.example/INBOX\"]",
            "inbound.mailboxes",
            "names no login",
        ),
        (
            "mailboxes = [\"imaps://u:secret@imap.acme.example/INBOX\"]",
            "inbound.mailboxes",
            "WINBACK_IMAP_PASSWORD",
        ),
        (
            "mailboxes = [\"imaps://u@h/INBOX\", \"imaps://u@H:993/INBOX\"]",
            "inbound.mailboxes",
            "listed twice",
        ),
        (
            "processed_folder = \" \"",
            "inbound.processed_folder",
            "is empty",
        ),
        (
            "notify = \"the team\"",
            "inbound.notify",
            "is not an email address",
        ),
        (
            "soft_bounce_limit = 1",
            "inbound.soft_bounce_limit",
            "between 2 and 100",
        ),
        (
            "soft_bounce_days = -1",
            "inbound.soft_bounce_days",
            "between 0 and 365",
        ),
        (
            "soft_bounce_days = 400",
            "inbound.soft_bounce_days",
            "between 0 and 365",
        ),
    ];
    for (section, key, words) in cases {
        let (line, got_key, message) = refused(section);
        assert_eq!(line, Some(19), "{section}");
        assert_eq!(&got_key, key, "{section}");
        assert!(message.contains(words), "{section}: {message}");
        assert!(!message.contains("secret"), "{section}: {message}");
    }
    // A folder that is also a mailbox read would be read again.
    let errors = parse("mailboxes = [\"imaps://u@h/Done\"]\nprocessed_folder = \"Done\"")
        .expect_err("processed folder read");
    assert_eq!(errors.0[0].key, "inbound.processed_folder");
    assert_eq!(errors.0[0].line, Some(20));
}

#[test]
fn an_unknown_key_is_refused_with_the_key_it_likely_meant() {
    let (line, key, message) = refused("return_paht = \"bounces@acme.example\"");
    assert_eq!(line, Some(19));
    assert_eq!(key, "inbound.return_paht");
    assert!(message.contains("did you mean `return_path`"), "{message}");
}

#[test]
fn a_return_path_outside_the_senders_domain_or_at_a_persons_mailbox_or_a_short_feedback_id_is_a_warning()
 {
    let (inbound, warnings) = read("return_path = \"bounces@bounce.acme.example\"");
    assert!(
        warnings.is_empty(),
        "a domain under From's aligns: {warnings:?}"
    );
    assert!(inbound.return_path.is_some());

    let (inbound, warnings) = read("return_path = \"bounces@esp.example\"");
    assert!(inbound.return_path.is_some());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        (warnings[0].line, warnings[0].key.as_str()),
        (Some(19), "inbound.return_path")
    );
    assert!(
        warnings[0].message.contains("DMARC"),
        "{}",
        warnings[0].message
    );

    let (inbound, warnings) = read("return_path = \"SUCCESS@acme.example\"");
    assert!(inbound.return_path.is_some());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .message
            .contains("bounces would land among their replies"),
        "{}",
        warnings[0].message
    );

    let (inbound, warnings) = read("feedback_id = \"acme\"");
    assert_eq!(inbound.feedback_id.as_deref(), Some("acme"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].message.contains("5 to 15"),
        "{}",
        warnings[0].message
    );
}
