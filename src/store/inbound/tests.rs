use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone};

use super::*;
use crate::domain::model::{ChurnedAt, ClientRecord};

pub(in crate::store) struct Fixture {
    _dir: tempfile::TempDir,
    pub config: Config,
    pub store: Store,
    /// What `apply` applies with.
    pub rules: InboundRules,
}

pub(in crate::store) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let campaign = r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign.step]]
kind = "newsletter"
after_days = 30
template = "newsletter"
subject = "News"
"#;
    let config = crate::test_support::config(dir.path(), "retry_give_up_hours = 72", campaign);
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    Fixture {
        _dir: dir,
        config,
        store,
        rules: InboundRules::default(),
    }
}

pub(in crate::store) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn record(email: &str) -> ClientRecord {
    ClientRecord {
        email: email.to_string(),
        name: Some("Pat Smith".to_string()),
        first_name: None,
        company: Some("Globex".to_string()),
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()),
        churn_reason: Some("competitor".to_string()),
        timezone: None,
        fields: BTreeMap::new(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

pub(in crate::store) const PAT: &str = "pat@client.example";
const ANN: &str = "ann@other.example";

impl Fixture {
    pub(in crate::store) fn import(&mut self, emails: &[&str]) {
        let rows: Vec<_> = emails.iter().map(|e| Ok((2, record(e)))).collect();
        self.store
            .import(rows.into_iter(), &self.config, now(), false, &mut |_| {})
            .unwrap();
    }

    /// Claims and sends every due step 1; returns (row, Message-ID without brackets) by
    /// address.
    pub(in crate::store) fn send_all(&mut self) -> BTreeMap<String, (i64, String)> {
        let claimed = self.store.claim_due(&self.config, now(), 10).unwrap();
        let results: Vec<_> = claimed
            .iter()
            .map(|c| {
                (
                    c.message_row,
                    crate::store::Outcome::Sent {
                        reply: "250 ok".to_string(),
                        at: now(),
                    },
                )
            })
            .collect();
        self.store.record_results(&self.config, &results).unwrap();
        claimed
            .into_iter()
            .map(|c| {
                let id = c.message_id.trim_matches(['<', '>']).to_string();
                (c.client.email, (c.message_row, id))
            })
            .collect()
    }

    fn state(&self, email: &str) -> String {
        self.store
            .conn
            .query_row(
                "SELECT e.state FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                params![email],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn suppression(&self, email: &str) -> Option<(String, String)> {
        stored_suppression(&self.store.conn, email)
            .unwrap()
            .map(|s| (s.reason.as_str().to_string(), s.source))
    }

    pub(in crate::store) fn apply(&mut self, inbound: &Inbound, at: DateTime<Utc>) -> Applied {
        self.store.apply_inbound(inbound, self.rules, at).unwrap()
    }
}

pub(in crate::store) fn inbound(key: &str, outcome: Outcome) -> Inbound {
    Inbound {
        key: key.to_string(),
        outcome,
        recipient: None,
        from: None,
        verp_row: None,
        referenced_ids: Vec::new(),
        status: None,
        why: "test".to_string(),
        excerpt: None,
        written_at: None,
    }
}

#[test]
fn a_reply_stops_its_person_as_replied_once_however_often_it_is_read() {
    let mut f = fixture();
    f.import(&[PAT, ANN]);
    let sent = f.send_all();
    let reply = Inbound {
        referenced_ids: vec!["unknown@elsewhere".to_string(), sent[PAT].1.clone()],
        from: Some("Pat <PAT@client.example>".to_string()),
        excerpt: Some("Actually, we are reviewing vendors again.".to_string()),
        ..inbound("id:reply-1@client.example", Outcome::Reply)
    };
    let first = f.apply(&reply, now());
    assert!(!first.already_seen);
    let r = &first.record;
    assert_eq!(r.outcome, Outcome::Reply);
    assert_eq!(r.effect, Effect::Replied);
    assert!(r.applied);
    assert_eq!(r.email.as_deref(), Some(PAT));
    assert_eq!(
        (r.campaign.as_deref(), r.step),
        (Some("former-clients"), Some(1))
    );
    assert_eq!(r.excerpt, reply.excerpt);
    assert_eq!(f.state(PAT), "replied");
    let counted = |f: &Fixture| f.store.metrics(now()).unwrap().inbound;
    assert_eq!(counted(&f), BTreeMap::from([("reply".to_string(), 1)]));
    assert_eq!(f.suppression(PAT), None, "a reply is not an opt-out");
    assert_eq!(f.state(ANN), "active");

    // Read again, later: recorded once, nothing applied again.
    f.store
        .undo_inbound(r.id, now() + Duration::hours(1), &f.config)
        .unwrap();
    assert_eq!(f.state(PAT), "active");
    assert_eq!(
        counted(&f),
        BTreeMap::new(),
        "an undone reply is not counted"
    );
    let again = f.apply(&reply, now() + Duration::hours(2));
    assert!(again.already_seen);
    assert_eq!(again.record.id, r.id);
    assert_eq!(
        f.state(PAT),
        "active",
        "a message read twice is applied once"
    );
    assert_eq!(f.store.inbox(10).unwrap().len(), 1);
}

#[test]
fn matching_takes_the_return_address_then_a_message_id_then_an_address() {
    let mut f = fixture();
    f.import(&[PAT, ANN]);
    let sent = f.send_all();
    // Imported after the pass: a client we never mailed.
    f.import(&["never@mailed.example"]);
    let both = Inbound {
        verp_row: Some(sent[ANN].0),
        referenced_ids: vec![sent[PAT].1.clone()],
        from: Some(PAT.to_string()),
        ..inbound("id:1", Outcome::AutoReply)
    };
    assert_eq!(f.apply(&both, now()).record.email.as_deref(), Some(ANN));
    let by_id = Inbound {
        verp_row: Some(999_999),
        key: "id:2".to_string(),
        from: Some(ANN.to_string()),
        ..both.clone()
    };
    assert_eq!(f.apply(&by_id, now()).record.email.as_deref(), Some(PAT));
    let by_address = Inbound {
        verp_row: None,
        referenced_ids: vec!["not-ours@x".to_string()],
        key: "id:3".to_string(),
        ..by_id.clone()
    };
    let matched = f.apply(&by_address, now()).record;
    assert_eq!(matched.email.as_deref(), Some(ANN));
    assert!(
        matched.why.contains("matched by address"),
        "{}",
        matched.why
    );

    // Nothing of ours: recorded, changes nothing.
    let stranger = Inbound {
        from: Some("stranger@nowhere.example".to_string()),
        ..inbound("id:4", Outcome::Unsubscribe)
    };
    let r = f.apply(&stranger, now()).record;
    assert!(!r.applied);
    assert_eq!(r.campaign, None);
    assert_eq!(f.suppression("stranger@nowhere.example"), None);
    let never_mailed = Inbound {
        from: Some("never@mailed.example".to_string()),
        ..inbound("id:5", Outcome::Unsubscribe)
    };
    assert!(!f.apply(&never_mailed, now()).record.applied);
    assert_eq!(f.suppression("never@mailed.example"), None);
}

#[test]
fn mail_matched_by_address_alone_that_was_written_before_we_wrote_counts_for_nothing() {
    let mut f = fixture();
    f.import(&[PAT]);
    f.send_all();
    // An old thread in an inbox read for the first time: a year before our survey.
    let old = Inbound {
        from: Some(PAT.to_string()),
        written_at: Some(now() - Duration::days(365)),
        ..inbound("id:old@client.example", Outcome::Reply)
    };
    let r = f.apply(&old, now()).record;
    assert!(!r.applied, "{r:?}");
    assert_eq!(r.campaign, None);
    assert_eq!(f.state(PAT), "active");
    // A sender's clock a little behind ours still counts; so does an undated message.
    let skewed = Inbound {
        written_at: Some(now() - Duration::minutes(30)),
        ..inbound("id:new@client.example", Outcome::Reply)
    };
    let skewed = Inbound {
        from: Some(PAT.to_string()),
        ..skewed
    };
    assert!(f.apply(&skewed, now()).record.applied);
    assert_eq!(f.state(PAT), "replied");
}

#[test]
fn a_report_about_a_message_never_sent_changes_nothing() {
    let mut f = fixture();
    f.import(&[PAT]);
    let claimed = f.store.claim_due(&f.config, now(), 10).unwrap();
    // Claimed, never sent: a forged or stray bounce naming it or its person.
    let bounce = Inbound {
        verp_row: Some(claimed[0].message_row),
        referenced_ids: vec![claimed[0].message_id.trim_matches(['<', '>']).to_string()],
        recipient: Some(PAT.to_string()),
        ..inbound("id:b", Outcome::Bounce)
    };
    let r = f.apply(&bounce, now()).record;
    assert!(!r.applied);
    assert_eq!(f.suppression(PAT), None);
}

#[test]
fn a_bounce_suppresses_only_the_failed_recipient() {
    let mut f = fixture();
    f.import(&[PAT, ANN]);
    let sent = f.send_all();
    let forwarded = Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        recipient: Some("pat.forward@elsewhere.example".to_string()),
        ..inbound("id:fwd", Outcome::Bounce)
    };
    let r = f.apply(&forwarded, now()).record;
    assert!(!r.applied, "{}", r.why);
    assert_eq!(f.suppression(PAT), None);
    assert_eq!(f.suppression("pat.forward@elsewhere.example"), None);

    let bounce = Inbound {
        recipient: Some(PAT.to_string()),
        status: Some("5.1.1".to_string()),
        ..forwarded.clone()
    };
    let bounce = Inbound {
        key: "id:dsn".to_string(),
        ..bounce
    };
    let r = f.apply(&bounce, now()).record;
    assert_eq!(
        (r.effect, r.status.as_deref()),
        (Effect::Bounce, Some("5.1.1"))
    );
    assert_eq!(
        f.suppression(PAT),
        Some(("bounce".to_string(), "inbound".to_string()))
    );
    assert_eq!(f.state(PAT), "bounced");
    assert_eq!(f.state(ANN), "active");
    assert_eq!(f.suppression(ANN), None);
}

#[test]
fn repeated_soft_bounces_become_a_bounce() {
    let mut f = fixture();
    f.import(&[PAT]);
    let sent = f.send_all();
    let soft = |n: i64| Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        ..inbound(&format!("id:soft-{n}"), Outcome::SoftBounce)
    };
    for (n, day) in [(1, 0), (2, 7)] {
        let r = f.apply(&soft(n), now() + Duration::days(day)).record;
        assert_eq!(r.effect, Effect::Counted);
        assert_eq!(f.suppression(PAT), None);
    }
    let delayed = Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        ..inbound("id:delayed", Outcome::Delayed)
    };
    assert!(!f.apply(&delayed, now() + Duration::days(13)).record.applied);
    let third = f.apply(&soft(3), now() + Duration::days(14)).record;
    assert_eq!(third.effect, Effect::Bounce);
    assert_eq!(
        f.suppression(PAT),
        Some(("bounce".to_string(), "inbound".to_string()))
    );
    assert_eq!(f.state(PAT), "bounced");

    // Undone: the count starts again; a fourth soft bounce is counted, not a bounce.
    f.store
        .undo_inbound(third.id, now() + Duration::days(15), &f.config)
        .unwrap();
    assert_eq!(f.suppression(PAT), None);
    let fourth = f.apply(&soft(4), now() + Duration::days(16)).record;
    assert_eq!(fourth.effect, Effect::Counted);
    assert_eq!(f.suppression(PAT), None);
}

#[test]
fn a_soft_bounce_not_applied_is_not_counted() {
    let mut f = fixture();
    f.import(&[PAT]);
    let sent = f.send_all();
    for (n, day) in [(1, 0), (2, 7)] {
        let elsewhere = Inbound {
            referenced_ids: vec![sent[PAT].1.clone()],
            recipient: Some("someone@else.example".to_string()),
            ..inbound(&format!("id:x{n}"), Outcome::SoftBounce)
        };
        assert!(
            !f.apply(&elsewhere, now() + Duration::days(day))
                .record
                .applied
        );
    }
    let ours = Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        ..inbound("id:ours", Outcome::SoftBounce)
    };
    let r = f.apply(&ours, now() + Duration::days(14)).record;
    assert_eq!(r.effect, Effect::Counted);
    assert_eq!(f.suppression(PAT), None);
}

#[test]
fn complaints_and_unsubscribe_replies_opt_out_and_undo_restores_what_was_there() {
    let mut f = fixture();
    f.import(&[PAT, ANN]);
    let sent = f.send_all();
    let complaint = Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        ..inbound("id:arf", Outcome::Complaint)
    };
    f.apply(&complaint, now());
    assert_eq!(
        f.suppression(PAT),
        Some(("opt_out".to_string(), "complaint".to_string()))
    );
    assert_eq!(f.state(PAT), "opted_out");

    // Ann had opted out through her link; her reply asking to stop replaces it, and
    // undoing the reply brings the link's opt-out back, not her mail.
    f.store.record_opt_out(ANN, "link", now()).unwrap();
    let stop = Inbound {
        from: Some(ANN.to_string()),
        ..inbound("id:stop", Outcome::Unsubscribe)
    };
    let r = f.apply(&stop, now()).record;
    assert_eq!(
        f.suppression(ANN),
        Some(("opt_out".to_string(), "reply".to_string()))
    );
    assert_eq!(
        f.store.undo_inbound(r.id, now(), &f.config).unwrap(),
        InboxUndo::Undone { resumed: 0 }
    );
    assert_eq!(
        f.suppression(ANN),
        Some(("opt_out".to_string(), "link".to_string()))
    );
    assert_eq!(f.state(ANN), "opted_out");
}

#[test]
fn undo_lifts_a_wrong_bounce_and_resumes_the_sequence_after_its_step() {
    let mut f = fixture();
    f.import(&[PAT]);
    let sent = f.send_all();
    let bounce = Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        recipient: Some(PAT.to_string()),
        ..inbound("id:dsn", Outcome::Bounce)
    };
    let id = f.apply(&bounce, now()).record.id;
    let later = now() + Duration::days(1);
    assert_eq!(
        f.store.undo_inbound(id, later, &f.config).unwrap(),
        InboxUndo::Undone { resumed: 1 }
    );
    assert_eq!(f.suppression(PAT), None);
    assert_eq!(f.state(PAT), "active");
    let next: u32 = f
        .store
        .conn
        .query_row("SELECT next_step FROM enrollments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(next, 2, "the survey went out: it is not sent again");
    assert_eq!(
        f.store.undo_inbound(id, later, &f.config).unwrap(),
        InboxUndo::AlreadyUndone
    );
    assert_eq!(
        f.store.undo_inbound(9999, later, &f.config).unwrap(),
        InboxUndo::Unknown
    );
    let listed = f.store.inbox(10).unwrap();
    assert_eq!(listed[0].undone_at, Some(later));

    let auto = Inbound {
        from: Some(PAT.to_string()),
        ..inbound("id:ooo", Outcome::AutoReply)
    };
    let id = f.apply(&auto, later).record.id;
    assert_eq!(
        f.store.undo_inbound(id, later, &f.config).unwrap(),
        InboxUndo::NothingToUndo
    );
}

#[test]
fn forgetting_a_person_erases_their_inbound_mail_but_not_its_key() {
    let mut f = fixture();
    f.import(&[PAT]);
    let sent = f.send_all();
    let reply = Inbound {
        referenced_ids: vec![sent[PAT].1.clone()],
        from: Some(PAT.to_string()),
        excerpt: Some("Call me on 555-0100.".to_string()),
        ..inbound("id:r", Outcome::Reply)
    };
    f.apply(&reply, now());
    let export = f.store.export_person(PAT).unwrap().unwrap();
    assert_eq!(
        export["inbound_messages"][0]["excerpt"],
        "Call me on 555-0100."
    );
    f.store.forget_person(PAT, now()).unwrap();
    let listed = f.store.inbox(10).unwrap();
    assert_eq!(
        (listed[0].email.as_ref(), listed[0].excerpt.as_ref()),
        (None, None)
    );
    assert!(!listed[0].why.contains(PAT));
    // Read again: already seen, so their address is not stored again.
    assert!(f.apply(&reply, now()).already_seen);
    assert_eq!(f.store.inbox(10).unwrap().len(), 1);
}
