//! Property tests for what a server sends us and what we send it: any bytes read as
//! replies end in a reply or a broken session, never a panic or a hang; well-formed
//! replies (one or several in a packet, as a pipelining server sends them) read back
//! line by line; EHLO keywords in any case, order and spelling give the same features;
//! a dot-stuffed body ends only at its terminator and unstuffs to the body sent. Bytes
//! that arrive over a socket in pieces read as they do all at once.

use proptest::prelude::*;
use tokio::net::TcpStream;

use super::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime")
}

/// A session whose server already sent `bytes` and then went silent for good.
fn session(bytes: Vec<u8>) -> Session {
    Session {
        stream: Stream::Gone,
        unread: bytes,
        features: Features::default(),
        broken: false,
    }
}

/// Every reply read from `bytes` until the session breaks.
fn replies(runtime: &tokio::runtime::Runtime, bytes: Vec<u8>) -> (Vec<Reply>, Session) {
    let mut session = session(bytes);
    let mut read = Vec::new();
    runtime.block_on(async {
        loop {
            let before = session.unread.len();
            match session.reply().await {
                Ok(reply) => {
                    assert!(
                        session.unread.len() < before,
                        "a reply that consumed nothing"
                    );
                    read.push(reply);
                }
                Err(_) => break,
            }
        }
    });
    (read, session)
}

/// How a reading ended: the replies read, then the protocol error that stopped it (None
/// when the bytes simply ran out).
type Ending = (Vec<Reply>, Option<String>);

fn ending(read: Vec<Reply>, broken: Broken) -> Ending {
    match broken {
        Broken::Protocol(reason) => (read, Some(reason)),
        Broken::Io(_) | Broken::Closed => (read, None),
    }
}

/// Every reply read from a loopback socket to which `pieces` are written one by one,
/// the connection closed after the last.
fn replies_over_a_socket(runtime: &tokio::runtime::Runtime, pieces: Vec<Vec<u8>>) -> Ending {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("an address");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            for piece in pieces {
                if socket.write_all(&piece).await.is_err() || socket.flush().await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        });
        let tcp = TcpStream::connect(address).await.expect("connect");
        let mut session = Session {
            stream: Stream::Plain(tcp),
            unread: Vec::new(),
            features: Features::default(),
            broken: false,
        };
        let mut read = Vec::new();
        let end = loop {
            match session.reply().await {
                Ok(reply) => read.push(reply),
                Err(broken) => break broken,
            }
        };
        let _ = server.await;
        ending(read, end)
    })
}

/// Bytes near SMTP replies: codes, separators, line ends and text.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "250", "250-", "250 ", "354", "220", "550 5.7.1", "421", "334 ", "\r\n", "\n",
            "\r", "-", " ", "2", "25", "999", "199",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => "[ -~]{0,12}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
}

/// One well-formed reply: a code and its lines' text (no line breaks in the text).
fn reply() -> impl Strategy<Value = Reply> {
    (
        200u16..600,
        prop::collection::vec("[^\r\n]{0,40}(\r)?", 1..5),
    )
        .prop_map(|(code, lines)| Reply { code, lines })
}

fn wire(reply: &Reply, bare_lf: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, line) in reply.lines.iter().enumerate() {
        let separator = if index + 1 == reply.lines.len() {
            ' '
        } else {
            '-'
        };
        let end = if bare_lf { "\n" } else { "\r\n" };
        // A bare "250" is a last line too, with no text.
        if line.is_empty() && separator == ' ' && index % 2 == 0 {
            out.extend(format!("{}{end}", reply.code).into_bytes());
        } else {
            out.extend(format!("{}{separator}{line}{end}", reply.code).into_bytes());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn any_bytes_end_in_replies_or_a_broken_session(
        bytes in prop_oneof![reply_bytes(), prop::collection::vec(any::<u8>(), 0..300)],
    ) {
        let (read, session) = replies(&runtime(), bytes);
        prop_assert!(session.is_broken());
        for reply in read {
            prop_assert!((200..600).contains(&reply.code), "{}", reply);
            prop_assert!(!reply.lines.is_empty());
            let _ = Features::from_ehlo(&reply);
        }
    }

    #[test]
    fn replies_read_back_line_by_line(
        sent in prop::collection::vec(reply(), 1..5),
        bare_lf in any::<bool>(),
    ) {
        let mut sent = sent;
        if bare_lf {
            // A CR at the end of a line's text is the CR of a CRLF.
            for reply in &mut sent {
                for line in &mut reply.lines {
                    line.truncate(line.trim_end_matches('\r').len());
                }
            }
        }
        let bytes: Vec<u8> = sent.iter().flat_map(|reply| wire(reply, bare_lf)).collect();
        let (read, session) = replies(&runtime(), bytes);
        // Reply text reaches us printable: control characters and bidi overrides dropped.
        for reply in &mut sent {
            for line in &mut reply.lines {
                *line = crate::domain::model::printable(line).into_owned();
            }
        }
        prop_assert_eq!(read, sent);
        prop_assert!(session.unread.is_empty());
    }

    #[test]
    fn ehlo_keywords_read_the_same_in_any_case_order_and_spelling(
        offered in any::<(bool, bool, bool, bool)>(),
        mechanisms in prop::collection::vec(
            prop::sample::select(vec!["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "plain", "Login"]),
            0..5,
        ),
        old_spelling in any::<bool>(),
        others in prop::collection::vec("[A-Z0-9-]{1,10}( [ -~]{0,10})?", 0..4),
        order in any::<prop::sample::Index>(),
        lower in any::<bool>(),
        greeting in "[ -~]{0,30}",
    ) {
        let (pipelining, starttls, eight_bit_mime, smtp_utf8) = offered;
        let mut lines: Vec<String> = others
            .into_iter()
            .filter(|line| {
                let keyword = line.split(' ').next().unwrap_or("");
                !["PIPELINING", "STARTTLS", "8BITMIME", "SMTPUTF8", "AUTH"].contains(&keyword)
            })
            .collect();
        for (on, keyword) in [
            (pipelining, "PIPELINING"),
            (starttls, "STARTTLS"),
            (eight_bit_mime, "8BITMIME"),
            (smtp_utf8, "SMTPUTF8"),
        ] {
            if on {
                lines.push(if lower { keyword.to_ascii_lowercase() } else { keyword.to_owned() });
            }
        }
        let turn = order.index(lines.len() + 1);
        lines.rotate_left(turn);
        if !mechanisms.is_empty() {
            let separator = if old_spelling { "=" } else { " " };
            lines.push(format!("AUTH{separator}{}", mechanisms.join(" ")));
        }
        lines.insert(0, greeting);
        let features = Features::from_ehlo(&Reply { code: 250, lines });
        prop_assert_eq!(
            (features.pipelining, features.starttls, features.eight_bit_mime, features.smtp_utf8),
            offered
        );
        let mut expected = Vec::new();
        for mechanism in &mechanisms {
            let mechanism = match mechanism.to_ascii_uppercase().as_str() {
                "PLAIN" => Mechanism::Plain,
                "LOGIN" => Mechanism::Login,
                _ => continue,
            };
            if !expected.contains(&mechanism) {
                expected.push(mechanism);
            }
        }
        prop_assert_eq!(features.auth, expected);
    }

    #[test]
    fn a_stuffed_body_ends_only_at_its_terminator_and_unstuffs_to_the_body(
        body in prop_oneof![
            prop::collection::vec(prop::sample::select(b".\r\na ".to_vec()), 0..40),
            prop::collection::vec(any::<u8>(), 0..60),
        ],
    ) {
        let stuffed = dot_stuffed(&body);
        prop_assert!(stuffed.ends_with(b".\r\n"));
        // The server reads CRLF lines; the data ends at the first line that is ".".
        let lines: Vec<&[u8]> = stuffed.split(|&b| b == b'\n').collect();
        let end = lines.iter().position(|line| *line == b".\r" || *line == b".");
        prop_assert_eq!(end, Some(lines.len() - 2), "{:?}", String::from_utf8_lossy(&stuffed));
        prop_assert!(stuffed.windows(2).all(|pair| pair[1] != b'\n' || pair[0] == b'\r'));
        // Unstuffed, it is the body with every line ended by CRLF.
        let content = &stuffed[..stuffed.len() - 3];
        let mut unstuffed = Vec::new();
        let mut at_line_start = true;
        for &byte in content {
            if !(at_line_start && byte == b'.') {
                unstuffed.push(byte);
            }
            at_line_start = byte == b'\n';
        }
        let mut expected = Vec::new();
        let mut previous = 0u8;
        for &byte in &body {
            if byte == b'\n' && previous != b'\r' {
                expected.push(b'\r');
            }
            expected.push(byte);
            previous = byte;
        }
        if expected.ends_with(b"\r") {
            expected.push(b'\n');
        } else if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(unstuffed, expected);
    }
}

proptest! {
    // Each case opens a loopback connection: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bytes_read_in_pieces_over_a_socket_read_as_they_do_at_once(
        bytes in prop_oneof![
            reply_bytes(),
            prop::collection::vec(reply(), 1..4)
                .prop_map(|sent| sent.iter().flat_map(|reply| wire(reply, false)).collect()),
        ],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let runtime = runtime();
        let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.dedup();
        let pieces: Vec<Vec<u8>> = at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect();
        let at_once = {
            let mut session = session(bytes.clone());
            let mut read = Vec::new();
            let end = runtime.block_on(async {
                loop {
                    match session.reply().await {
                        Ok(reply) => read.push(reply),
                        Err(broken) => break broken,
                    }
                }
            });
            ending(read, end)
        };
        prop_assert_eq!(replies_over_a_socket(&runtime, pieces), at_once);
    }
}
