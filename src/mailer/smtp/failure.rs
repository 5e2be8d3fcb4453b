//! What a failed SMTP send means for the message: the stage a transaction reached
//! ([`Stage`]), what went wrong there ([`Cause`]), and the sorting of the two (and
//! whether the body was handed over) into [`SendError`]'s kinds, from the reply code and
//! its RFC 3463 enhanced status. Pure: no I/O besides `step`'s deadline, no retry.

use std::fmt;

use tokio::time::{Instant, timeout_at};

use super::super::SendError;
use super::super::session::{Broken, Reply, Session, SessionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Connect,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Reset,
    Body,
}

impl Stage {
    /// Stages whose refusal is about our connection or sender, not the recipient.
    fn is_before_recipient(self) -> bool {
        matches!(
            self,
            Stage::Connect | Stage::StartTls | Stage::Auth | Stage::MailFrom
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connecting",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Reset => "RSET",
            Stage::Body => "the message body",
        })
    }
}

pub(super) enum Cause {
    /// The server answered 4xx or 5xx; the session itself is intact.
    Reply { code: u16, text: String },
    /// I/O, TLS, an unreadable reply, or a client-side refusal: the session is unusable.
    Broken(String),
    /// The message can never go through this server as it stands (another could take it).
    Unsendable(String),
    /// The send's deadline passed while waiting in this stage.
    TimedOut,
}

impl Cause {
    pub(super) fn broken(broken: Broken) -> Cause {
        Cause::Broken(broken.to_string())
    }

    pub(super) fn session(error: SessionError) -> Cause {
        match error {
            SessionError::Broken(broken) => Cause::broken(broken),
            SessionError::Refused(reply) if reply.code >= 400 => Cause::Reply {
                code: reply.code,
                text: reply.text(),
            },
            SessionError::Refused(reply) => Cause::Broken(format!("unexpected reply: {reply}")),
            SessionError::Unsupported(reason) => Cause::Broken(reason),
        }
    }

    pub(super) fn io(error: std::io::Error) -> Cause {
        Cause::Broken(error.to_string())
    }
}

/// The reply a stage wants (2xx, or 3xx to DATA), or why not.
pub(super) fn expected(stage: Stage, reply: Reply) -> Result<Reply, Cause> {
    let wanted = if stage == Stage::Data { 3 } else { 2 };
    match reply.code / 100 {
        class if class == wanted => Ok(reply),
        4 | 5 => Err(Cause::Reply {
            code: reply.code,
            text: reply.text(),
        }),
        _ => Err(Cause::Broken(format!(
            "unexpected reply to {stage}: {reply}"
        ))),
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Reply { code, text } if text.is_empty() => write!(f, "{code}"),
            Cause::Reply { code, text } => write!(f, "{code} {text}"),
            Cause::Broken(reason) | Cause::Unsendable(reason) => f.write_str(reason),
            Cause::TimedOut => f.write_str("timed out"),
        }
    }
}

pub(super) struct Failure {
    stage: Stage,
    pub(super) cause: Cause,
    /// Set when the session survived the failure and can go back to the pool.
    pub(super) reusable: Option<Session>,
}

impl Failure {
    pub(super) fn new(stage: Stage, cause: Cause) -> Failure {
        Failure {
            stage,
            cause,
            reusable: None,
        }
    }

    pub(super) fn with_connection(mut self, connection: Session) -> Failure {
        self.reusable = Some(connection);
        self
    }

    /// A reused connection that failed before the server saw anything of this message
    /// because the session had died while idle: worth one retry on a fresh connection.
    pub(super) fn stale_connection(&self) -> bool {
        self.stage == Stage::MailFrom
            && match &self.cause {
                Cause::Broken(_) => true,
                Cause::Reply { code, .. } => *code == 421,
                Cause::Unsendable(_) | Cause::TimedOut => false,
            }
    }

    /// Transient: a 4xx, or anything that stopped us before the server could have
    /// received the end of the body. Permanent: a 5xx about the recipient. Blocked: a
    /// 5.7.x policy refusal of this recipient at RCPT TO or after the body. Unsupported:
    /// a message this server can never take (another server could), or a 5xx about how
    /// the message or a command was written (see `about_our_message`). Setup: anything that went wrong before RCPT
    /// TO (the server unreachable, down, or refusing our login or sender), or a refusal
    /// of our session later on (relaying denied, authentication required; `refuses_us`):
    /// about us, not the recipient's address, so it must never count towards a bounce.
    /// Uncertain: the body was fully written and then the reply was lost (I/O error,
    /// unreadable reply, timeout).
    pub(super) fn classify(self, server: &impl fmt::Display, body_written: bool) -> SendError {
        let where_ = format!("{server}, {}", self.stage);
        match self.cause {
            Cause::Reply { code, text }
                if self.stage.is_before_recipient() || (code >= 500 && refuses_us(code, &text)) =>
            {
                SendError::Setup(format!("{where_}: server answered {code} {text}"))
            }
            Cause::Reply { code, text } if code >= 500 && enhanced_code(&text) == Some((5, 7)) => {
                SendError::Blocked(format!("{where_}: server answered {code} {text}"))
            }
            cause @ (Cause::Broken(_) | Cause::TimedOut) if self.stage.is_before_recipient() => {
                SendError::Setup(format!("{where_}: {cause}"))
            }
            Cause::Reply { code, text } if code >= 500 && about_our_message(code, &text) => {
                SendError::Unsupported(format!(
                    "{where_}: server answered {code} {text} (it refused the message as we \
                     wrote it, not the address)"
                ))
            }
            Cause::Reply { code, text } if code >= 500 => {
                SendError::Permanent(format!("{where_}: server answered {code} {text}"))
            }
            Cause::Reply { code, text } => {
                SendError::Transient(format!("{where_}: server answered {code} {text}"))
            }
            Cause::Unsendable(reason) => SendError::Unsupported(format!("{where_}: {reason}")),
            cause @ (Cause::Broken(_) | Cause::TimedOut) => {
                if self.stage == Stage::Body && body_written {
                    SendError::Uncertain(format!(
                        "{where_}: the whole message was sent but no final reply came ({cause})"
                    ))
                } else if self.stage == Stage::Body {
                    SendError::Transient(format!(
                        "{where_}: failed before the end of the message was sent ({cause})"
                    ))
                } else {
                    SendError::Transient(format!("{where_}: {cause}"))
                }
            }
        }
    }
}

/// Whether a 5xx refuses what we wrote (a line too long, a syntax or protocol error, bad
/// content: 500, 501, 5.5.x, 5.6.x) rather than the recipient's address. Such a refusal
/// would come back for every address, so it must never suppress one. An enhanced code
/// decides when there is one: 5.1.x (a bad address, "address syntax" included) is about
/// the recipient.
pub(super) fn about_our_message(code: u16, text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let worded = lower.contains("line too long") || lower.contains("syntax");
    match enhanced_code(text) {
        Some((5, 5 | 6)) => true,
        Some((_, 1)) => false,
        Some(_) => worded,
        None => matches!(code, 500 | 501) || worded,
    }
}

/// Whether a 5xx from RCPT TO on refuses our session rather than this recipient: relaying
/// denied or authentication required (530, or a 5.7.x that says so). Any other 5.7.x
/// there (a policy block, "5.7.1 message refused") is about this recipient only.
fn refuses_us(code: u16, text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    code == 530
        || (enhanced_code(text) == Some((5, 7))
            && (lower.contains("relay") || lower.contains("authenticat")))
}

/// The class and subject of an RFC 3463 enhanced status code opening a reply's text
/// (`5.6.0 ...` gives `(5, 6)`).
fn enhanced_code(text: &str) -> Option<(u8, u16)> {
    let code = text.split_whitespace().next()?;
    let mut parts = code.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?;
    let valid = !detail.is_empty() && detail.bytes().all(|b| b.is_ascii_digit());
    (valid && parts.next().is_none()).then_some((class, subject))
}

/// Runs one stage under the send's deadline.
pub(super) async fn step<T>(
    stage: Stage,
    deadline: Instant,
    work: impl Future<Output = Result<T, Cause>>,
) -> Result<T, Failure> {
    match timeout_at(deadline, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(cause)) => Err(Failure::new(stage, cause)),
        Err(_elapsed) => Err(Failure::new(stage, Cause::TimedOut)),
    }
}
