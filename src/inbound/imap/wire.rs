//! The socket under an IMAP session: the few lines spoken before `async-imap` takes over
//! (greeting, CAPABILITY, STARTTLS; read a byte at a time so nothing TLS needs is
//! consumed), and the adapter `async-imap` reads and writes through.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::mailer::tls::Stream;

/// The conversation before `async-imap` went wrong: what the server said, or why not.
#[derive(Debug)]
pub(super) struct Protocol(pub(super) String);

/// The longest answer line read before TLS (greeting, CAPABILITY, STARTTLS).
const MAX_PLAIN_LINE: usize = 8192;

/// One answer line before the IMAP client takes over (greeting, CAPABILITY, STARTTLS).
/// Read a byte at a time: nothing after the line may be consumed, as TLS may follow.
pub(super) async fn read_line(stream: &mut Stream) -> Result<String, Protocol> {
    let mut line = Vec::new();
    loop {
        let byte = stream
            .read_u8()
            .await
            .map_err(|e| Protocol(format!("reading the server's answer: {e}")))?;
        line.push(byte);
        if byte == b'\n' {
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if line.starts_with("* BYE") {
                return Err(Protocol(format!("the server said {line}")));
            }
            return Ok(line);
        }
        if line.len() > MAX_PLAIN_LINE {
            return Err(Protocol("an answer line too long".into()));
        }
    }
}

/// Sends `tagged` (a tag and a command) and reads to its tagged answer, which must be OK.
/// The untagged lines before it.
pub(super) async fn command_ok(stream: &mut Stream, tagged: &str) -> Result<Vec<String>, Protocol> {
    let tag = tagged.split(' ').next().unwrap_or(tagged);
    stream
        .write_all(format!("{tagged}\r\n").as_bytes())
        .await
        .map_err(|e| Protocol(e.to_string()))?;
    let mut untagged = Vec::new();
    loop {
        let line = read_line(stream).await?;
        if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
            return if status.starts_with("OK") {
                Ok(untagged)
            } else {
                Err(Protocol(format!("{tagged}: {status}")))
            };
        }
        untagged.push(line);
    }
}

pub(super) async fn offers_starttls(stream: &mut Stream) -> Result<bool, Protocol> {
    let lines = command_ok(stream, "s1 CAPABILITY").await?;
    Ok(lines.iter().any(|line| {
        line.starts_with("* CAPABILITY")
            && line
                .split_ascii_whitespace()
                .any(|word| word.eq_ignore_ascii_case("STARTTLS"))
    }))
}

/// The socket as `async-imap` wants it (it needs `Debug`).
pub(super) struct Io(pub(super) Stream);

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_encrypted() {
            "Io(tls)"
        } else {
            "Io(plain)"
        })
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
