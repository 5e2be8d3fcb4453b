//! The delivery seam: hands one finished message to a transport and says what happened.
//!
//! Owns the [`Mailer`] trait, the outcome types ([`Delivered`], [`SendError`]) and
//! [`from_endpoint`], which builds SMTP (`smtp://`, `smtps://`) or `.eml` files (`file://`)
//! from the `[smtp] url` the configuration has read (or, in tests, the recording
//! `StubMailer`). It must not render, sign, rate-limit, retry
//! or record anything: a message arrives already formatted and leaves as one attempt.

mod file;
mod session;
mod smtp;
#[cfg(test)]
mod stub;
#[cfg(test)]
pub(crate) use stub::StubMailer;
pub(crate) mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;

use crate::config::{Endpoint, SmtpServer};

/// One message to deliver: the envelope plus the finished RFC 5322 bytes. Built once,
/// by `mail` (which parses the recipient's address there); transports take it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutgoingMessage {
    /// The `Message-ID` of `bytes` (angle brackets optional); names the `.eml` file.
    pub message_id: String,
    pub envelope: Envelope,
    /// The full message, already formatted and signed, with CRLF line endings.
    pub bytes: Vec<u8>,
}

/// The SMTP envelope, as parsed addresses: a transport never parses an address again,
/// and one that does not parse can never reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// The envelope sender (`MAIL FROM`); `None` is the null sender `<>`.
    pub from: Option<Address>,
    /// The one envelope recipient (`RCPT TO`).
    pub to: Address,
}

impl Envelope {
    /// Whether either address needs SMTPUTF8 to be said to a server.
    pub(crate) fn non_ascii(&self) -> bool {
        let ascii = |address: &Address| <Address as AsRef<str>>::as_ref(address).is_ascii();
        !ascii(&self.to) || self.from.as_ref().is_some_and(|from| !ascii(from))
    }
}

/// The server accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// The final reply, e.g. `250 2.0.0 Ok: queued as 123`, or `written to PATH`.
    pub reply: String,
}

/// Why a send did not end in [`Delivered`], sorted by what the caller may do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// A 4xx reply from RCPT TO on, or the connection failed or timed out after that but
    /// before the server could have received the end of the message body: nothing was
    /// accepted, retrying is safe.
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// A 5xx reply about this recipient (RCPT TO, DATA, final reply), or an invalid
    /// address: do not retry; it bounced.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
    /// Anything that failed before RCPT TO (connecting, greeting, STARTTLS, AUTH, MAIL
    /// FROM: the server down or unreachable, a bad password, a refused sender), or a
    /// refusal of our session later (relaying denied, authentication required): our own
    /// setup is wrong, or our server is down. Not the recipient's fault: keep the message,
    /// and never count it towards giving up on the address.
    #[error("the mail server refused our connection or sender: {0}")]
    Setup(String),
    /// A 5.7.x policy refusal of this one recipient, at RCPT TO or after the body (550/554
    /// 5.7.1): the recipient's server will not take it from us now. Retried with the
    /// usual back-off and given up after the give-up time, like a 4xx; never a reason to
    /// stop sending to others.
    #[error("the recipient's server refused it by policy: {0}")]
    Blocked(String),
    /// The whole body was handed over but no final reply arrived (timeout, connection
    /// lost): the server may have accepted the message. Never retry blindly.
    #[error("delivery uncertain, the server may have accepted the message: {0}")]
    Uncertain(String),
    /// This server cannot carry the message as it stands (a non-ASCII address without
    /// SMTPUTF8, 8-bit content without 8BITMIME), though another server could, or it
    /// refused how the message was written (a line too long, a syntax error: 500, 501,
    /// 5.5.x, 5.6.x): the address did not bounce and must not be suppressed for it.
    #[error("this mail server cannot carry the message: {0}")]
    Unsupported(String),
}

/// A way to deliver messages. Each call is one attempt; retries belong to the caller.
pub(crate) trait Mailer: Send + Sync {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>>;
}

/// Settings for the SMTP mailers; the `file://` mailer ignores them.
#[derive(Debug, Clone)]
pub(crate) struct SmtpOptions {
    /// How many SMTP connections may be open at once (at least 1). Idle ones are reused.
    pub connections: usize,
    /// The budget of one `send`, from the moment it has a connection slot: connecting,
    /// TLS, AUTH and the whole transaction. Waiting for a free slot is not counted.
    pub timeout: Duration,
    /// The AUTH password (from `WINBACK_SMTP_PASSWORD`); the user comes from the url.
    pub password: Option<String>,
    /// The name sent in EHLO; `None` means this machine's host name.
    pub hello_name: Option<String>,
}

/// Why [`from_endpoint`] cannot build a mailer: each message is a sentence for an operator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MailerError {
    #[error("smtp settings: {0}")]
    InvalidOption(String),
    #[error("cannot prepare TLS for {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("cannot create the outbox directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the mailer for an endpoint the configuration has already read (`[smtp] url`):
/// the url is parsed once, by the configuration, never again here.
pub(crate) fn from_endpoint(
    endpoint: &Endpoint,
    options: SmtpOptions,
) -> Result<Arc<dyn Mailer>, MailerError> {
    match endpoint {
        Endpoint::Smtp(server) => smtp_mailer(server_of(server.clone()), options),
        Endpoint::File(dir) => Ok(Arc::new(file::FileMailer::new(dir.clone())?)),
    }
}

fn smtp_mailer(server: smtp::Server, options: SmtpOptions) -> Result<Arc<dyn Mailer>, MailerError> {
    if options.connections == 0 {
        return Err(MailerError::InvalidOption(
            "connections must be at least 1".to_owned(),
        ));
    }
    if options.timeout.is_zero() {
        return Err(MailerError::InvalidOption(
            "the SMTP timeout must be longer than zero".to_owned(),
        ));
    }
    if let Some(name) = &options.hello_name
        && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(MailerError::InvalidOption(format!(
            "hello name {name:?} must be a host name without spaces or control characters"
        )));
    }
    let password = match (&server.user, options.password.as_deref()) {
        (Some(_), Some(password)) => Some(password.to_owned()),
        (Some(user), None) => {
            return Err(MailerError::InvalidOption(format!(
                "the smtp url names user {user:?} but WINBACK_SMTP_PASSWORD is not set"
            )));
        }
        (None, Some(_)) => {
            return Err(MailerError::InvalidOption(
                "WINBACK_SMTP_PASSWORD is set but the smtp url names no user: \
                 write smtp://USER@HOST"
                    .to_owned(),
            ));
        }
        (None, None) => None,
    };
    Ok(Arc::new(smtp::SmtpMailer::new(
        server,
        password,
        options.connections,
        options.timeout,
        options.hello_name,
    )?))
}

fn server_of(server: SmtpServer) -> smtp::Server {
    smtp::Server {
        host: server.host,
        port: server.port,
        security: if server.implicit_tls {
            smtp::Security::ImplicitTls
        } else {
            smtp::Security::StartTlsWhenOffered
        },
        user: server.user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SmtpOptions {
        SmtpOptions {
            connections: 2,
            timeout: Duration::from_secs(5),
            password: None,
            hello_name: None,
        }
    }

    #[test]
    fn an_envelope_needs_smtputf8_only_for_a_non_ascii_address() {
        let envelope = |from: Option<&str>, to: &str| Envelope {
            from: from.map(|from| from.parse().expect("a valid sender")),
            to: to.parse().expect("a valid recipient"),
        };
        assert!(!envelope(Some("bounces@acme.example"), "ada@client.example").non_ascii());
        assert!(!envelope(None, "ada@client.example").non_ascii());
        assert!(envelope(Some("bounces@acme.example"), "jörg@client.example").non_ascii());
        assert!(envelope(Some("jörg@acme.example"), "ada@client.example").non_ascii());
    }

    /// A server the configuration read from `url`.
    fn smtp(url: &str) -> Endpoint {
        Endpoint::Smtp(SmtpServer::parse(url).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn from_endpoint_checks_scheme_password_and_options() {
        let error =
            |endpoint: &Endpoint, options: SmtpOptions| match from_endpoint(endpoint, options) {
                Ok(_) => panic!("{endpoint:?} should be refused"),
                Err(error) => error.to_string(),
            };
        let refused = |url: &str| SmtpServer::parse(url).expect_err(url).to_string();
        assert!(refused("ftp://host").contains("expected smtp://"));
        assert!(refused("host:25").contains("expected smtp://"));
        let message = refused("smtp://bot:hunter2@host");
        assert!(message.contains("WINBACK_SMTP_PASSWORD"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            error(&smtp("smtp://bot@host"), options()).contains("WINBACK_SMTP_PASSWORD is not set")
        );
        let with_password = SmtpOptions {
            password: Some("secret".to_owned()),
            ..options()
        };
        assert!(error(&smtp("smtp://host"), with_password.clone()).contains("names no user"));
        assert!(from_endpoint(&smtp("smtp://bot@host"), with_password).is_ok());
        let no_connections = SmtpOptions {
            connections: 0,
            ..options()
        };
        assert!(error(&smtp("smtp://host"), no_connections).contains("at least 1"));
        let bad_hello = SmtpOptions {
            hello_name: Some("a b\r\nRSET".to_owned()),
            ..options()
        };
        assert!(error(&smtp("smtp://host"), bad_hello).contains("hello name"));
        assert!(from_endpoint(&smtp(" smtps://mail.example "), options()).is_ok());
    }
}
