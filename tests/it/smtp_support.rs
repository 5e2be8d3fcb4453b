//! Tests of the test support itself: the SMTP server (spoken to by hand over a plain
//! `TcpStream`, so a bug in winback's mailer cannot hide a bug here), its rules, and the
//! `Project` and polling helpers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Project, SmtpServer, free_port, python, wait_until};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A minimal SMTP client: one command, one (possibly multi-line) reply.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and reads the 220 greeting, then says EHLO.
    fn connect(port: u16) -> Client {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).expect("connect to the test SMTP server");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        assert_eq!(client.reply().0, 220, "greeting");
        assert_eq!(client.command("EHLO client.test").0, 250, "EHLO");
        client
    }

    fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        self.writer.flush().unwrap();
    }

    /// Reads one reply: its code and its text lines joined by newlines.
    fn reply(&mut self) -> (u16, String) {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .expect("read an SMTP reply");
            assert!(
                read > 0,
                "the server closed the connection; replies so far: {text:?}"
            );
            let line = line.trim_end();
            assert!(line.len() >= 3, "short SMTP reply line: {line:?}");
            let code: u16 = line[..3].parse().expect("an SMTP reply code");
            text.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, text.join("\n"));
            }
        }
    }

    fn command(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    /// Sends a message body after a 354 and returns the final reply to DATA.
    fn data(&mut self, message: &str) -> (u16, String) {
        assert_eq!(self.command("DATA").0, 354, "DATA");
        // The CRLF that ends the last line is the first half of the end marker.
        let message = message.strip_suffix("\r\n").unwrap_or(message);
        for line in message.split("\r\n") {
            // Dot-stuffing (RFC 5321 4.5.2).
            if line.starts_with('.') {
                self.send(&format!(".{line}"));
            } else {
                self.send(line);
            }
        }
        self.command(".")
    }

    fn quit(mut self) {
        assert_eq!(self.command("QUIT").0, 221, "QUIT");
    }
}

fn message(subject: &str) -> String {
    format!(
        "From: sender@acme.example\r\nTo: someone@client.example\r\nSubject: {subject}\r\n\
         \r\nHello.\r\n.A line that starts with a dot.\r\n"
    )
}

#[test]
fn python_with_aiosmtpd_is_found() {
    let python = python();
    assert!(!python.as_os_str().is_empty());
}

#[test]
fn server_accepts_and_saves_a_message() {
    let server = SmtpServer::start(json!({}));
    assert_eq!(server.url(), format!("smtp://127.0.0.1:{}", server.port()));

    let mut client = Client::connect(server.port());
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<someone@client.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<other@client.example>").0, 250);
    assert_eq!(client.data(&message("first")).0, 250);
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<third@client.example>").0, 250);
    assert_eq!(client.data(&message("second")).0, 250);
    client.quit();

    let messages = server.wait_for(2, ARRIVAL_TIMEOUT);
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    assert_eq!(first.seq, 1);
    assert_eq!(first.mail_from, "sender@acme.example");
    assert_eq!(
        first.rcpt_tos,
        vec!["someone@client.example", "other@client.example"]
    );
    assert_eq!(first.header("subject").as_deref(), Some("first"));
    assert_eq!(
        first.body(),
        "Hello.\r\n.A line that starts with a dot.\r\n"
    );
    assert!(
        first.raw.starts_with("From: sender@acme.example\r\n"),
        "{:?}",
        first.raw
    );
    assert_eq!(messages[1].seq, 2);
    assert_eq!(messages[1].rcpt_tos, vec!["third@client.example"]);
    assert_eq!(messages[1].header("Subject").as_deref(), Some("second"));
    assert!(server.rejects().is_empty());
    assert!(server.maildir().join("000002.eml").is_file());

    server.stop();
}

#[test]
fn rule_with_times_answers_451_then_accepts() {
    let server = SmtpServer::start(json!({
        "rules": [{"rcpt": "Flaky@Client.example", "code": 451, "times": 1}]
    }));
    let mut client = Client::connect(server.port());

    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    let (code, text) = client.command("RCPT TO:<flaky@client.example>");
    assert_eq!(code, 451, "{text}");
    assert_eq!(client.command("RSET").0, 250);

    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<flaky@client.example>").0, 250);
    assert_eq!(client.data(&message("retried")).0, 250);

    // Writing the rules again, even unchanged, starts the count afresh.
    server.set_rules(json!({
        "rules": [{"rcpt": "Flaky@Client.example", "code": 451, "times": 1}]
    }));
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<flaky@client.example>").0, 451);
    assert_eq!(client.command("RSET").0, 250);
    client.quit();

    let messages = server.wait_for(1, ARRIVAL_TIMEOUT);
    assert_eq!(messages[0].rcpt_tos, vec!["flaky@client.example"]);
    let rejects = server.rejects();
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert_eq!(rejects[0].rcpt, "flaky@client.example");
    assert_eq!(rejects[0].code, 451);
    assert_eq!(rejects[0].mail_from, "sender@acme.example");
    assert!(
        rejects[0].peer.starts_with("127.0.0.1:"),
        "{:?}",
        rejects[0].peer
    );
}

#[test]
fn rule_answers_550_every_time_and_spares_other_recipients() {
    let server = SmtpServer::start(json!({
        "rules": [{"rcpt": "gone@client.example", "code": 550}]
    }));
    let mut client = Client::connect(server.port());
    for _ in 0..2 {
        assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
        assert_eq!(client.command("RCPT TO:<gone@client.example>").0, 550);
        assert_eq!(client.command("RCPT TO:<here@client.example>").0, 250);
        assert_eq!(client.data(&message("partial")).0, 250);
    }
    client.quit();

    let messages = server.wait_for(2, ARRIVAL_TIMEOUT);
    assert!(
        messages
            .iter()
            .all(|m| m.rcpt_tos == vec!["here@client.example"])
    );
    let codes: Vec<u16> = server.rejects().iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![550, 550]);
}

#[test]
fn rules_can_change_while_the_server_runs() {
    let server = SmtpServer::start(serde_json::Value::Null);
    let mut client = Client::connect(server.port());
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<later@client.example>").0, 250);
    assert_eq!(client.command("RSET").0, 250);

    server.set_rules(json!({"rules": [{"rcpt": "later@client.example", "code": 550}]}));
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<later@client.example>").0, 550);
    assert_eq!(client.command("RSET").0, 250);

    server.set_rules(json!({}));
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<later@client.example>").0, 250);
    client.quit();
}

#[test]
fn delay_ms_slows_the_reply_to_data() {
    let delay = Duration::from_millis(400);
    let server = SmtpServer::start(json!({"delay_ms": delay.as_millis() as u64}));
    let mut client = Client::connect(server.port());
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<slow@client.example>").0, 250);
    assert_eq!(client.command("DATA").0, 354);
    client.send("Subject: slow\r\n\r\nbody");
    let sent = Instant::now();
    let (code, _) = client.command(".");
    let took = sent.elapsed();
    assert_eq!(code, 250);
    assert!(
        took >= delay,
        "the reply came after {took:?}, before the {delay:?} delay"
    );
    assert!(took < IO_TIMEOUT, "the reply took {took:?}");

    // Without the delay the next reply is prompt (well under the old delay).
    server.set_rules(json!({}));
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<slow@client.example>").0, 250);
    assert_eq!(client.command("DATA").0, 354);
    client.send("Subject: quick\r\n\r\nbody");
    let sent = Instant::now();
    assert_eq!(client.command(".").0, 250);
    assert!(
        sent.elapsed() < delay,
        "took {:?} with no delay",
        sent.elapsed()
    );
    client.quit();
    assert_eq!(server.wait_for(2, ARRIVAL_TIMEOUT).len(), 2);
}

#[test]
fn a_bad_rules_file_refuses_with_451_instead_of_accepting() {
    let server = SmtpServer::start(json!({"rules": [{"rcpt": "x@client.example", "code": 250}]}));
    let mut client = Client::connect(server.port());
    assert_eq!(client.command("MAIL FROM:<sender@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<y@client.example>").0, 451);
    client.quit();
    assert!(
        server.server_log().contains("bad rules file"),
        "{}",
        server.server_log()
    );
}

#[test]
fn project_writes_files_in_its_own_directory() {
    let project = Project::new();
    assert!(project.path("templates").is_dir());
    let config = project.write_config("[database]\npath = \"winback.db\"\n");
    assert_eq!(config, project.config_path());
    assert_eq!(config, project.root().join("winback.toml"));
    let csv = project.write_file("data/clients.csv", "email,churned_at\n");
    assert_eq!(project.read_file("data/clients.csv"), "email,churned_at\n");
    assert!(csv.starts_with(project.root()));
}

#[test]
fn free_port_can_be_bound_and_wait_until_is_bounded() {
    let port = free_port();
    assert_ne!(port, 0);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port));
    assert!(listener.is_ok(), "port {port} was not free: {listener:?}");

    let started = Instant::now();
    assert!(!wait_until(Duration::from_millis(50), || false));
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut calls = 0;
    assert!(wait_until(Duration::from_secs(5), || {
        calls += 1;
        calls == 3
    }));
}

#[test]
fn winback_runs_to_completion_with_its_output_captured() {
    // Only the mechanics: the binary starts with `--config <project>/winback.toml`,
    // finishes within the bound, and what it printed is collected. What it prints for
    // `--help` belongs to the CLI's own tests.
    let project = Project::new();
    project.write_config("");
    let output = project.winback(&["--help"]);
    assert!(output.code().is_some(), "killed by a signal: {output:?}");
    assert!(
        !(output.stdout.is_empty() && output.stderr.is_empty()),
        "`winback --help` printed nothing: {output:?}"
    );
    assert_eq!(output.args, vec!["--help"]);
}

#[test]
fn captured_messages_decode_headers_and_parts() {
    let server = SmtpServer::start(json!({}));
    let raw = "From: Acme <success@acme.example>\r\n\
        To: =?utf-8?b?Wm/Dqw==?= <zoe@client.example>\r\n\
        Subject: =?utf-8?b?Wm/Dqyw=?= may we ask\r\n =?utf-8?q?why_you_left=3F?=\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=outer\r\n\
        \r\n\
        --outer\r\n\
        Content-Type: multipart/alternative;\r\n boundary=\"inner-1\"\r\n\
        \r\n\
        --inner-1\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        h=C3=A9llo, unsubscribe: https://winback.acme.example/u/abc=\r\n\
        def\r\n\
        --inner-1\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        PHA+aMOpbGxvPC9wPg==\r\n\
        --inner-1--\r\n\
        --outer--\r\n";
    let mut client = Client::connect(server.port());
    assert_eq!(client.command("MAIL FROM:<success@acme.example>").0, 250);
    assert_eq!(client.command("RCPT TO:<zoe@client.example>").0, 250);
    assert_eq!(client.data(raw).0, 250);
    client.quit();

    let message = &server.wait_for(1, ARRIVAL_TIMEOUT)[0];
    assert_eq!(message.raw, raw);
    assert_eq!(
        message.header("subject").as_deref(),
        Some("=?utf-8?b?Wm/Dqyw=?= may we ask =?utf-8?q?why_you_left=3F?=")
    );
    assert_eq!(
        message.header_decoded("Subject").as_deref(),
        Some("Zoë, may we ask why you left?")
    );
    assert_eq!(
        message.header_decoded("To").as_deref(),
        Some("Zoë <zoe@client.example>")
    );
    assert_eq!(
        message.text().as_deref(),
        Some("héllo, unsubscribe: https://winback.acme.example/u/abcdef")
    );
    assert_eq!(message.html().as_deref(), Some("<p>héllo</p>"));
    assert_eq!(message.part("image/"), None);
    assert_eq!(message.header("X-Missing"), None);
}
