//! One SMTP session, spoken by us over a socket from `tls.rs` (plain, or TLS by rustls).
//!
//! lettre's connection sends one command and waits for its reply before the next. A
//! server that offers PIPELINING (RFC 2920) takes MAIL FROM, RCPT TO and DATA in one write
//! instead: two round trips per message rather than four. This module owns the bytes on
//! the wire (replies, EHLO keywords, STARTTLS, AUTH, the dot-stuffed body); lettre still
//! formats the commands and AUTH answers, and what a failure means for the message is
//! decided in `smtp/failure.rs`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::commands::{Auth, Ehlo};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tls::{Stream, Tls};

/// RFC 5321 allows 512 bytes per reply line; some servers send longer text.
const MAX_REPLY_LINE: usize = 4096;
/// A reply of more lines than this (EHLO lists ~10) is not an SMTP server talking.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// AUTH LOGIN asks two questions; a server that keeps asking is refused.
const MAX_AUTH_CHALLENGES: usize = 10;

/// A server's reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) lines: Vec<String>,
}

impl Reply {
    /// The lines' text, joined by spaces.
    pub(crate) fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for Reply {
    /// "250 2.0.0 Ok: queued as 123"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in &self.lines {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Why a session can no longer be used.
#[derive(Debug)]
pub(crate) enum Broken {
    Io(std::io::Error),
    /// The server hung up.
    Closed,
    /// Bytes that are not an SMTP reply, or a protocol step that went wrong.
    Protocol(String),
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Io(error) => write!(f, "network error: {error}"),
            Broken::Closed => f.write_str("the server closed the connection without a reply"),
            Broken::Protocol(reason) => f.write_str(reason),
        }
    }
}

/// What the server said it supports, from its EHLO reply.
#[derive(Debug, Default, Clone)]
pub(crate) struct Features {
    pub(crate) pipelining: bool,
    pub(crate) starttls: bool,
    pub(crate) eight_bit_mime: bool,
    pub(crate) smtp_utf8: bool,
    pub(crate) auth: Vec<Mechanism>,
}

impl Features {
    fn from_ehlo(reply: &Reply) -> Features {
        let mut features = Features::default();
        for line in reply.lines.iter().skip(1) {
            // "AUTH=LOGIN PLAIN" is an old spelling of "AUTH LOGIN PLAIN".
            let line = line.replacen('=', " ", 1);
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => features.pipelining = true,
                "STARTTLS" => features.starttls = true,
                "8BITMIME" => features.eight_bit_mime = true,
                "SMTPUTF8" => features.smtp_utf8 = true,
                "AUTH" => {
                    for mechanism in words {
                        let mechanism = match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => Mechanism::Plain,
                            "LOGIN" => Mechanism::Login,
                            _ => continue,
                        };
                        if !features.auth.contains(&mechanism) {
                            features.auth.push(mechanism);
                        }
                    }
                }
                _ => {}
            }
        }
        features
    }
}

pub(crate) struct Session {
    stream: Stream,
    /// Bytes read but not yet part of a reply (a pipelining server answers several
    /// commands in one packet).
    unread: Vec<u8>,
    features: Features,
    broken: bool,
}

impl Session {
    /// Reads the greeting and says EHLO.
    pub(crate) async fn open(stream: Stream, hello: &ClientId) -> Result<Session, SessionError> {
        let mut session = Session {
            stream,
            unread: Vec::new(),
            features: Features::default(),
            broken: false,
        };
        let greeting = session.reply().await?;
        if greeting.code != 220 {
            return Err(SessionError::Refused(greeting));
        }
        session.ehlo(hello).await?;
        Ok(session)
    }

    pub(crate) fn features(&self) -> &Features {
        &self.features
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        self.stream.is_encrypted()
    }

    /// Set once an I/O or protocol error left the session in an unknown state.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    async fn ehlo(&mut self, hello: &ClientId) -> Result<(), SessionError> {
        let reply = self.command(&Ehlo::new(hello.clone()).to_string()).await?;
        if reply.code != 250 {
            return Err(SessionError::Refused(reply));
        }
        self.features = Features::from_ehlo(&reply);
        Ok(())
    }

    /// STARTTLS, then EHLO again over TLS (RFC 3207: what was said before is forgotten).
    pub(crate) async fn starttls(
        &mut self,
        tls: &Tls,
        hello: &ClientId,
    ) -> Result<(), SessionError> {
        let reply = self.command("STARTTLS\r\n").await?;
        if reply.code != 220 {
            return Err(SessionError::Refused(reply));
        }
        if !self.unread.is_empty() {
            // Bytes sent in the clear after "220" would be read as if they came over TLS
            // (the STARTTLS command injection of CVE-2011-0411): refuse the session.
            return Err(self
                .fail(Broken::Protocol(
                    "the server sent data after agreeing to STARTTLS".to_owned(),
                ))
                .into());
        }
        if let Err(reason) = self.stream.upgrade(tls).await {
            return Err(self.fail(Broken::Protocol(reason)).into());
        }
        self.ehlo(hello).await
    }

    /// AUTH with the first of `mechanisms` the server offers.
    pub(crate) async fn auth(
        &mut self,
        mechanisms: &[Mechanism],
        credentials: &Credentials,
    ) -> Result<(), SessionError> {
        let Some(&mechanism) = mechanisms.iter().find(|m| self.features.auth.contains(m)) else {
            return Err(SessionError::Unsupported(
                "the server offers none of the AUTH mechanisms PLAIN and LOGIN".to_owned(),
            ));
        };
        let command = Auth::new(mechanism, credentials.clone(), None).map_err(auth_error)?;
        let mut reply = self.command(&command.to_string()).await?;
        for _ in 0..MAX_AUTH_CHALLENGES {
            if reply.code != 334 {
                break;
            }
            let challenge = reply
                .lines
                .first()
                .and_then(|line| line.split_whitespace().next())
                .and_then(|word| STANDARD.decode(word).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    SessionError::Unsupported(format!("unreadable AUTH challenge: {reply}"))
                })?;
            let answer =
                Auth::new(mechanism, credentials.clone(), Some(challenge)).map_err(auth_error)?;
            reply = self.command(&answer.to_string()).await?;
        }
        match reply.code {
            235 => Ok(()),
            334 => Err(SessionError::Unsupported(
                "the server kept asking AUTH questions".to_owned(),
            )),
            _ => Err(SessionError::Refused(reply)),
        }
    }

    /// Writes `bytes` and flushes them.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), Broken> {
        let written = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        }
        .await;
        written.map_err(|error| self.fail(Broken::Io(error)))
    }

    /// Writes the dot-stuffed body with its terminator. `written` turns true once every
    /// byte is handed over: from then on the server may have the whole message, so a
    /// lost reply means the outcome is unknown, not that it failed.
    pub(crate) async fn write_body(
        &mut self,
        data: &[u8],
        written: &std::sync::atomic::AtomicBool,
    ) -> Result<(), Broken> {
        if let Err(error) = self.stream.write_all(data).await {
            return Err(self.fail(Broken::Io(error)));
        }
        written.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Err(error) = self.stream.flush().await {
            return Err(self.fail(Broken::Io(error)));
        }
        Ok(())
    }

    /// Writes a command line and reads its reply.
    pub(crate) async fn command(&mut self, line: &str) -> Result<Reply, Broken> {
        self.write(line.as_bytes()).await?;
        self.reply().await
    }

    /// Reads one whole reply (all its lines).
    pub(crate) async fn reply(&mut self) -> Result<Reply, Broken> {
        let mut code = None;
        let mut lines = Vec::new();
        let mut consumed = 0;
        loop {
            if let Some(end) = self.unread[consumed..].iter().position(|&b| b == b'\n') {
                let line = &self.unread[consumed..consumed + end];
                consumed += end + 1;
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let (line_code, last, text) = match parse_line(line) {
                    Ok(parsed) => parsed,
                    Err(reason) => return Err(self.fail(Broken::Protocol(reason))),
                };
                if *code.get_or_insert(line_code) != line_code {
                    return Err(self.fail(Broken::Protocol(format!(
                        "a reply mixes the codes {} and {line_code}",
                        code.unwrap_or_default()
                    ))));
                }
                lines.push(text);
                if last {
                    self.unread.drain(..consumed);
                    return Ok(Reply {
                        code: line_code,
                        lines,
                    });
                }
                continue;
            }
            let pending = self.unread.len() - consumed;
            if pending > MAX_REPLY_LINE || consumed + pending > MAX_REPLY_BYTES {
                return Err(self.fail(Broken::Protocol(
                    "the server's reply is too long".to_owned(),
                )));
            }
            let mut chunk = [0u8; 4096];
            let read = match self.stream.read(&mut chunk).await {
                Ok(0) => return Err(self.fail(Broken::Closed)),
                Ok(read) => read,
                Err(error) => return Err(self.fail(Broken::Io(error))),
            };
            self.unread.extend_from_slice(&chunk[..read]);
        }
    }

    /// QUIT, politely; the reply does not matter.
    pub(crate) async fn quit(&mut self) {
        let _ = self.command("QUIT\r\n").await;
        let _ = self.stream.shutdown().await;
    }

    fn fail(&mut self, broken: Broken) -> Broken {
        self.broken = true;
        broken
    }
}

/// Why a session could not be opened or set up.
#[derive(Debug)]
pub(crate) enum SessionError {
    Broken(Broken),
    /// The server answered, but not yes.
    Refused(Reply),
    /// Something we cannot do with this server (no common AUTH mechanism, say).
    Unsupported(String),
}

impl From<Broken> for SessionError {
    fn from(broken: Broken) -> SessionError {
        SessionError::Broken(broken)
    }
}

fn auth_error(error: lettre::transport::smtp::Error) -> SessionError {
    SessionError::Unsupported(format!("cannot build the AUTH answer: {error}"))
}

/// One reply line: its code, whether it is the last line, and its text.
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), String> {
    let unreadable = || {
        format!(
            "the server sent something that is not an SMTP reply: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        )
    };
    let code = line
        .get(..3)
        .filter(|digits| {
            digits.iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&digits[0])
        })
        .map(|digits| {
            digits
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
        })
        .ok_or_else(unreadable)?;
    let last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err(unreadable()),
    };
    // Stored and printed later: nothing the server sent may reach a terminal raw.
    let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default());
    let text = crate::domain::model::printable(&text).into_owned();
    Ok((code, last, text))
}

/// The body as SMTP's DATA wants it: every line that starts with "." gets a second one
/// (RFC 5321 4.5.2), bare LF becomes CRLF, and "\r\n.\r\n" ends it. Copied a line at a
/// time, not a byte at a time: it runs over every byte of every message.
pub(crate) fn dot_stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut rest = body;
    while let Some(&first) = rest.first() {
        if first == b'.' {
            out.push(b'.');
        }
        match rest.iter().position(|&byte| byte == b'\n') {
            Some(end) => {
                let line = &rest[..end];
                out.extend_from_slice(line);
                if !line.ends_with(b"\r") {
                    out.push(b'\r');
                }
                out.push(b'\n');
                rest = &rest[end + 1..];
            }
            None => {
                out.extend_from_slice(rest);
                rest = &[];
            }
        }
    }
    if out.ends_with(b"\r") {
        out.push(b'\n');
    } else if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_the_data() {
        assert_eq!(
            dot_stuffed(b".a\r\nb\r\n..c\r\n"),
            b"..a\r\nb\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"a\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(dot_stuffed(b"a\r\n.\r\n"), b"a\r\n..\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b".\r\n");
        assert_eq!(dot_stuffed(b"a\r"), b"a\r\n.\r\n");
    }

    #[test]
    fn reply_lines_are_read_strictly() {
        assert_eq!(
            parse_line(b"250 2.0.0 Ok"),
            Ok((250, true, "2.0.0 Ok".to_owned()))
        );
        assert_eq!(
            parse_line(b"250-PIPELINING"),
            Ok((250, false, "PIPELINING".to_owned()))
        );
        assert_eq!(parse_line(b"354"), Ok((354, true, String::new())));
        for bad in [&b"25"[..], b"2x0 ok", b"650 no", b"250_ok", b"HTTP/1.1 400"] {
            assert!(
                parse_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn reply_text_reaches_no_terminal_raw() {
        assert_eq!(
            parse_line(b"550 5.7.1 \x1b[2J\x1b]0;pwned\x07Denied\x1b[0m"),
            Ok((550, true, "5.7.1 [2J]0;pwnedDenied[0m".to_owned()))
        );
    }

    #[test]
    fn ehlo_keywords_become_features() {
        let reply = Reply {
            code: 250,
            lines: [
                "mx.example greets you",
                "PIPELINING",
                "8bitmime",
                "AUTH LOGIN PLAIN CRAM-MD5",
                "STARTTLS",
            ]
            .map(str::to_owned)
            .to_vec(),
        };
        let features = Features::from_ehlo(&reply);
        assert!(features.pipelining && features.eight_bit_mime && features.starttls);
        assert!(!features.smtp_utf8);
        assert_eq!(features.auth, vec![Mechanism::Login, Mechanism::Plain]);
        // The greeting line is not a keyword.
        let old_spelling = Reply {
            code: 250,
            lines: ["mx.example", "AUTH=LOGIN"].map(str::to_owned).to_vec(),
        };
        assert_eq!(
            Features::from_ehlo(&old_spelling).auth,
            vec![Mechanism::Login]
        );
        let greeting_only = Reply {
            code: 250,
            lines: vec!["PIPELINING is not offered here".to_owned()],
        };
        assert!(!Features::from_ehlo(&greeting_only).pipelining);
    }
}
