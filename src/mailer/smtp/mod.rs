//! SMTP delivery over our own sessions (`session.rs`), with a small connection pool.
//!
//! Owns connecting (our own TCP socket with TCP_NODELAY; STARTTLS when offered, or
//! implicit TLS), AUTH, and driving MAIL FROM / RCPT TO / DATA / body (in one write when
//! the server offers PIPELINING), noting the stage each failure hit; `failure.rs` sorts
//! a failure into the kinds of `SendError`. It must not retry a transaction whose body
//! may have been handed over, and never parses an address (the envelope comes parsed).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::commands::{Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};

mod failure;

use failure::{Cause, Failure, Stage, expected, step};

use super::session::{Reply, Session, dot_stuffed};
use super::tls::{Stream, Tls};
use super::{Delivered, Mailer, MailerError, OutgoingMessage, SendError};

/// An idle connection older than this is closed rather than reused: servers drop idle
/// sessions (often after 60–300 s), and a stale one would only cost a failed MAIL FROM.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// How long a polite QUIT on an expired idle connection may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

const AUTH_MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// `smtp://`: plain TCP, upgraded with STARTTLS when the server advertises it.
    StartTlsWhenOffered,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

/// Where to connect, parsed from the url by `from_url`.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) security: Security,
    pub(crate) user: Option<String>,
}

pub(crate) struct SmtpMailer {
    server: Server,
    tls: Tls,
    credentials: Option<Credentials>,
    hello_name: ClientId,
    timeout: Duration,
    /// One permit per connection that may be open (idle or in use).
    slots: Semaphore,
    /// Healthy connections between transactions; never locked across an `.await`.
    idle: Mutex<Vec<IdleConnection>>,
}

struct IdleConnection {
    connection: Session,
    since: Instant,
}

impl SmtpMailer {
    pub(crate) fn new(
        server: Server,
        password: Option<String>,
        connections: usize,
        timeout: Duration,
        hello_name: Option<String>,
    ) -> Result<SmtpMailer, MailerError> {
        // Built once: loading the system's root certificates is not free.
        let tls = Tls::new(&server.host).map_err(|reason| MailerError::Tls {
            host: server.host.clone(),
            reason,
        })?;
        let credentials = match (&server.user, password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password)),
            _ => None,
        };
        Ok(SmtpMailer {
            server,
            tls,
            credentials,
            hello_name: hello_name.map_or_else(ClientId::default, ClientId::Domain),
            timeout,
            slots: Semaphore::new(connections),
            idle: Mutex::new(Vec::with_capacity(connections)),
        })
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivered, SendError> {
        // The semaphore is never closed, so this cannot fail; say so if it ever does.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Transient("the SMTP mailer is shutting down".to_owned()))?;
        let deadline = Instant::now() + self.timeout;
        let body_written = AtomicBool::new(false);

        if let Some(connection) = self.take_idle() {
            let outcome = self
                .transaction(connection, message, deadline, &body_written)
                .await;
            match outcome {
                Err(failure) if failure.stale_connection() => {
                    tracing::debug!(
                        server = %self.server,
                        "reused SMTP connection had gone stale ({}); opening a new one",
                        failure.cause
                    );
                }
                outcome => return self.finish(outcome, &body_written),
            }
        }

        let connection = match self.connect(deadline).await {
            Ok(connection) => connection,
            Err(failure) => return Err(failure.classify(&self.server, false)),
        };
        let outcome = self
            .transaction(connection, message, deadline, &body_written)
            .await;
        self.finish(outcome, &body_written)
    }

    fn finish(
        &self,
        outcome: Result<(Reply, Session), Failure>,
        body_written: &AtomicBool,
    ) -> Result<Delivered, SendError> {
        match outcome {
            Ok((reply, connection)) => {
                self.put_idle(connection);
                Ok(Delivered {
                    reply: reply.to_string(),
                })
            }
            Err(mut failure) => {
                if let Some(connection) = failure.reusable.take() {
                    self.put_idle(connection);
                }
                Err(failure.classify(&self.server, body_written.load(Ordering::SeqCst)))
            }
        }
    }

    /// Opens, secures and authenticates a connection, all before `deadline`.
    async fn connect(&self, deadline: Instant) -> Result<Session, Failure> {
        let address = (self.server.host.as_str(), self.server.port);
        let tcp = step(Stage::Connect, deadline, async {
            TcpStream::connect(address).await.map_err(Cause::io)
        })
        .await?;
        // Without it, Nagle's algorithm holds each command behind the server's delayed ACK
        // of the previous write (~40 ms per message).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on the SMTP socket");
        }
        let peer = tcp.peer_addr().ok();
        let mut stream = Stream::Plain(tcp);
        if self.server.security == Security::ImplicitTls {
            step(Stage::Connect, deadline, async {
                stream.upgrade(&self.tls).await.map_err(Cause::Broken)
            })
            .await?;
        }
        let mut connection = step(Stage::Connect, deadline, async {
            Session::open(stream, &self.hello_name)
                .await
                .map_err(Cause::session)
        })
        .await?;
        if self.server.security == Security::StartTlsWhenOffered && connection.features().starttls {
            step(Stage::StartTls, deadline, async {
                connection
                    .starttls(&self.tls, &self.hello_name)
                    .await
                    .map_err(Cause::session)
            })
            .await?;
        }

        if let Some(credentials) = &self.credentials {
            let loopback = peer.is_some_and(|peer: SocketAddr| peer.ip().is_loopback());
            if !connection.is_encrypted() && !loopback {
                return Err(Failure::new(
                    Stage::Auth,
                    Cause::Broken(
                        "refusing to send the password over an unencrypted connection: \
                         the server did not offer STARTTLS"
                            .to_owned(),
                    ),
                ));
            }
            step(Stage::Auth, deadline, async {
                connection
                    .auth(AUTH_MECHANISMS, credentials)
                    .await
                    .map_err(Cause::session)
            })
            .await?;
        }
        tracing::debug!(
            server = %self.server,
            encrypted = connection.is_encrypted(),
            pipelining = connection.features().pipelining,
            "SMTP connection opened"
        );
        Ok(connection)
    }

    /// MAIL FROM, RCPT TO, DATA, body, so that a failure knows whether the server can
    /// have received the end of the body. With PIPELINING the three commands go in one
    /// write and their replies are read in order; the first refusal decides. On success,
    /// and on a negative reply that leaves the session usable, the connection comes back.
    async fn transaction(
        &self,
        mut connection: Session,
        message: &OutgoingMessage,
        deadline: Instant,
        body_written: &AtomicBool,
    ) -> Result<(Reply, Session), Failure> {
        let envelope = &message.envelope;
        let mut parameters = Vec::new();
        if envelope.non_ascii() {
            if !connection.features().smtp_utf8 {
                return Err(Failure::new(
                    Stage::MailFrom,
                    Cause::Unsendable(
                        "the addresses are not ASCII and the server does not support SMTPUTF8"
                            .to_owned(),
                    ),
                )
                .with_connection(connection));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.bytes.is_ascii() {
            if !connection.features().eight_bit_mime {
                return Err(Failure::new(
                    Stage::MailFrom,
                    Cause::Unsendable(
                        "the message has 8-bit content and the server does not support 8BITMIME"
                            .to_owned(),
                    ),
                )
                .with_connection(connection));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        let commands = [
            (
                Stage::MailFrom,
                Mail::new(envelope.from.clone(), parameters).to_string(),
            ),
            (
                Stage::RcptTo,
                Rcpt::new(envelope.to.clone(), Vec::new()).to_string(),
            ),
            (Stage::Data, "DATA\r\n".to_owned()),
        ];
        let refusal = if connection.features().pipelining {
            let batch = commands
                .iter()
                .map(|(_, line)| line.as_str())
                .collect::<String>();
            step(Stage::MailFrom, deadline, async {
                connection
                    .write(batch.as_bytes())
                    .await
                    .map_err(Cause::broken)
            })
            .await?;
            // Every reply is read, even after a refusal: they must not be taken for the
            // replies to whatever this session says next.
            // A refusal followed by a hang-up (a 421 to MAIL FROM, say) is that refusal,
            // not a broken connection at a later stage: no connection comes back.
            let first_refusal = |refusal: Option<(Stage, Cause)>, failure: Failure| match refusal {
                Some((stage, cause)) => Failure::new(stage, cause),
                None => failure,
            };
            let mut refusal = None;
            let mut data_accepted = false;
            for (stage, _) in &commands {
                let read = step(*stage, deadline, async {
                    connection.reply().await.map_err(Cause::broken)
                })
                .await;
                let reply = match read {
                    Ok(reply) => reply,
                    Err(failure) => return Err(first_refusal(refusal, failure)),
                };
                if *stage == Stage::Data {
                    data_accepted = reply.code == 354;
                }
                if refusal.is_none() {
                    refusal = expected(*stage, reply).err().map(|cause| (*stage, cause));
                }
            }
            if refusal.is_some() && data_accepted {
                // The server took DATA though MAIL or RCPT failed: end it, empty. With no
                // accepted recipient, nothing is delivered.
                let ended = step(Stage::Reset, deadline, async {
                    connection.command(".\r\n").await.map_err(Cause::broken)
                })
                .await;
                if let Err(failure) = ended {
                    return Err(first_refusal(refusal, failure));
                }
            }
            refusal
        } else {
            let mut refusal = None;
            for (stage, line) in &commands {
                let reply = step(*stage, deadline, async {
                    connection.command(line).await.map_err(Cause::broken)
                })
                .await?;
                if let Err(cause) = expected(*stage, reply) {
                    refusal = Some((*stage, cause));
                    break;
                }
            }
            refusal
        };
        if let Some((stage, cause)) = refusal {
            let mut failure = Failure::new(stage, cause);
            // A refused command leaves the session open: reset it and keep it.
            if matches!(failure.cause, Cause::Reply { .. })
                && step(Stage::Reset, deadline, async {
                    let reply = connection
                        .command("RSET\r\n")
                        .await
                        .map_err(Cause::broken)?;
                    expected(Stage::Reset, reply)
                })
                .await
                .is_ok()
            {
                failure.reusable = Some(connection);
            }
            return Err(failure);
        }

        let data = dot_stuffed(&message.bytes);
        let reply = step(Stage::Body, deadline, async {
            connection
                .write_body(&data, body_written)
                .await
                .map_err(Cause::broken)?;
            let reply = connection.reply().await.map_err(Cause::broken)?;
            expected(Stage::Body, reply)
        })
        .await;
        match reply {
            Ok(reply) => Ok((reply, connection)),
            // The final reply ends the transaction either way: the session is reusable.
            Err(failure) if matches!(failure.cause, Cause::Reply { .. }) => {
                Err(failure.with_connection(connection))
            }
            Err(failure) => Err(failure),
        }
    }

    /// The most recently used idle connection that is still fresh; expired ones are
    /// closed politely in the background.
    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < MAX_IDLE && !entry.connection.is_broken() {
                return Some(entry.connection);
            }
            let mut connection = entry.connection;
            tokio::spawn(async move {
                timeout(QUIT_TIMEOUT, connection.quit()).await.ok();
            });
        }
        None
    }

    fn put_idle(&self, connection: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.push(IdleConnection {
            connection,
            since: Instant::now(),
        });
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
        Box::pin(self.deliver(message))
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests;
