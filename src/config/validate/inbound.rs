//! The `[inbound]` section: the return path (VERP), the Feedback-ID, the mailboxes the
//! daemon reads (each url read once into an `ImapMailbox`), the folder for processed
//! mail, who is notified, and when soft bounces add up to a bounce.
//!
//! Part of the validator: pure, no file or network access; a return path outside the
//! From address's domain, or that is the From or Reply-To mailbox, is a warning.

use toml::Spanned;

use super::super::{ImapMailbox, Inbound, Smtp, raw};
use super::Validator;
use super::redact_password;

/// The longest local part `return_path` may have: each message's envelope sender adds
/// `+` and its reference, and a local part holds at most 64 characters (RFC 5321).
const MAX_LOCAL: usize = 64 - 1 - crate::token::RETURN_REF_MAX_LEN;

impl Validator<'_> {
    pub(super) fn inbound(
        &mut self,
        raw: Spanned<raw::RawInbound>,
        smtp: Option<&Smtp>,
    ) -> Inbound {
        let raw = raw.into_inner();
        let defaults = Inbound::default();
        let return_path = raw.return_path.and_then(|r| self.return_path(&r, smtp));
        let feedback_id = raw.feedback_id.and_then(|f| self.feedback_id(f));
        let mut mailboxes: Vec<ImapMailbox> = Vec::new();
        for url in raw.mailboxes.map(Spanned::into_inner).unwrap_or_default() {
            match ImapMailbox::parse(url.get_ref()) {
                Ok(mailbox) => {
                    if mailboxes.iter().any(|m| same_mailbox(m, &mailbox)) {
                        self.problem(
                            Some(&url.span()),
                            "inbound.mailboxes",
                            format!("\"{}\" is listed twice; list each mailbox once", mailbox.url),
                        );
                    } else {
                        mailboxes.push(mailbox);
                    }
                }
                Err(e) => self.problem(
                    Some(&url.span()),
                    "inbound.mailboxes",
                    format!(
                        "\"{}\": {}; write e.g. \"imaps://winback@imap.acme.example/INBOX\" (the password goes in WINBACK_IMAP_PASSWORD)",
                        redact_password(url.get_ref().trim()),
                        e.reason
                    ),
                ),
            }
        }
        let processed_folder = raw.processed_folder.and_then(|f| {
            let name = f.get_ref().trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                self.problem(
                    Some(&f.span()),
                    "inbound.processed_folder",
                    "is empty or holds control characters; write the folder processed mail is moved to, e.g. \"winback\" (or remove the key to leave it where it is)",
                );
                return None;
            }
            if let Some(m) = mailboxes.iter().find(|m| m.folder == name) {
                self.problem(
                    Some(&f.span()),
                    "inbound.processed_folder",
                    format!("\"{name}\" is the folder winback reads in \"{}\"; name another folder, e.g. \"winback\", or processed mail would be read again", m.url),
                );
                return None;
            }
            Some(name.to_string())
        });
        let notify = raw.notify.and_then(|n| self.mailbox(&n, "inbound.notify"));
        let soft_bounce_limit = self.count(
            raw.soft_bounce_limit,
            "inbound.soft_bounce_limit",
            i64::from(defaults.soft_bounce_limit),
            2..101,
            "use between 2 and 100 soft bounces (a single one never stops mail: the mailbox may only be full today)",
        );
        let soft_bounce_days = self.count(
            raw.soft_bounce_days,
            "inbound.soft_bounce_days",
            i64::from(defaults.soft_bounce_days),
            0..366,
            "use between 0 and 365 days from the first soft bounce to the last",
        );
        Inbound {
            return_path,
            feedback_id,
            mailboxes,
            processed_folder,
            notify,
            soft_bounce_limit: soft_bounce_limit as u32,
            soft_bounce_days: soft_bounce_days as u32,
        }
    }

    fn return_path(
        &mut self,
        value: &Spanned<String>,
        smtp: Option<&Smtp>,
    ) -> Option<lettre::Address> {
        let key = "inbound.return_path";
        let text = value.get_ref().trim();
        let example =
            "write the bare address bounces are sent back to, e.g. \"bounces@acme.example\"";
        let address = match text.parse::<lettre::Address>() {
            Ok(address) => address,
            Err(_) => {
                self.problem(
                    Some(&value.span()),
                    key,
                    format!("\"{text}\" is not an email address; {example}"),
                );
                return None;
            }
        };
        let local = address.user();
        if !text.is_ascii() || local.starts_with('"') {
            self.problem(
                Some(&value.span()),
                key,
                format!("\"{text}\" must be plain ASCII letters, digits and dots, as every mail server accepts it; {example}"),
            );
            return None;
        }
        if local.len() > MAX_LOCAL {
            self.problem(
                Some(&value.span()),
                key,
                format!("the part before @ is {} characters; each message adds + and a {}-character reference to it, and an address may hold 64 before the @, so use at most {MAX_LOCAL}, e.g. \"bounces@{}\"", local.len(), crate::token::RETURN_REF_MAX_LEN, address.domain()),
            );
            return None;
        }
        let people = smtp
            .into_iter()
            .flat_map(|s| std::iter::once(&s.from).chain(s.reply_to.as_ref()));
        if let Some(person) = people
            .map(|m| m.email.to_string())
            .find(|p| p.eq_ignore_ascii_case(text))
        {
            self.warning(
                &value.span(),
                key,
                format!("is {person}, the address people see and answer: bounces would land among their replies; use a mailbox of its own that only winback reads, e.g. \"bounces@{}\"", address.domain()),
            );
        }
        if let Some(from) = smtp.map(|s| s.from.email.domain()) {
            let from = from.trim_end_matches('.').to_ascii_lowercase();
            let domain = address.domain().trim_end_matches('.').to_ascii_lowercase();
            let under = |a: &str, b: &str| a == b || a.ends_with(&format!(".{b}"));
            if !under(&domain, &from) && !under(&from, &domain) {
                self.warning(
                    &value.span(),
                    key,
                    format!("\"{domain}\" is not the From address's domain \"{from}\": DMARC checks SPF against the return path's domain, so receivers may not count SPF for your mail; use an address at {from} (or a domain under it, e.g. bounces@bounce.{from})"),
                );
            }
        }
        Some(address)
    }

    fn feedback_id(&mut self, value: Spanned<String>) -> Option<String> {
        let text = value.get_ref().trim();
        if text.is_empty()
            || text.len() > 64
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.problem(
                Some(&value.span()),
                "inbound.feedback_id",
                format!("\"{}\" must be letters, digits, dashes, dots or underscores, one short word naming you as the sender (Gmail's SenderId), e.g. \"acme-mail\"", value.get_ref().escape_debug()),
            );
            return None;
        }
        if !(5..=15).contains(&text.len()) {
            self.warning(
                &value.span(),
                "inbound.feedback_id",
                format!("\"{text}\" is {} characters; Gmail's Postmaster Tools asks for a sender id of 5 to 15, e.g. \"acme-mail\"", text.len()),
            );
        }
        Some(text.to_string())
    }
}

/// Whether two urls name the same folder of the same account.
fn same_mailbox(a: &ImapMailbox, b: &ImapMailbox) -> bool {
    a.host.eq_ignore_ascii_case(&b.host)
        && a.port == b.port
        && a.user == b.user
        && a.folder == b.folder
}

#[cfg(test)]
mod tests;
