//! Table tests for the life rules. Every expected instant is written out by hand (with its
//! local reading in a comment); none is computed by the code under test.

use chrono::{DateTime, Utc};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Paris;
use chrono_tz::Tz;

use super::*;
use crate::domain::campaign::Step;
use crate::domain::model::{ClientRecord, EnrollmentState, StepKind};
use crate::domain::send_at::SendAt;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?} in a test table: {e}"))
        .with_timezone(&Utc)
}

fn churned(text: &str) -> ChurnedAt {
    ChurnedAt::parse(text).unwrap_or_else(|| panic!("bad churned_at {text:?} in a test table"))
}

/// survey, then newsletter after 30 days, then article after 45; quiet 90, in Paris.
fn campaign() -> Campaign {
    let step = |kind: StepKind, after_days| Step {
        kind,
        after_days,
        template: kind.as_str().to_string(),
        subject: "Hello".to_string(),
        line: 1,
        on: None,
        every_days: None,
    };
    Campaign {
        name: "former-clients".to_string(),
        quiet_days: 90,
        send_at: SendAt::parse("0 10 * * *").unwrap(),
        timezone: Paris,
        exclude_reasons: Vec::new(),
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

/// One answer to "what counts as opted out?": every reason but a bounce, a reason this
/// build does not know included; an opt-out outranks a return.
#[test]
fn a_suppression_and_a_return_decide_what_stops_a_sequence() {
    use EnrollmentState::{Bounced, OptedOut, Returned};
    // (stored reason, came back, the stop)
    let cases: &[(Option<&str>, bool, Option<EnrollmentState>)] = &[
        (None, false, None),
        (None, true, Some(Returned)),
        (Some("opt_out"), false, Some(OptedOut)),
        (Some("opt_out"), true, Some(OptedOut)),
        (Some("forgotten"), false, Some(OptedOut)),
        (Some("bounce"), false, Some(Bounced)),
        (Some("bounce"), true, Some(Bounced)),
        // Written by a newer build: never taken for less than an opt-out.
        (Some("vacation"), false, Some(OptedOut)),
        (Some(""), true, Some(OptedOut)),
    ];
    for (reason, returned, expected) in cases {
        let standing = standing(reason.map(Reason::decode), *returned);
        assert_eq!(
            standing.stop(),
            *expected,
            "{reason:?}, returned {returned}"
        );
    }
}

#[test]
fn a_returned_client_has_left_again_only_after_their_return() {
    let c = campaign();
    let returned = utc("2026-03-01T12:00:00Z");
    // (returned at, churned_at, client zone, left again)
    type Case<'a> = (Option<DateTime<Utc>>, &'a str, Option<Tz>, bool);
    let cases: &[Case] = &[
        // Never came back: nothing to start again (the import reconciles as usual).
        (None, "2026-06-01", None, false),
        (Some(returned), "2026-06-01", None, true),
        (Some(returned), "2026-02-01", None, false),
        // The same instant is not later.
        (Some(returned), "2026-03-01T12:00:00Z", None, false),
        (Some(returned), "2026-03-01T12:00:01Z", None, true),
        // A bare date is midnight in the campaign's zone: 2 March 00:00 CET is
        // 1 March 23:00Z, after the return ...
        (Some(utc("2026-03-01T22:30:00Z")), "2026-03-02", None, true),
        // ... but midnight in New York (05:00Z) when that is the client's zone.
        (
            Some(utc("2026-03-02T04:30:00Z")),
            "2026-03-02",
            Some(New_York),
            true,
        ),
        (
            Some(utc("2026-03-02T05:30:00Z")),
            "2026-03-02",
            Some(New_York),
            false,
        ),
    ];
    for (returned_at, churned_at, zone, expected) in cases {
        assert_eq!(
            churned_again(*returned_at, churned(churned_at), *zone, Some(&c)),
            *expected,
            "returned {returned_at:?}, churned {churned_at}, zone {zone:?}"
        );
    }
    // No campaign configured: nothing starts.
    assert!(!churned_again(
        Some(returned),
        churned("2026-06-01"),
        None,
        None
    ));
}

/// A sequence's history as the old columns told it: the step before `next_step`, sent
/// at `last_sent` (none at the survey: a sequence started again has none of its own).
fn history(next_step: u32, last_sent: Option<DateTime<Utc>>) -> Vec<Sent> {
    match (next_step, last_sent) {
        (n, Some(at)) if n > 1 => vec![Sent {
            step: n - 1,
            occurrence: 1,
            at,
        }],
        _ => Vec::new(),
    }
}

#[test]
fn a_step_is_due_again_from_the_churn_date_or_the_previous_send() {
    use MessageState::*;
    use Reschedule::{Complete, Due, Leave, Requeue};
    let c = campaign();
    let sent = Some(utc("2026-05-10T08:00:00Z")); // 10:00 CEST
    // (next step, last sent, message at the step, what follows)
    type Case = (u32, Option<DateTime<Utc>>, Option<MessageState>, Reschedule);
    let cases: &[Case] = &[
        // The survey: churned 1 Jan (midnight CET) + 90 local days = 1 Apr, midnight CEST.
        (1, None, None, Due(utc("2026-03-31T22:00:00Z"))),
        // ... whatever was sent before (a sequence started again).
        (1, sent, None, Due(utc("2026-03-31T22:00:00Z"))),
        (1, None, Some(Retry), Requeue(utc("2026-03-31T22:00:00Z"))),
        (
            1,
            None,
            Some(Cancelled),
            Requeue(utc("2026-03-31T22:00:00Z")),
        ),
        // Step 2, 30 local days after step 1 went: 9 June, 10:00 CEST.
        (2, sent, None, Due(utc("2026-06-09T08:00:00Z"))),
        (2, sent, Some(Retry), Requeue(utc("2026-06-09T08:00:00Z"))),
        // Step 3, 45 days after step 2: 24 June, 10:00 CEST.
        (3, sent, None, Due(utc("2026-06-24T08:00:00Z"))),
        // Past the last step, or no send to count from.
        (4, sent, None, Complete),
        (4, sent, Some(Cancelled), Complete),
        (2, None, None, Complete),
        // A message out or settled at the step: its result moves the sequence on.
        (1, None, Some(Sending), Leave),
        (2, sent, Some(Sent), Leave),
        (2, sent, Some(Uncertain), Leave),
        (2, sent, Some(Failed), Leave),
        (2, sent, Some(Held), Leave),
        (4, sent, Some(Sent), Leave),
        (2, None, Some(Held), Leave),
    ];
    for (next_step, last_sent, message, expected) in cases {
        assert_eq!(
            reschedule(
                &c,
                Paris,
                churned("2026-01-01"),
                (*next_step, 1),
                &history(*next_step, *last_sent),
                *message
            ),
            *expected,
            "step {next_step}, last sent {last_sent:?}, message {message:?}"
        );
    }
}

#[test]
fn a_changed_campaign_moves_the_sequence_to_what_its_history_makes_next() {
    use Reschedule::{Complete, Due, Expired, Move};
    let sent = |step, occurrence, text: &str| Sent {
        step,
        occurrence,
        at: utc(text),
    };
    // The newsletter (step 2) now recurs every 60 days, the article is 90 days after it.
    let mut c = campaign();
    c.steps[1].every_days = Some(60);
    c.steps[2].after_days = 90;
    let history = [
        sent(1, 1, "2026-04-01T08:00:00Z"),
        sent(2, 1, "2026-05-01T08:00:00Z"),
    ];
    // The sequence stood at the article: the newsletter's second occurrence comes first.
    let moved = reschedule(&c, Paris, churned("2026-01-01"), (3, 1), &history, None);
    let Move(next) = moved else {
        panic!("{moved:?}")
    };
    assert_eq!(
        (next.step, next.occurrence, next.due),
        (2, 2, utc("2026-06-30T08:00:00Z"))
    );
    // Standing at that occurrence already: due then.
    assert_eq!(
        reschedule(
            &c,
            Paris,
            churned("2026-01-01"),
            (2, 2),
            &history,
            Some(MessageState::Cancelled)
        ),
        Reschedule::Requeue(utc("2026-06-30T08:00:00Z"))
    );
    assert_eq!(
        reschedule(&c, Paris, churned("2026-01-01"), (2, 2), &history, None),
        Due(utc("2026-06-30T08:00:00Z"))
    );
    // A consent horizon that ends before it: expired.
    c.max_days_since_churn = Some(150);
    assert_eq!(
        reschedule(&c, Paris, churned("2026-01-01"), (2, 2), &history, None),
        Expired
    );
    // The recurrence removed and the article gone: complete.
    let mut linear = campaign();
    linear.steps.truncate(2);
    assert_eq!(
        reschedule(
            &linear,
            Paris,
            churned("2026-01-01"),
            (3, 1),
            &history,
            None
        ),
        Complete
    );
}

#[test]
fn an_undone_opt_out_resumes_where_the_sequence_stood() {
    use MessageState::*;
    use Resume::{AfterStep, AtStep, InFlight, QueueAgain, Stay};
    // (returned, admitted, message at the step, where it resumes)
    let cases: &[(bool, bool, Option<MessageState>, Resume)] = &[
        (false, true, None, AtStep),
        (false, true, Some(Sent), AfterStep),
        (false, true, Some(Uncertain), AfterStep),
        (false, true, Some(Cancelled), QueueAgain),
        (false, true, Some(Sending), InFlight),
        (false, true, Some(Retry), InFlight),
        (false, true, Some(Failed), Stay),
        (false, true, Some(Held), Stay),
        // Came back as a client, or out of the campaign's audience now: nothing resumes.
        (true, true, None, Stay),
        (true, true, Some(Cancelled), Stay),
        (false, false, None, Stay),
        (false, false, Some(Sent), Stay),
    ];
    for (returned, admitted, message, expected) in cases {
        assert_eq!(
            resume(*returned, *admitted, *message),
            *expected,
            "returned {returned}, admitted {admitted}, message {message:?}"
        );
    }
}

#[test]
fn only_the_persons_own_opt_out_of_an_address_that_never_bounced_is_undone() {
    // (stored reason, source, a sequence bounced, what Undo does)
    type Case<'a> = (Option<(&'a str, &'a str)>, bool, Undo);
    let cases: &[Case] = &[
        (None, false, Undo::NotOptedOut),
        (None, true, Undo::NotOptedOut),
        (Some(("opt_out", "link")), false, Undo::Lift),
        (Some(("opt_out", "survey")), false, Undo::Lift),
        (Some(("opt_out", "link")), true, Undo::NotUndoable),
        (Some(("opt_out", "cli")), false, Undo::NotUndoable),
        (Some(("bounce", "smtp")), false, Undo::NotUndoable),
        (Some(("forgotten", "forget")), false, Undo::NotUndoable),
        (Some(("vacation", "link")), false, Undo::NotUndoable),
    ];
    for (stored, bounced, expected) in cases {
        let suppression = stored.map(|(reason, source)| Suppression::decode(reason, source));
        assert_eq!(
            undo(suppression.as_ref(), *bounced),
            *expected,
            "{stored:?}, bounced {bounced}"
        );
    }
}

/// A later file speaks for what it has: a value it lacks (no column, or an empty cell)
/// keeps the stored one, and the churn date is always the file's.
#[test]
fn a_later_file_never_clears_what_an_earlier_one_said() {
    let text = |t: &str| Some(t.to_string());
    let stored = ClientRecord {
        email: "fred@quarry.example".to_string(),
        name: text("Fred Flint"),
        first_name: text("Fred"),
        company: text("Quarry"),
        churned_at: churned("2025-06-01"),
        churn_reason: text("we_ended"),
        timezone: Some(Paris),
        fields: [
            ("plan".to_string(), "gold".to_string()),
            ("seats".to_string(), "5".to_string()),
        ]
        .into(),
        country: None,
        returned_at: None,
        opted_out: false,
    };
    let bare = ClientRecord {
        name: None,
        first_name: None,
        company: None,
        churned_at: churned("2025-07-01"),
        churn_reason: None,
        timezone: None,
        fields: [
            ("plan".to_string(), String::new()),
            ("region".to_string(), String::new()),
        ]
        .into(),
        ..stored.clone()
    };
    // Only the churn date changes; an empty new column is kept, empty.
    let mut expected = ClientRecord {
        churned_at: churned("2025-07-01"),
        ..stored.clone()
    };
    expected.fields.insert("region".to_string(), String::new());
    assert_eq!(merged(&stored, &bare), expected);
    // A full row replaces every value it has.
    let full = ClientRecord {
        name: text("Wilma Flint"),
        first_name: None,
        company: text("Bedrock"),
        churn_reason: text("price"),
        timezone: Some(New_York),
        fields: [("seats".to_string(), "9".to_string())].into(),
        ..bare.clone()
    };
    let updated = merged(&stored, &full);
    assert_eq!(updated.name, text("Wilma Flint"));
    assert_eq!(updated.first_name, text("Fred"));
    assert_eq!(updated.company, text("Bedrock"));
    assert_eq!(updated.churn_reason, text("price"));
    assert_eq!(updated.timezone, Some(New_York));
    assert_eq!(updated.fields["seats"], "9");
    assert_eq!(updated.fields["plan"], "gold");
    // The same row again changes nothing: the import counts it unchanged.
    assert_eq!(merged(&updated, &full), updated);
}

#[test]
fn an_excluded_sequence_goes_only_if_it_never_began() {
    // (step it stands at, scheduled, history, what becomes of it)
    let cases = [
        (1, true, false, Exclusion::Drop),
        // An earlier sequence's messages or a survey answer are kept with it.
        (1, true, true, Exclusion::Complete),
        // Parked (its campaign was away, or its schedule never fires again).
        (1, false, false, Exclusion::Complete),
        (2, true, false, Exclusion::Complete),
        (3, false, true, Exclusion::Complete),
    ];
    for (next_step, scheduled, history, expected) in cases {
        assert_eq!(
            excluded(next_step, scheduled, history),
            expected,
            "step {next_step}, scheduled {scheduled}, history {history}"
        );
    }
}

/// A CRM row's return stands unless the row's churn is later (then it is history and the
/// churn starts a new sequence); one in the future is refused; one dated today somewhere
/// on Earth counts as of now.
#[test]
fn a_return_from_the_crm_stands_unless_a_later_churn_follows_it() {
    let c = campaign();
    let now = utc("2026-03-10T12:00:00Z");
    // (returned_at, churned_at, the return recorded)
    type Case<'a> = (Option<&'a str>, &'a str, Option<DateTime<Utc>>);
    let cases: &[Case] = &[
        (None, "2025-06-01", None),
        // A bare date is midnight in the campaign's zone (Paris).
        (
            Some("2026-03-01"),
            "2025-06-01",
            Some(utc("2026-02-28T23:00:00Z")),
        ),
        (
            Some("2026-03-01T08:00:00Z"),
            "2025-06-01",
            Some(utc("2026-03-01T08:00:00Z")),
        ),
        // The same day as the churn: not a churn after the return.
        (
            Some("2025-06-01"),
            "2025-06-01",
            Some(utc("2025-05-31T22:00:00Z")),
        ),
        // Came back, then left again: no return now.
        (Some("2026-01-01"), "2026-02-01", None),
        // Tomorrow in UTC is today east of it: as of now.
        (Some("2026-03-11"), "2025-06-01", Some(now)),
    ];
    for (returned_at, churned_at, expected) in cases {
        assert_eq!(
            crm_return(
                returned_at.map(churned),
                churned(churned_at),
                None,
                Some(&c),
                now
            ),
            Ok(*expected),
            "returned {returned_at:?}, churned {churned_at}"
        );
    }
    for future in ["2026-03-12", "2026-03-10T12:00:01Z"] {
        let error = crm_return(
            Some(churned(future)),
            churned("2025-06-01"),
            None,
            Some(&c),
            now,
        )
        .unwrap_err();
        assert!(
            error.starts_with(&format!("returned_at {future} is in the future")),
            "{error}"
        );
    }
    // No campaign: a bare date is read in UTC.
    assert_eq!(
        crm_return(
            Some(churned("2026-03-01")),
            churned("2025-06-01"),
            None,
            None,
            now
        ),
        Ok(Some(utc("2026-03-01T00:00:00Z")))
    );
}
