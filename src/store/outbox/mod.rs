//! The outbox: one row per message, from its claim to what the SMTP server said.
//!
//! The never-send-twice rule lives here. A message row is committed in state `sending`
//! when claimed, in the same transaction that re-checks opt-outs, bounces and returns,
//! and its `started_at` before its SMTP transaction starts (a delivery pass starts the
//! next few in one transaction, each checked again just before its send). A started row still
//! `sending` at start-up becomes `uncertain` and is not sent again unless an operator
//! says so; one only claimed goes back to the queue. A message not fit to go is `held`: its
//! sequence waits at that step, and it is tried again at each start and once a day.
//!
//! This file holds the types and the small shared reads; `claim.rs` claims due messages,
//! `record.rs` starts them and records what became of them. No scheduling rule is decided
//! here: `domain` decides, the outbox reads the facts and writes the answer.

mod claim;
mod record;
#[cfg(test)]
mod recurring_tests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, fmt_time, from_moment, parse_time};
use crate::domain::model::{EnrollmentState, MessageState};
use crate::domain::retry::Sequence;
use crate::domain::schedule::{Sent, Standing};
use crate::domain::suppression::Reason;

/// A message claimed for sending: its row is `sending` and committed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub message_row: i64,
    pub message_id: String,
    pub campaign: String,
    pub step: u32,
    pub attempt: u32,
    pub client: crate::domain::model::ClientRecord,
    /// The enrollment, which the link tokens point at.
    pub enrollment_id: i64,
}

/// What became of one claimed message.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Sent {
        reply: String,
        at: DateTime<Utc>,
    },
    /// A transient failure (4xx, or no answer before the message was handed over).
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// The recipient's server refused it by policy (5.7.x at RCPT or after the body):
    /// retried like [`Outcome::Retry`], given up after the give-up time, counted as
    /// `blocked` in the event log.
    Blocked {
        error: String,
        at: DateTime<Utc>,
    },
    /// The server refused us, not the recipient (bad login, refused sender): try again
    /// later, without counting towards giving up.
    Deferred {
        error: String,
        at: DateTime<Utc>,
    },
    /// A permanent failure (5xx): the address bounced.
    Failed {
        error: String,
        at: DateTime<Utc>,
    },
    /// The server may or may not have taken it: never resent blindly.
    Uncertain {
        error: String,
        at: DateTime<Utc>,
    },
    /// Not sent for a reason of ours that no fix to the templates can change (the mail
    /// server cannot carry it): stop this sequence.
    Abandoned {
        error: String,
        at: DateTime<Utc>,
    },
    /// Not fit to go (it did not render, lacks its footer, or still holds a placeholder):
    /// kept, with the step, until a fix lets it render; never counts as sent or failed.
    Held {
        reason: String,
        at: DateTime<Utc>,
    },
    /// Not started after all: an opt-out, bounce or return (or a new sequence) was
    /// recorded between the claim and the SMTP transaction. See [`Store::withdrawal`].
    Withdrawn {
        reason: String,
        at: DateTime<Utc>,
    },
    /// Claimed, but its SMTP transaction never began (the daemon is stopping, or its start
    /// could not be recorded): back in the queue at once, not an attempt.
    Returned {
        reason: String,
        at: DateTime<Utc>,
    },
}

/// How a retry after a policy refusal begins its `last_error` (see [`Outcome::Blocked`]):
/// what `/metrics` counts as blocked.
pub(in crate::store) const BLOCKED: &str = "blocked by the recipient's server:";

/// What one transaction of a delivery pass writes (see [`Store::deliver_step`]).
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// What became of messages sent (or not) since the last step.
    pub results: Vec<(i64, Outcome)>,
    /// Claimed messages to start, in the order they will be sent.
    pub starts: Vec<i64>,
    /// Claim up to this many messages due at this moment.
    pub claim: Option<(DateTime<Utc>, usize)>,
    /// When the starts begin.
    pub at: DateTime<Utc>,
}

/// What a [`Step`] did.
#[derive(Debug)]
pub(crate) struct Stepped {
    /// For each start, in order, why it must not go (`None`: started).
    pub withdrawn: Vec<Option<String>>,
    /// The messages claimed, or why the claim alone failed.
    pub claimed: Result<Vec<Claimed>>,
}

/// What start-up found of messages a stop caught `sending`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Their SMTP transaction had begun: the server may have them.
    pub uncertain: usize,
    /// Claimed, never started: back in the queue.
    pub returned: usize,
}

/// A person's standing from their suppression reason (if any) and whether they came back.
pub(super) fn standing_of(suppression: Option<&str>, returned: bool) -> Standing {
    crate::domain::lifecycle::standing(suppression.map(Reason::decode), returned)
}

/// The states of [`MessageState::takes_the_day`], as an SQL list (a literal, for
/// `concat!`, so that the statements that use it stay cached and allocate nothing).
macro_rules! takes_the_day {
    () => {
        "('sending', 'sent', 'uncertain')"
    };
}
pub(in crate::store) use takes_the_day;

/// A message state as stored; any other text is a row this build cannot read.
pub(super) fn message_state(text: &str) -> Result<MessageState> {
    MessageState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("message state {text:?}")))
}

/// An enrollment state as stored; any other text is a row this build cannot read.
pub(super) fn enrollment_state(text: &str) -> Result<EnrollmentState> {
    EnrollmentState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("enrollment state {text:?}")))
}

/// What went out (or may have) in one cycle of an enrollment, oldest first: the history
/// its next message is counted from (see `domain::schedule::next_message`).
pub(in crate::store) fn history(
    conn: &Connection,
    enrollment_id: i64,
    cycle: i64,
) -> Result<Vec<Sent>> {
    let rows: Vec<(u32, u32, String)> = conn
        .prepare_cached(
            "SELECT step, occurrence, sent_at FROM messages
             WHERE enrollment_id = ?1 AND cycle = ?2 AND state IN ('sent', 'uncertain') AND sent_at IS NOT NULL
             ORDER BY sent_at",
        )?
        .query_map(params![enrollment_id, cycle], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    rows.into_iter()
        .map(|(step, occurrence, at)| {
            Ok(Sent {
                step,
                occurrence,
                at: parse_time(&at)?,
            })
        })
        .collect()
}

/// A message's enrollment, as the claim needs it: its person and its sequence.
pub(super) fn enrollment_client(
    conn: &Connection,
    enrollment_id: i64,
) -> Result<Option<(i64, Sequence)>> {
    let row: Option<(i64, String, i64)> = conn
        .prepare_cached("SELECT client_id, state, cycle FROM enrollments WHERE id = ?1")?
        .query_row(params![enrollment_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(client_id, state, cycle)| {
        let state = enrollment_state(&state)?;
        Ok((client_id, Sequence { state, cycle }))
    })
    .transpose()
}

impl Store {
    /// The earliest moment anything may need doing: a waiting enrollment, a retry or a
    /// held message.
    pub(crate) fn next_wake(&self) -> Result<Option<DateTime<Utc>>> {
        let waiting: Option<i64> = self.conn.query_row(
            "SELECT MIN(send_at) FROM enrollments WHERE state = 'active' AND send_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        let retry: Option<String> = self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM messages WHERE state IN ('retry', 'held')",
            [],
            |r| r.get(0),
        )?;
        let waiting = waiting.map(from_moment).transpose()?;
        let retry = retry.as_deref().map(parse_time).transpose()?;
        Ok(waiting.into_iter().chain(retry).min())
    }

    /// Messages claimed since `since` (for the daily and per-minute limits). Held ones
    /// never reached the server: they do not use up the limits.
    pub(crate) fn claimed_since(&self, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE claimed_at >= ?1 AND state NOT IN ('cancelled', 'held')",
            params![fmt_time(since)],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}
