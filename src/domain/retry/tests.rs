//! Table tests for the retry policy, what supersedes a queued message, and what a message
//! already at an enrollment's current step means. Every expected instant is written out.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::domain::campaign::Step;
use crate::domain::model::StepKind;
use crate::domain::send_at::SendAt;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?} in a test table: {e}"))
        .with_timezone(&Utc)
}

/// Ten minutes first, given up after 72 hours.
fn policy() -> RetryPolicy {
    RetryPolicy {
        first: Duration::minutes(10),
        give_up: Duration::hours(72),
    }
}

#[test]
fn retries_double_from_the_first_wait_up_to_six_hours() {
    let cases = [
        (0, Duration::minutes(10)),
        (1, Duration::minutes(10)),
        (2, Duration::minutes(20)),
        (3, Duration::minutes(40)),
        (4, Duration::minutes(80)),
        (5, Duration::minutes(160)),
        (6, Duration::minutes(320)),
        (7, Duration::hours(6)),
        (17, Duration::hours(6)),
        (u32::MAX, Duration::hours(6)),
    ];
    for (attempts, wait) in cases {
        assert_eq!(policy().backoff(attempts), wait, "after attempt {attempts}");
    }
}

#[test]
fn a_failure_is_retried_until_the_give_up_time_after_the_first_attempt() {
    let first = utc("2026-01-15T12:00:00Z");
    let cases = [
        // (attempts, failed at, what follows)
        (
            1,
            "2026-01-15T12:00:00Z",
            AfterFailure::RetryAt(utc("2026-01-15T12:10:00Z")),
        ),
        (
            3,
            "2026-01-15T13:00:00Z",
            AfterFailure::RetryAt(utc("2026-01-15T13:40:00Z")),
        ),
        (
            20,
            "2026-01-18T11:59:59Z",
            AfterFailure::RetryAt(utc("2026-01-18T17:59:59Z")),
        ),
        // 72 hours after the first attempt, however few attempts were made.
        (1, "2026-01-18T12:00:00Z", AfterFailure::GiveUp),
        (20, "2026-01-19T00:00:00Z", AfterFailure::GiveUp),
    ];
    for (attempts, at, expected) in cases {
        assert_eq!(
            policy().after_failure(attempts, first, utc(at)),
            expected,
            "attempt {attempts} failed at {at}"
        );
    }
}

#[test]
fn a_deferral_waits_the_first_wait_and_a_held_message_a_day() {
    let at = utc("2026-01-15T12:00:00Z");
    assert_eq!(policy().after_deferral(at), utc("2026-01-15T12:10:00Z"));
    assert_eq!(held_retry_at(at), utc("2026-01-16T12:00:00Z"));
}

fn campaign(exclude: &[&str]) -> Campaign {
    Campaign {
        name: "former-clients".to_string(),
        quiet_days: 90,
        send_at: SendAt::parse("* * * * *").unwrap_or_else(|e| panic!("{e}")),
        timezone: chrono_tz::UTC,
        exclude_reasons: exclude.iter().map(|r| r.to_string()).collect(),
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
        steps: vec![Step {
            kind: StepKind::Survey,
            after_days: 0,
            template: "survey".to_string(),
            subject: "Why?".to_string(),
            line: 1,
            on: None,
            every_days: None,
        }],
    }
}

#[test]
fn a_queued_message_is_superseded_by_a_new_sequence_a_stop_or_a_narrower_audience() {
    use EnrollmentState::*;
    let sequence = |state, cycle| Sequence { state, cycle };
    let cases = [
        // (sequence, message's cycle, excluded reasons, churn reason, verdict)
        (sequence(Active, 1), 1, &[][..], Some("price"), None),
        (sequence(Completed, 1), 1, &[][..], Some("price"), None),
        (sequence(Active, 1), 1, &[][..], None, None),
        (
            sequence(Active, 2),
            1,
            &[][..],
            Some("price"),
            Some("dropped: it belongs to an earlier sequence"),
        ),
        (
            sequence(OptedOut, 1),
            1,
            &[][..],
            Some("price"),
            Some("dropped: its sequence was stopped"),
        ),
        (
            sequence(Bounced, 1),
            1,
            &[][..],
            Some("price"),
            Some("dropped: its sequence was stopped"),
        ),
        (
            sequence(Returned, 1),
            1,
            &[][..],
            Some("price"),
            Some("dropped: its sequence was stopped"),
        ),
        (
            sequence(Left, 1),
            1,
            &[][..],
            Some("price"),
            Some("dropped: its sequence was stopped"),
        ),
        (
            sequence(Replied, 1),
            1,
            &[][..],
            Some("price"),
            Some("dropped: its sequence was stopped"),
        ),
        (
            sequence(Active, 1),
            1,
            &["price"][..],
            Some("price"),
            Some("dropped: the campaign's audience no longer includes this client"),
        ),
        (
            sequence(Active, 1),
            1,
            &[][..],
            Some("we_ended"),
            Some("dropped: the campaign's audience no longer includes this client"),
        ),
        // An earlier sequence is named first, whatever else holds.
        (
            sequence(OptedOut, 3),
            2,
            &["price"][..],
            Some("price"),
            Some("dropped: it belongs to an earlier sequence"),
        ),
    ];
    for (sequence, cycle, exclude, reason, expected) in cases {
        assert_eq!(
            superseded(sequence, cycle, &campaign(exclude), reason),
            expected,
            "{sequence:?}, message of cycle {cycle}, excluding {exclude:?}, reason {reason:?}"
        );
    }
}

#[test]
fn a_message_at_the_current_step_is_taken_up_moved_on_from_or_waited_for() {
    use MessageState::*;
    let cases = [
        (Cancelled, false, AtStep::TakeUp),
        (Cancelled, true, AtStep::TakeUp),
        (Sent, true, AtStep::MoveOn),
        (Uncertain, true, AtStep::MoveOn),
        // Went out, but nothing says when: nothing to time the next step from.
        (Sent, false, AtStep::Wait),
        (Uncertain, false, AtStep::Wait),
        (Sending, false, AtStep::Wait),
        (Retry, false, AtStep::Wait),
        (Held, false, AtStep::Wait),
        (Failed, false, AtStep::Wait),
        (Failed, true, AtStep::Wait),
    ];
    for (state, has_sent_at, expected) in cases {
        assert_eq!(
            at_step(state, has_sent_at),
            expected,
            "{state:?}, sent_at recorded: {has_sent_at}"
        );
    }
    let went_out: Vec<MessageState> = MessageState::ALL
        .into_iter()
        .filter(|s| s.went_out())
        .collect();
    assert_eq!(went_out, [Sent, Uncertain]);
}
