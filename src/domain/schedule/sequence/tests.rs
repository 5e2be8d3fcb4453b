//! Table tests for the playbook's timing: seasonal dates across years and 29 February,
//! recurring steps, collisions with `min_gap_days` and the account gap, the consent
//! horizon, DST.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Paris;
use chrono_tz::Tz;

use super::*;
use crate::domain::campaign::{Campaign, MonthDay, Step};
use crate::domain::model::{ChurnedAt, EnrollmentState, StepKind};
use crate::domain::schedule::{Busy, Decision, Found, Moved, Rules, Standing, decide, search};
use crate::domain::send_at::SendAt;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?}: {e}"))
        .with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn churned(text: &str) -> ChurnedAt {
    ChurnedAt::parse(text).unwrap_or_else(|| panic!("bad churned_at {text:?}"))
}

fn step(kind: StepKind, after_days: u32) -> Step {
    Step {
        kind,
        after_days,
        template: kind.as_str().to_string(),
        subject: "Hello".to_string(),
        line: 1,
        on: None,
        every_days: None,
    }
}

fn seasonal(after_days: u32, month: u32, day: u32) -> Step {
    Step {
        on: Some(MonthDay { month, day }),
        ..step(StepKind::Article, after_days)
    }
}

fn every(after_days: u32, days: u32) -> Step {
    Step {
        every_days: Some(days),
        ..step(StepKind::Newsletter, after_days)
    }
}

/// Quiet 90 days, every day at 10:00 in `tz`, catch-up 4 h, the given steps after the survey.
fn campaign(tz: Tz, later: Vec<Step>) -> Campaign {
    let mut steps = vec![step(StepKind::Survey, 0)];
    steps.extend(later);
    Campaign {
        name: "former-clients".to_string(),
        quiet_days: 90,
        send_at: SendAt::parse("0 10 * * *").unwrap_or_else(|e| panic!("{e}")),
        timezone: tz,
        exclude_reasons: vec!["we_ended".to_string()],
        catch_up_hours: 4,
        renamed_from: None,
        steps,
        include_reasons: None,
        matches: Vec::new(),
        min_gap_days: 7,
        account_gap_days: 7,
        holidays: Default::default(),
        max_days_since_churn: None,
        enroll_within_days: None,
        paused: false,
    }
}

fn sent(step: u32, occurrence: u32, at: &str) -> Sent {
    Sent {
        step,
        occurrence,
        at: utc(at),
    }
}

/// A history, and the (step, occurrence, due) that follows it.
type Case<'a> = (&'a [Sent], (u32, u32, &'a str));

/// (step, occurrence, due) of the next message, or None when the sequence is complete.
fn next(c: &Campaign, history: &[Sent]) -> Option<(u32, u32, DateTime<Utc>)> {
    match next_message(c, churned("2026-01-01"), history, c.timezone) {
        Next::Message(u) => Some((u.step, u.occurrence, u.due)),
        Next::Completed => None,
    }
}

#[test]
fn a_seasonal_step_is_due_at_local_midnight_of_its_next_date_across_years() {
    // Survey, then a greeting on 10 December at least 14 days after it; Paris.
    let c = campaign(Paris, vec![seasonal(14, 12, 10)]);
    // (history, expected (step, occurrence, due))
    let cases: &[Case] = &[
        // Surveyed in June: this year's 10 December, midnight CET.
        (
            &[sent(1, 1, "2026-06-02T08:00:00Z")],
            (2, 1, "2026-12-09T23:00:00Z"),
        ),
        // 26 November + 14 days is 10 December itself: that day.
        (
            &[sent(1, 1, "2026-11-26T09:00:00Z")],
            (2, 1, "2026-12-09T23:00:00Z"),
        ),
        // 30 November + 14 days is past it: next year's.
        (
            &[sent(1, 1, "2026-11-30T09:00:00Z")],
            (2, 1, "2027-12-09T23:00:00Z"),
        ),
        // Once sent, it recurs every year, whatever day it went.
        (
            &[
                sent(1, 1, "2026-06-02T08:00:00Z"),
                sent(2, 1, "2026-12-10T09:00:00Z"),
            ],
            (2, 2, "2027-12-09T23:00:00Z"),
        ),
        (
            &[
                sent(1, 1, "2026-06-02T08:00:00Z"),
                sent(2, 1, "2026-12-10T09:00:00Z"),
                sent(2, 2, "2027-12-13T09:00:00Z"),
            ],
            (2, 3, "2028-12-09T23:00:00Z"),
        ),
    ];
    for (history, (step, occurrence, due)) in cases {
        assert_eq!(
            next(&c, history),
            Some((*step, *occurrence, utc(due))),
            "{history:?}"
        );
    }
}

#[test]
fn the_29th_of_february_is_the_28th_in_other_years() {
    let c = campaign(chrono_tz::UTC, vec![seasonal(14, 2, 29)]);
    let cases: &[Case] = &[
        (
            &[sent(1, 1, "2027-01-10T10:00:00Z")],
            (2, 1, "2027-02-28T00:00:00Z"),
        ),
        (
            &[
                sent(1, 1, "2027-01-10T10:00:00Z"),
                sent(2, 1, "2027-02-28T10:00:00Z"),
            ],
            (2, 2, "2028-02-29T00:00:00Z"),
        ),
        (
            &[
                sent(1, 1, "2027-01-10T10:00:00Z"),
                sent(2, 1, "2027-02-28T10:00:00Z"),
                sent(2, 2, "2028-02-29T10:00:00Z"),
            ],
            (2, 3, "2029-02-28T00:00:00Z"),
        ),
        // Surveyed 20 February 2028: + 14 days is past the 29th: 28 February 2029.
        (
            &[sent(1, 1, "2028-02-20T10:00:00Z")],
            (2, 1, "2029-02-28T00:00:00Z"),
        ),
    ];
    for (history, (step, occurrence, due)) in cases {
        assert_eq!(
            next(&c, history),
            Some((*step, *occurrence, utc(due))),
            "{history:?}"
        );
    }
    let month_day = MonthDay { month: 2, day: 29 };
    assert_eq!(next_on(month_day, date("2027-03-01")), date("2028-02-29"));
    assert_eq!(next_on(month_day, date("2028-03-01")), date("2029-02-28"));
    assert_eq!(next_on(month_day, date("2028-02-29")), date("2028-02-29"));
}

#[test]
fn a_recurring_step_interleaves_with_the_linear_ones_and_never_completes() {
    // Survey; newsletter 30 days later, then every 90 days; article 200 days after the
    // first newsletter. UTC, so days are 24 hours.
    let mut c = campaign(chrono_tz::UTC, vec![every(30, 90)]);
    c.steps.push(step(StepKind::Article, 200));
    let mut history = vec![sent(1, 1, "2026-04-01T10:00:00Z")];
    let mut seen = Vec::new();
    for _ in 0..8 {
        let Some((step, occurrence, due)) = next(&c, &history) else {
            panic!("a sequence with a reached recurring step completed: {history:?}");
        };
        seen.push((step, occurrence, due.format("%Y-%m-%d").to_string()));
        history.push(Sent {
            step,
            occurrence,
            at: due,
        });
    }
    let expected: Vec<(u32, u32, String)> = [
        (2, 1, "2026-05-01"),
        (2, 2, "2026-07-30"),
        (2, 3, "2026-10-28"),
        // 200 days after the first newsletter, between the third and the fourth.
        (3, 1, "2026-11-17"),
        (2, 4, "2027-01-26"),
        (2, 5, "2027-04-26"),
        (2, 6, "2027-07-25"),
        (2, 7, "2027-10-23"),
    ]
    .iter()
    .map(|(s, o, d)| (*s, *o, d.to_string()))
    .collect();
    assert_eq!(seen, expected);
    // Without recurring steps, the last step completes the sequence.
    let linear = campaign(chrono_tz::UTC, vec![step(StepKind::Newsletter, 30)]);
    assert_eq!(
        next(
            &linear,
            &[
                sent(1, 1, "2026-04-01T10:00:00Z"),
                sent(2, 1, "2026-05-01T10:00:00Z")
            ]
        ),
        None
    );
}

#[test]
fn a_recurring_step_keeps_local_time_across_dst() {
    // Every 7 days at 10:00 New York: 10:00 EST before the change, 10:00 EDT after.
    let c = campaign(New_York, vec![every(30, 7)]);
    let history = [
        sent(1, 1, "2026-01-20T15:00:00Z"),
        sent(2, 1, "2026-03-03T15:00:00Z"),
    ];
    assert_eq!(
        next(&c, &history),
        Some((2, 2, utc("2026-03-10T14:00:00Z")))
    );
    // In the fall: 10:00 EDT, then 10:00 EST.
    let history = [
        sent(1, 1, "2026-06-20T14:00:00Z"),
        sent(2, 1, "2026-10-29T14:00:00Z"),
    ];
    assert_eq!(
        next(&c, &history),
        Some((2, 2, utc("2026-11-05T15:00:00Z")))
    );
}

/// Another message to the person at `at`, a linear (or seasonal) step's.
fn linear_at(at: &str) -> Busy {
    Busy {
        at: utc(at),
        recurring: false,
    }
}

/// Another message to the person at `at`, a recurring step's.
fn recurring_at(at: &str) -> Busy {
    Busy {
        at: utc(at),
        recurring: true,
    }
}

/// The search from `due` with these rules: where it lands, and what moved it.
fn found(c: &Campaign, due: &str, rules: &Rules<'_>) -> Found {
    let due = utc(due);
    search(c, c.timezone, due, due, due, rules)
}

#[test]
fn a_colliding_message_moves_to_the_next_allowed_moment() {
    let c = campaign(chrono_tz::UTC, vec![every(30, 90)]);
    let busy = [linear_at("2026-06-08T10:00:00Z")];
    let account = [utc("2026-06-09T10:00:00Z")];
    // (due, busy, recurring, account busy, expected)
    type Case<'a> = (&'a str, &'a [Busy], bool, &'a [DateTime<Utc>], Found);
    let cases: &[Case] = &[
        // Nothing in the way.
        (
            "2026-06-10T00:00:00Z",
            &[],
            true,
            &[],
            Found::At(utc("2026-06-10T10:00:00Z"), vec![]),
        ),
        // Same day as another message: the next day.
        (
            "2026-06-08T00:00:00Z",
            &busy,
            false,
            &[],
            Found::At(
                utc("2026-06-09T10:00:00Z"),
                vec![Moved::SameDay(date("2026-06-08"))],
            ),
        ),
        // A linear step keeps only the day free.
        (
            "2026-06-10T00:00:00Z",
            &busy,
            false,
            &[],
            Found::At(utc("2026-06-10T10:00:00Z"), vec![]),
        ),
        // A recurring one keeps min_gap_days (7) from it: 15 June.
        (
            "2026-06-10T00:00:00Z",
            &busy,
            true,
            &[],
            Found::At(utc("2026-06-15T10:00:00Z"), vec![Moved::MinGap(busy[0].at)]),
        ),
        // ... also from a message after it.
        (
            "2026-06-03T00:00:00Z",
            &busy,
            true,
            &[],
            Found::At(utc("2026-06-15T10:00:00Z"), vec![Moved::MinGap(busy[0].at)]),
        ),
        // Another contact of the account got one on 9 June: 16 June (account gap 7).
        (
            "2026-06-10T00:00:00Z",
            &[],
            false,
            &account,
            Found::At(
                utc("2026-06-16T10:00:00Z"),
                vec![Moved::Account(account[0])],
            ),
        ),
        // Both: first the person's day, then the account.
        (
            "2026-06-08T00:00:00Z",
            &busy,
            false,
            &account,
            Found::At(
                utc("2026-06-16T10:00:00Z"),
                vec![
                    Moved::SameDay(date("2026-06-08")),
                    Moved::Account(account[0]),
                ],
            ),
        ),
    ];
    for (due, busy, recurring, account_busy, expected) in cases {
        let rules = Rules {
            busy,
            recurring: *recurring,
            account_busy,
            account_gap_days: c.account_gap_days,
            ..Rules::default()
        };
        assert_eq!(
            &found(&c, due, &rules),
            expected,
            "due {due}, busy {busy:?}"
        );
    }
    // No account gap when account_gap_days is 0.
    let mut no_gap = c.clone();
    no_gap.account_gap_days = 0;
    let rules = Rules {
        account_busy: &account,
        account_gap_days: 0,
        ..Rules::default()
    };
    assert_eq!(
        found(&no_gap, "2026-06-10T00:00:00Z", &rules),
        Found::At(utc("2026-06-10T10:00:00Z"), vec![])
    );
}

#[test]
fn nothing_starts_past_the_consent_horizon() {
    // Churned 1 January 2026 (Paris), horizon 400 days: the last day a message may start
    // is 5 February 2027; the horizon is midnight starting the 6th.
    let mut c = campaign(Paris, vec![every(30, 90)]);
    c.max_days_since_churn = Some(400);
    let end = horizon(&c, churned("2026-01-01"), Paris);
    assert_eq!(end, Some(utc("2027-02-05T23:00:00Z")));
    let rules = Rules {
        horizon: end,
        ..Rules::default()
    };
    assert_eq!(
        found(&c, "2027-02-05T00:00:00Z", &rules),
        Found::At(utc("2027-02-05T09:00:00Z"), vec![])
    );
    assert_eq!(
        found(&c, "2027-02-06T00:00:00Z", &rules),
        Found::PastHorizon
    );
    // A message due on the last day but moved past it by another message: past too.
    let busy = [linear_at("2027-02-05T08:00:00Z")];
    let moved = Rules {
        busy: &busy,
        horizon: end,
        ..Rules::default()
    };
    assert_eq!(
        found(&c, "2027-02-05T00:00:00Z", &moved),
        Found::PastHorizon
    );
    let due = utc("2027-02-06T00:00:00Z");
    assert_eq!(
        decide(
            &c,
            Paris,
            due,
            due,
            utc("2027-02-06T09:00:00Z"),
            Standing::default(),
            &rules
        )
        .0,
        Decision::Stop(EnrollmentState::Expired)
    );
    // Without a horizon the sequence goes on.
    c.max_days_since_churn = None;
    assert_eq!(horizon(&c, churned("2026-01-01"), Paris), None);
}

#[test]
fn plan_runs_recurring_seasonal_and_account_rules_forward_and_names_each_move() {
    use crate::domain::plan::{PlanItem, plan};
    use std::collections::HashMap;
    // Survey; newsletter 30 days later, then every 112 days; greeting on 10 December.
    let mut c = campaign(chrono_tz::UTC, vec![every(30, 112), seasonal(14, 12, 10)]);
    c.steps[2].kind = StepKind::Article;
    let mut paused = c.clone();
    paused.name = "paused".to_string();
    paused.paused = true;
    let item = |email: &str,
                key: i64,
                campaign,
                step: u32,
                due: &str,
                history: Vec<Sent>,
                account: Option<&str>| PlanItem {
        email: email.to_string(),
        client_key: key,
        timezone: None,
        churned_at: churned("2026-01-01"),
        campaign,
        next_step: step,
        occurrence: 1,
        due: utc(due),
        not_before: utc(due),
        why: if step == 1 {
            Why::Survey
        } else {
            Why::After {
                step: step - 1,
                days: 30,
            }
        },
        history,
        account: account.map(str::to_string),
        country: None,
        moved: None,
    };
    let items = vec![
        item(
            "ann@acme.example",
            1,
            &c,
            2,
            "2026-05-01T10:00:00Z",
            vec![sent(1, 1, "2026-04-01T10:00:00Z")],
            None,
        ),
        item(
            "bob@acme.example",
            2,
            &c,
            1,
            "2026-04-20T00:00:00Z",
            Vec::new(),
            Some("acme"),
        ),
        item(
            "cy@acme.example",
            3,
            &c,
            1,
            "2026-04-20T00:00:00Z",
            Vec::new(),
            Some("acme"),
        ),
        item(
            "dee@example.com",
            4,
            &paused,
            1,
            "2026-04-20T00:00:00Z",
            Vec::new(),
            None,
        ),
    ];
    let planned = plan(
        items,
        &HashMap::new(),
        utc("2026-04-15T00:00:00Z"),
        utc("2027-05-20T00:00:00Z"),
    );
    let ann: Vec<(String, u32, &str)> = planned
        .iter()
        .filter(|p| p.email == "ann@acme.example")
        .map(|p| {
            (
                p.at.format("%Y-%m-%d %H:%M").to_string(),
                p.step,
                p.reason.as_str(),
            )
        })
        .collect();
    let expected: &[(&str, u32, &[&str])] = &[
        ("2026-05-01 10:00", 2, &["step 1 sent 2026-04-01 + 30 days"]),
        ("2026-08-21 10:00", 2, &["every 112 days"]),
        ("2026-12-10 10:00", 3, &["seasonal: 12-10"]),
        (
            "2026-12-17 10:00",
            2,
            &[
                "every 112 days",
                "min gap: 7 days from the message of 2026-12-10",
            ],
        ),
        ("2027-04-08 10:00", 2, &["every 112 days"]),
    ];
    assert_eq!(ann.len(), expected.len(), "{ann:#?}");
    for ((at, step, reason), (want_at, want_step, fragments)) in ann.iter().zip(expected) {
        assert_eq!((at.as_str(), *step), (*want_at, *want_step), "{reason}");
        for fragment in *fragments {
            assert!(
                reason.contains(fragment),
                "{at}: {reason:?} lacks {fragment:?}"
            );
        }
    }
    // Two contacts of one account: the second waits for the account gap.
    let surveys: Vec<(&str, String, &str)> = planned
        .iter()
        .filter(|p| p.step == 1)
        .map(|p| {
            (
                p.email.as_str(),
                p.at.format("%Y-%m-%d").to_string(),
                p.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(surveys.len(), 2, "{surveys:#?}");
    assert_eq!(
        (surveys[0].0, surveys[0].1.as_str()),
        ("bob@acme.example", "2026-04-20")
    );
    assert_eq!(
        (surveys[1].0, surveys[1].1.as_str()),
        ("cy@acme.example", "2026-04-27")
    );
    assert!(
        surveys[1]
            .2
            .contains("account gap: acme got a message on 2026-04-20"),
        "{}",
        surveys[1].2
    );
    // A paused campaign's messages are left out.
    assert!(planned.iter().all(|p| p.campaign != "paused"));
}

#[test]
fn a_recurring_message_due_just_before_a_seasonal_one_gives_way_to_it() {
    // Newsletter every 91 days, greeting on 10 December; min_gap_days 7.
    let c = campaign(chrono_tz::UTC, vec![every(30, 91), seasonal(14, 12, 10)]);
    let base = [
        sent(1, 1, "2026-08-01T10:00:00Z"),
        sent(2, 1, "2026-08-31T10:00:00Z"),
    ];
    // The next newsletter is due 30 November, ten days before the greeting: it goes first.
    assert_eq!(next(&c, &base), Some((2, 2, utc("2026-11-30T10:00:00Z"))));
    // Due 6 December, four days before it: the greeting keeps its date and goes first;
    // the newsletter then keeps the gap from it.
    let history = [
        sent(1, 1, "2026-08-01T10:00:00Z"),
        sent(2, 1, "2026-09-06T10:00:00Z"),
    ];
    assert_eq!(
        next(&c, &history),
        Some((3, 1, utc("2026-12-10T00:00:00Z")))
    );
    let mut after = history.to_vec();
    after.push(sent(3, 1, "2026-12-10T10:00:00Z"));
    assert_eq!(next(&c, &after), Some((2, 2, utc("2026-12-06T10:00:00Z"))));
    let busy = [linear_at("2026-12-10T10:00:00Z")];
    let rules = Rules {
        busy: &busy,
        recurring: true,
        ..Rules::default()
    };
    assert_eq!(
        found(&c, "2026-12-06T10:00:00Z", &rules),
        Found::At(utc("2026-12-17T10:00:00Z"), vec![Moved::MinGap(busy[0].at)])
    );
}

#[test]
fn any_message_keeps_min_gap_days_from_a_recurring_one_in_either_order() {
    // min_gap_days 7; every day at 10:00 UTC.
    let c = campaign(
        chrono_tz::UTC,
        vec![every(30, 30), step(StepKind::Article, 68)],
    );
    let mut no_gap = c.clone();
    no_gap.min_gap_days = 0;
    let went = "2026-06-08T10:00:00Z";
    // (campaign, due, the person's other message, this one recurring, expected)
    type Case<'a> = (&'a Campaign, &'a str, Busy, bool, Found);
    let cases: &[Case] = &[
        // A linear message 3 days after a recurring one: 7 days after it.
        (
            &c,
            "2026-06-11T00:00:00Z",
            recurring_at(went),
            false,
            Found::At(utc("2026-06-15T10:00:00Z"), vec![Moved::MinGap(utc(went))]),
        ),
        // ... and 3 days before one already claimed (a retry, a late pass).
        (
            &c,
            "2026-06-05T00:00:00Z",
            recurring_at(went),
            false,
            Found::At(utc("2026-06-15T10:00:00Z"), vec![Moved::MinGap(utc(went))]),
        ),
        // On its day: the next day, then the gap.
        (
            &c,
            "2026-06-08T00:00:00Z",
            recurring_at(went),
            false,
            Found::At(
                utc("2026-06-15T10:00:00Z"),
                vec![Moved::SameDay(date("2026-06-08")), Moved::MinGap(utc(went))],
            ),
        ),
        // Exactly min_gap_days after it: not moved.
        (
            &c,
            "2026-06-15T00:00:00Z",
            recurring_at(went),
            false,
            Found::At(utc("2026-06-15T10:00:00Z"), vec![]),
        ),
        // Two linear messages keep only the day apart.
        (
            &c,
            "2026-06-11T00:00:00Z",
            linear_at(went),
            false,
            Found::At(utc("2026-06-11T10:00:00Z"), vec![]),
        ),
        // A recurring message keeps the gap from a linear one and from a recurring one.
        (
            &c,
            "2026-06-11T00:00:00Z",
            linear_at(went),
            true,
            Found::At(utc("2026-06-15T10:00:00Z"), vec![Moved::MinGap(utc(went))]),
        ),
        (
            &c,
            "2026-06-11T00:00:00Z",
            recurring_at(went),
            true,
            Found::At(utc("2026-06-15T10:00:00Z"), vec![Moved::MinGap(utc(went))]),
        ),
        // min_gap_days = 0 keeps no gap.
        (
            &no_gap,
            "2026-06-11T00:00:00Z",
            recurring_at(went),
            false,
            Found::At(utc("2026-06-11T10:00:00Z"), vec![]),
        ),
    ];
    for (campaign, due, other, recurring, expected) in cases {
        let rules = Rules {
            busy: std::slice::from_ref(other),
            recurring: *recurring,
            ..Rules::default()
        };
        assert_eq!(
            &found(campaign, due, &rules),
            expected,
            "due {due}, other {other:?}, recurring {recurring}"
        );
    }
}

#[test]
fn plan_keeps_min_gap_days_between_a_moved_recurring_message_and_the_step_after_it() {
    use crate::domain::plan::{PlanItem, RateLimits, plan_all};
    use std::collections::HashMap;
    // Newsletter 30 days after the survey and every 30 days; an article 68 days after
    // the first newsletter (9 April, 8 days after the third one is due on 1 April).
    let c = campaign(
        chrono_tz::UTC,
        vec![every(30, 30), step(StepKind::Article, 68)],
    );
    let history = vec![
        sent(1, 1, "2026-01-01T10:00:00Z"),
        sent(2, 1, "2026-01-31T10:00:00Z"),
        sent(2, 2, "2026-03-02T10:00:00Z"),
    ];
    assert_eq!(
        next(&c, &history),
        Some((2, 3, utc("2026-04-01T10:00:00Z")))
    );
    let item = PlanItem {
        email: "pat@client.example".to_string(),
        client_key: 1,
        timezone: None,
        churned_at: churned("2025-10-03"),
        campaign: &c,
        next_step: 2,
        occurrence: 3,
        due: utc("2026-04-01T10:00:00Z"),
        not_before: utc("2026-04-01T10:00:00Z"),
        why: Why::Every(30),
        history,
        account: None,
        country: None,
        moved: None,
    };
    // Another campaign's message on 30 March moves the newsletter to 6 April; the
    // article, due three days later, keeps 7 days from it.
    let busy = HashMap::from([(1, vec![linear_at("2026-03-30T10:00:00Z")])]);
    let planned = plan_all(
        vec![item],
        &busy,
        &HashMap::new(),
        &RateLimits::default(),
        utc("2026-03-31T00:00:00Z"),
        utc("2026-05-01T00:00:00Z"),
    );
    let at: Vec<(u32, DateTime<Utc>)> = planned.iter().map(|p| (p.step, p.at)).collect();
    assert_eq!(
        at,
        [
            (2, utc("2026-04-06T10:00:00Z")),
            (3, utc("2026-04-13T10:00:00Z")),
        ],
        "{planned:#?}"
    );
    assert!(
        planned[1]
            .reason
            .contains("min gap: 7 days from the message of 2026-04-06"),
        "{}",
        planned[1].reason
    );
}

#[test]
fn plan_counts_the_account_messages_of_contacts_it_plans_nothing_for() {
    use crate::domain::plan::{AccountSends, PlanItem, RateLimits, plan_all};
    use std::collections::HashMap;
    let c = campaign(chrono_tz::UTC, vec![step(StepKind::Newsletter, 30)]);
    let item = PlanItem {
        email: "bob@acme.example".to_string(),
        client_key: 2,
        timezone: None,
        churned_at: churned("2026-01-01"),
        campaign: &c,
        next_step: 1,
        occurrence: 1,
        due: utc("2026-04-20T00:00:00Z"),
        not_before: utc("2026-04-20T00:00:00Z"),
        why: Why::Survey,
        history: Vec::new(),
        account: Some("acme".to_string()),
        country: None,
        moved: None,
    };
    // Another contact of ACME, whose sequence is over, got a message on 18 April.
    let accounts: AccountSends =
        HashMap::from([("acme".to_string(), vec![(9, utc("2026-04-18T10:00:00Z"))])]);
    let planned = plan_all(
        vec![item],
        &HashMap::new(),
        &accounts,
        &RateLimits::default(),
        utc("2026-04-15T00:00:00Z"),
        utc("2026-05-01T00:00:00Z"),
    );
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert_eq!(planned[0].at, utc("2026-04-25T10:00:00Z"));
    assert!(
        planned[0]
            .reason
            .contains("account gap: acme got a message on 2026-04-18"),
        "{}",
        planned[0].reason
    );
}

#[test]
fn the_account_gap_counts_the_contacts_own_messages_too() {
    use crate::domain::plan::{AccountSends, PlanItem, RateLimits, plan_all};
    use std::collections::HashMap;
    let c = campaign(chrono_tz::UTC, vec![step(StepKind::Newsletter, 30)]);
    let item = PlanItem {
        email: "ann@acme.example".to_string(),
        client_key: 1,
        timezone: None,
        churned_at: churned("2026-01-01"),
        campaign: &c,
        next_step: 1,
        occurrence: 1,
        due: utc("2026-04-20T00:00:00Z"),
        not_before: utc("2026-04-20T00:00:00Z"),
        why: Why::Survey,
        history: Vec::new(),
        account: Some("acme".to_string()),
        country: None,
        moved: None,
    };
    // Ann herself got a message of another sequence on 16 April: ACME heard from us then.
    let accounts: AccountSends =
        HashMap::from([("acme".to_string(), vec![(1, utc("2026-04-16T10:00:00Z"))])]);
    let planned = plan_all(
        vec![item],
        &HashMap::new(),
        &accounts,
        &RateLimits::default(),
        utc("2026-04-15T00:00:00Z"),
        utc("2026-05-01T00:00:00Z"),
    );
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert_eq!(planned[0].at, utc("2026-04-23T10:00:00Z"), "{planned:#?}");
    assert!(
        planned[0]
            .reason
            .contains("account gap: acme got a message on 2026-04-16"),
        "{}",
        planned[0].reason
    );
}

#[test]
fn a_step_counts_from_the_send_at_moment_its_message_went_at() {
    // Survey, then a newsletter 30 days later and every 91 days; every day at 10:00 UTC
    // (catch-up 4 h).
    let c = campaign(chrono_tz::UTC, vec![every(30, 91)]);
    let cases: &[Case] = &[
        // The pass starts at 10:00:00 and the message goes a moment later: 30 days on,
        // due at that day's 10:00, not a moment after it (the next day's 10:00).
        (
            &[sent(1, 1, "2026-01-30T10:00:00.400Z")],
            (2, 1, "2026-03-01T10:00:00Z"),
        ),
        (
            &[sent(1, 1, "2026-01-30T10:00:03Z")],
            (2, 1, "2026-03-01T10:00:00Z"),
        ),
        // A long batch, or a rate limit, minutes after the moment.
        (
            &[sent(1, 1, "2026-01-30T10:07:30Z")],
            (2, 1, "2026-03-01T10:00:00Z"),
        ),
        // A pass catching up hours after the moment.
        (
            &[sent(1, 1, "2026-01-30T13:30:00Z")],
            (2, 1, "2026-03-01T10:00:00Z"),
        ),
        // A recurring step's occurrences count the same way.
        (
            &[
                sent(1, 1, "2026-01-30T10:00:00.400Z"),
                sent(2, 1, "2026-03-01T10:00:59.900Z"),
            ],
            (2, 2, "2026-05-31T10:00:00Z"),
        ),
        // Sent before any moment of its day (resent by hand): counted from when it went.
        (
            &[sent(1, 1, "2026-01-30T08:15:00Z")],
            (2, 1, "2026-03-01T08:15:00Z"),
        ),
        // Sent just after midnight, catching up on the day before's moment: that day's
        // moment is not this day's, so counted from when it went.
        (
            &[sent(1, 1, "2026-01-31T00:30:00Z")],
            (2, 1, "2026-03-02T00:30:00Z"),
        ),
    ];
    for (history, (step, occurrence, due)) in cases {
        assert_eq!(
            next(&c, history),
            Some((*step, *occurrence, utc(due))),
            "{history:?}"
        );
    }
    // On the recipient's wall clock: 10:00 New York is 10:00 EST, then EDT.
    let ny = campaign(New_York, vec![every(30, 91)]);
    assert_eq!(
        next(&ny, &[sent(1, 1, "2026-02-20T15:00:04Z")]),
        Some((2, 1, utc("2026-03-22T14:00:00Z")))
    );
    // The daemon's pass at the 10:00 moment 30 days on sends it: the day plan shows.
    let Some((_, _, due)) = next(&c, &[sent(1, 1, "2026-01-30T10:00:03Z")]) else {
        panic!("no next message");
    };
    let now = utc("2026-03-01T10:00:00Z");
    assert_eq!(
        decide(
            &c,
            chrono_tz::UTC,
            due,
            due,
            now,
            Standing::default(),
            &Rules::default()
        )
        .0,
        Decision::SendNow
    );
}
