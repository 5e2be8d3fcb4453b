//! Who is due, when, what comes next, when to stop.
//!
//! Everything here is a plain function of configuration, client facts and a `now` passed
//! in. It must not touch the database, the network, the file system or the clock: that
//! is what makes every rule testable in a table and every plan exactly what the daemon
//! will do.
//!
//! Times are computed on the recipient's wall clock (their time zone, else the
//! campaign's): days are calendar days there, and `send_at` moments are local times,
//! mapped to instants by [`crate::domain::calendar::local_to_utc`] (a time skipped by a DST change moves to the
//! first minute after the gap; a time that occurs twice means its first occurrence).

use chrono::{DateTime, Days, Duration, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::{add_local_days, local_day, local_to_utc};
use crate::domain::campaign::Campaign;
use crate::domain::model::{ChurnedAt, EnrollmentState, StepKind};

/// How far ahead a search for a `send_at` moment may look before giving up.
const MAX_SEARCH_STEPS: usize = 1000;

/// The zone a recipient's days and `send_at` moments are counted in.
pub(crate) fn zone(campaign: &Campaign, recipient: Option<Tz>) -> Tz {
    recipient.unwrap_or(campaign.timezone)
}

/// When the survey is due: the churn moment plus the quiet period, in local calendar days.
pub(crate) fn survey_due(campaign: &Campaign, churned_at: ChurnedAt, tz: Tz) -> DateTime<Utc> {
    add_local_days(churned_at.instant(tz), campaign.quiet_days, tz)
}

/// What follows the send of step `sent_step` (1-based) at `sent_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Step { number: u32, due: DateTime<Utc> },
    Completed,
}

pub(crate) fn after_send(
    campaign: &Campaign,
    sent_step: u32,
    sent_at: DateTime<Utc>,
    tz: Tz,
) -> Next {
    let number = sent_step + 1;
    match campaign.step(number) {
        Some(step) => Next::Step {
            number,
            due: add_local_days(sent_at, step.after_days, tz),
        },
        None => Next::Completed,
    }
}

/// A person is surveyed once per departure, whichever campaign asks: when another
/// campaign already surveyed them at `elsewhere` (since they left), a survey step counts
/// as sent then and the sequence goes on from it. None: this step goes out as usual.
pub(crate) fn survey_given_elsewhere(
    kind: StepKind,
    elsewhere: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if kind == StepKind::Survey {
        elsewhere
    } else {
        None
    }
}

/// The earliest instant at or after `from` when a message due at `due` may go out,
/// not before `not_before` (a retry's backoff).
///
/// It may go out during `[m, m + catch_up_hours)` for a `send_at` moment `m` at or after
/// `due`; a pass later than that (the daemon was down) waits for the next moment rather
/// than sending at an odd hour. `None` if the schedule never fires again.
pub(crate) fn earliest_send(
    campaign: &Campaign,
    tz: Tz,
    due: DateTime<Utc>,
    not_before: DateTime<Utc>,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let start = from.max(not_before);
    let catch_up = Duration::hours(i64::from(campaign.catch_up_hours));
    // Is `start` inside the window of a moment at or after `due`? Searched forward over
    // instants: in a fall-back hour the wall clock repeats, so the last moment by wall
    // time before `start` can miss one that passed minutes ago.
    let window_opens = due.max(start - catch_up + Duration::nanoseconds(1));
    if let Some(moment) = first_moment_at_or_after(campaign, tz, window_opens)
        && moment <= start
    {
        return Some(start);
    }
    first_moment_at_or_after(campaign, tz, due.max(start))
}

/// The first `send_at` moment, as an instant, at or after `lower`.
fn first_moment_at_or_after(
    campaign: &Campaign,
    tz: Tz,
    lower: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // Start a second early on the wall clock: a moment inside a spring-forward gap maps
    // to the end of the gap, which can be `lower` itself.
    let mut local = (lower - Duration::seconds(1))
        .with_timezone(&tz)
        .naive_local();
    for _ in 0..MAX_SEARCH_STEPS {
        let m = campaign.send_at.first_at_or_after(local)?;
        let moment = local_to_utc(m, tz);
        if moment >= lower {
            return Some(moment);
        }
        local = m + Duration::seconds(1);
    }
    None
}

/// How far back a person's messages count as `busy` for [`earliest_free_send`]: a local
/// day lasts at most 25 hours, so a message on the same local day as one sent now or
/// later went out less than a day and an hour ago; 48 hours keeps a margin.
pub(crate) const BUSY_LOOKBACK_HOURS: i64 = 48;

/// [`earliest_send`], moved past any local day on which the person already gets a
/// message (`busy`: send times of their other messages, any campaign).
pub(crate) fn earliest_free_send(
    campaign: &Campaign,
    tz: Tz,
    due: DateTime<Utc>,
    not_before: DateTime<Utc>,
    from: DateTime<Utc>,
    busy: &[DateTime<Utc>],
) -> Option<DateTime<Utc>> {
    let mut from = from;
    for _ in 0..MAX_SEARCH_STEPS {
        let t = earliest_send(campaign, tz, due, not_before, from)?;
        let day = local_day(t, tz);
        if !busy.iter().any(|b| local_day(*b, tz) == day) {
            return Some(t);
        }
        let next_day = day.checked_add_days(Days::new(1))?;
        from = local_to_utc(next_day.and_time(NaiveTime::MIN), tz);
    }
    None
}

/// What a delivery pass does with a message whose planned moment has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    SendNow,
    /// Not now: try again at this instant.
    Wait(DateTime<Utc>),
    /// Stop the sequence in this state.
    Stop(EnrollmentState),
    /// The schedule never fires again; nothing to do.
    Never,
}

/// Facts about a person that can stop every sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    pub opted_out: bool,
    pub bounced: bool,
    pub returned: bool,
}

impl Standing {
    /// The stop state these facts impose, if any. An opt-out outranks the rest.
    pub(crate) fn stop(&self) -> Option<EnrollmentState> {
        if self.opted_out {
            Some(EnrollmentState::OptedOut)
        } else if self.bounced {
            Some(EnrollmentState::Bounced)
        } else if self.returned {
            Some(EnrollmentState::Returned)
        } else {
            None
        }
    }
}

/// Decides, at `now`, whether a message due at `due` goes out.
pub(crate) fn decide(
    campaign: &Campaign,
    tz: Tz,
    due: DateTime<Utc>,
    not_before: DateTime<Utc>,
    now: DateTime<Utc>,
    standing: Standing,
    busy: &[DateTime<Utc>],
) -> Decision {
    if let Some(stop) = standing.stop() {
        return Decision::Stop(stop);
    }
    match earliest_free_send(campaign, tz, due, not_before, now, busy) {
        Some(t) if t <= now => Decision::SendNow,
        Some(t) => Decision::Wait(t),
        None => Decision::Never,
    }
}

#[cfg(test)]
mod tests;
