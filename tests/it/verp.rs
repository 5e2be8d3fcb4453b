//! The outgoing side of returned mail, end to end through the built binary and the test
//! SMTP server: with `[inbound] return_path` each message's envelope sender (MAIL FROM)
//! is `bounces+REF@domain`, REF naming that message's stored row and Message-ID; every
//! message carries `List-Id`, and `Feedback-ID` with `[inbound] feedback_id`.

use serde_json::json;

use crate::delivery::{CAMPAIGN, COLUMNS, Env, csv};
use crate::support::Captured;

const CLIENTS: [&str; 2] = ["ana@client.example", "bo@other.example"];

fn start(inbound: &str) -> Env {
    let env = Env::start(json!({}), inbound, "0 10 * * *", &[("survey", 0)]);
    env.import(
        &csv(
            COLUMNS,
            &[
                &[CLIENTS[0], "Ana A", "A Co", "2026-01-08", "price", ""],
                &[CLIENTS[1], "Bo B", "B Co", "2026-01-08", "price", ""],
            ],
        ),
        "2026-04-01T00:00:00Z",
    );
    env
}

fn header(message: &Captured, name: &str) -> String {
    message
        .header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", message.headers()))
}

#[test]
fn the_envelope_sender_names_the_stored_message_and_the_headers_name_the_campaign() {
    let env =
        start("\n[inbound]\nreturn_path = \"bounces@acme.example\"\nfeedback_id = \"acme-mail\"\n");
    let check = env.project.winback(&["check"]);
    check.assert_success();
    assert!(
        check
            .stdout
            .contains("envelope sender bounces+REF@acme.example")
            && check
                .stdout
                .contains("Feedback-ID CAMPAIGN:step-N:acme-mail"),
        "{}",
        check.stdout
    );

    let messages = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(messages.len(), 2, "{messages:?}");
    let secret = winback::token::Secret::from_text("test-secret");
    let db = rusqlite::Connection::open(env.project.path("winback.db")).expect("the database");
    let mut rows = Vec::new();
    for message in &messages {
        let from = message.mail_from.to_lowercase();
        let reference = from
            .strip_prefix("bounces+")
            .and_then(|rest| rest.strip_suffix("@acme.example"))
            .unwrap_or_else(|| panic!("MAIL FROM {from} is not bounces+REF@acme.example"));
        assert!(
            !from.contains("client.example") && !from.contains("other.example"),
            "{from} shows the recipient's address"
        );
        let row = winback::token::verify_return(&secret, reference)
            .unwrap_or_else(|| panic!("{from} names no message"));
        let (stored_id, email): (String, String) = db
            .query_row(
                "SELECT m.message_id, c.email FROM messages m JOIN clients c ON c.id = m.client_id WHERE m.id = ?1",
                [row],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|e| panic!("row {row}: {e}"));
        assert_eq!(header(message, "Message-ID"), stored_id);
        assert_eq!(message.rcpt_tos, [email]);
        assert_eq!(
            header(message, "List-Id"),
            format!("{CAMPAIGN} <{CAMPAIGN}.acme.example>")
        );
        assert_eq!(
            header(message, "Feedback-ID"),
            format!("{CAMPAIGN}:step-1:acme-mail")
        );
        rows.push(row);
    }
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 2, "each message names its own row");
}

#[test]
fn without_a_return_path_the_envelope_sender_is_from_and_there_is_no_feedback_id() {
    let env = start("");
    let messages = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(messages.len(), 2, "{messages:?}");
    for message in &messages {
        assert_eq!(message.mail_from, "success@acme.example");
        assert_eq!(
            header(message, "List-Id"),
            format!("{CAMPAIGN} <{CAMPAIGN}.acme.example>")
        );
        assert_eq!(message.header("Feedback-ID"), None);
    }
}
