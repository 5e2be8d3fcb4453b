//! The test IMAP server itself: Dovecot starts unprivileged on 127.0.0.1, takes messages
//! by IMAP APPEND byte for byte, and gives them back in order.

use crate::support::imap::Dovecot;

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
