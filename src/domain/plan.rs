//! The plan: every message the daemon will send in a window, in send order, with the
//! reason for its moment, simulated with the same rules and rate limits delivery applies.
//!
//! Pure: the items, the messages already out and `now` are passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::campaign::Campaign;
use crate::domain::model::{ChurnedAt, StepKind};
use crate::domain::schedule::{Next, after_send, earliest_free_send, earliest_send, zone};

/// An active enrollment, as `plan` needs it.
#[derive(Debug, Clone)]
pub(crate) struct PlanItem<'a> {
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
pub(crate) struct Planned {
    pub at: DateTime<Utc>,
    /// The recipient's wall-clock time, with its zone.
    pub local: String,
    pub email: String,
    pub campaign: String,
    pub step: u32,
    pub kind: StepKind,
    pub reason: String,
}

#[cfg(test)]
/// Simulates the daemon from `now` to `until`: every message, in send order, including
/// later steps that follow earlier ones inside the window. `busy` holds, per client key,
/// the send times of messages already out (for the one-message-per-day rule).
pub(crate) fn plan(
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
pub(crate) struct RateLimits {
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
pub(crate) fn plan_with_limits(
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
