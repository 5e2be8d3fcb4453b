//! The incremental simulation checked against the whole-plan one it replaced (kept here
//! as the reference), on hand-made and generated items; and the entry points the
//! scheduler's table tests call.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;
use crate::config::Config;
use crate::domain::schedule::lookback;

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

/// The items as rows (in their given order), through [`plan_rows`]; every person counted
/// as shared, every account's messages read.
pub(crate) fn plan_all(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<Busy>>,
    accounts: &AccountSends,
    limits: &RateLimits,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Planned> {
    let reach = items
        .iter()
        .map(|i| lookback(i.campaign))
        .max()
        .unwrap_or_else(|| Duration::days(2));
    let by_account = with_busy(accounts, &items, busy);
    let rows = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| Row {
            order: index as i64 * 2,
            recent: busy.get(&item.client_key).cloned().unwrap_or_default(),
            account_recent: item
                .account
                .as_ref()
                .and_then(|a| by_account.get(a))
                .cloned()
                .unwrap_or_default(),
            shared: true,
            item,
        })
        .collect();
    plan_rows(rows, limits, now, until, reach)
}

/// `accounts` with what each item's person already has out (`busy`) added to their
/// account's sends.
fn with_busy(
    accounts: &AccountSends,
    items: &[PlanItem<'_>],
    busy: &HashMap<i64, Vec<Busy>>,
) -> AccountSends {
    let mut by_account = accounts.clone();
    for item in items {
        if let Some(account) = &item.account {
            let entry = by_account.entry(account.clone()).or_default();
            for b in busy.get(&item.client_key).into_iter().flatten() {
                if !entry.contains(&(item.client_key, b.at)) {
                    entry.push((item.client_key, b.at));
                }
            }
        }
    }
    by_account
}

/// The simulation as it was before it was incremental: every item in memory at once.
/// The reference the incremental one is checked against.
fn batch(
    items: Vec<PlanItem<'_>>,
    busy: &HashMap<i64, Vec<Busy>>,
    accounts: &AccountSends,
    limits: &RateLimits,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Planned> {
    let mut windows = limits.windows();
    let mut busy: HashMap<i64, Vec<Busy>> = busy.clone();
    // A paused campaign sends nothing: its messages are left out.
    let mut items: Vec<PlanItem<'_>> = items.into_iter().filter(|i| !i.campaign.paused).collect();
    // Per account, the send times of its contacts (with whose).
    let mut accounts = with_busy(accounts, &items, &busy);
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
                let why = moved_reason(moved, item.campaign, item.account.as_deref(), tz);
                if !reasons[index].contains(&why) {
                    reasons[index].push_str("; ");
                    reasons[index].push_str(&why);
                }
            }
            heap.push(Reverse((free, index)));
            continue;
        }
        if let Some((later, name)) = held_back(&mut windows, free) {
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
        out.push(planned(item, step.kind, free, tz, &reasons[index]));
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

/// Campaigns in New York and Tokyo, of several steps (a recurring one, gaps, an account
/// gap), and one that may send every minute.
fn config() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let text = r#"
[smtp]
from = "Acme Customer Success <success@acme.example>"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[templates]
dir = "."

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Mon-Fri"
timezone = "America/New_York"
min_gap_days = 3
account_gap_days = 2

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 1
  template = "newsletter"
  subject = "What we've been working on"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 2
  every_days = 7
  template = "newsletter"
  subject = "More news"

[[campaign]]
name = "partners"
send_at = "*/30 9-17 * * *"
timezone = "Asia/Tokyo"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 1
  template = "newsletter"
  subject = "News"

[[campaign]]
name = "every-minute"
send_at = "* * * * *"
timezone = "UTC"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 3
  template = "newsletter"
  subject = "News"
"#;
    std::fs::write(dir.path().join("winback.toml"), text).expect("write the config");
    let config =
        Config::parse(&dir.path().join("winback.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?}: {e}"))
        .with_timezone(&Utc)
}

/// One generated item: (client, campaign index, due offset in hours from `now` (may be
/// negative), not-before offset, account, step 1 or 2).
type Gen = (i64, usize, i64, i64, Option<u8>, u32);

fn items<'a>(config: &'a Config, generated: &[Gen]) -> Vec<PlanItem<'a>> {
    let now = utc("2026-04-01T12:00:00Z");
    generated
        .iter()
        .map(|&(client, campaign, due, not_before, account, step)| {
            let campaign = &config.campaigns[campaign];
            let due = now + Duration::hours(due);
            let sent_before = due - Duration::days(1);
            PlanItem {
                email: format!("c{client}@example.com"),
                client_key: client,
                timezone: (client % 3 == 0).then_some(Tz::Europe__Paris),
                churned_at: ChurnedAt::parse("2025-12-01").expect("a date"),
                campaign,
                next_step: step,
                occurrence: 1,
                due,
                not_before: due.max(now + Duration::hours(not_before)),
                why: if step == 1 {
                    Why::Survey
                } else {
                    Why::After { step: 1, days: 1 }
                },
                history: if step == 1 {
                    Vec::new()
                } else {
                    vec![Sent {
                        step: 1,
                        occurrence: 1,
                        at: sent_before,
                    }]
                },
                account: account.map(|a| format!("acct-{a}")),
                country: None,
                moved: None,
            }
        })
        .collect()
}

fn busy_of(generated: &[(i64, i64)]) -> HashMap<i64, Vec<Busy>> {
    let now = utc("2026-04-01T12:00:00Z");
    let mut busy: HashMap<i64, Vec<Busy>> = HashMap::new();
    for &(client, hours) in generated {
        busy.entry(client).or_default().push(Busy {
            at: now - Duration::hours(hours),
            recurring: client % 2 == 0,
        });
    }
    busy
}

#[test]
fn the_incremental_plan_gives_what_the_whole_plan_gave() {
    let (_dir, config) = config();
    let now = utc("2026-04-01T12:00:00Z");
    let until = now + Duration::days(30);
    let generated: Vec<Gen> = vec![
        // Two people at one account, one of them in both campaigns; overdue, due later,
        // a retry's not-before, a sequence at its second step.
        (1, 0, -100, 0, Some(1), 1),
        (1, 1, -100, 0, Some(1), 1),
        (2, 0, -5, 30, Some(1), 1),
        (3, 0, 20, 0, None, 2),
        (4, 1, 48, 0, None, 1),
        (5, 0, 0, 0, Some(2), 1),
        (6, 0, 0, 0, Some(2), 1),
        (7, 1, -1, 0, None, 2),
    ];
    let busy = busy_of(&[(1, 10), (5, 30), (9, 2)]);
    let limits = RateLimits {
        per_minute: Some(2),
        per_day: None,
        recent: vec![now - Duration::seconds(30)],
    };
    for limits in [RateLimits::default(), limits] {
        let expected = batch(
            items(&config, &generated),
            &busy,
            &HashMap::new(),
            &limits,
            now,
            until,
        );
        let got = plan_all(
            items(&config, &generated),
            &busy,
            &HashMap::new(),
            &limits,
            now,
            until,
        );
        assert!(
            expected.len() > generated.len(),
            "follow-up steps are planned"
        );
        assert_eq!(got, expected);
    }
}

/// The lower bound holds: no item's first moment comes before it.
#[test]
fn no_first_moment_comes_before_its_lower_bound() {
    let (_dir, config) = config();
    let now = utc("2026-04-01T12:00:00Z");
    let generated: Vec<Gen> = (0..40)
        .map(|i| (i, i as usize % 3, i * 7 - 120, i * 3 - 40, None, 1))
        .collect();
    for item in items(&config, &generated) {
        let tz = zone(item.campaign, item.timezone);
        let first =
            earliest_send(item.campaign, tz, item.due, item.not_before, now).expect("a moment");
        assert!(first >= lower_bound(&item, now), "{item:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Fed in lower-bound order, the incremental plan is the whole plan, message for
    /// message, whatever the mix of people, accounts, due times and rate limits.
    #[test]
    fn fed_in_order_the_plan_is_the_whole_plan(
        generated in prop::collection::vec(
            (0i64..12, 0usize..3, -200i64..400, -50i64..100, prop::option::of(0u8..3), 1u32..3),
            0..24,
        ),
        busy in prop::collection::vec((0i64..12, 0i64..120), 0..8),
        per_minute in prop::option::of(1u32..4),
        per_day in prop::option::of(2u32..30),
    ) {
        let (_dir, config) = config();
        let now = utc("2026-04-01T12:00:00Z");
        let until = now + Duration::days(20);
        let busy = busy_of(&busy);
        let limits = RateLimits { per_minute, per_day, recent: Vec::new() };
        let expected = batch(items(&config, &generated), &busy, &HashMap::new(), &limits, now, until);
        let got = plan_all(items(&config, &generated), &busy, &HashMap::new(), &limits, now, until);
        prop_assert_eq!(got, expected);
    }
}

/// Counts what the simulation reads again and gives.
struct Counting<'r, 'a> {
    rows: &'r HashMap<i64, Row<'a>>,
    fetched: usize,
    out: Vec<Planned>,
}

impl<'a> Source<'a> for Counting<'_, 'a> {
    type Error = std::convert::Infallible;
    fn fetch(&mut self, order: i64) -> Result<Option<Row<'a>>, Self::Error> {
        self.fetched += 1;
        Ok(self.rows.get(&order).cloned())
    }
    fn emit(&mut self, planned: Planned) -> Result<(), Self::Error> {
        self.out.push(planned);
        Ok(())
    }
}

/// A thousand people all overdue: each survey is given as soon as the next person is
/// read (nothing waits but one), and each follow-up waits as its planned message only,
/// its person read again when it goes.
#[test]
fn overdue_items_go_one_by_one_and_follow_ups_wait_small() {
    let (_dir, config) = config();
    let now = utc("2026-04-01T12:00:00Z");
    let until = now + Duration::days(10);
    let generated: Vec<Gen> = (0..1000).map(|i| (i, 2, -48, 0, None, 1)).collect();
    let rows: Vec<Row<'_>> = items(&config, &generated)
        .into_iter()
        .enumerate()
        .map(|(index, item)| Row {
            order: index as i64 * 2,
            item,
            recent: Vec::new(),
            account_recent: Vec::new(),
            shared: false,
        })
        .collect();
    let by_order: HashMap<i64, Row<'_>> = rows.iter().map(|r| (r.order, r.clone())).collect();
    let mut source = Counting {
        rows: &by_order,
        fetched: 0,
        out: Vec::new(),
    };
    let mut simulator =
        Simulator::new(&RateLimits::default(), now, until, Duration::days(2), false);
    for (fed, row) in rows.into_iter().enumerate() {
        let Ok(()) = simulator.feed(row, &mut source);
        // Every survey but the one just fed is out; their follow-ups wait.
        assert_eq!(source.out.len(), fed, "given as soon as the next is read");
        let whole = simulator
            .heap
            .iter()
            .filter(|e| matches!(e.0.state, State::Whole(_)))
            .count();
        assert!(whole <= 1, "{whole} items wait whole");
    }
    let Ok(()) = simulator.finish(&mut source);
    assert_eq!(
        source.out.len(),
        2000,
        "1000 surveys, then 1000 newsletters"
    );
    assert_eq!(source.fetched, 1000, "each follow-up read again once");
    assert!(source.out[..1000].iter().all(|p| p.step == 1));
    assert!(source.out[1000..].iter().all(|p| p.step == 2));
}

/// A claim moved an item past a date kept free (its stored note): the plan says so when
/// the item starts at that stored moment, adds a move of its own after it, and says
/// nothing of it once that moment has passed (the next claim decides afresh).
#[test]
fn a_claims_note_comes_first_and_only_at_its_moment() {
    let (_dir, config) = config();
    let campaign = &config.campaigns[2];
    let note = "moved: 2026-04-01 is kept free (quiet dates 04-01..04-01)";
    let same_day = "moved a day: one message per person per day";
    let item = PlanItem {
        email: "pat@example.com".to_string(),
        client_key: 1,
        timezone: None,
        churned_at: ChurnedAt::parse("2026-01-01").expect("a date"),
        campaign,
        next_step: 1,
        occurrence: 1,
        due: utc("2026-04-01T00:00:00Z"),
        not_before: utc("2026-04-02T00:00:00Z"),
        why: Why::Survey,
        history: Vec::new(),
        account: None,
        country: None,
        moved: Some(note.to_string()),
    };
    let first = |now: &str, busy: &HashMap<i64, Vec<Busy>>| -> (DateTime<Utc>, String) {
        let now = utc(now);
        let planned = plan(vec![item.clone()], busy, now, now + Duration::days(2));
        let first = planned.into_iter().find(|p| p.step == 1).expect("planned");
        (first.at, first.reason)
    };
    let (at, why) = first("2026-04-01T12:00:00Z", &HashMap::new());
    assert_eq!(at, utc("2026-04-02T00:00:00Z"));
    assert_eq!(why.matches(note).count(), 1, "{why}");
    assert!(!why.contains(same_day), "{why}");

    // Another message to Pat on 2 April moves it a day more: said after the note.
    let busy = HashMap::from([(
        1,
        vec![Busy {
            at: utc("2026-04-02T05:00:00Z"),
            recurring: false,
        }],
    )]);
    let (at, why) = first("2026-04-01T12:00:00Z", &busy);
    assert_eq!(at, utc("2026-04-03T00:00:00Z"));
    let (Some(stored), Some(own)) = (why.find(note), why.find(same_day)) else {
        panic!("{why}");
    };
    assert!(stored < own, "{why}");

    // Its moment passed without a claim: it goes now, for no stored reason.
    let (at, why) = first("2026-04-02T06:00:00Z", &HashMap::new());
    assert_eq!(at, utc("2026-04-02T06:00:00Z"));
    assert!(!why.contains(note), "{why}");
}

/// What a claim stores when it waits: the rules that moved it, each once, after the note
/// of an earlier claim; a claim that moved nothing keeps the earlier note.
#[test]
fn a_claims_note_adds_its_moves_to_the_earlier_one() {
    let (_dir, config) = config();
    let campaign = &config.campaigns[0];
    let tz = Tz::America__New_York;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 4, 2).expect("a date");
    let same_day = "moved a day: one message per person per day";
    let gap = "account gap: acme got a message on 2026-04-01";
    let account = Moved::Account(utc("2026-04-01T14:00:00Z"));
    assert_eq!(moved_note(None, &[], campaign, Some("acme"), tz), None);
    assert_eq!(
        moved_note(
            None,
            &[Moved::SameDay(day), Moved::SameDay(day), account.clone()],
            campaign,
            Some("acme"),
            tz
        ),
        Some(format!("{same_day}; {gap}"))
    );
    assert_eq!(
        moved_note(Some(gap), &[], campaign, Some("acme"), tz).as_deref(),
        Some(gap)
    );
    assert_eq!(
        moved_note(
            Some(gap),
            &[account, Moved::SameDay(day)],
            campaign,
            Some("acme"),
            tz
        ),
        Some(format!("{gap}; {same_day}"))
    );
}
