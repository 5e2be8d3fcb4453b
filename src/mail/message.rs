//! One message: the parts a step renders to ([`Rendered`]), why a message could not be
//! made ([`RenderError`]), its `Message-ID`, and the signed MIME message itself, built
//! once as the one [`OutgoingMessage`] a transport takes (the recipient's address parsed
//! here, and only here, into its envelope, whose sender is the message's return path),
//! `List-Id` and `Feedback-ID`. `To` and `Subject` are written by `header`, signatures by
//! `dkim`.
//!
//! Never reads the clock (`date` and `at` are arguments), renders no template and sends
//! nothing.

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use super::dkim;
use super::header::{self, one_line};
use crate::config::Config;
use crate::domain::model::ClientRecord;
use crate::mailer::{Envelope, OutgoingMessage};

const TO_HEADER: HeaderName = HeaderName::new_from_ascii_str("To");
const SUBJECT_HEADER: HeaderName = HeaderName::new_from_ascii_str("Subject");
const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");
const LIST_ID: HeaderName = HeaderName::new_from_ascii_str("List-Id");
const FEEDBACK_ID: HeaderName = HeaderName::new_from_ascii_str("Feedback-ID");

/// Where a message belongs: the campaign and step it is (its `List-Id` and
/// `Feedback-ID`) and the envelope sender bounces go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin<'a> {
    pub campaign: &'a str,
    pub step: u32,
    /// The VERP address naming this message (`[inbound] return_path`); `None`: `smtp.from`.
    pub return_path: Option<lettre::Address>,
}

/// Why a message could not be rendered or built. Every variant is permanent for that
/// message: retrying without a change to the templates, the data or the config gives the
/// same answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("campaign \"{campaign}\" has no step {step}, or it was not loaded by this renderer")]
    UnknownStep { campaign: String, step: u32 },
    /// A strict-mode failure for this client (typically a `fields.X` column the client
    /// lacks), or a helper failing. `template` is the file name or the subject's key.
    #[error("{template}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Template {
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error("the recipient address \"{email}\" is not valid: {reason}")]
    Recipient { email: String, reason: String },
    #[error("{what} \"{value}\" cannot go in a header: {reason}")]
    BadHeader {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// One step rendered for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    /// One line: runs of line breaks, tabs and other control characters became one space.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The three parts of a step, each rendered from its own template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Subject,
    Html,
    Text,
}

/// A new, unique `Message-ID`: `<winback.RANDOM@DOMAIN>` with 128 random bits and the
/// domain of `smtp.from`.
pub(crate) fn new_message_id(config: &Config, at: DateTime<Utc>) -> String {
    // The claim time first, so that ids sort as they are made: a new one is stored at the
    // end of the outbox's unique index instead of on a random page of it.
    let micros = at.timestamp_micros().max(0);
    let random: u128 = rand::random();
    format!(
        "<winback.{micros:013x}.{random:032x}@{}>",
        config.smtp.from.email.domain()
    )
}

/// `List-Id` (RFC 2919) of a campaign: its name as the phrase, and as the label under
/// the From address's domain, e.g. `former-clients <former-clients.acme.example>`, the
/// same for every message of the campaign so that mail programs and filters group them.
/// `None` when the domain is not plain ASCII (a header cannot carry it as written).
pub(super) fn list_id(config: &Config, campaign: &str) -> Option<String> {
    let domain = config
        .smtp
        .from
        .email
        .domain()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let atext = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    let fits = |text: &str| {
        !text.is_empty()
            && text
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(atext))
    };
    (fits(campaign) && fits(&domain)).then(|| format!("{campaign} <{campaign}.{domain}>"))
}

/// `Feedback-ID` for Gmail's complaint reports: `CAMPAIGN:step-N:SENDERID`. The step is
/// written `step-N`, not `N`, because Gmail counts each identifier across all fields and a
/// campaign could be named `2`.
pub(super) fn feedback_id(origin: &Origin<'_>, sender_id: &str) -> String {
    format!("{}:step-{}:{sender_id}", origin.campaign, origin.step)
}

/// Builds the message for `to`: From (and Reply-To) from the config, To, the one-line
/// subject, `Date` = `date`, `Message-ID` = `message_id`, the one-click unsubscribe
/// headers, `List-Id` and (with `[inbound] feedback_id`) `Feedback-ID`,
/// multipart/alternative (text, then HTML), signed by each of `signers` with `t=` =
/// `date`. The envelope sender is `origin.return_path`, else `smtp.from`; no
/// `Return-Path` is written (the receiving server adds it from the envelope).
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    config: &Config,
    signers: &[dkim::Signer],
    rendered: &Rendered,
    to: &ClientRecord,
    origin: &Origin<'_>,
    message_id: &str,
    date: DateTime<Utc>,
    unsubscribe_url: &str,
) -> Result<OutgoingMessage, RenderError> {
    let address: lettre::Address =
        to.email
            .trim()
            .parse()
            .map_err(|e: lettre::address::AddressError| RenderError::Recipient {
                email: to.email.clone(),
                reason: e.to_string(),
            })?;
    let display_name = to.name.as_deref().map(one_line).filter(|n| !n.is_empty());
    // Written by `header`, not the builder: the builder neither folds a long word nor
    // encodes text that looks like an encoded word. The builder's `To` (the bare
    // address) gives the envelope; the raw header replaces its value in place.
    let to_value = header::mailbox("To", display_name.as_deref(), address.as_ref());
    let subject = one_line(&rendered.subject);
    let subject_value = header::subject(&subject);

    header_safe("the unsubscribe URL", unsubscribe_url, |c| {
        c != '<' && c != '>'
    })?;
    header_safe("the Message-ID", message_id, |_| true)?;
    if !(message_id.starts_with('<') && message_id.ends_with('>') && message_id.contains('@')) {
        return Err(RenderError::BadHeader {
            what: "the Message-ID",
            value: message_id.to_string(),
            reason: "it must look like <unique@domain>",
        });
    }

    let envelope = Envelope {
        from: Some(
            origin
                .return_path
                .clone()
                .unwrap_or_else(|| config.smtp.from.email.clone()),
        ),
        to: address.clone(),
    };
    // Given, so that the builder does not parse From and To back out of the headers.
    let lettre_envelope =
        lettre::address::Envelope::new(envelope.from.clone(), vec![envelope.to.clone()])?;
    let mut builder = Message::builder()
        .envelope(lettre_envelope)
        .from(config.smtp.from.clone());
    if let Some(reply_to) = &config.smtp.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(list_id) = list_id(config, origin.campaign) {
        builder = builder.raw_header(HeaderValue::new(LIST_ID, list_id));
    }
    if let Some(sender_id) = &config.inbound.feedback_id {
        builder = builder.raw_header(HeaderValue::new(
            FEEDBACK_ID,
            feedback_id(origin, sender_id),
        ));
    }
    let message = builder
        .to(Mailbox::new(None, address.clone()))
        .raw_header(HeaderValue::dangerous_new_pre_encoded(
            TO_HEADER,
            address.to_string(),
            to_value,
        ))
        .raw_header(HeaderValue::dangerous_new_pre_encoded(
            SUBJECT_HEADER,
            subject,
            subject_value,
        ))
        .date(date.into())
        .message_id(Some(message_id.to_string()))
        .raw_header(HeaderValue::new(
            LIST_UNSUBSCRIBE,
            format!("<{unsubscribe_url}>"),
        ))
        .raw_header(HeaderValue::new(
            LIST_UNSUBSCRIBE_POST,
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))?;
    sealed(&message, signers, date, message_id, envelope)
}

/// `message` formatted, checked to have one recipient, and signed by each of `signers`
/// (with `t=` = `date`), as the one [`OutgoingMessage`] a transport takes.
pub(super) fn sealed(
    message: &Message,
    signers: &[dkim::Signer],
    date: DateTime<Utc>,
    message_id: &str,
    envelope: Envelope,
) -> Result<OutgoingMessage, RenderError> {
    let mut bytes = message.formatted();
    assert_one_recipient(&bytes)?;
    // Each signature covers the message without the others (none signs DKIM-Signature).
    let signatures: String = signers.iter().map(|s| s.sign(&bytes, date)).collect();
    bytes.splice(0..0, signatures.into_bytes());
    Ok(OutgoingMessage {
        message_id: message_id.to_string(),
        envelope,
        bytes,
    })
}

/// Refuses a header value that is empty or holds anything but printable ASCII.
fn header_safe(
    what: &'static str,
    value: &str,
    also: impl Fn(char) -> bool,
) -> Result<(), RenderError> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic() && also(c)) {
        return Err(RenderError::BadHeader {
            what,
            value: value.escape_debug().to_string(),
            reason: "it must be non-empty printable ASCII without spaces or angle brackets",
        });
    }
    Ok(())
}

/// Defense in depth against header injection: the formatted header block has exactly
/// one To and one Subject, and no Cc or Bcc.
fn assert_one_recipient(bytes: &[u8]) -> Result<(), RenderError> {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let names: Vec<String> = head
        .split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| {
            line.split_once(':')
                .map(|(name, _)| name.trim().to_ascii_lowercase())
        })
        .collect();
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    if count("to") != 1 || count("subject") != 1 || count("cc") + count("bcc") != 0 {
        return Err(RenderError::BadHeader {
            what: "the message header",
            value: String::new(),
            reason: "it must carry exactly one To and one Subject, and no Cc or Bcc",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
