//! What a message that came back means: a bounce, a complaint, a reply, or nothing of
//! ours. The facts are read from the message by `inbound::parse`; the decision is here,
//! standards first (RFC 3464 delivery status, RFC 3463 codes, RFC 5965 feedback reports,
//! RFC 3834 `Auto-Submitted`), heuristics second.
//!
//! Pure: no parsing of bytes, no database, no clock.

use std::fmt;

use words::*;

#[cfg(test)]
mod tests;
mod words;

/// What an inbound message is, and so what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// The address failed for good (5.1.x, 5.2.1, "user unknown"): suppressed, stopped.
    Bounce,
    /// A transient failure reported back: counted; repeated ones become a bounce.
    SoftBounce,
    /// `Action: delayed`: nothing.
    Delayed,
    /// The receiver refused us (5.7.x, policy, reputation): nothing for the person.
    Blocked,
    /// A feedback report (abuse): an opt-out, source `complaint`.
    Complaint,
    /// A reply asking to stop: an opt-out, source `reply`.
    Unsubscribe,
    /// Out of office and other automatic replies: nothing.
    AutoReply,
    /// The contact has left the company: their sequences stop (`left`), not suppressed.
    LeftCompany,
    /// Any other human reply: their sequences stop (`replied`), not suppressed.
    Reply,
    /// Nothing of ours.
    Unrelated,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 10] = [
        Outcome::Bounce,
        Outcome::SoftBounce,
        Outcome::Delayed,
        Outcome::Blocked,
        Outcome::Complaint,
        Outcome::Unsubscribe,
        Outcome::AutoReply,
        Outcome::LeftCompany,
        Outcome::Reply,
        Outcome::Unrelated,
    ];

    /// The name used in output, the database and `--format json`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Bounce => "bounce",
            Outcome::SoftBounce => "soft_bounce",
            Outcome::Delayed => "delayed",
            Outcome::Blocked => "blocked",
            Outcome::Complaint => "complaint",
            Outcome::Unsubscribe => "unsubscribe",
            Outcome::AutoReply => "auto_reply",
            Outcome::LeftCompany => "left_company",
            Outcome::Reply => "reply",
            Outcome::Unrelated => "unrelated",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient of a delivery status notification (RFC 3464 per-recipient fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DsnRecipient {
    /// `Final-Recipient`, the address only (type prefix such as `rfc822;` removed).
    pub final_recipient: Option<String>,
    /// `Original-Recipient`, the address only.
    pub original_recipient: Option<String>,
    /// `Action`, lower case: failed, delayed, delivered, relayed, expanded.
    pub action: Option<String>,
    /// `Status`, e.g. `5.1.1`.
    pub status: Option<String>,
    /// `Diagnostic-Code`, the text after its type.
    pub diagnostic: Option<String>,
}

/// What `inbound::parse` reads from one message: everything matching and classifying
/// need, nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The inbound message's own `Message-ID` (without angle brackets).
    pub message_id: Option<String>,
    /// Lower-case hex SHA-256 of the raw message: the key to apply it once when it has
    /// no `Message-ID`.
    pub content_hash: String,
    /// Where it was delivered to (`Delivered-To`, `X-Original-To`, Exim's `Envelope-to`,
    /// `To`), addresses only, most exact first: a VERP return address is among them for a
    /// bounce. Addresses here and below are lower case.
    pub envelope_recipients: Vec<String>,
    /// Message-IDs it refers to (`In-Reply-To`, `References`, and the `Message-ID` of a
    /// returned original or its headers), without angle brackets.
    pub referenced_ids: Vec<String>,
    /// The `From` address.
    pub from: Option<String>,
    /// `Subject`, decoded.
    pub subject: String,
    /// When it says it was written (`Date`), if it says so readably.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    /// `Auto-Submitted`'s value, lower case, when present.
    pub auto_submitted: Option<String>,
    /// Other marks of an automatic message (`X-Autoreply`, `X-Autorespond`,
    /// `Precedence: auto_reply|bulk|junk`, `X-Auto-Response-Suppress`...).
    pub automatic: bool,
    /// The `report-type` of a `multipart/report`, lower case.
    pub report_type: Option<String>,
    /// The per-recipient fields of a delivery status notification.
    pub dsn: Vec<DsnRecipient>,
    /// For a feedback report (RFC 5965): its `Feedback-Type`, lower case.
    pub feedback_type: Option<String>,
    /// Recipients named by a report or a returned original, most exact first
    /// (qmail-style "<address>:" lines, `X-Failed-Recipients`, `Original-Rcpt-To`, the
    /// returned or quoted original's `To`), addresses only.
    pub reported_recipients: Vec<String>,
    /// The human text: the first plain-text body (or the HTML's text) without quoted
    /// lines, attributions, quoted headers or signature; for a mail server's bounce
    /// without a delivery-status part, all its text parts up to the returned copy of the
    /// original (whose footer may hold any word).
    pub text: String,
}

/// What `classify` decided, and about whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classification {
    pub outcome: Outcome,
    /// The address the outcome is about when the message names one (the failed
    /// recipient of a bounce, the complainant); else the sender of a reply is used.
    pub recipient: Option<String>,
    /// The enhanced status code, when there is one (`5.1.1`).
    pub status: Option<String>,
    /// One line saying why, for the operator (`status 5.1.1: user unknown`).
    pub why: String,
}

/// What `facts` mean: standards first (a feedback report, a delivery-status part, an
/// `Auto-Submitted` mark), the words of the message second.
pub(crate) fn classify(facts: &Facts) -> Classification {
    if facts.feedback_type.is_some() || facts.report_type.as_deref() == Some("feedback-report") {
        return complaint(facts);
    }
    if let Some(dsn) = most_telling(&facts.dsn) {
        return from_dsn(facts, dsn);
    }
    if looks_like_bounce(facts) {
        return from_bounce_text(facts);
    }
    let text = format!("{}\n{}", bare_subject(&facts.subject), facts.text).to_lowercase();
    if is_automatic(facts) {
        if any_in(&text, LEFT_COMPANY) {
            return about_sender(
                facts,
                Outcome::LeftCompany,
                "an automatic reply: the contact has left",
            );
        }
        return about_sender(facts, Outcome::AutoReply, "an automatic reply");
    }
    if any_in(&text, UNSUBSCRIBE) || facts.text.trim().eq_ignore_ascii_case("stop") {
        return about_sender(facts, Outcome::Unsubscribe, "a reply asking to stop");
    }
    if any_in(&text, LEFT_COMPANY) {
        return about_sender(facts, Outcome::LeftCompany, "a reply: the contact has left");
    }
    if facts.from.is_none() {
        return Classification {
            outcome: Outcome::Unrelated,
            recipient: None,
            status: None,
            why: "no sender and no report".to_string(),
        };
    }
    about_sender(facts, Outcome::Reply, "a reply from a person")
}

fn about_sender(facts: &Facts, outcome: Outcome, why: &str) -> Classification {
    Classification {
        outcome,
        recipient: facts.from.clone(),
        status: None,
        why: why.to_string(),
    }
}

/// An ARF report: abuse (and fraud, virus, other) is a complaint; `not-spam` takes
/// nothing back we could act on; `auth-failure` is about the sender's setup.
fn complaint(facts: &Facts) -> Classification {
    let kind = facts.feedback_type.as_deref().unwrap_or("abuse");
    let outcome = match kind {
        "not-spam" => Outcome::Unrelated,
        "auth-failure" => Outcome::Blocked,
        _ => Outcome::Complaint,
    };
    Classification {
        outcome,
        recipient: facts.reported_recipients.first().cloned(),
        status: None,
        why: format!("feedback report: {kind}"),
    }
}

/// The recipient a delivery status notification is most about: a failure first, then a
/// delay; one that was delivered says nothing.
fn most_telling(dsn: &[DsnRecipient]) -> Option<&DsnRecipient> {
    let action = |r: &DsnRecipient| r.action.clone().unwrap_or_default();
    dsn.iter()
        .find(|r| action(r) == "failed")
        .or_else(|| dsn.iter().find(|r| action(r) == "delayed"))
        .or_else(|| dsn.iter().find(|r| r.action.is_none()))
        .or_else(|| dsn.first())
}

/// An RFC 3463 enhanced status code (`5.1.1`) in `text`.
fn enhanced_code(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|word| word.trim_end_matches('.'))
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// What an enhanced status code says on its own, when it is specific.
fn by_code(code: &str) -> Option<Outcome> {
    let mut parts = code.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    Some(match (class, subject, detail) {
        ("2", _, _) => Outcome::Unrelated,
        (_, "7", _) => Outcome::Blocked,
        (_, "1", "7" | "8") => Outcome::Blocked,
        ("4", _, _) => Outcome::SoftBounce,
        ("5", "1", "0") => return None,
        ("5", "1", _) => Outcome::Bounce,
        ("5", "2", "1") => Outcome::Bounce,
        ("5", "2", _) => Outcome::SoftBounce,
        _ => return None,
    })
}

/// What the words of a failure say, when its code does not: a block is never read as a
/// bounce.
fn by_words(text: &str) -> Option<Outcome> {
    let text = text.to_lowercase();
    if any_in(&text, BLOCKED) {
        Some(Outcome::Blocked)
    } else if any_in(&text, UNKNOWN_ADDRESS) {
        Some(Outcome::Bounce)
    } else if any_in(&text, MAILBOX_FULL) {
        Some(Outcome::SoftBounce)
    } else {
        None
    }
}

fn from_dsn(facts: &Facts, dsn: &DsnRecipient) -> Classification {
    let recipient = dsn
        .original_recipient
        .clone()
        .or_else(|| dsn.final_recipient.clone())
        .or_else(|| facts.reported_recipients.first().cloned());
    let diagnostic = dsn.diagnostic.clone().unwrap_or_default();
    // A generic status (`5.0.0`) often carries the real code in the diagnostic.
    let status = match (dsn.status.clone(), enhanced_code(&diagnostic)) {
        (Some(status), Some(specific)) if status.ends_with(".0.0") => Some(specific),
        (Some(status), _) => Some(status),
        (None, specific) => specific,
    };
    let action = dsn.action.as_deref().unwrap_or("failed");
    let outcome = match action {
        "delayed" => Outcome::Delayed,
        "delivered" | "relayed" | "expanded" => Outcome::Unrelated,
        _ => status
            .as_deref()
            .and_then(by_code)
            .or_else(|| by_words(&diagnostic))
            .or_else(|| by_words(&facts.text))
            // A permanent failure no code or word explains is counted, not trusted:
            // repeated ones become a bounce.
            .unwrap_or(Outcome::SoftBounce),
    };
    let why = match (&status, diagnostic.is_empty()) {
        (Some(status), false) => format!("{action}, status {status}: {diagnostic}"),
        (Some(status), true) => format!("{action}, status {status}"),
        (None, false) => format!("{action}: {diagnostic}"),
        (None, true) => action.to_string(),
    };
    Classification {
        outcome,
        recipient,
        status,
        why,
    }
}

/// Whether `address` is a mail server's own (`MAILER-DAEMON@`, `postmaster@`...), the
/// sender of bounces.
pub(crate) fn is_mail_system(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or_default();
    MAIL_SYSTEM_SENDERS
        .iter()
        .any(|sender| local.eq_ignore_ascii_case(sender))
}

/// A bounce written as prose (qmail, old Yahoo, a relay's own notice): from a mail
/// server, or a report without a delivery-status part, or a bounce's subject.
fn looks_like_bounce(facts: &Facts) -> bool {
    facts.from.as_deref().is_some_and(is_mail_system)
        || facts.report_type.as_deref() == Some("delivery-status")
        || any_in(&facts.subject.to_lowercase(), BOUNCE_SUBJECTS)
}

fn from_bounce_text(facts: &Facts) -> Classification {
    let status = enhanced_code(&facts.text);
    let lower = facts.text.to_lowercase();
    let outcome = if any_in(&lower, DELAYED) {
        Outcome::Delayed
    } else {
        status
            .as_deref()
            .and_then(by_code)
            .or_else(|| by_words(&lower))
            .unwrap_or(Outcome::SoftBounce)
    };
    let first_line = facts
        .text
        .lines()
        .map(str::trim)
        .find(|line| {
            let line = line.to_lowercase();
            by_words(&line).is_some() || any_in(&line, DELAYED)
        })
        .unwrap_or("no reason given");
    Classification {
        outcome,
        recipient: facts.reported_recipients.first().cloned(),
        why: match &status {
            Some(status) => format!("bounce text, status {status}: {first_line}"),
            None => format!("bounce text: {first_line}"),
        },
        status,
    }
}

/// RFC 3834 `Auto-Submitted` other than `no`, a vendor mark, or an auto-reply's subject
/// or wording.
fn is_automatic(facts: &Facts) -> bool {
    let subject = bare_subject(&facts.subject).to_lowercase();
    let text = facts.text.to_lowercase();
    facts
        .auto_submitted
        .as_deref()
        .is_some_and(|value| value != "no")
        || facts.automatic
        || AUTO_REPLY_SUBJECTS
            .iter()
            .any(|start| subject.starts_with(start))
        || any_in(&subject, AUTO_REPLY_BODIES)
        || any_in(&text, AUTO_REPLY_BODIES)
        || ABSENCE_UNTIL
            .iter()
            .any(|(absent, until)| text.contains(absent) && text.contains(until))
}

/// `subject` without its `Re:`/`AW:`/`Fwd:` prefixes.
fn bare_subject(subject: &str) -> &str {
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_lowercase();
        match SUBJECT_PREFIXES
            .iter()
            .find(|prefix| lower.starts_with(**prefix))
        {
            Some(prefix) => rest = rest.get(prefix.len()..).unwrap_or_default().trim_start(),
            None => return rest,
        }
    }
}

/// How many soft bounces, over how long, make an address count as bounced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SoftBounceRule {
    /// At least this many soft bounces (the one being applied included)...
    pub limit: u32,
    /// ...spanning at least this many days from the first to the last: a full mailbox
    /// that stays full for two weeks is as good as gone, three in one afternoon are not.
    pub days: u32,
}

impl Default for SoftBounceRule {
    fn default() -> Self {
        SoftBounceRule { limit: 3, days: 14 }
    }
}

/// The `[inbound]` settings applying an inbound message needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InboundRules {
    pub soft_bounce: SoftBounceRule,
    /// `[inbound] notify` is set: replies and contacts who left are told to the team.
    pub notify: bool,
}

/// Whether the soft bounces received at `times` (any order; the one being applied
/// included) make the address a bounce under `rule`.
pub(crate) fn soft_bounces_become_bounce(
    times: &[chrono::DateTime<chrono::Utc>],
    rule: SoftBounceRule,
) -> bool {
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return false;
    };
    times.len() >= rule.limit.max(1) as usize
        && *last - *first >= chrono::Duration::days(i64::from(rule.days))
}

/// What applying an inbound message changes for the person it was matched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Recorded only (delayed, blocked, automatic replies, unrelated, unmatched).
    None,
    /// A soft bounce, counted towards [`SoftBounceRule`].
    Counted,
    /// The address is suppressed (reason bounce) and every sequence stops.
    Bounce,
    /// An opt-out (source `complaint` or `reply`): suppressed, every sequence stops.
    OptOut,
    /// Their sequences stop as `left`; not suppressed.
    Left,
    /// Their sequences stop as `replied`; not suppressed.
    Replied,
}

impl Effect {
    pub(crate) const ALL: [Effect; 6] = [
        Effect::None,
        Effect::Counted,
        Effect::Bounce,
        Effect::OptOut,
        Effect::Left,
        Effect::Replied,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Effect::None => "none",
            Effect::Counted => "counted",
            Effect::Bounce => "bounce",
            Effect::OptOut => "opt_out",
            Effect::Left => "left",
            Effect::Replied => "replied",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Effect> {
        Effect::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// What `outcome` does to the person of the message it answers; `soft_limit_reached`
/// is [`soft_bounces_become_bounce`] for the soft bounces so far and this one.
pub(crate) fn effect(outcome: Outcome, soft_limit_reached: bool) -> Effect {
    match outcome {
        Outcome::Bounce => Effect::Bounce,
        Outcome::SoftBounce if soft_limit_reached => Effect::Bounce,
        Outcome::SoftBounce => Effect::Counted,
        Outcome::Complaint | Outcome::Unsubscribe => Effect::OptOut,
        Outcome::LeftCompany => Effect::Left,
        Outcome::Reply => Effect::Replied,
        Outcome::Delayed | Outcome::Blocked | Outcome::AutoReply | Outcome::Unrelated => {
            Effect::None
        }
    }
}

/// The opt-out source an outcome records (`suppressions.source`).
pub(crate) fn opt_out_source(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Complaint => "complaint",
        _ => "reply",
    }
}

#[cfg(test)]
mod soft_bounce_tests {
    use super::*;
    use chrono::{DateTime, Duration, TimeZone, Utc};

    fn days(offsets: &[i64]) -> Vec<DateTime<Utc>> {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        offsets.iter().map(|d| t0 + Duration::days(*d)).collect()
    }

    #[test]
    fn repeated_soft_bounces_over_the_span_become_a_bounce() {
        let rule = SoftBounceRule::default();
        let table: &[(&[i64], bool)] = &[
            (&[], false),
            (&[0], false),
            (&[0, 20], false),         // two: below the limit
            (&[0, 1, 2], false),       // three within two days: not long enough
            (&[0, 7, 13], false),      // 13 days: one short
            (&[0, 7, 14], true),       // three spanning exactly 14 days
            (&[14, 0, 7], true),       // order does not matter
            (&[0, 0, 0, 0, 30], true), // more than the limit
            (&[0, 1, 2, 3], false),    // many, but in a few days
        ];
        for (offsets, expected) in table {
            assert_eq!(
                soft_bounces_become_bounce(&days(offsets), rule),
                *expected,
                "{offsets:?}"
            );
        }
        let strict = SoftBounceRule { limit: 1, days: 0 };
        assert!(soft_bounces_become_bounce(&days(&[0]), strict));
    }
}

#[cfg(test)]
mod effect_tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_effect_and_only_bounces_and_opt_outs_suppress() {
        for outcome in Outcome::ALL {
            let expected = match outcome {
                Outcome::Bounce => Effect::Bounce,
                Outcome::SoftBounce => Effect::Counted,
                Outcome::Complaint | Outcome::Unsubscribe => Effect::OptOut,
                Outcome::LeftCompany => Effect::Left,
                Outcome::Reply => Effect::Replied,
                _ => Effect::None,
            };
            assert_eq!(effect(outcome, false), expected, "{outcome}");
        }
        assert_eq!(effect(Outcome::SoftBounce, true), Effect::Bounce);
        assert_eq!(effect(Outcome::Delayed, true), Effect::None);
        assert_eq!(opt_out_source(Outcome::Complaint), "complaint");
        assert_eq!(opt_out_source(Outcome::Unsubscribe), "reply");
        for e in Effect::ALL {
            assert_eq!(Effect::parse(e.as_str()), Some(e));
        }
    }
}
