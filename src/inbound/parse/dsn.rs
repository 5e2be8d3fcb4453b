//! The per-recipient field groups of a delivery status notification (RFC 3464): read
//! by hand, as a report may be written as one group or with space-only separator lines.

use super::addresses::addresses_in;
use crate::domain::inbound::DsnRecipient;

/// The per-recipient field groups of a `message/delivery-status` body (RFC 3464 §2.1):
/// the first group is per message, each later group one recipient.
pub(super) fn delivery_status(body: &[u8]) -> Vec<DsnRecipient> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut groups: Vec<String> = vec![String::new()];
    for line in text.lines() {
        match groups.last_mut() {
            Some(group) if !line.trim().is_empty() => {
                group.push_str(line);
                group.push('\n');
            }
            Some(group) if group.is_empty() => {}
            _ => groups.push(String::new()),
        }
    }
    let mut recipients: Vec<DsnRecipient> = groups
        .iter()
        .skip(1)
        .map(|group| dsn_recipient(group))
        .filter(|recipient| *recipient != DsnRecipient::default())
        .collect();
    // Some servers write one group only, per-message and per-recipient fields together.
    if recipients.is_empty() {
        let recipient = dsn_recipient(&text);
        if recipient.final_recipient.is_some() || recipient.action.is_some() {
            recipients.push(recipient);
        }
    }
    recipients
}

fn dsn_recipient(group: &str) -> DsnRecipient {
    let mut recipient = DsnRecipient::default();
    for (name, value) in fields(group) {
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "final-recipient" => recipient.final_recipient = typed_address(value),
            "original-recipient" => recipient.original_recipient = typed_address(value),
            "action" => recipient.action = Some(value.to_lowercase()),
            "status" => {
                recipient.status = value
                    .split_whitespace()
                    .next()
                    .map(|status| status.to_string());
            }
            "diagnostic-code" => {
                let text = value.split_once(';').map_or(value, |(_, text)| text);
                recipient.diagnostic = Some(text.trim().to_string());
            }
            _ => {}
        }
    }
    recipient
}

/// `Name: value` fields of a header-like block, continuation lines unfolded.
pub(super) fn fields(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                fields.push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    fields
}

/// The address of a typed DSN field (`rfc822; user@example.com`).
fn typed_address(value: &str) -> Option<String> {
    let address = value.split_once(';').map_or(value, |(_, address)| address);
    addresses_in(address).into_iter().next()
}
