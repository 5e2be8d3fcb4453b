//! The pure core: who is due, when, what comes next, when to stop.
//!
//! Everything here is a plain function of configuration, client facts and a `now` passed
//! in. It must not touch the database, the network, the file system or the clock: that
//! is what makes every rule testable in a table and every plan exactly what the daemon
//! will do.
//!
//! Times are computed on the recipient's wall clock (their time zone, else the
//! campaign's): days are calendar days there, and `send_at` moments are local times,
//! mapped to instants by [`local_to_utc`] (a time skipped by a DST change moves to the
//! first minute after the gap; a time that occurs twice means its first occurrence).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{
    DateTime, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::Campaign;
use crate::model::{ChurnedAt, EnrollmentState, StepKind};

/// How far ahead a search for a `send_at` moment may look before giving up.
const MAX_SEARCH_STEPS: usize = 1000;

/// The instant a local wall-clock time denotes in `tz`.
pub fn local_to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a DST gap: the first minute that exists after it (vixie cron's rule).
            for minutes in 1..=24 * 60 {
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    tz.from_local_datetime(&(local + Duration::minutes(minutes)))
                {
                    return t.with_timezone(&Utc);
                }
            }
            // No zone has a day-long gap; treat the wall time as UTC rather than fail.
            Utc.from_utc_datetime(&local)
        }
    }
}

/// The zone a recipient's days and `send_at` moments are counted in.
pub fn zone(campaign: &Campaign, recipient: Option<Tz>) -> Tz {
    recipient.unwrap_or(campaign.timezone)
}

/// `t` plus `days` calendar days on the wall clock of `tz`, keeping the time of day.
pub fn add_local_days(t: DateTime<Utc>, days: u32, tz: Tz) -> DateTime<Utc> {
    let local = t.with_timezone(&tz).naive_local();
    let later = local
        .checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(local);
    local_to_utc(later, tz)
}

/// When the survey is due: the churn moment plus the quiet period, in local calendar days.
pub fn survey_due(campaign: &Campaign, churned_at: ChurnedAt, tz: Tz) -> DateTime<Utc> {
    add_local_days(churned_at.instant(tz), campaign.quiet_days, tz)
}

/// What follows the send of step `sent_step` (1-based) at `sent_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Step { number: u32, due: DateTime<Utc> },
    Completed,
}

pub fn after_send(campaign: &Campaign, sent_step: u32, sent_at: DateTime<Utc>, tz: Tz) -> Next {
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
pub fn survey_given_elsewhere(
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
pub fn earliest_send(
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

/// [`earliest_send`], moved past any local day on which the person already gets a
/// message (`busy`: send times of their other messages, any campaign).
pub fn earliest_free_send(
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

pub fn local_day(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// What a delivery pass does with a message whose planned moment has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
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
pub struct Standing {
    pub opted_out: bool,
    pub bounced: bool,
    pub returned: bool,
}

impl Standing {
    /// The stop state these facts impose, if any. An opt-out outranks the rest.
    pub fn stop(&self) -> Option<EnrollmentState> {
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
pub fn decide(
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

/// An active enrollment, as `plan` needs it.
#[derive(Debug, Clone)]
pub struct PlanItem<'a> {
    pub email: String,
    pub client_key: i64,
    pub timezone: Option<Tz>,
    pub churned_at: ChurnedAt,
    pub campaign: &'a Campaign,
    pub next_step: u32,
    pub due: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
}

/// One message the daemon will send, and why then.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Planned {
    pub at: DateTime<Utc>,
    /// The recipient's wall-clock time, with its zone.
    pub local: String,
    pub email: String,
    pub campaign: String,
    pub step: u32,
    pub kind: StepKind,
    pub reason: String,
}

/// Simulates the daemon from `now` to `until`: every message, in send order, including
/// later steps that follow earlier ones inside the window. `busy` holds, per client key,
/// the send times of messages already out (for the one-message-per-day rule).
pub fn plan(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<DateTime<Utc>>>,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Planned> {
    plan_with_limits(items, busy, &RateLimits::default(), now, until)
}

/// The `[smtp]` rate limits, and the claims already made in the last day, as the daemon
/// counts them (a rolling minute and a rolling day).
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    /// When recent messages were claimed, oldest first.
    pub recent: Vec<DateTime<Utc>>,
}

/// A rolling window of sends with a cap.
struct Window {
    span: Duration,
    limit: usize,
    sends: std::collections::VecDeque<DateTime<Utc>>,
}

impl Window {
    fn new(span: Duration, limit: Option<u32>, recent: &[DateTime<Utc>]) -> Option<Window> {
        let limit = limit? as usize;
        Some(Window {
            span,
            limit: limit.max(1),
            sends: recent.iter().copied().collect(),
        })
    }

    /// The earliest instant at or after `t` when one more send fits. `t` never decreases
    /// from one call to the next.
    fn next_free(&mut self, t: DateTime<Utc>) -> DateTime<Utc> {
        while self
            .sends
            .front()
            .is_some_and(|first| *first <= t - self.span)
        {
            self.sends.pop_front();
        }
        if self.sends.len() < self.limit {
            t
        } else {
            self.sends[self.sends.len() - self.limit] + self.span
        }
    }
}

/// [`plan`], holding back what the rate limits hold back.
pub fn plan_with_limits(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<DateTime<Utc>>>,
    limits: &RateLimits,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Planned> {
    let mut windows: Vec<(Window, &str)> = [
        (
            Window::new(Duration::minutes(1), limits.per_minute, &limits.recent),
            "max_per_minute",
        ),
        (
            Window::new(Duration::days(1), limits.per_day, &limits.recent),
            "max_per_day",
        ),
    ]
    .into_iter()
    .filter_map(|(w, name)| w.map(|w| (w, name)))
    .collect();
    let mut busy: HashMap<i64, Vec<DateTime<Utc>>> = busy.clone();
    let mut items = items;
    let mut reasons: Vec<String> = items.iter().map(|i| due_reason(i, None)).collect();
    let mut heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>> = BinaryHeap::new();
    for (index, item) in items.iter().enumerate() {
        let tz = zone(item.campaign, item.timezone);
        if let Some(t) = earliest_send(item.campaign, tz, item.due, item.not_before, now)
            && t <= until
        {
            heap.push(Reverse((t, index)));
        }
    }
    let mut out = Vec::new();
    while let Some(Reverse((t, index))) = heap.pop() {
        let item = &items[index];
        let tz = zone(item.campaign, item.timezone);
        let person = busy.entry(item.client_key).or_default();
        let Some(free) =
            earliest_free_send(item.campaign, tz, item.due, item.not_before, t, person)
        else {
            continue;
        };
        if free > until {
            continue;
        }
        if free > t {
            reasons[index].push_str("; moved a day: one message per person per day");
            heap.push(Reverse((free, index)));
            continue;
        }
        let Some(step) = item.campaign.step(item.next_step) else {
            continue;
        };
        let held = windows
            .iter_mut()
            .map(|(w, name)| (w.next_free(free), *name))
            .max_by_key(|(t, _)| *t)
            .filter(|(t, _)| *t > free);
        if let Some((later, name)) = held {
            if !reasons[index].contains(name) {
                reasons[index].push_str(&format!("; held back by {name}"));
            }
            heap.push(Reverse((later, index)));
            continue;
        }
        for (w, _) in windows.iter_mut() {
            w.sends.push_back(free);
        }
        person.push(free);
        out.push(Planned {
            at: free,
            local: free
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M %Z (%a)")
                .to_string(),
            email: item.email.clone(),
            campaign: item.campaign.name.clone(),
            step: item.next_step,
            kind: step.kind,
            reason: format!(
                "{}; first send_at \"{}\" moment",
                reasons[index],
                item.campaign.send_at.source()
            ),
        });
        if let Next::Step { number, due } = after_send(item.campaign, item.next_step, free, tz) {
            let item = &mut items[index];
            item.next_step = number;
            item.due = due;
            item.not_before = due;
            reasons[index] = due_reason(item, Some(free));
            if let Some(t) = earliest_send(item.campaign, tz, due, due, free)
                && t <= until
            {
                heap.push(Reverse((t, index)));
            }
        }
    }
    out
}

fn due_reason(item: &PlanItem<'_>, previous_send: Option<DateTime<Utc>>) -> String {
    let tz = zone(item.campaign, item.timezone);
    let due_local = item.due.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z");
    match (item.next_step, previous_send) {
        (1, _) => format!(
            "due {due_local}: churned {} + {} quiet days",
            item.churned_at, item.campaign.quiet_days
        ),
        (n, Some(prev)) => {
            let after = item.campaign.step(n).map(|s| s.after_days).unwrap_or(0);
            format!(
                "due {due_local}: step {} planned {} + {after} days",
                n - 1,
                prev.with_timezone(&tz).format("%Y-%m-%d")
            )
        }
        (n, None) => {
            let after = item.campaign.step(n).map(|s| s.after_days).unwrap_or(0);
            format!("due {due_local}: step {} sent + {after} days", n - 1)
        }
    }
}

#[cfg(test)]
mod tests;
