//! Domain vocabulary shared by every layer: clients, step kinds, and the states of
//! enrollments and messages. Plain data; no I/O.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// When a client left: a bare date (midnight in the client's time zone) or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnedAt {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl ChurnedAt {
    /// Parses `YYYY-MM-DD` or RFC 3339.
    pub fn parse(text: &str) -> Option<ChurnedAt> {
        let text = text.trim();
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Some(ChurnedAt::Date(date));
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| ChurnedAt::Instant(t.with_timezone(&Utc)))
    }

    /// The instant it denotes in `tz` (a bare date is midnight there).
    pub fn instant(&self, tz: Tz) -> DateTime<Utc> {
        match self {
            ChurnedAt::Instant(t) => *t,
            ChurnedAt::Date(d) => {
                crate::schedule::local_to_utc(d.and_time(chrono::NaiveTime::MIN), tz)
            }
        }
    }
}

impl fmt::Display for ChurnedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChurnedAt::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            ChurnedAt::Instant(t) => write!(
                f,
                "{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// One validated row of a former-clients CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    /// Lower-cased, trimmed.
    pub email: String,
    pub name: Option<String>,
    /// From a `first_name` column, if the file has one.
    pub first_name: Option<String>,
    pub company: Option<String>,
    pub churned_at: ChurnedAt,
    /// A slug such as `competitor` or `we_ended`; an open set.
    pub churn_reason: Option<String>,
    pub timezone: Option<Tz>,
    /// Every other column, available to templates as `fields.COLUMN`.
    pub fields: BTreeMap<String, String>,
}

/// Normalizes an address for comparison and storage.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Survey,
    Newsletter,
    Article,
    Whitepaper,
    Greeting,
}

impl StepKind {
    pub const ALL: [StepKind; 5] = [
        StepKind::Survey,
        StepKind::Newsletter,
        StepKind::Article,
        StepKind::Whitepaper,
        StepKind::Greeting,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            StepKind::Survey => "survey",
            StepKind::Newsletter => "newsletter",
            StepKind::Article => "article",
            StepKind::Whitepaper => "whitepaper",
            StepKind::Greeting => "greeting",
        }
    }

    pub fn parse(text: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a client stands in one campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    /// Steps remain; the next one is scheduled (or in flight).
    Active,
    /// Every step was sent.
    Completed,
    OptedOut,
    Bounced,
    Returned,
}

impl EnrollmentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            EnrollmentState::Active => "active",
            EnrollmentState::Completed => "completed",
            EnrollmentState::OptedOut => "opted_out",
            EnrollmentState::Bounced => "bounced",
            EnrollmentState::Returned => "returned",
        }
    }

    pub fn parse(text: &str) -> Option<EnrollmentState> {
        [
            EnrollmentState::Active,
            EnrollmentState::Completed,
            EnrollmentState::OptedOut,
            EnrollmentState::Bounced,
            EnrollmentState::Returned,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The life of one message in the outbox:
/// `sending → sent | retry | failed | uncertain | held`, `retry | held → sending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Claimed; committed before the SMTP transaction starts.
    Sending,
    /// The server answered 250.
    Sent,
    /// A transient failure; `next_attempt_at` says when to try again.
    Retry,
    /// A permanent failure (5xx, or retries exhausted).
    Failed,
    /// Found in `sending` at start-up: the process died mid-send. Never resent blindly.
    Uncertain,
    /// Claimed but dropped before sending, because an opt-out or return arrived first.
    Cancelled,
    /// Not fit to go (a template error, a placeholder, no footer): kept until it renders.
    Held,
}

impl MessageState {
    pub const ALL: [MessageState; 7] = [
        MessageState::Sending,
        MessageState::Sent,
        MessageState::Retry,
        MessageState::Failed,
        MessageState::Uncertain,
        MessageState::Cancelled,
        MessageState::Held,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Retry => "retry",
            MessageState::Failed => "failed",
            MessageState::Uncertain => "uncertain",
            MessageState::Cancelled => "cancelled",
            MessageState::Held => "held",
        }
    }

    pub fn parse(text: &str) -> Option<MessageState> {
        MessageState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}
