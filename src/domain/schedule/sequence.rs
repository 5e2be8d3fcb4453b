//! What a sequence sends next, from its history: the linear steps in order, each reached
//! recurring (`every_days`) or seasonal (`on`) step again, and the consent horizon.
//!
//! A step counts from the `send_at` moment the message before it went at, not from the
//! instant it went a moment later, so the daemon sends it on the day `plan` shows.
//!
//! Pure: the messages that went out in this cycle arrive as data. When a message may
//! really go (send_at, gaps, holidays) is `schedule`'s search, not this file's.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::survey_due;
use crate::domain::calendar::{add_local_days, local_day, local_to_utc};
use crate::domain::campaign::{Campaign, MonthDay, Step};
use crate::domain::model::ChurnedAt;

/// A message of the sequence that went out (or may have): its step, its occurrence
/// (1 for the step's first message, 2 for its first recurrence...), and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub step: u32,
    pub occurrence: u32,
    pub at: DateTime<Utc>,
}

/// Why a message is due when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The survey: the churn plus the quiet period.
    Survey,
    /// A linear step: `days` after the first message of `step` (after its `send_at`
    /// moment, see `counted_from`).
    After { step: u32, days: u32 },
    /// A seasonal step's date (first time or a yearly recurrence).
    Seasonal(MonthDay),
    /// A recurring step, `every_days` after its previous occurrence's `send_at` moment.
    Every(u32),
}

/// The next message of a sequence: which step and occurrence, due when, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Upcoming {
    pub step: u32,
    pub occurrence: u32,
    pub due: DateTime<Utc>,
    pub why: Why,
}

/// What follows a sequence's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Message(Upcoming),
    /// No linear step left and no recurring or seasonal step reached.
    Completed,
}

/// Every message that may come next: the next linear step, and the next occurrence of
/// each reached recurring or seasonal step. Messages go one at a time: the earliest due
/// of these is the next ([`next_message`]).
pub(crate) fn upcoming(
    campaign: &Campaign,
    churned_at: ChurnedAt,
    history: &[Sent],
    tz: Tz,
) -> Vec<Upcoming> {
    let mut out = Vec::new();
    let reached = history.iter().map(|s| s.step).max().unwrap_or(0);
    if reached == 0 {
        if campaign.step(1).is_some() {
            out.push(Upcoming {
                step: 1,
                occurrence: 1,
                due: survey_due(campaign, churned_at, tz),
                why: Why::Survey,
            });
        }
        return out;
    }
    // The next linear step counts from the first message of the step before it.
    if let Some(step) = campaign.step(reached + 1)
        && let Some(went) = first_of(history, reached)
    {
        let due = first_due(step, counted_from(campaign, went, tz), tz);
        let why = match step.on {
            Some(on) => Why::Seasonal(on),
            None => Why::After {
                step: reached,
                days: step.after_days,
            },
        };
        out.push(Upcoming {
            step: reached + 1,
            occurrence: 1,
            due,
            why,
        });
    }
    let mut steps: Vec<u32> = history.iter().map(|s| s.step).collect();
    steps.sort_unstable();
    steps.dedup();
    for number in steps {
        let Some(step) = campaign.step(number) else {
            continue;
        };
        let Some(last) = history
            .iter()
            .filter(|s| s.step == number)
            .max_by_key(|s| (s.occurrence, s.at))
        else {
            continue;
        };
        let recurrence = match (step.every_days, step.on) {
            (Some(days), _) => Some((
                add_local_days(counted_from(campaign, last.at, tz), days, tz),
                Why::Every(days),
            )),
            (None, Some(on)) => local_day(last.at, tz)
                .checked_add_days(Days::new(1))
                .map(|from| (midnight(next_on(on, from), tz), Why::Seasonal(on))),
            (None, None) => None,
        };
        if let Some((due, why)) = recurrence {
            out.push(Upcoming {
                step: number,
                occurrence: last.occurrence + 1,
                due,
                why,
            });
        }
    }
    out
}

/// The message a sequence sends next: the earliest due of [`upcoming`] (the lower step
/// first on a tie), or `Completed`. A recurring step's occurrence due less than
/// `min_gap_days` before another message gives way to it: it would have to keep the gap
/// from that one anyway, and a seasonal message keeps its date.
pub(crate) fn next_message(
    campaign: &Campaign,
    churned_at: ChurnedAt,
    history: &[Sent],
    tz: Tz,
) -> Next {
    let mut candidates = upcoming(campaign, churned_at, history, tz);
    candidates.sort_by_key(|u| (u.due, u.step));
    let recurring = |u: &Upcoming| matches!(u.why, Why::Every(_));
    let gap = chrono::Duration::days(i64::from(campaign.min_gap_days));
    let first = candidates.first().copied();
    let next = match first {
        Some(first) if recurring(&first) => candidates
            .iter()
            .find(|u| !recurring(u) && u.due - first.due < gap)
            .copied()
            .or(Some(first)),
        other => other,
    };
    next.map_or(Next::Completed, Next::Message)
}

/// When the first message of step `number` went out.
fn first_of(history: &[Sent], number: u32) -> Option<DateTime<Utc>> {
    history
        .iter()
        .filter(|s| s.step == number)
        .min_by_key(|s| (s.occurrence, s.at))
        .map(|s| s.at)
}

/// The instant a step counts from when the message before it went at `at`: the `send_at`
/// moment it went at, the last one at or before `at` on that local day. A message goes a
/// moment after its moment (the pass starts, the server answers, a batch or a rate limit
/// takes minutes, a pass catches up hours later): counted from that instant, a step due 30
/// days on would fall just after that day's moment and go a day later than `plan`, whose
/// sends are at the moment, says. A message that went before any moment of its local day
/// (resent by hand, or a survey another campaign sent) counts from when it went. Never
/// later than `at`; gaps and one message a day still go by the real send times.
fn counted_from(campaign: &Campaign, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let local = at.with_timezone(&tz).naive_local();
    campaign
        .send_at
        .last_at_or_before(local)
        .filter(|moment| moment.date() == local.date())
        .map(|moment| local_to_utc(moment, tz))
        .filter(|moment| *moment <= at)
        .unwrap_or(at)
}

/// When a step is first due after a message at `base`: `after_days` later, or, for a
/// seasonal step, local midnight of its next date at least `after_days` after.
fn first_due(step: &Step, base: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let earliest = add_local_days(base, step.after_days, tz);
    match step.on {
        Some(on) => midnight(next_on(on, local_day(earliest, tz)), tz),
        None => earliest,
    }
}

fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    local_to_utc(date.and_time(NaiveTime::MIN), tz)
}

/// `on`'s date in `year`: 29 February is 28 February in other years.
pub(crate) fn on_date(on: MonthDay, year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, on.month, on.day).or_else(|| {
        (on.month == 2 && on.day == 29)
            .then(|| NaiveDate::from_ymd_opt(year, 2, 28))
            .flatten()
    })
}

/// The first date at or after `from` that is `on`.
pub(crate) fn next_on(on: MonthDay, from: NaiveDate) -> NaiveDate {
    (from.year()..from.year() + 2)
        .filter_map(|y| on_date(on, y))
        .find(|d| *d >= from)
        // Unreachable for a valid month-day: every year has one.
        .unwrap_or(from)
}

/// The first instant no message may start at: the end of the local day
/// `max_days_since_churn` days after the churn. `None` without a horizon.
pub(crate) fn horizon(campaign: &Campaign, churned_at: ChurnedAt, tz: Tz) -> Option<DateTime<Utc>> {
    let days = campaign.max_days_since_churn?;
    let churn_day = local_day(churned_at.instant(tz), tz);
    let end = churn_day.checked_add_days(Days::new(u64::from(days) + 1))?;
    Some(midnight(end, tz))
}

#[cfg(test)]
mod tests;
