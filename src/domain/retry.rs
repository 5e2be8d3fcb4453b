//! What the outbox's facts mean: when a failed message is tried again and when it is
//! given up, when a held one is tried again, when a queued message no longer belongs to
//! its sequence, and what a message already at an enrollment's current step means.
//!
//! Pure: times and states in, a decision out. Must not read the database, the clock or
//! the configuration file: the store gathers the facts and writes the answer down.

use chrono::{DateTime, Duration, Utc};

use crate::domain::campaign::Campaign;
use crate::domain::model::{EnrollmentState, MessageState};

/// Retries back off from `retry_first`, doubling, but never wait longer than this.
const MAX_BACKOFF_HOURS: i64 = 6;
/// A held message is tried again (and its reason logged again) after this long, at its
/// next `send_at` moment; and at every start, since a fix to a template needs one.
pub(crate) const HELD_RETRY_HOURS: i64 = 24;

/// `[smtp] retry_first_minutes` and `retry_give_up_hours`, as the outbox applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// The wait after the first failed attempt; each further one waits twice as long.
    pub(crate) first: Duration,
    /// How long after the first attempt a message that keeps failing is given up (and
    /// its address with it).
    pub(crate) give_up: Duration,
}

/// What follows a transient failure (or a policy refusal) of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// Tried long enough: the address counts as bounced.
    GiveUp,
}

impl RetryPolicy {
    /// The wait after the `attempts`-th attempt failed: `first`, doubling, at most six
    /// hours (a greylisting server wants minutes; a long outage should not push the next
    /// try past a working day).
    pub(crate) fn backoff(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(16);
        let delay = self.first * 2i32.pow(exponent);
        delay.min(Duration::hours(MAX_BACKOFF_HOURS))
    }

    /// The attempt numbered `attempts`, first made at `first_attempt`, failed at `at`:
    /// give up once `give_up` has passed since the first attempt, else back off.
    pub(crate) fn after_failure(
        &self,
        attempts: u32,
        first_attempt: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> AfterFailure {
        if at - first_attempt >= self.give_up {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RetryAt(at + self.backoff(attempts))
        }
    }

    /// Our own server refused us (not the recipient's): try again after `first`. The
    /// time until giving up on the address starts again then, since the refusal said
    /// nothing about it.
    pub(crate) fn after_deferral(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + self.first
    }
}

/// When a message held at `at` (not fit to go) is looked at again.
pub(crate) fn held_retry_at(at: DateTime<Utc>) -> DateTime<Utc> {
    at + Duration::hours(HELD_RETRY_HOURS)
}

/// An enrollment as a queued message sees it: its state and which sequence it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub(crate) state: EnrollmentState,
    pub(crate) cycle: i64,
}

/// Why a message of sequence `cycle` must not go out even though its person's standing
/// allows it: the enrollment moved on to a new sequence (they came back and left again),
/// its sequence was stopped, or the campaign now excludes the client's churn reason (say,
/// the CRM now says we ended the relationship).
pub(crate) fn superseded(
    sequence: Sequence,
    cycle: i64,
    campaign: &Campaign,
    churn_reason: Option<&str>,
) -> Option<&'static str> {
    let stopped = matches!(
        sequence.state,
        EnrollmentState::OptedOut
            | EnrollmentState::Bounced
            | EnrollmentState::Returned
            | EnrollmentState::Left
            | EnrollmentState::Replied
    );
    if sequence.cycle != cycle {
        Some("dropped: it belongs to an earlier sequence")
    } else if stopped {
        Some("dropped: its sequence was stopped")
    } else if campaign.excludes(churn_reason) {
        Some("dropped: the campaign's audience no longer includes this client")
    } else {
        None
    }
}

/// What a message row already at an enrollment's current step means when the
/// enrollment comes due there: never a second copy of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtStep {
    /// Dropped before it was ever sent: the claim takes the same row up again.
    TakeUp,
    /// It went out (or may have), at its `sent_at`: the enrollment moves on from then.
    MoveOn,
    /// Still out (sending, retry, held), or failed: its own result moves the enrollment
    /// on, or an operator does; nothing is sent now.
    Wait,
}

/// See [`AtStep`]. `has_sent_at`: whether the row records when it went out.
pub(crate) fn at_step(state: MessageState, has_sent_at: bool) -> AtStep {
    match state {
        MessageState::Cancelled => AtStep::TakeUp,
        state if state.went_out() && has_sent_at => AtStep::MoveOn,
        _ => AtStep::Wait,
    }
}

#[cfg(test)]
mod tests;
