//! Reading one RFC 5322 message into the [`Facts`] classification needs, with
//! `mail-parser` (MIME, encodings) and `mail-auth` (feedback reports). Delivery-status
//! field groups (RFC 3464) and quoted headers in a bounce's text are read here, since
//! neither crate reads them.
//!
//! Never decides what a message means (that is `domain::inbound`), and never touches the
//! database, the network or the clock.

use mail_auth::report::{Feedback, FeedbackType};
use mail_parser::decoders::html::html_to_text;
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::domain::inbound::{Facts, is_mail_system};
use addresses::{address_word, addresses_in};
use dsn::{delivery_status, fields};
use quotes::cut_html_quote;
pub(crate) use quotes::unquote;

mod addresses;
mod dsn;
#[cfg(test)]
mod proptests;
mod quotes;
#[cfg(test)]
mod tests;

/// The input is not a mail message at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a mail message: {0}")]
pub(crate) struct NotAMessage(pub String);

/// Headers at least one of which every real message carries; binary junk that happens to
/// hold a colon has none of them.
const MESSAGE_HEADERS: [&str; 10] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "delivered-to",
    "content-type",
    "mime-version",
];

/// The facts of the message `raw`.
pub(crate) fn parse(raw: &[u8]) -> Result<Facts, NotAMessage> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(NotAMessage("it is empty".to_string()));
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| NotAMessage("it has no mail headers".to_string()))?;
    let has_header = message.headers_raw().any(|(name, _)| {
        MESSAGE_HEADERS
            .iter()
            .any(|known| name.eq_ignore_ascii_case(known))
    });
    if !has_header {
        return Err(NotAMessage(
            "it has no mail headers (From, To, Subject, Date, Message-ID...)".to_string(),
        ));
    }

    let mut facts = Facts {
        message_id: message
            .message_id()
            .map(clean_id)
            .filter(|id| !id.is_empty()),
        content_hash: hex_sha256(raw),
        from: message
            .from()
            .and_then(|from| from.first())
            .and_then(|addr| addr.address())
            .map(str::to_lowercase),
        subject: message.subject().unwrap_or_default().trim().to_string(),
        date: message
            .date()
            .and_then(|date| chrono::DateTime::from_timestamp(date.to_timestamp(), 0)),
        ..Facts::default()
    };

    for name in [
        "delivered-to",
        "x-original-to",
        "envelope-to",
        "x-envelope-to",
    ] {
        for value in raw_values(&message, name) {
            push_unique(&mut facts.envelope_recipients, addresses_in(&value));
        }
    }
    push_unique(
        &mut facts.envelope_recipients,
        header_addresses(message.to()),
    );

    push_unique(&mut facts.referenced_ids, ids_of(message.in_reply_to()));
    push_unique(&mut facts.referenced_ids, ids_of(message.references()));

    // Exim and Gmail name the failed addresses in a header of their own.
    for value in raw_values(&message, "x-failed-recipients") {
        push_unique(&mut facts.reported_recipients, addresses_in(&value));
    }
    read_automatic_marks(&message, &mut facts);
    read_parts(&message, &mut facts);

    let daemon = facts.from.as_deref().is_some_and(is_mail_system);
    let full_text = body_text(&message, !daemon || !facts.dsn.is_empty());
    // A bounce without a delivery-status part: its only clues are in its words.
    if facts.dsn.is_empty() && facts.feedback_type.is_none() {
        if daemon || facts.report_type.is_some() {
            let failed = failed_addresses(&bounce_notice(&full_text.parts));
            let named = std::mem::take(&mut facts.reported_recipients);
            push_unique(&mut facts.reported_recipients, failed);
            push_unique(&mut facts.reported_recipients, named);
        }
        read_quoted_original(&full_text.whole, &mut facts);
    }
    facts.text = if daemon && facts.dsn.is_empty() {
        bounce_notice(&full_text.parts)
    } else {
        full_text.unquoted
    };
    Ok(facts)
}

/// Lower-case hex SHA-256.
fn hex_sha256(raw: &[u8]) -> String {
    Sha256::digest(raw)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A Message-ID without its angle brackets or surrounding space.
fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn push_unique(into: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !item.is_empty() && !into.contains(&item) {
            into.push(item);
        }
    }
}

/// The raw (undecoded, unfolded) values of every header `name` of `message`.
fn raw_values(message: &Message<'_>, name: &str) -> Vec<String> {
    message
        .headers_raw()
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| unfold(value).trim().to_string())
        .collect()
}

fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ")
}

fn header_addresses(address: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    address
        .map(|address| {
            address
                .iter()
                .filter_map(|addr| addr.address())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![clean_id(id)],
        HeaderValue::TextList(ids) => ids.iter().map(|id| clean_id(id)).collect(),
        _ => Vec::new(),
    }
}

/// RFC 3834 `Auto-Submitted` and the vendor marks of automatic replies.
fn read_automatic_marks(message: &Message<'_>, facts: &mut Facts) {
    facts.auto_submitted = raw_values(message, "auto-submitted")
        .into_iter()
        .next()
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_lowercase()
        })
        .filter(|value| !value.is_empty());
    let present = [
        "x-autoreply",
        "x-autorespond",
        "x-autoresponder",
        "x-autogenerated",
        "x-auto-response-suppress",
        "x-autoreply-from",
        "x-mail-autoreply",
        "x-fc-machinegenerated",
    ];
    let marked = message.headers_raw().any(|(name, value)| {
        let value = value.trim().to_ascii_lowercase();
        present.iter().any(|mark| name.eq_ignore_ascii_case(mark)) && value != "no"
            || ((name.eq_ignore_ascii_case("precedence")
                || name.eq_ignore_ascii_case("x-precedence"))
                && ["auto_reply", "bulk", "junk"].contains(&value.as_str()))
    });
    facts.automatic = marked;
}

/// The report parts: delivery status, feedback report, the returned original.
fn read_parts(message: &Message<'_>, facts: &mut Facts) {
    let Some(root) = message.parts.first() else {
        return;
    };
    if let Some(content_type) = root.content_type()
        && content_type.ctype().eq_ignore_ascii_case("multipart")
        && content_type
            .subtype()
            .is_some_and(|sub| sub.eq_ignore_ascii_case("report"))
    {
        facts.report_type = content_type
            .attribute("report-type")
            .map(|kind| kind.trim().to_lowercase());
    }
    for part in &message.parts {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        let kind = content_type.ctype().to_ascii_lowercase();
        let sub = content_type
            .subtype()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (kind.as_str(), sub.as_str()) {
            ("message", "delivery-status" | "global-delivery-status")
            | ("text", "delivery-status") => {
                facts.dsn.extend(delivery_status(part.contents()));
                // Gmail names the returned message in the per-message fields.
                let body = String::from_utf8_lossy(part.contents()).replace("\r\n", "\n");
                for (name, value) in fields(&body) {
                    if name.eq_ignore_ascii_case("x-original-message-id") {
                        push_unique(&mut facts.referenced_ids, [clean_id(&value)]);
                    }
                }
            }
            ("message", "feedback-report") => {
                if let Some(feedback) = Feedback::parse_arf(part.contents()) {
                    facts.feedback_type = Some(feedback_type(feedback.feedback_type()).into());
                    if let Some(rcpt) = feedback.original_rcpt_to() {
                        push_unique(&mut facts.reported_recipients, addresses_in(rcpt));
                    }
                }
            }
            ("text" | "message", "rfc822-headers") | ("message", "global-headers") => {
                let headers = String::from_utf8_lossy(part.contents());
                read_header_block(&headers, facts);
            }
            _ => {
                if let PartType::Message(original) = &part.body {
                    read_original(original, facts);
                }
            }
        }
    }
}

fn feedback_type(kind: FeedbackType) -> &'static str {
    match kind {
        FeedbackType::Abuse => "abuse",
        FeedbackType::AuthFailure => "auth-failure",
        FeedbackType::Fraud => "fraud",
        FeedbackType::NotSpam => "not-spam",
        FeedbackType::Other => "other",
        FeedbackType::Virus => "virus",
    }
}

/// A returned original (`message/rfc822`): its Message-ID and recipients.
fn read_original(original: &Message<'_>, facts: &mut Facts) {
    if let Some(id) = original.message_id() {
        push_unique(&mut facts.referenced_ids, [clean_id(id)]);
    }
    push_unique(
        &mut facts.reported_recipients,
        header_addresses(original.to()),
    );
}

/// A block of original headers (`text/rfc822-headers`, or quoted in a bounce's text):
/// its Message-ID and To.
fn read_header_block(block: &str, facts: &mut Facts) {
    let block = block.replace("\r\n", "\n");
    for (name, value) in fields(&block) {
        if name.eq_ignore_ascii_case("message-id") {
            push_unique(&mut facts.referenced_ids, [clean_id(&value)]);
        } else if name.eq_ignore_ascii_case("to") {
            push_unique(&mut facts.reported_recipients, addresses_in(&value));
        }
    }
}

/// Original headers quoted in the text of a bounce that has no report part: the block
/// of `Name: value` lines holding a `Message-ID`.
fn read_quoted_original(text: &str, facts: &mut Facts) {
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let bare = line.trim_start_matches(['>', ' ']);
        if !bare.to_ascii_lowercase().starts_with("message-id:") {
            continue;
        }
        let is_field = |line: &&str| {
            let bare = line.trim_start_matches('>');
            bare.starts_with([' ', '\t'])
                || bare
                    .split_once(':')
                    .is_some_and(|(name, _)| !name.is_empty() && !name.contains(' '))
        };
        let start = lines[..index]
            .iter()
            .rposition(|line| !is_field(line))
            .map_or(0, |before| before + 1);
        let end = lines[index..]
            .iter()
            .position(|line| !is_field(line))
            .map_or(lines.len(), |after| index + after);
        let block: Vec<&str> = lines[start..end]
            .iter()
            .map(|line| line.trim_start_matches('>').trim_start_matches(' '))
            .collect();
        read_header_block(&block.join("\n"), facts);
    }
}

/// The addresses a bounce without a report part says failed: qmail's `<address>:` lines,
/// and the indented addresses after Exim's "following address(es) failed:".
fn failed_addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut after_failed = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(inside) = trimmed
            .strip_prefix('<')
            .and_then(|rest| rest.split_once(">:"))
            .map(|(inside, _)| inside)
            && let Some(address) = address_word(inside)
        {
            found.push(address);
            continue;
        }
        let lower = trimmed.to_lowercase();
        if lower.contains("address(es) failed") || lower.contains("addresses failed") {
            after_failed = true;
            continue;
        }
        if after_failed && !trimmed.is_empty() {
            match address_word(trimmed.split_whitespace().next().unwrap_or_default()) {
                Some(address) if line.starts_with([' ', '\t']) => found.push(address),
                _ => after_failed = false,
            }
        }
    }
    found
}

/// Lines that open the copy of the original a bounce returns inline.
const COPY_MARKERS: [&str; 6] = [
    "below this line is a copy of the message",
    "this is a copy of the message",
    "original message follows",
    "----- original message",
    "------ original message",
    "--- original message",
];

/// A prose bounce's own words: its text parts up to the returned copy of the original
/// (whose footer may hold any word at all).
fn bounce_notice(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let lower = line.trim().to_lowercase();
        if COPY_MARKERS.iter().any(|marker| lower.contains(marker))
            || lower.starts_with("return-path:")
            || lower.starts_with("received:")
        {
            break;
        }
        kept.push(line);
    }
    kept.join("\n").trim().to_string()
}

/// A message's human text: whole (the returned original included), its text parts, and
/// the first text part without quoted lines.
struct Text {
    whole: String,
    parts: String,
    unquoted: String,
}

/// The plain-text body (or the HTML's text, its quoted part cut first), with and without
/// quoted lines. `only_first` takes only the first text part; a bounce with no report
/// part gives all of them, its returned original included.
fn body_text(message: &Message<'_>, only_first: bool) -> Text {
    let mut whole = String::new();
    let mut unquoted = None;
    for (index, part_id) in message.text_body.iter().enumerate() {
        let Some(part) = message.parts.get(*part_id as usize) else {
            continue;
        };
        let (text, cut) = match &part.body {
            PartType::Text(text) => (text.to_string(), unquote(text)),
            PartType::Html(html) => {
                let text = html_to_text(html);
                (text, unquote(&html_to_text(cut_html_quote(html))))
            }
            _ => continue,
        };
        if index == 0 {
            unquoted = Some(cut);
        }
        if !whole.is_empty() {
            whole.push('\n');
        }
        whole.push_str(&text);
        if only_first {
            break;
        }
    }
    let parts = whole.clone();
    if !only_first {
        for part in &message.parts {
            if let PartType::Message(original) = &part.body {
                whole.push('\n');
                whole.push_str(&String::from_utf8_lossy(original.raw_message()));
            }
        }
    }
    Text {
        unquoted: unquoted.unwrap_or_default().trim().to_string(),
        whole,
        parts,
    }
}
