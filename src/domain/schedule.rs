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

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, Utc};
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

mod sequence;
pub(crate) use sequence::{Next, Sent, Upcoming, Why, horizon, next_message, upcoming};

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

/// How long a paused campaign's message waits before it is looked at again, as a queued
/// one does.
pub(crate) const PAUSED_RECHECK_HOURS: i64 = 1;

/// When a paused campaign's waiting message is looked at again from `now`: the first
/// `send_at` moment at least [`PAUSED_RECHECK_HOURS`] on. Unpaused by then, it goes by
/// [`earliest_send`] from its own due time (at a moment, never in a burst at an odd
/// hour). `None` if the schedule never fires again.
pub(crate) fn paused_until(
    campaign: &Campaign,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    first_moment_at_or_after(campaign, tz, now + Duration::hours(PAUSED_RECHECK_HOURS))
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

/// How far back a person's messages count as `busy` for [`search`]: a local day lasts at
/// most 25 hours, so a message on the same local day as one sent now or later went out
/// less than a day and an hour ago; 48 hours keeps a margin. A campaign's
/// `min_gap_days` and `account_gap_days` reach further ([`lookback`]).
pub(crate) const BUSY_LOOKBACK_HOURS: i64 = 48;

/// How far back messages count for a campaign's rules: the local day, and its gaps.
pub(crate) fn lookback(campaign: &Campaign) -> Duration {
    let gap = campaign.min_gap_days.max(campaign.account_gap_days);
    Duration::hours(BUSY_LOOKBACK_HOURS).max(Duration::days(i64::from(gap) + 2))
}

/// Another message to the person: when it went (or may go) out, and whether it was a
/// recurring step's (see [`recurs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy {
    pub at: DateTime<Utc>,
    pub recurring: bool,
}

/// Whether step `step` of `campaign` recurs (`every_days`): its messages and every other
/// message to the person keep `min_gap_days` apart, in either order. A step no longer
/// configured does not.
pub(crate) fn recurs(campaign: Option<&Campaign>, step: u32) -> bool {
    campaign
        .and_then(|c| c.step(step))
        .is_some_and(|s| s.every_days.is_some())
}

/// The facts beyond `send_at` that can move a message: the person's other messages, the
/// gap a recurring step keeps from them, their account's messages, the dates kept free
/// for their country, and the consent horizon.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules<'a> {
    /// The person's other messages, any campaign.
    pub busy: &'a [Busy],
    /// The message is a recurring step's: it keeps the campaign's `min_gap_days` from
    /// every message in `busy`. Any message keeps it from the recurring ones there.
    pub recurring: bool,
    /// When messages to the other contacts of the person's account went out.
    pub account_busy: &'a [DateTime<Utc>],
    /// `account_gap_days`; 0 keeps no gap.
    pub account_gap_days: u32,
    /// The person's country, for holiday calendars (see `holidays::country_of`).
    pub country: Option<&'a str>,
    /// No message starts at or after this instant (see `sequence::horizon`).
    pub horizon: Option<DateTime<Utc>>,
}

/// A rule that moved a message to a later moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Another message to the person goes that local day.
    SameDay(NaiveDate),
    /// `min_gap_days` from the person's message at this time (one of the two a
    /// recurring step's).
    MinGap(DateTime<Utc>),
    /// Another contact of the account got a message at this time.
    Account(DateTime<Utc>),
    /// The local date is kept free: the holiday's or quiet range's name.
    Holiday(NaiveDate, String),
}

/// Where the search for a message's moment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// It may go at this instant, moved by these rules (first to last).
    At(DateTime<Utc>, Vec<Moved>),
    /// Its first allowed moment is past the consent horizon.
    PastHorizon,
    /// The schedule never fires again (or the search gave up).
    Never,
}

/// The earliest instant at or after `from` when a message due at `due` may go out (see
/// [`earliest_send`]), moved past every rule in `rules`: a local day with another message
/// to the person, `min_gap_days` between a recurring step's message and any other, the
/// account gap, a date kept free.
/// A moved message goes at the first `send_at` moment at or after where it was moved to
/// (never at an odd hour by the catch-up window).
pub(crate) fn search(
    campaign: &Campaign,
    tz: Tz,
    due: DateTime<Utc>,
    not_before: DateTime<Utc>,
    from: DateTime<Utc>,
    rules: &Rules<'_>,
) -> Found {
    let (mut due, mut not_before, mut from) = (due, not_before, from);
    let mut moves = Vec::new();
    for _ in 0..MAX_SEARCH_STEPS {
        let Some(t) = earliest_send(campaign, tz, due, not_before, from) else {
            return Found::Never;
        };
        if rules.horizon.is_some_and(|h| t >= h) {
            return Found::PastHorizon;
        }
        let day = local_day(t, tz);
        let (moved, to) = if let Some(name) = campaign.holidays.blocked(day, rules.country) {
            // Straight to the first free day: a run of quiet dates is one move.
            (
                Moved::Holiday(day, name),
                campaign.holidays.first_free_day(day, rules.country),
            )
        } else if rules.busy.iter().any(|b| local_day(b.at, tz) == day) {
            (Moved::SameDay(day), day.checked_add_days(Days::new(1)))
        } else if let Some((other, to)) = gap_conflict(
            rules
                .busy
                .iter()
                .filter(|b| rules.recurring || b.recurring)
                .map(|b| b.at),
            campaign.min_gap_days,
            day,
            tz,
        ) {
            (Moved::MinGap(other), Some(to))
        } else if let Some((other, to)) = (rules.account_gap_days > 0)
            .then(|| {
                gap_conflict(
                    rules.account_busy.iter().copied(),
                    rules.account_gap_days,
                    day,
                    tz,
                )
            })
            .flatten()
        {
            (Moved::Account(other), Some(to))
        } else {
            return Found::At(t, moves);
        };
        let Some(to) = to else {
            return Found::Never;
        };
        moves.push(moved);
        let lower = local_to_utc(to.and_time(NaiveTime::MIN), tz);
        due = due.max(lower);
        not_before = not_before.max(lower);
        from = from.max(lower);
    }
    Found::Never
}

/// The latest of `times` fewer than `gap` local days from `day` (either side), and the
/// first day `gap` days after it.
fn gap_conflict(
    times: impl Iterator<Item = DateTime<Utc>>,
    gap: u32,
    day: NaiveDate,
    tz: Tz,
) -> Option<(DateTime<Utc>, NaiveDate)> {
    let other = times
        .filter(|b| (local_day(*b, tz) - day).num_days().abs() < i64::from(gap))
        .max()?;
    let to = local_day(other, tz).checked_add_days(Days::new(u64::from(gap)))?;
    Some((other, to))
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

/// Decides, at `now`, whether a message due at `due` goes out. A wait comes with the
/// rules that moved it (first to last, none when its moment is simply later): the claim
/// stores their words with the later moment, since nothing else would tell `plan` why.
pub(crate) fn decide(
    campaign: &Campaign,
    tz: Tz,
    due: DateTime<Utc>,
    not_before: DateTime<Utc>,
    now: DateTime<Utc>,
    standing: Standing,
    rules: &Rules<'_>,
) -> (Decision, Vec<Moved>) {
    if let Some(stop) = standing.stop() {
        return (Decision::Stop(stop), Vec::new());
    }
    match search(campaign, tz, due, not_before, now, rules) {
        Found::At(t, _) if t <= now => (Decision::SendNow, Vec::new()),
        Found::At(t, moves) => (Decision::Wait(t), moves),
        Found::PastHorizon => (Decision::Stop(EnrollmentState::Expired), Vec::new()),
        Found::Never => (Decision::Never, Vec::new()),
    }
}

#[cfg(test)]
mod tests;
