//! What a message that came back means: a bounce, a complaint, a reply, or nothing of
//! ours. The facts are read from the message by `inbound::parse`; the decision is here,
//! standards first (RFC 3464 delivery status, RFC 3463 codes, RFC 5965 feedback reports,
//! RFC 3834 `Auto-Submitted`), heuristics second.
//!
//! Pure: no parsing of bytes, no database, no clock.

use std::fmt;

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
    /// Where it was delivered to (`Delivered-To`, `X-Original-To`, `To`), addresses only,
    /// most exact first: a VERP return address is among them for a bounce.
    pub envelope_recipients: Vec<String>,
    /// Message-IDs it refers to (`In-Reply-To`, `References`, and the `Message-ID` of a
    /// returned original or its headers), without angle brackets.
    pub referenced_ids: Vec<String>,
    /// The `From` address.
    pub from: Option<String>,
    /// `Subject`, decoded.
    pub subject: String,
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
    /// Recipients named by a report or a returned original (`Original-Rcpt-To`, the
    /// quoted original's `To`, a qmail-style "<address>:" line), addresses only.
    pub reported_recipients: Vec<String>,
    /// The human text: the plain-text body (or the HTML's text), without quoted lines,
    /// for replies; the whole text for bounces without a delivery-status part.
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

/// What `facts` mean.
pub(crate) fn classify(facts: &Facts) -> Classification {
    Classification {
        outcome: Outcome::Unrelated,
        recipient: facts.from.clone(),
        status: None,
        why: "not classified yet".to_string(),
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
