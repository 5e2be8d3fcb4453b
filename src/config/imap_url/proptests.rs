//! Property tests for `[inbound] mailboxes` urls: any text is read or refused without a
//! panic, a refusal never repeats a password written in the url, and a url written from
//! a user, a host, a port and a folder (percent-encoded) reads back as them.

use proptest::prelude::*;

use super::*;

fn url_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "imap://", "imaps://", "IMAPS://", "://", "@", ":", "[", "]", "/", "?", "#", ";",
            "%", "%4", "%40", "%zz", "::1", "993", "65536", "0", " ", "\t", "\u{0}",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z0-9.-]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in url_text()) {
        let _ = ImapMailbox::parse(&text);
    }

    #[test]
    fn a_refusal_never_repeats_the_password(
        user in "[a-z]{1,8}",
        password in "[a-zA-Z0-9/?#:@;%]{0,12}",
        tail in url_text(),
    ) {
        let secret = format!("S3CRET{password}");
        let url = format!("imaps://{user}:{secret}@{tail}");
        let error = ImapMailbox::parse(&url).expect_err("a password is refused");
        prop_assert!(!error.to_string().contains(&secret), "{}", error);
    }

    #[test]
    fn a_written_url_reads_back(
        user in "[a-zA-Z0-9._@+ %:/-]{1,16}",
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        port in 1u16..,
        folder in "[a-zA-Z0-9 ./_&-]{1,20}",
        tls in any::<bool>(),
    ) {
        let scheme = if tls { "imaps" } else { "imap" };
        let url = format!("{scheme}://{}@{host}:{port}/{}", encode(&user), encode(&folder));
        let mailbox = ImapMailbox::parse(&url).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(mailbox.user, user);
        prop_assert_eq!(mailbox.host, host);
        prop_assert_eq!(mailbox.port, port);
        prop_assert_eq!(mailbox.folder, folder);
    }
}
