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
use crate::domain::schedule::{
    Busy, Found, Moved, Next, Rules, Sent, Why, earliest_send, horizon, next_message, recurs,
    search, zone,
};

/// An active enrollment, as `plan` needs it.
#[derive(Debug, Clone)]
pub(crate) struct PlanItem<'a> {
    pub email: String,
    pub client_key: i64,
    pub timezone: Option<Tz>,
    pub churned_at: ChurnedAt,
    pub campaign: &'a Campaign,
    pub next_step: u32,
    /// Which message of `next_step` (1 for its first, more for a recurring step).
    pub occurrence: u32,
    pub due: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    /// Why `due` is when it is.
    pub why: Why,
    /// What went out in this sequence so far (what comes next is counted from it).
    pub history: Vec<Sent>,
    /// The person's account (`clients.account_key`), for the account gap.
    pub account: Option<String>,
    /// The person's country, for holiday calendars.
    pub country: Option<String>,
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
/// the messages already out (for the one-message-per-day rule and `min_gap_days`).
pub(crate) fn plan(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<Busy>>,
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

#[cfg(test)]
/// [`plan`], holding back what the rate limits hold back.
pub(crate) fn plan_with_limits(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<Busy>>,
    limits: &RateLimits,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Planned> {
    plan_all(items, busy, &HashMap::new(), limits, now, until)
}

/// Account key → (client key, send time) of recent messages to the account's contacts.
pub(crate) type AccountSends = HashMap<String, Vec<(i64, DateTime<Utc>)>>;

/// [`plan`], holding back what the rate limits hold back, with the recent messages to
/// each account's contacts (`accounts`, beside those of the people in `items`).
pub(crate) fn plan_all(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<Busy>>,
    accounts: &AccountSends,
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
    let mut busy: HashMap<i64, Vec<Busy>> = busy.clone();
    // A paused campaign sends nothing: its messages are left out.
    let mut items: Vec<PlanItem<'_>> = items.into_iter().filter(|i| !i.campaign.paused).collect();
    // Per account, the send times of its contacts (with whose).
    let mut accounts: AccountSends = accounts.clone();
    for item in &items {
        if let Some(account) = &item.account {
            let entry = accounts.entry(account.clone()).or_default();
            for b in busy.get(&item.client_key).into_iter().flatten() {
                if !entry.contains(&(item.client_key, b.at)) {
                    entry.push((item.client_key, b.at));
                }
            }
        }
    }
    let mut reasons: Vec<String> = items.iter().map(|i| due_reason(i, now)).collect();
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
        let Some(step) = item.campaign.step(item.next_step) else {
            continue;
        };
        let person = busy.entry(item.client_key).or_default();
        let account_busy: Vec<DateTime<Utc>> = item
            .account
            .as_ref()
            .and_then(|a| accounts.get(a))
            .into_iter()
            .flatten()
            .map(|(_, at)| *at)
            .collect();
        let rules = Rules {
            busy: person,
            recurring: recurs(Some(item.campaign), item.next_step),
            account_busy: &account_busy,
            account_gap_days: item.campaign.account_gap_days,
            country: item.country.as_deref(),
            horizon: horizon(item.campaign, item.churned_at, tz),
        };
        let (free, moves) = match search(item.campaign, tz, item.due, item.not_before, t, &rules) {
            Found::At(free, moves) => (free, moves),
            Found::PastHorizon | Found::Never => continue,
        };
        if free > until {
            continue;
        }
        if free > t {
            for moved in &moves {
                let why = moved_reason(moved, item, tz);
                if !reasons[index].contains(&why) {
                    reasons[index].push_str("; ");
                    reasons[index].push_str(&why);
                }
            }
            heap.push(Reverse((free, index)));
            continue;
        }
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
        person.push(Busy {
            at: free,
            recurring: recurs(Some(item.campaign), item.next_step),
        });
        if let Some(account) = &item.account {
            accounts
                .entry(account.clone())
                .or_default()
                .push((item.client_key, free));
        }
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
        let item = &mut items[index];
        item.history.push(Sent {
            step: item.next_step,
            occurrence: item.occurrence,
            at: free,
        });
        if let Next::Message(next) = next_message(item.campaign, item.churned_at, &item.history, tz)
        {
            item.next_step = next.step;
            item.occurrence = next.occurrence;
            item.due = next.due;
            item.not_before = next.due;
            item.why = next.why;
            reasons[index] = due_reason(item, now);
            if let Some(t) = earliest_send(item.campaign, tz, next.due, next.due, free)
                && t <= until
            {
                heap.push(Reverse((t, index)));
            }
        }
    }
    out
}

/// A rule that moved a message, in words.
fn moved_reason(moved: &Moved, item: &PlanItem<'_>, tz: Tz) -> String {
    let day = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d").to_string();
    match moved {
        Moved::SameDay(_) => "moved a day: one message per person per day".to_string(),
        Moved::MinGap(other) => format!(
            "min gap: {} days from the message of {}",
            item.campaign.min_gap_days,
            day(other)
        ),
        Moved::Account(other) => format!(
            "account gap: {} got a message on {}",
            item.account.as_deref().unwrap_or("the account"),
            day(other)
        ),
        Moved::Holiday(date, name) => format!("moved: {date} is kept free ({name})"),
    }
}

fn due_reason(item: &PlanItem<'_>, now: DateTime<Utc>) -> String {
    let tz = zone(item.campaign, item.timezone);
    let due_local = item.due.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z");
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d").to_string();
    // When the messages a due time counts from went: planned here, or sent.
    let when = |step: u32, occurrence: Option<u32>| {
        item.history
            .iter()
            .filter(|s| s.step == step && occurrence.is_none_or(|o| s.occurrence == o))
            .map(|s| s.at)
            .max()
    };
    let told = |at: Option<DateTime<Utc>>| match at {
        Some(at) if at > now => format!("planned {}", day(at)),
        Some(at) => format!("sent {}", day(at)),
        None => "sent".to_string(),
    };
    match item.why {
        Why::Survey => format!(
            "due {due_local}: churned {} + {} quiet days",
            item.churned_at, item.campaign.quiet_days
        ),
        Why::After { step, days } => format!(
            "due {due_local}: step {step} {} + {days} days",
            told(when(step, Some(1)))
        ),
        Why::Seasonal(on) => format!("due {due_local}: seasonal: {:02}-{:02}", on.month, on.day),
        Why::Every(days) => format!(
            "due {due_local}: every {days} days (step {} {})",
            item.next_step,
            told(when(item.next_step, None))
        ),
    }
}
