//! The SMTP mailer against a server in the test (plain, STARTTLS and implicit TLS, with
//! and without PIPELINING, refusing or hanging up at each stage), and the sorting of
//! its failures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use lettre::Address;

use super::super::{Envelope, Mailer, OutgoingMessage, SendError, SmtpOptions, from_endpoint};
use super::{Security, Server, SmtpMailer, Tls};
use crate::config::{Endpoint, SmtpServer};

const TEST_CA: &str = include_str!("../../../tests/tls/ca.pem");
const SERVER_CERTIFICATE: &str = include_str!("../../../tests/tls/server.pem");
const SERVER_KEY: &str = include_str!("../../../tests/tls/server.key");

/// How the in-test server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Accept,
    RcptTempFail,
    RcptPermFail,
    /// A relay that will not take mail from us for anyone (no AUTH, or our IP listed).
    RcptRelayDenied,
    SilentOnRcpt,
    CloseOnMail,
    SilentAfterBody,
    CloseAfterBody,
    /// Accepts each message, then hangs up (a server that dropped the idle session).
    CloseAfterEachMessage,
    /// Accepts everything but does not offer PIPELINING, and refuses a command sent
    /// before the previous one was answered.
    NoPipelining,
    /// Refuses the recipient, then takes DATA anyway (RFC 2920 says it should not).
    DataDespiteRefusal,
    /// Accepts everything but offers no SMTPUTF8.
    NoSmtpUtf8,
    /// Answers MAIL FROM with 421 and hangs up (too many messages on this session, or
    /// our IP throttled).
    MailRefusedThenClose,
    /// Offers STARTTLS, agrees to it, and hangs up on the first TLS bytes.
    StartTls,
    /// Refuses the body as aiosmtpd does a line over 1000 octets.
    BodyLineTooLong,
    /// Agrees to STARTTLS with a second reply in the same packet, as an attacker who
    /// injects plaintext before the handshake would.
    StartTlsInjection,
}

struct TestServer {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    messages: Arc<AtomicUsize>,
    /// Transactions whose RCPT TO came in the same read as their MAIL FROM.
    pipelined: Arc<AtomicUsize>,
    /// TLS handshakes begun after STARTTLS.
    tls_hellos: Arc<AtomicUsize>,
    auth_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    async fn start(behaviour: Behaviour) -> TestServer {
        TestServer::serve(behaviour, None).await
    }

    /// A server that speaks TLS from the first byte, with the test certificate for
    /// 127.0.0.1 (`tests/tls/`, issued by the test CA there).
    async fn start_implicit_tls() -> TestServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = vec![
            CertificateDer::from_pem_slice(SERVER_CERTIFICATE.as_bytes()).expect("certificate"),
        ];
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        TestServer::serve(Behaviour::Accept, Some(acceptor)).await
    }

    async fn serve(behaviour: Behaviour, tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = TestServer {
            address: listener.local_addr().expect("local address"),
            connections: Arc::default(),
            messages: Arc::default(),
            pipelined: Arc::default(),
            tls_hellos: Arc::default(),
            auth_lines: Arc::default(),
        };
        let (connections, counters, auth_lines) = (
            Arc::clone(&server.connections),
            (
                Arc::clone(&server.messages),
                Arc::clone(&server.pipelined),
                Arc::clone(&server.tls_hellos),
            ),
            Arc::clone(&server.auth_lines),
        );
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let (counters, auth_lines) = (counters.clone(), Arc::clone(&auth_lines));
                let tls = tls.clone();
                tokio::spawn(async move {
                    let counts = (&*counters.0, &*counters.1, &*counters.2);
                    if socket.set_nodelay(true).is_err() {
                        return;
                    }
                    let _ = match &tls {
                        // Implicit TLS (smtps://): the handshake comes first.
                        Some(acceptor) => match acceptor.accept(socket).await {
                            Ok(secured) => session(secured, behaviour, counts, &auth_lines).await,
                            Err(_) => return,
                        },
                        None => session(socket, behaviour, counts, &auth_lines).await,
                    };
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn messages(&self) -> usize {
        self.messages.load(Ordering::SeqCst)
    }

    fn pipelined(&self) -> usize {
        self.pipelined.load(Ordering::SeqCst)
    }

    fn tls_hellos(&self) -> usize {
        self.tls_hellos.load(Ordering::SeqCst)
    }
}

async fn session<S>(
    stream: S,
    behaviour: Behaviour,
    (messages, pipelined, tls_hellos): (&AtomicUsize, &AtomicUsize, &AtomicUsize),
    auth_lines: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    write.write_all(b"220 test.example ESMTP\r\n").await?;
    let mut line = Vec::new();
    let mut recipients = 0;
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = String::from_utf8_lossy(&line[..line.len().min(4)]).to_ascii_uppercase();
        let ahead = !read.buffer().is_empty();
        if verb == "MAIL" && ahead {
            pipelined.fetch_add(1, Ordering::SeqCst);
        }
        if behaviour == Behaviour::NoPipelining && ahead {
            write
                .write_all(b"554 5.5.0 PIPELINING was not offered\r\n")
                .await?;
            return Ok(());
        }
        let reply: &[u8] = match (verb.as_str(), behaviour) {
            ("EHLO", Behaviour::NoSmtpUtf8) => {
                b"250-test.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            }
            ("EHLO", Behaviour::NoPipelining) => {
                b"250-test.example\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n"
            }
            ("EHLO", Behaviour::StartTls | Behaviour::StartTlsInjection) => {
                b"250-test.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
            }
            ("STAR", Behaviour::StartTls | Behaviour::StartTlsInjection) => {
                write
                    .write_all(if behaviour == Behaviour::StartTls {
                        b"220 2.0.0 Ready to start TLS\r\n"
                    } else {
                        b"220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n"
                    })
                    .await?;
                let mut first = [0u8; 1];
                // 0x16: a TLS handshake record, the ClientHello.
                if read.read_exact(&mut first).await.is_ok() && first[0] == 0x16 {
                    tls_hellos.fetch_add(1, Ordering::SeqCst);
                }
                return Ok(());
            }
            ("EHLO", _) => {
                b"250-test.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n"
            }
            ("AUTH", _) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                auth_lines.lock().expect("auth log").push(text);
                b"235 2.7.0 Authentication successful\r\n"
            }
            ("MAIL", Behaviour::CloseOnMail) => return Ok(()),
            ("MAIL", Behaviour::MailRefusedThenClose) => {
                write
                    .write_all(b"421 4.7.0 Too many messages, closing connection\r\n")
                    .await?;
                return Ok(());
            }
            ("MAIL", _) => {
                recipients = 0;
                b"250 2.1.0 Ok\r\n"
            }
            ("RCPT", Behaviour::RcptTempFail) => b"451 4.7.1 Greylisted, try again later\r\n",
            ("RCPT", Behaviour::RcptPermFail | Behaviour::DataDespiteRefusal) => {
                b"550 5.1.1 <x>: Recipient address rejected\r\n"
            }
            ("RCPT", Behaviour::RcptRelayDenied) => {
                b"554 5.7.1 <ada@client.example>: Relay access denied\r\n"
            }
            ("RCPT", Behaviour::SilentOnRcpt) => std::future::pending().await,
            ("RCPT", _) => {
                recipients += 1;
                b"250 2.1.5 Ok\r\n"
            }
            ("DATA", _) if recipients == 0 && behaviour != Behaviour::DataDespiteRefusal => {
                b"554 5.5.1 Error: no valid recipients\r\n"
            }
            ("DATA", _) => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                if recipients == 0 {
                    write
                        .write_all(b"554 5.5.1 Error: no valid recipients\r\n")
                        .await?;
                    continue;
                }
                let number = messages.fetch_add(1, Ordering::SeqCst) + 1;
                match behaviour {
                    Behaviour::SilentAfterBody => std::future::pending().await,
                    Behaviour::CloseAfterBody => return Ok(()),
                    Behaviour::BodyLineTooLong => {
                        write
                            .write_all(b"500 Line too long (see RFC5321 4.5.3.1.6)\r\n")
                            .await?;
                        continue;
                    }
                    _ => {}
                }
                let reply = format!("250 2.0.0 Ok: queued as {number}\r\n");
                write.write_all(reply.as_bytes()).await?;
                if behaviour == Behaviour::CloseAfterEachMessage {
                    return Ok(());
                }
                continue;
            }
            ("RSET", _) | ("NOOP", _) => {
                recipients = 0;
                b"250 2.0.0 Ok\r\n"
            }
            ("QUIT", _) => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        write.write_all(reply).await?;
    }
}

fn options(timeout_ms: u64, connections: usize) -> SmtpOptions {
    SmtpOptions {
        connections,
        timeout: Duration::from_millis(timeout_ms),
        password: None,
        hello_name: Some("winback.test".to_owned()),
    }
}

fn mailer(url: &str, options: SmtpOptions) -> Arc<dyn Mailer> {
    let endpoint = match SmtpServer::parse(url) {
        Ok(server) => Endpoint::Smtp(server),
        Err(error) => panic!("{error}"),
    };
    match from_endpoint(&endpoint, options) {
        Ok(mailer) => mailer,
        Err(error) => panic!("{url}: {error}"),
    }
}

fn envelope(from: &str, to: &str) -> Envelope {
    Envelope {
        from: Some(from.parse().expect("a valid sender")),
        to: to.parse().expect("a valid recipient"),
    }
}

fn message(number: usize) -> OutgoingMessage {
    let mut body = format!(
        "Message-ID: <{number}@acme.example>\r\nFrom: Acme <success@acme.example>\r\n\
         To: ada@client.example\r\nSubject: May we ask why you left?\r\n\r\n"
    );
    // lettre's codec dot-stuffs this line; the server counts messages at ".\r\n".
    body.push_str(".a line starting with a dot\r\n");
    while body.len() < 3000 {
        body.push_str("Some words about what we've been working on, plainly put.\r\n");
    }
    OutgoingMessage {
        message_id: format!("<{number}@acme.example>"),
        envelope: envelope("bounces@acme.example", "ada@client.example"),
        bytes: body.into_bytes(),
    }
}

#[tokio::test]
async fn delivers_and_reuses_one_connection() {
    let server = TestServer::start(Behaviour::Accept).await;
    let mailer = mailer(&server.url(), options(5_000, 4));
    let first = mailer.send(&message(1)).await;
    let second = mailer.send(&message(2)).await;
    assert_eq!(
        first.map(|d| d.reply).as_deref(),
        Ok("250 2.0.0 Ok: queued as 1")
    );
    assert_eq!(
        second.map(|d| d.reply).as_deref(),
        Ok("250 2.0.0 Ok: queued as 2")
    );
    assert_eq!((server.connections(), server.messages()), (1, 2));
}

#[tokio::test]
async fn never_opens_more_than_the_configured_connections() {
    let server = TestServer::start(Behaviour::Accept).await;
    let mailer = mailer(&server.url(), options(5_000, 2));
    let sends = (0..20).map(|number| {
        let mailer = Arc::clone(&mailer);
        tokio::spawn(async move { mailer.send(&message(number)).await })
    });
    for send in sends.collect::<Vec<_>>() {
        assert!(matches!(send.await, Ok(Ok(_))));
    }
    assert_eq!(server.messages(), 20);
    assert!(
        server.connections() <= 2,
        "{} connections",
        server.connections()
    );
}

#[tokio::test]
async fn rcpt_4xx_is_transient_and_the_connection_survives() {
    let server = TestServer::start(Behaviour::RcptTempFail).await;
    let mailer = mailer(&server.url(), options(5_000, 4));
    for number in 0..2 {
        match mailer.send(&message(number)).await {
            Err(SendError::Transient(reason)) => {
                assert!(
                    reason.contains("RCPT TO") && reason.contains("451 4.7.1"),
                    "{reason}"
                )
            }
            other => panic!("expected Transient, got {other:?}"),
        }
    }
    assert_eq!((server.connections(), server.messages()), (1, 0));
}

#[tokio::test]
async fn with_pipelining_the_envelope_goes_in_one_write() {
    let server = TestServer::start(Behaviour::Accept).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    for number in 1..=3 {
        assert!(mailer.send(&message(number)).await.is_ok());
    }
    assert_eq!(
        (server.connections(), server.messages(), server.pipelined()),
        (1, 3, 3)
    );
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let server = TestServer::start(Behaviour::NoPipelining).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    for number in 1..=3 {
        let sent = mailer.send(&message(number)).await;
        assert_eq!(
            sent.map(|d| d.reply),
            Ok(format!("250 2.0.0 Ok: queued as {number}"))
        );
    }
    assert_eq!(
        (server.connections(), server.messages(), server.pipelined()),
        (1, 3, 0)
    );
}

#[tokio::test]
async fn data_taken_after_a_refused_recipient_is_ended_empty_and_the_session_kept() {
    let server = TestServer::start(Behaviour::DataDespiteRefusal).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    for number in 1..=2 {
        match mailer.send(&message(number)).await {
            Err(SendError::Permanent(reason)) => {
                assert!(
                    reason.contains("RCPT TO") && reason.contains("550 5.1.1"),
                    "{reason}"
                )
            }
            other => panic!("expected Permanent, got {other:?}"),
        }
    }
    assert_eq!((server.connections(), server.messages()), (1, 0));
}

#[tokio::test]
async fn smtps_checks_the_certificate_then_sends_over_tls() {
    let server = TestServer::start_implicit_tls().await;
    let tls_mailer = |tls: Option<Tls>| {
        let smtps = Server {
            host: "127.0.0.1".to_owned(),
            port: server.address.port(),
            security: Security::ImplicitTls,
            user: None,
        };
        let mut mailer = SmtpMailer::new(smtps, None, 1, Duration::from_secs(5), None)
            .unwrap_or_else(|error| panic!("{error}"));
        if let Some(tls) = tls {
            mailer.tls = tls;
        }
        mailer
    };
    // Trusting the test CA: the handshake, EHLO and the transaction all go over TLS.
    let trusting = tls_mailer(Some(Tls::trusting("127.0.0.1", TEST_CA)));
    let sent = trusting.deliver(&message(1)).await;
    assert_eq!(
        sent.map(|d| d.reply).as_deref(),
        Ok("250 2.0.0 Ok: queued as 1")
    );
    // With the system's roots only, the certificate is refused: ours to fix.
    match tls_mailer(None).deliver(&message(2)).await {
        Err(SendError::Setup(reason)) => {
            assert!(reason.contains("TLS handshake failed"), "{reason}")
        }
        other => panic!("expected Setup, got {other:?}"),
    }
    assert_eq!(server.messages(), 1);
}

#[tokio::test]
async fn starttls_when_offered_and_a_failed_handshake_is_ours_to_fix() {
    let server = TestServer::start(Behaviour::StartTls).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    match mailer.send(&message(1)).await {
        Err(SendError::Setup(reason)) => {
            assert!(
                reason.contains("STARTTLS") && reason.contains("TLS handshake failed"),
                "{reason}"
            )
        }
        other => panic!("expected Setup, got {other:?}"),
    }
    assert_eq!((server.tls_hellos(), server.messages()), (1, 0));
}

#[tokio::test]
async fn plaintext_injected_after_starttls_is_refused_before_any_handshake() {
    let server = TestServer::start(Behaviour::StartTlsInjection).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    match mailer.send(&message(1)).await {
        Err(SendError::Setup(reason)) => {
            assert!(
                reason.contains("sent data after agreeing to STARTTLS"),
                "{reason}"
            )
        }
        other => panic!("expected Setup, got {other:?}"),
    }
    assert_eq!((server.tls_hellos(), server.messages()), (0, 0));
}

#[tokio::test]
async fn a_refusal_then_a_hang_up_is_that_refusal() {
    // Pipelined: RCPT TO and DATA were already sent when MAIL FROM got 421; their
    // replies never come. The 421 at MAIL FROM decides: about us, not the recipient.
    let server = TestServer::start(Behaviour::MailRefusedThenClose).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    match mailer.send(&message(1)).await {
        Err(SendError::Setup(reason)) => {
            assert!(
                reason.contains("MAIL FROM") && reason.contains("421 4.7.0"),
                "{reason}"
            )
        }
        other => panic!("expected Setup, got {other:?}"),
    }
    assert_eq!(server.messages(), 0);
}

#[tokio::test]
async fn a_non_ascii_address_this_server_cannot_carry_is_not_a_bounce() {
    let server = TestServer::start(Behaviour::NoSmtpUtf8).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    let mut unicode = message(1);
    unicode.envelope.to = "jörg@client.example".parse().expect("a valid address");
    match mailer.send(&unicode).await {
        Err(SendError::Unsupported(reason)) => assert!(reason.contains("SMTPUTF8"), "{reason}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Nothing was said to the server about it, and the session serves the next one.
    assert!(mailer.send(&message(2)).await.is_ok());
    assert_eq!((server.connections(), server.messages()), (1, 1));
}

#[tokio::test]
async fn a_5xx_about_our_message_is_not_the_recipients_bounce() {
    let server = TestServer::start(Behaviour::BodyLineTooLong).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    match mailer.send(&message(1)).await {
        Err(SendError::Unsupported(reason)) => assert!(
            reason.contains("500 Line too long") && reason.contains("not the address"),
            "{reason}"
        ),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn which_5xx_replies_are_about_our_message() {
    use super::failure::about_our_message;
    for (code, text) in [
        (500, "Line too long (see RFC5321 4.5.3.1.6)"),
        (500, "5.5.2 Syntax error, command unrecognized"),
        (501, "Syntax error in parameters or arguments"),
        (554, "5.6.0 Message content rejected: malformed header"),
        (550, "5.5.2 line too long"),
        (552, "5.3.4 Line too long"),
        (550, "5.6.1 Media not supported"),
    ] {
        assert!(about_our_message(code, text), "{code} {text}");
    }
    for (code, text) in [
        (550, "5.1.1 <x>: Recipient address rejected"),
        (501, "5.1.3 Bad recipient address syntax"),
        (550, "No such user here"),
        (553, "mailbox name not allowed"),
        (552, "5.2.2 Mailbox full"),
    ] {
        assert!(!about_our_message(code, text), "{code} {text}");
    }
}

#[tokio::test]
async fn rcpt_5xx_is_permanent() {
    let server = TestServer::start(Behaviour::RcptPermFail).await;
    let mailer = mailer(&server.url(), options(5_000, 4));
    match mailer.send(&message(1)).await {
        Err(SendError::Permanent(reason)) => assert!(reason.contains("550 5.1.1"), "{reason}"),
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[test]
fn a_policy_refusal_of_one_recipient_is_blocked_not_our_setup() {
    let server = Server {
        host: "mx.example".to_owned(),
        port: 25,
        security: Security::StartTlsWhenOffered,
        user: None,
    };
    use super::failure::{Cause, Failure, Stage};
    let classify = |stage, code, text: &str| {
        let cause = Cause::Reply {
            code,
            text: text.to_owned(),
        };
        Failure::new(stage, cause).classify(&server, stage == Stage::Body)
    };
    for (stage, code, text) in [
        (Stage::RcptTo, 554, "5.7.1 Message refused by policy"),
        (
            Stage::RcptTo,
            550,
            "5.7.1 Recipient address rejected: blocked",
        ),
        (Stage::Body, 554, "5.7.1 Message rejected as spam"),
    ] {
        let outcome = classify(stage, code, text);
        assert!(
            matches!(outcome, SendError::Blocked(_)),
            "{text}: {outcome:?}"
        );
    }
    for (stage, code, text) in [
        (Stage::MailFrom, 554, "5.7.1 Sender blocked"),
        (
            Stage::RcptTo,
            554,
            "5.7.1 <a@b.example>: Relay access denied",
        ),
        (Stage::RcptTo, 530, "5.7.0 Authentication required"),
    ] {
        let outcome = classify(stage, code, text);
        assert!(
            matches!(outcome, SendError::Setup(_)),
            "{text}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_relay_refusing_us_at_rcpt_is_not_the_recipients_bounce() {
    let server = TestServer::start(Behaviour::RcptRelayDenied).await;
    let mailer = mailer(&server.url(), options(5_000, 4));
    match mailer.send(&message(1)).await {
        Err(SendError::Setup(reason)) => assert!(reason.contains("554 5.7.1"), "{reason}"),
        other => panic!("expected Setup, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_we_cannot_reach_is_ours_to_fix_not_the_recipients() {
    let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = unused.local_addr().expect("local address");
    drop(unused);
    let mailer_ = mailer(&format!("smtp://{address}"), options(5_000, 4));
    let outcome = mailer_.send(&message(1)).await;
    assert!(matches!(outcome, Err(SendError::Setup(_))), "{outcome:?}");

    let server = TestServer::start(Behaviour::CloseOnMail).await;
    let mailer_ = mailer(&server.url(), options(5_000, 4));
    let outcome = mailer_.send(&message(1)).await;
    assert!(matches!(outcome, Err(SendError::Setup(_))), "{outcome:?}");
}

#[tokio::test]
async fn silence_after_the_body_is_uncertain() {
    let server = TestServer::start(Behaviour::SilentAfterBody).await;
    let mailer = mailer(&server.url(), options(300, 4));
    let outcome = mailer.send(&message(1)).await;
    assert!(
        matches!(outcome, Err(SendError::Uncertain(_))),
        "{outcome:?}"
    );
    assert_eq!(server.messages(), 1);
}

#[tokio::test]
async fn a_hang_up_after_the_body_is_uncertain() {
    let server = TestServer::start(Behaviour::CloseAfterBody).await;
    let mailer = mailer(&server.url(), options(5_000, 4));
    let outcome = mailer.send(&message(1)).await;
    assert!(
        matches!(outcome, Err(SendError::Uncertain(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn failures_before_the_body_are_transient() {
    // (Failures before RCPT TO are about our server: see the test below.)
    let server = TestServer::start(Behaviour::SilentOnRcpt).await;
    let mailer_ = mailer(&server.url(), options(300, 4));
    match mailer_.send(&message(1)).await {
        Err(SendError::Transient(reason)) => {
            assert!(
                reason.contains("RCPT TO") && reason.contains("timed out"),
                "{reason}"
            )
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_idle_connection_is_replaced_without_failing_the_send() {
    let server = TestServer::start(Behaviour::CloseAfterEachMessage).await;
    let mailer = mailer(&server.url(), options(5_000, 1));
    for number in 1..=3 {
        let outcome = mailer.send(&message(number)).await;
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert_eq!((server.connections(), server.messages()), (3, 3));
}

#[tokio::test]
async fn invalid_addresses_are_permanent_and_never_connect() {
    // The envelope holds parsed addresses: a recipient that does not parse cannot be
    // put in a message at all (the builder holds such a message), so it can never
    // reach a server, and nothing connects for it.
    let server = TestServer::start(Behaviour::Accept).await;
    let _mailer = mailer(&server.url(), options(5_000, 4));
    for bad in [
        "not an address\r\nRSET",
        "ada@client.example>\r\nRCPT TO:<x@y",
    ] {
        assert!(bad.parse::<Address>().is_err(), "{bad:?}");
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn authenticates_with_the_url_user_and_the_password() {
    let server = TestServer::start(Behaviour::Accept).await;
    let url = format!("smtp://bot@{}", server.address);
    let options = SmtpOptions {
        password: Some("secret".to_owned()),
        ..options(5_000, 4)
    };
    // Plain text is allowed only because the server is on the loopback interface.
    let outcome = mailer(&url, options).send(&message(1)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    let auth_lines = server.auth_lines.lock().expect("auth log").clone();
    assert_eq!(auth_lines, ["AUTH PLAIN AGJvdABzZWNyZXQ="]);
}

/// By hand: `cargo test --release -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, run by hand"]
async fn throughput() {
    const MESSAGES: usize = 5_000;
    const CONNECTIONS: usize = 4;
    let server = TestServer::start(Behaviour::Accept).await;
    let mailer = mailer(&server.url(), options(10_000, CONNECTIONS));
    let next = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (mailer, next) = (Arc::clone(&mailer), Arc::clone(&next));
            tokio::spawn(async move {
                let mut failures = 0;
                loop {
                    let number = next.fetch_add(1, Ordering::SeqCst);
                    if number >= MESSAGES {
                        return failures;
                    }
                    if mailer.send(&message(number)).await.is_err() {
                        failures += 1;
                    }
                }
            })
        })
        .collect();
    let mut failures = 0;
    for worker in workers {
        failures += worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    println!(
        "{MESSAGES} messages of ~3 KB over {CONNECTIONS} connections ({} opened) in {:.2?}: \
         {:.0} messages/s, {failures} failures",
        server.connections(),
        elapsed,
        MESSAGES as f64 / elapsed.as_secs_f64(),
    );
    assert_eq!(server.messages(), MESSAGES);
}
