//! Table tests for the pure scheduler. Every expected instant is written out by hand
//! (with its local reading in a comment); none is computed by the code under test.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::America::New_York;
use chrono_tz::Asia::Tokyo;
use chrono_tz::Europe::Paris;
use chrono_tz::Tz;

use super::*;
use crate::config::Config;
use crate::domain::campaign::{Campaign, Step};
use crate::domain::model::{ChurnedAt, EnrollmentState, StepKind};
use crate::domain::plan::{PlanItem, Planned, RateLimits, plan, plan_with_limits};
use crate::domain::send_at::SendAt;

/// An instant written as RFC 3339.
fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?} in a test table: {e}"))
        .with_timezone(&Utc)
}

fn churned(text: &str) -> ChurnedAt {
    ChurnedAt::parse(text).unwrap_or_else(|| panic!("bad churned_at {text:?} in a test table"))
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

/// survey, then newsletter after 30 days, then article after 45; quiet 90, catch-up 4 h.
fn campaign(send_at: &str, timezone: Tz) -> Campaign {
    Campaign {
        name: "former-clients".to_string(),
        quiet_days: 90,
        send_at: SendAt::parse(send_at).unwrap_or_else(|e| panic!("send_at {send_at:?}: {e}")),
        timezone,
        exclude_reasons: vec!["we_ended".to_string()],
        catch_up_hours: 4,
        renamed_from: None,
        include_reasons: None,
        matches: Vec::new(),
        min_gap_days: 7,
        account_gap_days: 7,
        holidays: Default::default(),
        max_days_since_churn: None,
        enroll_within_days: None,
        paused: false,
        steps: vec![
            step(StepKind::Survey, 0),
            step(StepKind::Newsletter, 30),
            step(StepKind::Article, 45),
        ],
    }
}

fn with_quiet_days(mut campaign: Campaign, quiet_days: u32) -> Campaign {
    campaign.quiet_days = quiet_days;
    campaign
}

fn with_catch_up(mut campaign: Campaign, hours: u32) -> Campaign {
    campaign.catch_up_hours = hours;
    campaign
}

/// The `send_at` moments after `start`, one at a time: each search starts just after the
/// previous moment, with the message due then (so no catch-up window applies).
fn moments(campaign: &Campaign, tz: Tz, start: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut from = start;
    for _ in 0..count {
        let Some(m) = earliest_send(campaign, tz, from, from, from) else {
            break;
        };
        out.push(m);
        from = m + Duration::seconds(1);
    }
    out
}

#[test]
fn survey_is_due_after_the_quiet_period_in_local_calendar_days() {
    // (churned_at, zone, quiet_days, due)
    let cases: &[(&str, Tz, u32, &str)] = &[
        // Midnight EST on 15 Jan → midnight EDT on 15 Apr: 90 local days, not 90 × 24 h
        // (which would give 05:00Z, 01:00 EDT).
        ("2026-01-15", New_York, 90, "2026-04-15T04:00:00Z"),
        ("2026-01-15", New_York, 120, "2026-05-15T04:00:00Z"),
        // Midnight in Tokyo is 15:00Z the day before.
        ("2026-01-15", Tokyo, 90, "2026-04-14T15:00:00Z"),
        // Midnight CET on 1 Jan → midnight CEST on 1 Apr.
        ("2026-01-01", Paris, 90, "2026-03-31T22:00:00Z"),
        // An instant keeps its local time of day: 14:30 EST → 14:30 EDT.
        (
            "2026-01-15T14:30:00-05:00",
            New_York,
            90,
            "2026-04-15T18:30:00Z",
        ),
        ("2026-01-15T19:30:00Z", New_York, 90, "2026-04-15T18:30:00Z"),
        // 04:30Z on 16 Jan is still 15 Jan (23:30 EST) in New York: days count from there.
        ("2026-01-16T04:30:00Z", New_York, 90, "2026-04-16T03:30:00Z"),
        // 09:00 JST on 20 Jan → 09:00 JST on 20 Apr.
        (
            "2026-01-20T09:00:00+09:00",
            Tokyo,
            90,
            "2026-04-20T00:00:00Z",
        ),
        // 09:00Z = 10:00 CET on 10 Jan → 10:00 CEST on 10 Apr.
        ("2026-01-10T09:00:00Z", Paris, 90, "2026-04-10T08:00:00Z"),
    ];
    for (churned_at, tz, quiet_days, expected) in cases {
        let c = with_quiet_days(campaign("0 10 * * *", New_York), *quiet_days);
        assert_eq!(
            survey_due(&c, churned(churned_at), *tz),
            utc(expected),
            "churned {churned_at} in {tz}, quiet {quiet_days}"
        );
    }
}

#[test]
fn the_recipient_zone_overrides_the_campaign_zone() {
    let c = campaign("0 10 * * *", New_York);
    assert_eq!(zone(&c, None), New_York);
    assert_eq!(zone(&c, Some(Tokyo)), Tokyo);
    assert_eq!(zone(&c, Some(Paris)), Paris);
}

#[test]
fn a_due_message_waits_for_the_first_send_at_moment_at_or_after_it() {
    // (send_at, campaign zone, client zone, due, first moment)
    let cases: &[(&str, Tz, Option<Tz>, &str, &str)] = &[
        // Wed 00:00 EDT → Wed 10:00 EDT.
        (
            "0 10 * * Tue-Thu",
            New_York,
            None,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
        ),
        // Fri 00:00 EDT → Tue 10:00 EDT.
        (
            "0 10 * * Tue-Thu",
            New_York,
            None,
            "2026-04-17T04:00:00Z",
            "2026-04-21T14:00:00Z",
        ),
        // Mon 22:00 EDT (already Tuesday in UTC) → Tue 10:00 EDT, not Tue 10:00Z.
        (
            "0 10 * * Tue-Thu",
            New_York,
            None,
            "2026-04-14T02:00:00Z",
            "2026-04-14T14:00:00Z",
        ),
        // Thu 21:00 EDT (Friday in UTC) → Tue 10:00 EDT.
        (
            "0 10 * * Tue-Thu",
            New_York,
            None,
            "2026-04-17T01:00:00Z",
            "2026-04-21T14:00:00Z",
        ),
        // Due exactly on a moment: that moment.
        (
            "0 10 * * Tue-Thu",
            New_York,
            None,
            "2026-04-15T14:00:00Z",
            "2026-04-15T14:00:00Z",
        ),
        // One second later: the next day's moment.
        (
            "0 10 * * Tue-Thu",
            New_York,
            None,
            "2026-04-15T14:00:01Z",
            "2026-04-16T14:00:00Z",
        ),
        // Wed 11:00 JST → Thu 10:00 JST (not Wed 10:00Z).
        (
            "0 10 * * Tue-Thu",
            Tokyo,
            None,
            "2026-04-15T02:00:00Z",
            "2026-04-16T01:00:00Z",
        ),
        // Fri 00:00 JST (still Thursday in UTC) → Tue 10:00 JST.
        (
            "0 10 * * Tue-Thu",
            Tokyo,
            None,
            "2026-04-16T15:00:00Z",
            "2026-04-21T01:00:00Z",
        ),
        // Tue 10:00 JST exactly.
        (
            "0 10 * * Tue-Thu",
            Tokyo,
            None,
            "2026-04-14T01:00:00Z",
            "2026-04-14T01:00:00Z",
        ),
        // Fri 00:00 CET → Tue 10:00 CEST, across the EU change on Sun 29 March.
        (
            "0 10 * * Tue-Thu",
            Paris,
            None,
            "2026-03-26T23:00:00Z",
            "2026-03-31T08:00:00Z",
        ),
        // Tue 10:00 CET exactly.
        (
            "0 10 * * Tue-Thu",
            Paris,
            None,
            "2026-03-24T09:00:00Z",
            "2026-03-24T09:00:00Z",
        ),
        // The client's zone wins: Wed 11:00 JST → Thu 10:00 JST, though New York's Wed
        // 10:00 (14:00Z) would come later the same UTC day.
        (
            "0 10 * * Tue-Thu",
            New_York,
            Some(Tokyo),
            "2026-04-15T02:00:00Z",
            "2026-04-16T01:00:00Z",
        ),
        // Mon 22:00 EDT for a New York client of a Tokyo campaign → Tue 10:00 EDT.
        (
            "0 10 * * Tue-Thu",
            Tokyo,
            Some(New_York),
            "2026-04-14T02:00:00Z",
            "2026-04-14T14:00:00Z",
        ),
        (
            "0 10 * * Tue-Thu",
            New_York,
            Some(Paris),
            "2026-03-26T23:00:00Z",
            "2026-03-31T08:00:00Z",
        ),
        // Crontab day numbers: 1 is Monday, 0 and 7 are Sunday.
        (
            "0 9 * * 1",
            New_York,
            None,
            "2026-04-15T04:00:00Z",
            "2026-04-20T13:00:00Z",
        ),
        (
            "0 9 * * 0",
            New_York,
            None,
            "2026-04-15T04:00:00Z",
            "2026-04-19T13:00:00Z",
        ),
        (
            "0 9 * * 7",
            New_York,
            None,
            "2026-04-15T04:00:00Z",
            "2026-04-19T13:00:00Z",
        ),
    ];
    for (send_at, campaign_tz, client_tz, due, expected) in cases {
        let c = campaign(send_at, *campaign_tz);
        let tz = zone(&c, *client_tz);
        let due = utc(due);
        // A pass at the due instant, and a plan made a month earlier, agree.
        for from in [due, due - Duration::days(30)] {
            assert_eq!(
                earliest_send(&c, tz, due, due, from),
                Some(utc(expected)),
                "send_at {send_at:?} in {tz}, due {due}, searching from {from}"
            );
        }
    }
}

#[test]
fn a_survey_goes_out_at_the_first_moment_after_the_quiet_period_in_the_recipient_zone() {
    // (churned_at, client zone, survey due, first moment), campaign in New York, Tue-Thu 10:00.
    let cases: &[(&str, Option<Tz>, &str, &str)] = &[
        // Wed 15 Apr 00:00 EDT → Wed 10:00 EDT.
        (
            "2026-01-15",
            None,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
        ),
        // Wed 15 Apr 00:00 JST → Wed 10:00 JST.
        (
            "2026-01-15",
            Some(Tokyo),
            "2026-04-14T15:00:00Z",
            "2026-04-15T01:00:00Z",
        ),
        // Mon 20 Apr 09:00 JST → Tue 10:00 JST.
        (
            "2026-01-20T09:00:00+09:00",
            Some(Tokyo),
            "2026-04-20T00:00:00Z",
            "2026-04-21T01:00:00Z",
        ),
        // Wed 15 Apr 14:30 EDT, after that day's moment → Thu 10:00 EDT.
        (
            "2026-01-15T14:30:00-05:00",
            None,
            "2026-04-15T18:30:00Z",
            "2026-04-16T14:00:00Z",
        ),
    ];
    let c = campaign("0 10 * * Tue-Thu", New_York);
    for (churned_at, client_tz, due, expected) in cases {
        let tz = zone(&c, *client_tz);
        let got_due = survey_due(&c, churned(churned_at), tz);
        assert_eq!(got_due, utc(due), "due of churned {churned_at} in {tz}");
        let start = churned(churned_at).instant(tz);
        assert_eq!(
            earliest_send(&c, tz, got_due, got_due, start),
            Some(utc(expected)),
            "send of churned {churned_at} in {tz}"
        );
    }
}

#[test]
fn never_sends_inside_the_quiet_period() {
    // (send_at, zone, churned_at, survey due, first moment at or after it)
    let cases: &[(&str, Tz, &str, &str, &str)] = &[
        (
            "0 10 * * Tue-Thu",
            New_York,
            "2026-01-15",
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
        ),
        (
            "0 10 * * Tue-Thu",
            Tokyo,
            "2026-01-15",
            "2026-04-14T15:00:00Z",
            "2026-04-15T01:00:00Z",
        ),
        // Every minute: the due instant itself is a moment.
        (
            "* * * * *",
            New_York,
            "2026-01-15",
            "2026-04-15T04:00:00Z",
            "2026-04-15T04:00:00Z",
        ),
        // Local midnight every day: the due instant itself, in CEST.
        (
            "0 0 * * *",
            Paris,
            "2026-01-01",
            "2026-03-31T22:00:00Z",
            "2026-03-31T22:00:00Z",
        ),
        // Churned at 14:30 EST; due 14:30 EDT Wed, after Wednesday's moment → Thursday.
        (
            "0 10 * * Tue-Thu",
            New_York,
            "2026-01-15T14:30:00-05:00",
            "2026-04-15T18:30:00Z",
            "2026-04-16T14:00:00Z",
        ),
        // Due 00:00 EST on 8 March; 02:30 does not exist that night → 03:00 EDT.
        (
            "30 2 * * *",
            New_York,
            "2025-12-08",
            "2026-03-08T05:00:00Z",
            "2026-03-08T07:00:00Z",
        ),
    ];
    for (send_at, tz, churned_at, due, first) in cases {
        let c = with_catch_up(campaign(send_at, *tz), 168);
        let churned_at = churned(churned_at);
        let due = utc(due);
        assert_eq!(
            survey_due(&c, churned_at, *tz),
            due,
            "due for {send_at:?} in {tz}"
        );
        let mut nows = Vec::new();
        // A grid over the quiet period at an odd stride, so every time of day is visited.
        let mut now = churned_at.instant(*tz);
        while now < due {
            nows.push(now);
            now += Duration::minutes(7 * 60 + 13);
        }
        nows.extend([
            due - Duration::days(1),
            due - Duration::hours(1),
            due - Duration::minutes(1),
            due - Duration::seconds(1),
        ]);
        assert!(nows.len() > 290, "the grid covers the 90 days");
        for now in nows {
            // Even a week-long catch-up window and a retry allowed at once never reach
            // back before the due instant.
            for not_before in [due, now] {
                assert_eq!(
                    decide(
                        &c,
                        *tz,
                        due,
                        not_before,
                        now,
                        Standing::default(),
                        &Rules::default()
                    )
                    .0,
                    Decision::Wait(utc(first)),
                    "send_at {send_at:?} in {tz}: a pass at {now} (not before {not_before})"
                );
            }
        }
    }
}

#[test]
fn a_late_pass_sends_only_within_catch_up_hours_of_the_moment() {
    // Due Wed 15 Apr 00:00 EDT; the moment is Wed 10:00 EDT (14:00Z).
    // (catch_up_hours, now, decision)
    let cases: &[(u32, &str, Decision)] = &[
        (
            4,
            "2026-04-15T13:59:59Z",
            Decision::Wait(utc("2026-04-15T14:00:00Z")),
        ),
        (4, "2026-04-15T14:00:00Z", Decision::SendNow),
        // 3 h late: still sends.
        (4, "2026-04-15T17:00:00Z", Decision::SendNow),
        (4, "2026-04-15T17:59:59Z", Decision::SendNow),
        // 4 h late is outside the window: Thursday 10:00 EDT.
        (
            4,
            "2026-04-15T18:00:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        // 5 h late (the daemon was down): Thursday 10:00 EDT, not an odd hour.
        (
            4,
            "2026-04-15T19:00:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        // Wed 23:00 EDT (Thursday in UTC).
        (
            4,
            "2026-04-16T03:00:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        // Fri 11:00 EDT: no moment on Fridays; Thursday's is a day old → Tuesday.
        (
            4,
            "2026-04-17T15:00:00Z",
            Decision::Wait(utc("2026-04-21T14:00:00Z")),
        ),
        // A longer window lets the 5-hours-late pass send.
        (8, "2026-04-15T19:00:00Z", Decision::SendNow),
        (
            8,
            "2026-04-15T22:00:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        (1, "2026-04-15T14:59:59Z", Decision::SendNow),
        (
            1,
            "2026-04-15T15:00:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
    ];
    let due = utc("2026-04-15T04:00:00Z");
    for (catch_up, now, expected) in cases {
        let c = with_catch_up(campaign("0 10 * * Tue-Thu", New_York), *catch_up);
        assert_eq!(
            decide(
                &c,
                New_York,
                due,
                due,
                utc(now),
                Standing::default(),
                &Rules::default()
            )
            .0,
            *expected,
            "catch_up_hours {catch_up}, pass at {now}"
        );
    }

    // The same in Tokyo: due Wed 00:00 JST, moment Wed 10:00 JST (01:00Z).
    let c = campaign("0 10 * * Tue-Thu", Tokyo);
    let due = utc("2026-04-14T15:00:00Z");
    let tokyo: &[(&str, Decision)] = &[
        (
            "2026-04-15T00:59:00Z",
            Decision::Wait(utc("2026-04-15T01:00:00Z")),
        ),
        ("2026-04-15T04:00:00Z", Decision::SendNow),
        (
            "2026-04-15T06:00:00Z",
            Decision::Wait(utc("2026-04-16T01:00:00Z")),
        ),
    ];
    for (now, expected) in tokyo {
        assert_eq!(
            decide(
                &c,
                Tokyo,
                due,
                due,
                utc(now),
                Standing::default(),
                &Rules::default()
            )
            .0,
            *expected,
            "Tokyo, pass at {now}"
        );
    }
}

#[test]
fn a_retry_follows_its_backoff_within_the_catch_up_rule() {
    // Due Wed 15 Apr 00:00 EDT; the first attempt at Wed 10:00 EDT (14:00Z) failed.
    // (not_before, now, decision)
    let cases: &[(&str, &str, Decision)] = &[
        // Backoff not over yet: wait for it, inside the window.
        (
            "2026-04-15T14:05:00Z",
            "2026-04-15T14:00:30Z",
            Decision::Wait(utc("2026-04-15T14:05:00Z")),
        ),
        (
            "2026-04-15T14:05:00Z",
            "2026-04-15T14:05:00Z",
            Decision::SendNow,
        ),
        (
            "2026-04-15T17:30:00Z",
            "2026-04-15T17:30:00Z",
            Decision::SendNow,
        ),
        (
            "2026-04-15T17:30:00Z",
            "2026-04-15T16:00:00Z",
            Decision::Wait(utc("2026-04-15T17:30:00Z")),
        ),
        // A backoff ending at or past the window waits for Thursday's moment.
        (
            "2026-04-15T18:00:00Z",
            "2026-04-15T18:00:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        (
            "2026-04-15T18:30:00Z",
            "2026-04-15T18:30:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        (
            "2026-04-15T18:30:00Z",
            "2026-04-15T14:10:00Z",
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        // A backoff ending inside Thursday's window sends then.
        (
            "2026-04-16T15:00:00Z",
            "2026-04-16T15:00:00Z",
            Decision::SendNow,
        ),
        (
            "2026-04-16T15:00:00Z",
            "2026-04-16T14:00:00Z",
            Decision::Wait(utc("2026-04-16T15:00:00Z")),
        ),
    ];
    let c = campaign("0 10 * * Tue-Thu", New_York);
    let due = utc("2026-04-15T04:00:00Z");
    for (not_before, now, expected) in cases {
        assert_eq!(
            decide(
                &c,
                New_York,
                due,
                utc(not_before),
                utc(now),
                Standing::default(),
                &Rules::default()
            )
            .0,
            *expected,
            "retry not before {not_before}, pass at {now}"
        );
    }
}

#[test]
fn one_message_per_person_per_local_day() {
    // (zone, due, now, busy, decision); Tue-Thu 10:00 local.
    let cases: &[(Tz, &str, &str, &[&str], Decision)] = &[
        // Nothing else that day.
        (
            New_York,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
            &[],
            Decision::SendNow,
        ),
        // Another campaign's message at Wed 11:00 EDT → Thursday 10:00 EDT.
        (
            New_York,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
            &["2026-04-15T15:00:00Z"],
            Decision::Wait(utc("2026-04-16T14:00:00Z")),
        ),
        // Busy on Wednesday and Thursday → Tuesday.
        (
            New_York,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
            &["2026-04-15T15:00:00Z", "2026-04-16T20:00:00Z"],
            Decision::Wait(utc("2026-04-21T14:00:00Z")),
        ),
        // Tue 22:00 EDT is 02:00Z on Wednesday, the same UTC day as the send, but the
        // previous local day: no conflict.
        (
            New_York,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
            &["2026-04-15T02:00:00Z"],
            Decision::SendNow,
        ),
        // Thu 00:30 EDT is the next local day: no conflict.
        (
            New_York,
            "2026-04-15T04:00:00Z",
            "2026-04-15T14:00:00Z",
            &["2026-04-16T04:30:00Z"],
            Decision::SendNow,
        ),
        // Tokyo: Wed 01:00 JST is 16:00Z on Tuesday, yet the same local day as the Wed
        // 10:00 JST moment → Thursday 10:00 JST.
        (
            Tokyo,
            "2026-04-14T15:00:00Z",
            "2026-04-15T01:00:00Z",
            &["2026-04-14T16:00:00Z"],
            Decision::Wait(utc("2026-04-16T01:00:00Z")),
        ),
        // Tokyo: Tue 23:00 JST (14:00Z Tuesday) is the previous local day.
        (
            Tokyo,
            "2026-04-14T15:00:00Z",
            "2026-04-15T01:00:00Z",
            &["2026-04-14T14:00:00Z"],
            Decision::SendNow,
        ),
    ];
    for (tz, due, now, busy, expected) in cases {
        let c = campaign("0 10 * * Tue-Thu", *tz);
        let busy: Vec<Busy> = busy
            .iter()
            .map(|b| Busy {
                at: utc(b),
                recurring: false,
            })
            .collect();
        assert_eq!(
            decide(
                &c,
                *tz,
                utc(due),
                utc(due),
                utc(now),
                Standing::default(),
                &Rules {
                    busy: &busy,
                    ..Rules::default()
                }
            )
            .0,
            *expected,
            "{tz}: pass at {now}, busy {busy:?}"
        );
    }
}

/// The step after `sent_step` went out at `sent_at` alone, and when it is due.
fn after_send(
    c: &Campaign,
    sent_step: u32,
    sent_at: DateTime<Utc>,
    tz: Tz,
) -> Option<(u32, DateTime<Utc>)> {
    let history = [Sent {
        step: sent_step,
        occurrence: 1,
        at: sent_at,
    }];
    match next_message(c, churned("2026-01-01"), &history, tz) {
        Next::Message(next) => Some((next.step, next.due)),
        Next::Completed => None,
    }
}

#[test]
fn later_steps_are_due_after_days_local_days_after_the_previous_send() {
    // Steps: survey, newsletter after 30, article after 45.
    // (sent step, sent at, zone, what follows)
    type Case<'a> = (u32, &'a str, Tz, Option<(u32, DateTime<Utc>)>);
    let cases: &[Case] = &[
        // Tue 20 Oct 10:00 EDT + 30 days = Thu 19 Nov 10:00 EST (after the fall change).
        (
            1,
            "2026-10-20T14:00:00Z",
            New_York,
            Some((2, utc("2026-11-19T15:00:00Z"))),
        ),
        // Tue 3 Mar 10:00 EST + 30 days = Thu 2 Apr 10:00 EDT (after the spring change).
        (
            1,
            "2026-03-03T15:00:00Z",
            New_York,
            Some((2, utc("2026-04-02T14:00:00Z"))),
        ),
        // Tue 10 Mar 10:00 CET + 30 days = Thu 9 Apr 10:00 CEST.
        (
            1,
            "2026-03-10T09:00:00Z",
            Paris,
            Some((2, utc("2026-04-09T08:00:00Z"))),
        ),
        // Wed 15 Apr 10:00 JST + 30 days.
        (
            1,
            "2026-04-15T01:00:00Z",
            Tokyo,
            Some((2, utc("2026-05-15T01:00:00Z"))),
        ),
        // Thu 19 Nov 10:00 EST + 45 days = Sun 3 Jan 2027 10:00 EST.
        (
            2,
            "2026-11-19T15:00:00Z",
            New_York,
            Some((3, utc("2027-01-03T15:00:00Z"))),
        ),
        // After the last step.
        (3, "2027-01-05T15:00:00Z", New_York, None),
    ];
    let c = campaign("0 10 * * Tue-Thu", New_York);
    for (sent_step, sent_at, tz, expected) in cases {
        assert_eq!(
            after_send(&c, *sent_step, utc(sent_at), *tz),
            *expected,
            "step {sent_step} sent at {sent_at} in {tz}"
        );
    }

    // The next step still goes out at 10:00 local across the change.
    // (due, first moment)
    let snapped: &[(&str, &str)] = &[
        ("2026-11-19T15:00:00Z", "2026-11-19T15:00:00Z"), // Thu 10:00 EST
        ("2026-04-02T14:00:00Z", "2026-04-02T14:00:00Z"), // Thu 10:00 EDT
        ("2027-01-03T15:00:00Z", "2027-01-05T15:00:00Z"), // Sun → Tue 10:00 EST
    ];
    for (due, expected) in snapped {
        let due = utc(due);
        assert_eq!(
            earliest_send(&c, New_York, due, due, due),
            Some(utc(expected)),
            "due {due}"
        );
    }
}

#[test]
fn spring_forward_moves_a_skipped_moment_to_the_end_of_the_gap() {
    // New York, Sun 8 March 2026: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
    let c = campaign("30 2 * * *", New_York);
    let tz = New_York;

    // (due, search from, first moment)
    let cases: &[(&str, &str, &str)] = &[
        // Due 00:00 EST → 03:00 EDT (07:00Z), not skipped to the 9th.
        (
            "2026-03-08T05:00:00Z",
            "2026-03-08T05:00:00Z",
            "2026-03-08T07:00:00Z",
        ),
        (
            "2026-03-08T05:00:00Z",
            "2026-03-01T00:00:00Z",
            "2026-03-08T07:00:00Z",
        ),
        // Due 01:59:59 EST.
        (
            "2026-03-08T06:59:59Z",
            "2026-03-08T06:59:59Z",
            "2026-03-08T07:00:00Z",
        ),
        // Due exactly at 03:00 EDT, where the moved moment lands: that moment.
        (
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:00Z",
        ),
        (
            "2026-03-08T07:00:00Z",
            "2026-03-01T00:00:00Z",
            "2026-03-08T07:00:00Z",
        ),
        // Just after it: the 9th, 02:30 EDT.
        (
            "2026-03-08T07:00:01Z",
            "2026-03-08T07:00:01Z",
            "2026-03-09T06:30:00Z",
        ),
    ];
    for (due, from, expected) in cases {
        let due = utc(due);
        assert_eq!(
            earliest_send(&c, tz, due, due, utc(from)),
            Some(utc(expected)),
            "due {due}, searching from {from}"
        );
    }

    // A search that starts before the due instant (no backoff yet) finds the same moment.
    let due = utc("2026-03-08T07:00:00Z");
    let early = utc("2026-03-01T00:00:00Z");
    assert_eq!(earliest_send(&c, tz, due, early, early), Some(due));

    // One moment a day, the 8th included: 02:30 EST, 03:00 EDT, 02:30 EDT.
    assert_eq!(
        moments(&c, tz, utc("2026-03-07T05:00:00Z"), 3),
        vec![
            utc("2026-03-07T07:30:00Z"),
            utc("2026-03-08T07:00:00Z"),
            utc("2026-03-09T06:30:00Z"),
        ]
    );

    // It goes out once: passes inside its window send, later ones wait for the 9th.
    let due = utc("2026-03-08T05:00:00Z");
    let passes: &[(&str, Decision)] = &[
        (
            "2026-03-08T06:59:00Z",
            Decision::Wait(utc("2026-03-08T07:00:00Z")),
        ),
        ("2026-03-08T07:00:00Z", Decision::SendNow),
        ("2026-03-08T10:59:00Z", Decision::SendNow),
        (
            "2026-03-08T11:00:00Z",
            Decision::Wait(utc("2026-03-09T06:30:00Z")),
        ),
    ];
    for (now, expected) in passes {
        assert_eq!(
            decide(
                &c,
                tz,
                due,
                due,
                utc(now),
                Standing::default(),
                &Rules::default()
            )
            .0,
            *expected,
            "pass at {now}"
        );
    }
}

#[test]
fn fall_back_sends_at_the_first_of_two_identical_wall_times() {
    // New York, Sun 1 November 2026: 02:00 EDT falls back to 01:00 EST, so 01:30 happens
    // twice: 05:30Z (EDT) and 06:30Z (EST).
    let c = campaign("30 1 * * *", New_York);
    let tz = New_York;

    // Due 00:00 EDT → the first 01:30.
    let due = utc("2026-11-01T04:00:00Z");
    assert_eq!(
        earliest_send(&c, tz, due, due, due),
        Some(utc("2026-11-01T05:30:00Z"))
    );

    // Exactly one moment that day: from just after the first 01:30, the next is the 2nd.
    assert_eq!(
        moments(&c, tz, utc("2026-10-31T04:00:00Z"), 4),
        vec![
            utc("2026-10-31T05:30:00Z"), // 01:30 EDT
            utc("2026-11-01T05:30:00Z"), // 01:30 EDT, the first of the two
            utc("2026-11-02T06:30:00Z"), // 01:30 EST
            utc("2026-11-03T06:30:00Z"),
        ]
    );
    let after = utc("2026-11-01T05:30:01Z");
    assert_eq!(
        earliest_send(&c, tz, after, after, after),
        Some(utc("2026-11-02T06:30:00Z"))
    );

    // Due at the second 01:00 (06:00Z): the day's moment is past; the second 01:30 is not one.
    let late = utc("2026-11-01T06:00:00Z");
    assert_eq!(
        earliest_send(&c, tz, late, late, late),
        Some(utc("2026-11-02T06:30:00Z"))
    );

    // Passes for the message due at 00:00 EDT: the window runs from the first 01:30.
    let passes: &[(&str, Decision)] = &[
        (
            "2026-11-01T05:29:00Z",
            Decision::Wait(utc("2026-11-01T05:30:00Z")),
        ),
        ("2026-11-01T05:30:00Z", Decision::SendNow),
        // 01:00 and 01:29 EST, the repeated hour: 30 and 59 minutes after the moment.
        ("2026-11-01T06:00:00Z", Decision::SendNow),
        ("2026-11-01T06:29:00Z", Decision::SendNow),
        ("2026-11-01T06:30:00Z", Decision::SendNow),
        ("2026-11-01T09:29:59Z", Decision::SendNow),
        (
            "2026-11-01T09:30:00Z",
            Decision::Wait(utc("2026-11-02T06:30:00Z")),
        ),
    ];
    for (now, expected) in passes {
        assert_eq!(
            decide(
                &c,
                tz,
                due,
                due,
                utc(now),
                Standing::default(),
                &Rules::default()
            )
            .0,
            *expected,
            "pass at {now}"
        );
    }

    // A one-hour window is one real hour, though the wall clock shows 01:29 and 01:30 again.
    let one_hour = with_catch_up(campaign("30 1 * * *", New_York), 1);
    let passes: &[(&str, Decision)] = &[
        ("2026-11-01T06:29:59Z", Decision::SendNow),
        (
            "2026-11-01T06:30:00Z",
            Decision::Wait(utc("2026-11-02T06:30:00Z")),
        ),
    ];
    for (now, expected) in passes {
        assert_eq!(
            decide(
                &one_hour,
                tz,
                due,
                due,
                utc(now),
                Standing::default(),
                &Rules::default()
            )
            .0,
            *expected,
            "catch-up 1 h, pass at {now}"
        );
    }
}

#[test]
fn an_opt_out_outranks_a_bounce_which_outranks_a_return() {
    // (opted_out, bounced, returned, stop)
    let cases: &[(bool, bool, bool, Option<EnrollmentState>)] = &[
        (false, false, false, None),
        (true, false, false, Some(EnrollmentState::OptedOut)),
        (false, true, false, Some(EnrollmentState::Bounced)),
        (false, false, true, Some(EnrollmentState::Returned)),
        (true, true, false, Some(EnrollmentState::OptedOut)),
        (true, false, true, Some(EnrollmentState::OptedOut)),
        (false, true, true, Some(EnrollmentState::Bounced)),
        (true, true, true, Some(EnrollmentState::OptedOut)),
    ];
    for (opted_out, bounced, returned, expected) in cases {
        let standing = Standing {
            opted_out: *opted_out,
            bounced: *bounced,
            returned: *returned,
        };
        assert_eq!(standing.stop(), *expected, "{standing:?}");
    }
}

#[test]
fn decide_stops_a_stopped_person_even_when_the_message_could_go() {
    let c = campaign("0 10 * * Tue-Thu", New_York);
    let due = utc("2026-04-15T04:00:00Z");
    // (now, what happens to someone with no stop): inside the send window (Wed 10:00
    // EDT), and before it.
    let passes = [
        (utc("2026-04-15T14:00:00Z"), Decision::SendNow),
        (
            utc("2026-04-01T00:00:00Z"),
            Decision::Wait(utc("2026-04-15T14:00:00Z")),
        ),
    ];
    for (now, unstopped) in passes {
        let cases: &[(Standing, Decision)] = &[
            (Standing::default(), unstopped),
            (
                Standing {
                    opted_out: true,
                    ..Standing::default()
                },
                Decision::Stop(EnrollmentState::OptedOut),
            ),
            (
                Standing {
                    bounced: true,
                    ..Standing::default()
                },
                Decision::Stop(EnrollmentState::Bounced),
            ),
            (
                Standing {
                    returned: true,
                    ..Standing::default()
                },
                Decision::Stop(EnrollmentState::Returned),
            ),
        ];
        for (standing, expected) in cases {
            assert_eq!(
                decide(&c, New_York, due, due, now, *standing, &Rules::default()).0,
                *expected,
                "{standing:?} at {now}"
            );
        }
    }
}

#[test]
fn a_schedule_that_never_fires_again_is_never() {
    // 10:00 on 1 January 2026 only (7 fields: seconds … year).
    let c = campaign("0 0 10 1 1 * 2026", New_York);
    let due = utc("2026-06-01T04:00:00Z");
    assert_eq!(
        decide(
            &c,
            New_York,
            due,
            due,
            due,
            Standing::default(),
            &Rules::default()
        )
        .0,
        Decision::Never
    );
    // Before it, it is found.
    let early = utc("2025-12-01T05:00:00Z");
    assert_eq!(
        earliest_send(&c, New_York, early, early, early),
        Some(utc("2026-01-01T15:00:00Z"))
    );
}

/// Two campaigns, both New York, Tue-Thu 10:00, quiet 90: "former-clients" (survey, then a
/// newsletter 30 days later) and "partners" (survey only), read through `Config::parse`.
fn plan_config() -> (tempfile::TempDir, Config) {
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
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "What we've been working on"

[[campaign]]
name = "partners"
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "May we ask why you left?"
"#;
    let config =
        Config::parse(&dir.path().join("winback.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

fn plan_items(config: &Config) -> Vec<PlanItem<'_>> {
    let former = config.campaign("former-clients").expect("former-clients");
    let partners = config.campaign("partners").expect("partners");
    let item = |email: &str,
                client_key: i64,
                timezone: Option<Tz>,
                churned_at: &str,
                campaign,
                due: &str| PlanItem {
        email: email.to_string(),
        client_key,
        timezone,
        churned_at: churned(churned_at),
        campaign,
        next_step: 1,
        occurrence: 1,
        due: utc(due),
        not_before: utc(due),
        why: Why::Survey,
        history: Vec::new(),
        account: None,
        country: None,
        moved: None,
    };
    vec![
        // Alice, New York, left 15 Jan: both surveys due Wed 15 Apr 00:00 EDT.
        item(
            "alice@example.com",
            1,
            None,
            "2026-01-15",
            former,
            "2026-04-15T04:00:00Z",
        ),
        item(
            "alice@example.com",
            1,
            None,
            "2026-01-15",
            partners,
            "2026-04-15T04:00:00Z",
        ),
        // Bob, Tokyo, left 20 Jan 09:00 JST: survey due Mon 20 Apr 09:00 JST.
        item(
            "bob@example.com",
            2,
            Some(Tokyo),
            "2026-01-20T09:00:00+09:00",
            former,
            "2026-04-20T00:00:00Z",
        ),
    ]
}

/// Earlier sends per client key, as (key, instant).
type BusyBefore<'a> = &'a [(i64, &'a str)];

type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    StepKind,
);

fn rows(planned: &[Planned]) -> Vec<(DateTime<Utc>, String, String, String, u32, StepKind)> {
    planned
        .iter()
        .map(|p| {
            (
                p.at,
                p.local.clone(),
                p.email.clone(),
                p.campaign.clone(),
                p.step,
                p.kind,
            )
        })
        .collect()
}

fn expected_rows(rows: &[Row]) -> Vec<(DateTime<Utc>, String, String, String, u32, StepKind)> {
    rows.iter()
        .map(|(at, local, email, campaign, step, kind)| {
            (
                utc(at),
                local.to_string(),
                email.to_string(),
                campaign.to_string(),
                *step,
                *kind,
            )
        })
        .collect()
}

#[test]
fn plan_simulates_the_daemon_across_clients_campaigns_and_steps() {
    let (_dir, config) = plan_config();
    let now = utc("2026-04-01T00:00:00Z");
    use StepKind::{Newsletter, Survey};
    // (busy before the window, until, planned)
    let cases: &[(BusyBefore<'_>, &str, &[Row])] = &[
        (
            &[],
            "2026-05-20T00:00:00Z",
            &[
                (
                    "2026-04-15T14:00:00Z",
                    "2026-04-15 10:00 EDT (Wed)",
                    "alice@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                // One message a day: Alice's second survey moves to Thursday.
                (
                    "2026-04-16T14:00:00Z",
                    "2026-04-16 10:00 EDT (Thu)",
                    "alice@example.com",
                    "partners",
                    1,
                    Survey,
                ),
                (
                    "2026-04-21T01:00:00Z",
                    "2026-04-21 10:00 JST (Tue)",
                    "bob@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                // 15 Apr + 30 days = Fri 15 May → Tue 19 May 10:00 EDT.
                (
                    "2026-05-19T14:00:00Z",
                    "2026-05-19 10:00 EDT (Tue)",
                    "alice@example.com",
                    "former-clients",
                    2,
                    Newsletter,
                ),
                // Bob's newsletter (Thu 21 May 10:00 JST) is past `until`.
            ],
        ),
        // `until` exactly at Alice's newsletter includes it…
        (
            &[],
            "2026-05-19T14:00:00Z",
            &[
                (
                    "2026-04-15T14:00:00Z",
                    "2026-04-15 10:00 EDT (Wed)",
                    "alice@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                (
                    "2026-04-16T14:00:00Z",
                    "2026-04-16 10:00 EDT (Thu)",
                    "alice@example.com",
                    "partners",
                    1,
                    Survey,
                ),
                (
                    "2026-04-21T01:00:00Z",
                    "2026-04-21 10:00 JST (Tue)",
                    "bob@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                (
                    "2026-05-19T14:00:00Z",
                    "2026-05-19 10:00 EDT (Tue)",
                    "alice@example.com",
                    "former-clients",
                    2,
                    Newsletter,
                ),
            ],
        ),
        // …one second earlier leaves it out.
        (
            &[],
            "2026-05-19T13:59:59Z",
            &[
                (
                    "2026-04-15T14:00:00Z",
                    "2026-04-15 10:00 EDT (Wed)",
                    "alice@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                (
                    "2026-04-16T14:00:00Z",
                    "2026-04-16 10:00 EDT (Thu)",
                    "alice@example.com",
                    "partners",
                    1,
                    Survey,
                ),
                (
                    "2026-04-21T01:00:00Z",
                    "2026-04-21 10:00 JST (Tue)",
                    "bob@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
            ],
        ),
        // Nothing is planned before the first survey moment.
        (&[], "2026-04-15T13:59:59Z", &[]),
        // Alice already got a message on Wed 15 Apr (08:00 EDT): her surveys go Thursday
        // and Tuesday; the newsletter follows Thursday's by 30 days (Sat 16 May → Tue 19).
        (
            &[(1, "2026-04-15T12:00:00Z")],
            "2026-05-20T00:00:00Z",
            &[
                (
                    "2026-04-16T14:00:00Z",
                    "2026-04-16 10:00 EDT (Thu)",
                    "alice@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                (
                    "2026-04-21T01:00:00Z",
                    "2026-04-21 10:00 JST (Tue)",
                    "bob@example.com",
                    "former-clients",
                    1,
                    Survey,
                ),
                (
                    "2026-04-21T14:00:00Z",
                    "2026-04-21 10:00 EDT (Tue)",
                    "alice@example.com",
                    "partners",
                    1,
                    Survey,
                ),
                (
                    "2026-05-19T14:00:00Z",
                    "2026-05-19 10:00 EDT (Tue)",
                    "alice@example.com",
                    "former-clients",
                    2,
                    Newsletter,
                ),
            ],
        ),
    ];
    for (busy, until, expected) in cases {
        let mut busy_map: HashMap<i64, Vec<Busy>> = HashMap::new();
        for (key, at) in busy.iter() {
            busy_map.entry(*key).or_default().push(Busy {
                at: utc(at),
                recurring: false,
            });
        }
        let planned = plan(plan_items(&config), &busy_map, now, utc(until));
        assert_eq!(
            rows(&planned),
            expected_rows(expected),
            "busy {busy:?}, until {until}"
        );
    }
}

#[test]
fn plan_explains_why_each_message_goes_when_it_does() {
    let (_dir, config) = plan_config();
    let planned = plan(
        plan_items(&config),
        &HashMap::new(),
        utc("2026-04-01T00:00:00Z"),
        utc("2026-05-20T00:00:00Z"),
    );
    // (index in the plan, fragments the reason must contain)
    let cases: &[(usize, &[&str])] = &[
        (
            0,
            &[
                "due 2026-04-15 00:00 EDT",
                "churned 2026-01-15 + 90 quiet days",
                "first send_at \"0 10 * * Tue-Thu\" moment",
            ],
        ),
        (
            1,
            &[
                "90 quiet days",
                "moved a day: one message per person per day",
            ],
        ),
        (
            2,
            &[
                "due 2026-04-20 09:00 JST",
                "churned 2026-01-20T00:00:00Z + 90 quiet days",
            ],
        ),
        (
            3,
            &[
                "due 2026-05-15 10:00 EDT",
                "step 1 planned 2026-04-15 + 30 days",
            ],
        ),
    ];
    assert_eq!(planned.len(), 4, "{planned:#?}");
    for (index, fragments) in cases {
        let reason = &planned[*index].reason;
        for fragment in *fragments {
            assert!(
                reason.contains(fragment),
                "plan[{index}] reason {reason:?} lacks {fragment:?}"
            );
        }
    }
    // Only the moved survey says it was moved.
    for index in [0, 2, 3] {
        assert!(
            !planned[index].reason.contains("moved"),
            "{:?}",
            planned[index].reason
        );
    }
}

#[test]
fn plan_config_is_read_from_toml() {
    // The campaigns the plan tests use are what the TOML says.
    let (dir, config) = plan_config();
    assert_eq!(config.file, dir.path().join("winback.toml"));
    let former = config.campaign("former-clients").expect("former-clients");
    assert_eq!(
        (former.quiet_days, former.catch_up_hours, former.timezone),
        (90, 4, New_York)
    );
    assert_eq!(
        former
            .steps
            .iter()
            .map(|s| (s.kind, s.after_days))
            .collect::<Vec<_>>(),
        vec![(StepKind::Survey, 0), (StepKind::Newsletter, 30)]
    );
    assert!(Path::new(&config.templates_dir).is_dir());
}

#[test]
fn plan_holds_back_what_the_daily_limit_holds_back() {
    // Five people due at the same moment (Tue 10:00 EDT = 14:00Z, send_at 0 10 * * Tue-Thu,
    // catch-up 4 h), max_per_day = 2 over a rolling day, one claim made yesterday at
    // 15:00Z. At 14:00Z there is room for one; yesterday's claim leaves the window at
    // 15:00Z, still inside the catch-up window, so a second goes then. Wednesday the same.
    let ny: Tz = "America/New_York".parse().unwrap();
    let campaign = campaign("0 10 * * Tue-Thu", ny);
    let due = utc("2026-06-02T14:00:00Z"); // Tuesday 10:00 EDT
    let items: Vec<PlanItem<'_>> = (0..5)
        .map(|i| PlanItem {
            email: format!("p{i}@example.com"),
            client_key: i,
            timezone: None,
            churned_at: churned("2026-01-01"),
            campaign: &campaign,
            next_step: 1,
            occurrence: 1,
            due,
            not_before: due,
            why: Why::Survey,
            history: Vec::new(),
            account: None,
            country: None,
            moved: None,
        })
        .collect();
    let limits = RateLimits {
        per_minute: None,
        per_day: Some(2),
        recent: vec![utc("2026-06-01T15:00:00Z")],
    };
    let planned = plan_with_limits(
        items.clone(),
        &HashMap::new(),
        &limits,
        utc("2026-06-02T13:00:00Z"),
        utc("2026-06-10T00:00:00Z"),
    );
    let times: Vec<DateTime<Utc>> = planned.iter().map(|p| p.at).collect();
    assert_eq!(
        times,
        vec![
            utc("2026-06-02T14:00:00Z"),
            utc("2026-06-02T15:00:00Z"),
            utc("2026-06-03T14:00:00Z"),
            utc("2026-06-03T15:00:00Z"),
            utc("2026-06-04T14:00:00Z"),
        ]
    );
    assert!(
        planned[1].reason.contains("held back by max_per_day"),
        "{}",
        planned[1].reason
    );
    // Without limits, all five go at the first moment.
    let unlimited = plan(
        items,
        &HashMap::new(),
        utc("2026-06-02T13:00:00Z"),
        utc("2026-06-10T00:00:00Z"),
    );
    assert!(
        unlimited
            .iter()
            .all(|p| p.at == utc("2026-06-02T14:00:00Z"))
    );
}

#[test]
fn the_busy_lookback_reaches_back_to_the_start_of_any_local_day() {
    // A message on the same local day as a send at or after `now` went out at or after
    // the start of `now`'s local day: the lookback must reach that far back, even at the
    // end of a 25-hour day (a DST end) in the zones furthest from UTC.
    let cases: [(Tz, &str); 6] = [
        (chrono_tz::Pacific::Kiritimati, "2026-03-10T09:59:59Z"),
        (chrono_tz::Etc::GMTPlus12, "2026-03-11T11:59:59Z"),
        (Paris, "2026-10-25T22:59:59Z"),
        (New_York, "2026-11-02T04:59:59Z"),
        (chrono_tz::Australia::Lord_Howe, "2026-04-05T12:59:59Z"),
        (chrono_tz::Pacific::Apia, "2026-07-01T10:59:59Z"),
    ];
    let lookback = Duration::hours(BUSY_LOOKBACK_HOURS);
    for (tz, now) in cases {
        let now = utc(now);
        let day = crate::domain::calendar::local_day(now, tz);
        let start = crate::domain::calendar::local_to_utc(day.and_time(NaiveTime::MIN), tz);
        assert!(
            now - start >= Duration::hours(23),
            "{tz}: {now} is late in its local day"
        );
        assert!(
            now - lookback < start,
            "{tz}: the lookback from {now} misses the start of its day, {start}"
        );
    }
}
