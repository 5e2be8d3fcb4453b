//! The plan: every message the daemon will send in a window, in send order, with the
//! reason for its moment, simulated with the same rules and rate limits delivery applies.
//!
//! Pure: the items, the messages already out and `now` are passed in. The simulation is
//! incremental ([`Simulator`]): fed the items in the order of a lower bound of their first
//! moment, it gives each message as soon as nothing unread can come before it, so that
//! its memory holds what is pending, not the whole plan. It must not read the store
//! itself: a message's next step is read again through [`Source::fetch`].

use std::cmp::{Ordering, Reverse};
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

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::{plan, plan_all, plan_with_limits};

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
    /// Why a claim already moved `not_before` past the moment `due` gave, in the words
    /// of [`moved_note`], stored with it: the simulation starts the item at
    /// `not_before` and would not find that move itself.
    pub moved: Option<String>,
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

/// The `[smtp]` rate limits, and the claims already made in the last day, as the daemon
/// counts them (a rolling minute and a rolling day).
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimits {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    /// When recent messages were claimed, oldest first.
    pub recent: Vec<DateTime<Utc>>,
}

impl RateLimits {
    /// A rolling window for each limit that is set, with the `[smtp]` key that sets it.
    fn windows(&self) -> Vec<(Window, &'static str)> {
        [
            (
                Window::new(Duration::minutes(1), self.per_minute, &self.recent),
                "max_per_minute",
            ),
            (
                Window::new(Duration::days(1), self.per_day, &self.recent),
                "max_per_day",
            ),
        ]
        .into_iter()
        .filter_map(|(w, name)| w.map(|w| (w, name)))
        .collect()
    }
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

/// The rate limit that holds a send at `free` back, and until when; `None` if every
/// window has room.
fn held_back(
    windows: &mut [(Window, &'static str)],
    free: DateTime<Utc>,
) -> Option<(DateTime<Utc>, &'static str)> {
    windows
        .iter_mut()
        .map(|(w, name)| (w.next_free(free), *name))
        .max_by_key(|(t, _)| *t)
        .filter(|(t, _)| *t > free)
}

/// The line of the plan for `item`'s message of kind `kind` at `at` (in `tz`), with why
/// it goes then.
fn planned(
    item: &PlanItem<'_>,
    kind: StepKind,
    at: DateTime<Utc>,
    tz: Tz,
    reason: &str,
) -> Planned {
    Planned {
        at,
        local: local_time(at, tz),
        email: item.email.clone(),
        campaign: item.campaign.name.clone(),
        step: item.next_step,
        kind,
        reason: format!(
            "{reason}; first send_at \"{}\" moment",
            item.campaign.send_at.source()
        ),
    }
}

/// `at` as a plan line gives it: the recipient's local date, time, zone and weekday.
pub(crate) fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z (%a)")
        .to_string()
}

/// Account key → (client key, send time) of messages to the account's contacts.
pub(crate) type AccountSends = HashMap<String, Vec<(i64, DateTime<Utc>)>>;

/// An item as read, with the facts around it that its rules need.
#[derive(Debug, Clone)]
pub(crate) struct Row<'a> {
    /// Its place among items whose moment is the same (the claim's order). An even one
    /// can be read again by [`Source::fetch`]; an odd one (a retry) is kept whole.
    pub order: i64,
    pub item: PlanItem<'a>,
    /// The person's messages already out, in the lookback before `now`.
    pub recent: Vec<Busy>,
    /// (client key, send time) of the messages already out to the contacts of the
    /// person's account, the person included.
    pub account_recent: Vec<(i64, DateTime<Utc>)>,
    /// Another item may be the same person's: the messages planned for them are then
    /// kept beside every item's, not only in this item's own.
    pub shared: bool,
}

/// The instant an item's first moment cannot precede: [`earliest_send`] from `now`
/// never returns an instant before its due time, its not-before time or `from`.
pub(crate) fn lower_bound(item: &PlanItem<'_>, now: DateTime<Utc>) -> DateTime<Utc> {
    item.due.max(item.not_before).max(now)
}

/// Where the simulation reads an item again, and where its messages go.
pub(crate) trait Source<'a> {
    type Error;
    /// The row of this (even) order, as it was fed.
    fn fetch(&mut self, order: i64) -> Result<Option<Row<'a>>, Self::Error>;
    /// One planned message; they come in send order.
    fn emit(&mut self, planned: Planned) -> Result<(), Self::Error>;
}

/// An item waiting in the simulation for its moment.
struct Entry<'a> {
    at: DateTime<Utc>,
    order: i64,
    state: State<'a>,
}

/// What a waiting item keeps. An item read again by its order keeps only the messages
/// planned for it so far (most often one): a million follow-up steps cost little.
enum State<'a> {
    /// The row as fed, with what was planned for it since.
    Whole(Box<Working<'a>>),
    /// Read again, then these planned messages replayed.
    One(Sent),
    Many(Box<[Sent]>),
}

struct Working<'a> {
    row: Row<'a>,
    /// The messages planned for this sequence so far.
    sent: Vec<Sent>,
}

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry<'_> {}
impl PartialOrd for Entry<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// The daemon run forward from `now` to `until`: fed items in the order of
/// ([`lower_bound`], order), it gives every message in send order, including later steps
/// that follow earlier ones inside the window.
pub(crate) struct Simulator<'a> {
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    /// How far back a message can still move another (the longest gap, and a day).
    lookback: Duration,
    windows: Vec<(Window, &'static str)>,
    heap: BinaryHeap<Reverse<Entry<'a>>>,
    /// Messages planned for people with more than one item, by client key.
    persons: HashMap<i64, Vec<Busy>>,
    /// Messages planned for the contacts of each account (when some campaign keeps an
    /// account gap): (client key, time).
    accounts: Option<AccountSends>,
    /// The rules that moved or held a waiting item, by order, for its reason.
    moved: HashMap<i64, String>,
    /// The instant simulated last, and when the planned messages were last pruned.
    clock: DateTime<Utc>,
    pruned: DateTime<Utc>,
    /// The bound of the item fed last, to check the order.
    fed: Option<(DateTime<Utc>, i64)>,
}

impl<'a> Simulator<'a> {
    /// `lookback` is the longest reach of a rule (`schedule::lookback`); `accounts`:
    /// some campaign keeps an account gap.
    pub(crate) fn new(
        limits: &RateLimits,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        lookback: Duration,
        accounts: bool,
    ) -> Simulator<'a> {
        let windows = limits.windows();
        Simulator {
            now,
            until,
            lookback,
            windows,
            heap: BinaryHeap::new(),
            persons: HashMap::new(),
            accounts: accounts.then(HashMap::new),
            moved: HashMap::new(),
            clock: now,
            pruned: now,
            fed: None,
        }
    }

    /// One more item. Everything that goes before it is given first.
    pub(crate) fn feed<S: Source<'a>>(
        &mut self,
        row: Row<'a>,
        source: &mut S,
    ) -> Result<(), S::Error> {
        let bound = (lower_bound(&row.item, self.now), row.order);
        debug_assert!(
            self.fed.is_none_or(|fed| fed <= bound),
            "items fed out of order"
        );
        self.fed = Some(bound);
        self.run(Some(bound), source)?;
        // A paused campaign sends nothing: its messages are left out.
        if row.item.campaign.paused {
            return Ok(());
        }
        let item = &row.item;
        let tz = zone(item.campaign, item.timezone);
        if let Some(t) = earliest_send(item.campaign, tz, item.due, item.not_before, self.now)
            && t <= self.until
        {
            // Its first moment is the one a claim moved it to: the claim's reason comes
            // first, and any move the simulation finds from there is added to it.
            if let Some(note) = &item.moved
                && t == item.not_before
            {
                self.moved.insert(row.order, format!("; {note}"));
            }
            self.heap.push(Reverse(Entry {
                at: t,
                order: row.order,
                state: State::Whole(Box::new(Working {
                    row,
                    sent: Vec::new(),
                })),
            }));
        }
        Ok(())
    }

    /// No more items: gives every message still to come.
    pub(crate) fn finish<S: Source<'a>>(mut self, source: &mut S) -> Result<(), S::Error> {
        self.run(None, source)
    }

    /// Simulates every waiting moment before `bound` (all of them without one).
    fn run<S: Source<'a>>(
        &mut self,
        bound: Option<(DateTime<Utc>, i64)>,
        source: &mut S,
    ) -> Result<(), S::Error> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if bound.is_some_and(|b| (top.at, top.order) >= b) {
                break;
            }
            let Some(Reverse(entry)) = self.heap.pop() else {
                break;
            };
            self.advance(entry.at);
            let Some(working) = self.working(entry.order, entry.state, source)? else {
                self.moved.remove(&entry.order);
                continue;
            };
            self.step(entry.at, entry.order, working, source)?;
        }
        Ok(())
    }

    /// Moves the clock to `t`, forgetting planned messages too old to move any other.
    fn advance(&mut self, t: DateTime<Utc>) {
        self.clock = self.clock.max(t);
        if self.clock - self.pruned < Duration::hours(1) {
            return;
        }
        self.pruned = self.clock;
        let oldest = self.clock - self.lookback;
        self.persons.retain(|_, sends| {
            sends.retain(|b| b.at >= oldest);
            !sends.is_empty()
        });
        if let Some(accounts) = &mut self.accounts {
            accounts.retain(|_, sends| {
                sends.retain(|(_, at)| *at >= oldest);
                !sends.is_empty()
            });
        }
    }

    /// The item of a waiting entry, read again and brought to its next step if need be.
    fn working<S: Source<'a>>(
        &self,
        order: i64,
        state: State<'a>,
        source: &mut S,
    ) -> Result<Option<Box<Working<'a>>>, S::Error> {
        let sent = match state {
            State::Whole(working) => return Ok(Some(working)),
            State::One(sent) => vec![sent],
            State::Many(sent) => sent.into_vec(),
        };
        let Some(row) = source.fetch(order)? else {
            return Ok(None);
        };
        let mut working = Box::new(Working {
            row,
            sent: Vec::new(),
        });
        for s in sent {
            if !working.record(s) {
                return Ok(None);
            }
        }
        Ok(Some(working))
    }

    /// One waiting moment of one item: sent, moved by a rule, held by a rate limit, or
    /// dropped (past the window, the horizon, or a step no longer configured).
    fn step<S: Source<'a>>(
        &mut self,
        t: DateTime<Utc>,
        order: i64,
        mut working: Box<Working<'a>>,
        source: &mut S,
    ) -> Result<(), S::Error> {
        let item = &working.row.item;
        let tz = zone(item.campaign, item.timezone);
        let Some(step) = item.campaign.step(item.next_step) else {
            self.moved.remove(&order);
            return Ok(());
        };
        let busy: Vec<Busy> = if working.row.shared {
            working
                .row
                .recent
                .iter()
                .chain(self.persons.get(&item.client_key).into_iter().flatten())
                .copied()
                .collect()
        } else {
            working
                .row
                .recent
                .iter()
                .copied()
                .chain(working.sent.iter().map(|s| Busy {
                    at: s.at,
                    recurring: recurs(Some(item.campaign), s.step),
                }))
                .collect()
        };
        let account_busy: Vec<DateTime<Utc>> = match &item.account {
            Some(account) => working
                .row
                .account_recent
                .iter()
                .chain(
                    self.accounts
                        .as_ref()
                        .and_then(|a| a.get(account))
                        .into_iter()
                        .flatten(),
                )
                .map(|(_, at)| *at)
                .collect(),
            None => Vec::new(),
        };
        let recurring = recurs(Some(item.campaign), item.next_step);
        let rules = Rules {
            busy: &busy,
            recurring,
            account_busy: &account_busy,
            account_gap_days: item.campaign.account_gap_days,
            country: item.country.as_deref(),
            horizon: horizon(item.campaign, item.churned_at, tz),
        };
        let (free, moves) = match search(item.campaign, tz, item.due, item.not_before, t, &rules) {
            Found::At(free, moves) => (free, moves),
            Found::PastHorizon | Found::Never => {
                self.moved.remove(&order);
                return Ok(());
            }
        };
        if free > self.until {
            self.moved.remove(&order);
            return Ok(());
        }
        if free > t {
            let mut reason = due_reason(item, self.now);
            let known = reason.len();
            reason.push_str(self.moved.get(&order).map_or("", |m| m.as_str()));
            for moved in &moves {
                let why = moved_reason(moved, item.campaign, item.account.as_deref(), tz);
                if !reason.contains(&why) {
                    reason.push_str("; ");
                    reason.push_str(&why);
                }
            }
            self.moved.insert(order, reason.split_off(known));
            self.wait(free, order, working);
            return Ok(());
        }
        if let Some((later, name)) = held_back(&mut self.windows, free) {
            let mut reason = due_reason(item, self.now);
            let known = reason.len();
            reason.push_str(self.moved.get(&order).map_or("", |m| m.as_str()));
            if !reason.contains(name) {
                reason.push_str(&format!("; held back by {name}"));
            }
            self.moved.insert(order, reason.split_off(known));
            self.wait(later, order, working);
            return Ok(());
        }
        for (w, _) in self.windows.iter_mut() {
            w.sends.push_back(free);
        }
        if working.row.shared {
            self.persons.entry(item.client_key).or_default().push(Busy {
                at: free,
                recurring,
            });
        }
        if let (Some(accounts), Some(account)) = (&mut self.accounts, &item.account) {
            // Keyed by the account: a map of every account's messages would hold one
            // key per planned message without one.
            match accounts.get_mut(account) {
                Some(sends) => sends.push((item.client_key, free)),
                None => {
                    accounts.insert(account.clone(), vec![(item.client_key, free)]);
                }
            }
        }
        let mut reason = due_reason(item, self.now);
        if let Some(moved) = self.moved.remove(&order) {
            reason.push_str(&moved);
        }
        source.emit(planned(item, step.kind, free, tz, &reason))?;
        let sent = Sent {
            step: item.next_step,
            occurrence: item.occurrence,
            at: free,
        };
        if working.record(sent) {
            let item = &working.row.item;
            if let Some(t) = earliest_send(item.campaign, tz, item.due, item.due, free)
                && t <= self.until
            {
                self.wait(t, order, working);
            }
        }
        Ok(())
    }

    /// Puts an item back to wait for `at`: whole if it cannot be read again (or was
    /// never sent in the plan), else only the messages planned for it.
    fn wait(&mut self, at: DateTime<Utc>, order: i64, working: Box<Working<'a>>) {
        let state = if order % 2 != 0 || working.sent.is_empty() {
            State::Whole(working)
        } else if working.sent.len() == 1 {
            State::One(working.sent[0])
        } else {
            State::Many(working.sent.into_boxed_slice())
        };
        self.heap.push(Reverse(Entry { at, order, state }));
    }
}

impl Working<'_> {
    /// Records a message planned for this sequence and moves it to its next step; false
    /// if there is none.
    fn record(&mut self, sent: Sent) -> bool {
        let item = &mut self.row.item;
        self.sent.push(sent);
        item.history.push(sent);
        let tz = zone(item.campaign, item.timezone);
        match next_message(item.campaign, item.churned_at, &item.history, tz) {
            Next::Message(next) => {
                item.next_step = next.step;
                item.occurrence = next.occurrence;
                item.due = next.due;
                item.not_before = next.due;
                item.why = next.why;
                item.moved = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
/// Every row through one simulation, fed in order, and every row read again from them:
/// the whole plan at once.
pub(crate) fn plan_rows(
    mut rows: Vec<Row<'_>>,
    limits: &RateLimits,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    lookback: Duration,
) -> Vec<Planned> {
    struct Collect<'r, 'a> {
        rows: &'r HashMap<i64, Row<'a>>,
        out: Vec<Planned>,
    }
    impl<'a> Source<'a> for Collect<'_, 'a> {
        type Error = std::convert::Infallible;
        fn fetch(&mut self, order: i64) -> Result<Option<Row<'a>>, Self::Error> {
            Ok(self.rows.get(&order).cloned())
        }
        fn emit(&mut self, planned: Planned) -> Result<(), Self::Error> {
            self.out.push(planned);
            Ok(())
        }
    }
    rows.sort_by_key(|r| (lower_bound(&r.item, now), r.order));
    let by_order: HashMap<i64, Row<'_>> = rows.iter().map(|r| (r.order, r.clone())).collect();
    let mut collect = Collect {
        rows: &by_order,
        out: Vec::new(),
    };
    let accounts = rows.iter().any(|r| r.item.campaign.account_gap_days > 0);
    let mut simulator = Simulator::new(limits, now, until, lookback, accounts);
    let fed = rows
        .into_iter()
        .try_for_each(|row| simulator.feed(row, &mut collect));
    let done = fed.and_then(|()| simulator.finish(&mut collect));
    match done {
        Ok(()) => collect.out,
        Err(never) => match never {},
    }
}

/// A rule that moved a message of `campaign` to a person of `account` (in `tz`), in
/// words.
fn moved_reason(moved: &Moved, campaign: &Campaign, account: Option<&str>, tz: Tz) -> String {
    let day = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d").to_string();
    match moved {
        Moved::SameDay(_) => "moved a day: one message per person per day".to_string(),
        Moved::MinGap(other) => format!(
            "min gap: {} days from the message of {}",
            campaign.min_gap_days,
            day(other)
        ),
        Moved::Account(other) => format!(
            "account gap: {} got a message on {}",
            account.unwrap_or("the account"),
            day(other)
        ),
        Moved::Holiday(date, name) => format!("moved: {date} is kept free ({name})"),
    }
}

/// Why a claimed message waits for a later moment: the note of an earlier claim that
/// moved it (`earlier`), then the rules that moved it now, in the words the plan gives
/// them (each once, as the plan adds them); None if nothing moved it. The claim stores it
/// with that moment, for `plan` to say why the message goes then ([`PlanItem::moved`]):
/// a claim that only found its moment not yet come keeps the earlier note.
pub(crate) fn moved_note(
    earlier: Option<&str>,
    moves: &[Moved],
    campaign: &Campaign,
    account: Option<&str>,
    tz: Tz,
) -> Option<String> {
    let mut note = earlier.unwrap_or_default().to_string();
    for moved in moves {
        let why = moved_reason(moved, campaign, account, tz);
        if !note.contains(&why) {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&why);
        }
    }
    (!note.is_empty()).then_some(note)
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
