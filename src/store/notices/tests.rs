use chrono::Duration;

use super::*;
use crate::domain::inbound::{Effect, Outcome};
use crate::domain::retry::RetryPolicy;
use crate::store::inbound::tests::{Fixture, PAT, fixture, inbound, now};
use crate::store::{Inbound, SurveyOutcome};
use crate::token::Target;

fn policy() -> RetryPolicy {
    RetryPolicy {
        first: Duration::minutes(5),
        give_up: Duration::hours(72),
    }
}

/// A fixture that tells the team, with PAT mailed step 1; returns PAT's Message-ID.
fn notifying() -> (Fixture, String) {
    let mut f = fixture();
    f.rules.notify = true;
    f.import(&[PAT, "ann@other.example"]);
    let sent = f.send_all();
    (f, sent[PAT].1.clone())
}

fn reply(key: &str, message_id: &str, outcome: Outcome) -> Inbound {
    Inbound {
        referenced_ids: vec![message_id.to_string()],
        from: Some(PAT.to_string()),
        excerpt: Some("We are reviewing vendors again; call me.".to_string()),
        ..inbound(key, outcome)
    }
}

fn claim(f: &mut Fixture, at: DateTime<Utc>) -> Option<ClaimedNotice> {
    f.store.claim_notice(at, "<notice-1@acme.example>").unwrap()
}

#[test]
fn a_reply_is_told_once_with_who_what_and_where() {
    let (mut f, id) = notifying();
    let applied = f.apply(&reply("id:r1@client.example", &id, Outcome::Reply), now());
    assert_eq!(applied.record.effect, Effect::Replied);
    // Read again: no second notice.
    f.apply(&reply("id:r1@client.example", &id, Outcome::Reply), now());
    let claimed = claim(&mut f, now()).expect("a notice is due");
    assert_eq!(claimed.message_id, "<notice-1@acme.example>");
    let n = &claimed.notice;
    assert_eq!(n.kind, NoticeKind::Reply);
    assert_eq!(n.email, PAT);
    assert_eq!(
        (n.name.as_deref(), n.company.as_deref()),
        (Some("Pat Smith"), Some("Globex"))
    );
    assert_eq!(
        (n.campaign.as_deref(), n.step),
        (Some("former-clients"), Some(1))
    );
    assert_eq!(
        n.text.as_deref(),
        Some("We are reviewing vendors again; call me.")
    );
    assert_eq!(n.inbound_id, Some(applied.record.id));
    // Claimed (committed `sending`): not claimed a second time.
    assert_eq!(claim(&mut f, now()), None);
    let sent = NoticeResult::Sent {
        reply: "250 ok".to_string(),
    };
    f.store
        .record_notice(claimed.id, &sent, policy(), now())
        .unwrap();
    assert_eq!(claim(&mut f, now() + Duration::days(1)), None);
    let counts = f.store.notice_counts().unwrap();
    assert_eq!((counts.sent, counts.waiting), (1, 0));
}

#[test]
fn only_replies_and_contacts_who_left_are_told_and_only_when_notify_is_set() {
    let (mut f, id) = notifying();
    for (n, outcome) in [
        Outcome::AutoReply,
        Outcome::Unsubscribe,
        Outcome::Complaint,
        Outcome::Delayed,
    ]
    .into_iter()
    .enumerate()
    {
        f.apply(&reply(&format!("id:{n}@x"), &id, outcome), now());
    }
    assert_eq!(claim(&mut f, now()), None);
    let (mut quiet, id) = notifying();
    quiet.rules.notify = false;
    quiet.apply(&reply("id:r@x", &id, Outcome::Reply), now());
    assert_eq!(claim(&mut quiet, now()), None);
    let (mut left, id) = notifying();
    left.apply(&reply("id:l@x", &id, Outcome::LeftCompany), now());
    let kind = claim(&mut left, now()).map(|c| c.notice.kind);
    assert_eq!(kind, Some(NoticeKind::LeftCompany));
}

#[test]
fn a_failed_send_is_tried_again_later_then_given_up() {
    let (mut f, id) = notifying();
    f.apply(&reply("id:r1@x", &id, Outcome::Reply), now());
    let first = claim(&mut f, now()).unwrap();
    let retry = NoticeResult::Retry {
        error: "451 try later".to_string(),
    };
    f.store
        .record_notice(first.id, &retry, policy(), now())
        .unwrap();
    assert_eq!(claim(&mut f, now() + Duration::minutes(4)), None);
    assert_eq!(
        f.store.next_notice_at().unwrap(),
        Some(now() + Duration::minutes(5))
    );
    let again = f
        .store
        .claim_notice(now() + Duration::minutes(5), "<other@acme.example>")
        .unwrap()
        .expect("due again");
    // The same message, under its first Message-ID.
    assert_eq!(again.message_id, first.message_id);
    let late = now() + Duration::hours(73);
    f.store
        .record_notice(again.id, &retry, policy(), late)
        .unwrap();
    assert_eq!(claim(&mut f, late + Duration::days(1)), None);
    assert_eq!(f.store.notice_counts().unwrap().failed, 1);
    assert_eq!(f.store.next_notice_at().unwrap(), None);
}

#[test]
fn a_stop_mid_send_leaves_the_notice_uncertain_never_sent_again() {
    let (mut f, id) = notifying();
    f.apply(&reply("id:r1@x", &id, Outcome::Reply), now());
    claim(&mut f, now()).unwrap();
    assert_eq!(f.store.recover_notices().unwrap(), 1);
    assert_eq!(claim(&mut f, now() + Duration::days(1)), None);
    assert_eq!(f.store.notice_counts().unwrap().uncertain, 1);
}

#[test]
fn undoing_the_reply_or_forgetting_the_person_withdraws_the_notice() {
    let (mut f, id) = notifying();
    let applied = f.apply(&reply("id:r1@x", &id, Outcome::Reply), now());
    f.store
        .undo_inbound(applied.record.id, now(), &f.config)
        .unwrap();
    assert_eq!(claim(&mut f, now()), None);

    let (mut f, id) = notifying();
    f.apply(&reply("id:r1@x", &id, Outcome::Reply), now());
    f.store.forget_person(PAT, now()).unwrap();
    assert_eq!(claim(&mut f, now()), None);
    assert_eq!(f.store.notice_counts().unwrap(), NoticeCounts::default());
}

#[test]
fn a_survey_answer_is_told_once_per_change() {
    let (mut f, _) = notifying();
    let enrollment: i64 = f
        .store
        .conn
        .query_row(
            "SELECT e.id FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
            params![PAT],
            |r| r.get(0),
        )
        .unwrap();
    let target = Target::Enrollment(enrollment);
    let answer = SurveyAnswer {
        reason: Some("price".to_string()),
        better: Some("Cheaper plans.".to_string()),
        would_return: Some("maybe".to_string()),
    };
    let save = |f: &mut Fixture, answer: &SurveyAnswer, notify| {
        let saved = f
            .store
            .save_survey_answer(&target, answer, false, notify, now())
            .unwrap();
        assert!(matches!(saved, SurveyOutcome::Saved { .. }));
    };
    save(&mut f, &answer, true);
    // Posted twice, and changed while the first notice waits: one notice.
    save(&mut f, &answer, true);
    let changed = SurveyAnswer {
        would_return: Some("yes".to_string()),
        ..answer.clone()
    };
    save(&mut f, &changed, true);
    let claimed = claim(&mut f, now()).unwrap();
    assert_eq!(claimed.notice.kind, NoticeKind::SurveyAnswer);
    assert_eq!(claimed.notice.survey.as_ref(), Some(&changed));
    assert_eq!(claimed.notice.campaign.as_deref(), Some("former-clients"));
    let sent = NoticeResult::Sent {
        reply: "250".to_string(),
    };
    f.store
        .record_notice(claimed.id, &sent, policy(), now())
        .unwrap();
    save(&mut f, &changed, true);
    assert_eq!(claim(&mut f, now()), None, "the same answer again");
    save(&mut f, &answer, false);
    assert_eq!(claim(&mut f, now()), None, "notify not set");
    save(&mut f, &changed, true);
    assert!(claim(&mut f, now()).is_some(), "a changed answer");
}
