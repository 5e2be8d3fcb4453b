use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone};
use serde_json::Value;

use super::data::ForgetReport;
use super::*;
use crate::domain::model::{ChurnedAt, ClientRecord};
use crate::store::{Outcome, SurveyAnswer, SurveyOutcome, from_moment};

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    store: Store,
}

const TWO_STEPS: &str = r#"
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

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let campaign = format!(
        r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"
{TWO_STEPS}"#
    );
    let config = crate::test_support::config(dir.path(), "retry_give_up_hours = 72", &campaign);
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    Fixture { dir, config, store }
}

fn now() -> DateTime<Utc> {
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
        fields: BTreeMap::from([("plan".to_string(), "gold".to_string())]),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

impl Fixture {
    fn import(&mut self, email: &str) -> Target {
        let rows = vec![Ok((2, record(email)))];
        let outcome = self
            .store
            .import(rows.into_iter(), &self.config, now(), false, &mut |_| {})
            .unwrap();
        assert!(outcome.applied);
        self.link(email)
    }

    fn link(&self, email: &str) -> Target {
        let id: i64 = self
                .store
                .conn
                .query_row(
                    "SELECT e.id FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                    params![email],
                    |r| r.get(0),
                )
                .unwrap();
        Target::Enrollment(id)
    }

    /// (state, next_step, send_at) of the person's enrollment.
    fn enrollment(&self, email: &str) -> (String, u32, Option<i64>) {
        self.store
                .conn
                .query_row(
                    "SELECT e.state, e.next_step, e.send_at FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                    params![email],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap()
    }

    fn suppression(&self, email: &str) -> Option<(Option<String>, String, String)> {
        self.store
            .conn
            .query_row(
                "SELECT email, reason, source FROM suppressions WHERE email_hash = ?1",
                params![email_hash(email)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .unwrap()
    }

    fn events(&self, kind: &str) -> Vec<(Option<i64>, String)> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT client_id, detail FROM events WHERE kind = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    fn messages(&self) -> Vec<(i64, u32, String)> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT id, step, state FROM messages ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    fn claim(&mut self, at: DateTime<Utc>) -> Vec<crate::store::Claimed> {
        self.store.claim_due(&self.config, at, 10).unwrap()
    }
}

#[test]
fn opting_out_by_link_is_global_and_idempotent() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    let view = f.store.enrollment_by_link(&id).unwrap().unwrap();
    assert_eq!(view.email, "pat@client.example");
    assert_eq!(view.state, EnrollmentState::Active);
    assert!(!view.opted_out);
    assert_eq!(view.greeting_name().as_deref(), Some("Pat"));

    assert_eq!(
        f.store.opt_out_enrollment(&id, "link", now()).unwrap(),
        OptOutOutcome::OptedOut
    );
    assert_eq!(
        f.store.opt_out_enrollment(&id, "link", now()).unwrap(),
        OptOutOutcome::AlreadyOptedOut
    );
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
    assert_eq!(
        f.suppression("pat@client.example"),
        Some((
            Some("pat@client.example".to_string()),
            "opt_out".to_string(),
            "link".to_string()
        ))
    );
    assert_eq!(f.events("opt_out").len(), 1);
    assert!(f.store.enrollment_by_link(&id).unwrap().unwrap().opted_out);
    assert_eq!(
        f.store
            .opt_out_enrollment(&Target::Legacy([9; 16]), "link", now())
            .unwrap(),
        OptOutOutcome::Unknown
    );
    let unknown = [Target::Legacy([9; 16]), Target::Enrollment(999)];
    for target in unknown {
        assert!(f.store.enrollment_by_link(&target).unwrap().is_none());
    }
}

#[test]
fn undo_resumes_the_sequence_with_a_fresh_send_time() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    let before = f.enrollment("pat@client.example");
    f.store.opt_out_enrollment(&id, "link", now()).unwrap();
    let later = now() + Duration::minutes(5);
    assert_eq!(
        f.store.undo_opt_out(&id, later, &f.config).unwrap(),
        UndoOutcome::Resubscribed { reactivated: 1 }
    );
    // Same step, still active, due again from the moment of the undo (the send window
    // is open: it may go at once).
    let after = f.enrollment("pat@client.example");
    assert_eq!((after.0.as_str(), after.1), (before.0.as_str(), before.1));
    assert_eq!(after.2, Some(moment(later)));
    assert_eq!(f.suppression("pat@client.example"), None);
    assert_eq!(f.events("opt_out_undone").len(), 1);
    assert_eq!(
        f.store.undo_opt_out(&id, later, &f.config).unwrap(),
        UndoOutcome::NotOptedOut
    );
    assert_eq!(
        f.store
            .undo_opt_out(&Target::Legacy([9; 16]), later, &f.config)
            .unwrap(),
        UndoOutcome::Unknown
    );
    // And the survey goes out again.
    assert_eq!(f.claim(later).len(), 1);
}

#[test]
fn undo_never_lifts_an_operator_opt_out_or_a_bounce() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    f.store
        .record_opt_out("pat@client.example", "cli", now())
        .unwrap();
    assert_eq!(
        f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
        UndoOutcome::NotUndoable
    );
    assert_eq!(f.suppression("pat@client.example").unwrap().1, "opt_out");
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");

    let id = f.import("sam@client.example");
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 1);
    let failed = Outcome::Failed {
        error: "550 no such user".to_string(),
        at: now(),
    };
    f.store
        .record_results(&f.config, &[(claimed[0].message_row, failed)])
        .unwrap();
    assert_eq!(f.enrollment("sam@client.example").0, "bounced");
    // Unsubscribing a bounced address, then undoing, leaves it suppressed and stopped.
    f.store.opt_out_enrollment(&id, "link", now()).unwrap();
    assert_eq!(
        f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
        UndoOutcome::NotUndoable
    );
    assert!(f.suppression("sam@client.example").is_some());
    assert_eq!(f.enrollment("sam@client.example").0, "bounced");
}

#[test]
fn an_opt_out_keeps_its_strongest_source_whatever_the_order() {
    let mut f = fixture();
    // The person's link, then the operator: the operator's stands, Undo cannot lift it.
    let pat = f.import("pat@client.example");
    f.store.opt_out_enrollment(&pat, "link", now()).unwrap();
    let newly = f
        .store
        .record_opt_out("pat@client.example", "cli", now())
        .unwrap();
    assert!(!newly, "was already opted out");
    assert_eq!(f.suppression("pat@client.example").unwrap().2, "cli");
    assert_eq!(
        f.store.undo_opt_out(&pat, now(), &f.config).unwrap(),
        UndoOutcome::NotUndoable
    );
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
    assert_eq!(f.events("opt_out").len(), 1);

    // The operator, then the person's link: the operator's stays.
    let kim = f.import("kim@client.example");
    f.store
        .record_opt_out("kim@client.example", "cli", now())
        .unwrap();
    assert_eq!(
        f.store.opt_out_enrollment(&kim, "link", now()).unwrap(),
        OptOutOutcome::AlreadyOptedOut
    );
    assert_eq!(f.suppression("kim@client.example").unwrap().2, "cli");

    // The person's link while their survey is with the server, which then bounces:
    // the bounce stands, Undo cannot lift it.
    let sam = f.import("sam@client.example");
    let claimed = f.claim(now());
    let row = claimed
        .iter()
        .find(|c| c.client.email == "sam@client.example")
        .unwrap()
        .message_row;
    f.store.opt_out_enrollment(&sam, "link", now()).unwrap();
    let failed = Outcome::Failed {
        error: "550 no such user".to_string(),
        at: now(),
    };
    f.store.record_results(&f.config, &[(row, failed)]).unwrap();
    let bounced = f.suppression("sam@client.example").unwrap();
    assert_eq!((bounced.1.as_str(), bounced.2.as_str()), ("bounce", "smtp"));
    assert_eq!(
        f.store.undo_opt_out(&sam, now(), &f.config).unwrap(),
        UndoOutcome::NotUndoable
    );
    // And a link after the bounce leaves the bounce, and shows the person as
    // unsubscribed.
    f.store.opt_out_enrollment(&sam, "link", now()).unwrap();
    assert_eq!(f.suppression("sam@client.example").unwrap().1, "bounce");
    assert!(f.store.enrollment_by_link(&sam).unwrap().unwrap().opted_out);
    assert!(f.claim(now() + Duration::days(60)).is_empty());
}

/// A suppression whose reason this build does not know (a newer one wrote it) stops all
/// mail as an opt-out does, at the claim as in the plan; no link lifts it, and nothing
/// recorded later replaces it.
#[test]
fn a_suppression_reason_this_build_does_not_know_stops_all_mail() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    f.store
        .conn
        .execute(
            "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, ?2, 'vacation', 'link', ?3)",
            params![email_hash("pat@client.example"), "pat@client.example", fmt_time(now())],
        )
        .unwrap();
    assert!(f.claim(now()).is_empty());
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
    assert_eq!(
        f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
        UndoOutcome::NotUndoable
    );
    assert_eq!(
        f.store.opt_out_enrollment(&id, "link", now()).unwrap(),
        OptOutOutcome::AlreadyOptedOut
    );
    assert_eq!(
        f.suppression("pat@client.example").unwrap().1,
        "vacation",
        "kept as found"
    );
    assert!(f.claim(now() + Duration::days(60)).is_empty());
}

#[test]
fn undo_does_not_resurrect_a_returned_client() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    f.store.record_return("pat@client.example", now()).unwrap();
    f.store.opt_out_enrollment(&id, "link", now()).unwrap();
    assert_eq!(
        f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
        UndoOutcome::Resubscribed { reactivated: 0 }
    );
    assert_eq!(f.enrollment("pat@client.example").0, "returned");
}

#[test]
fn undo_queues_a_cancelled_retry_again_instead_of_a_second_copy() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    let claimed = f.claim(now());
    let row = claimed[0].message_row;
    let retry = Outcome::Retry {
        error: "451 try later".to_string(),
        at: now(),
    };
    f.store.record_results(&f.config, &[(row, retry)]).unwrap();
    f.store.opt_out_enrollment(&id, "link", now()).unwrap();
    assert_eq!(f.messages(), vec![(row, 1, "cancelled".to_string())]);

    let later = now() + Duration::hours(1);
    f.store.undo_opt_out(&id, later, &f.config).unwrap();
    assert_eq!(f.messages(), vec![(row, 1, "retry".to_string())]);
    assert_eq!(
        f.enrollment("pat@client.example"),
        ("active".to_string(), 1, None)
    );
    let again = f.claim(later + Duration::minutes(1));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_row, row);
    assert_eq!(f.messages().len(), 1);
}

#[test]
fn undo_counts_a_step_that_went_out_during_the_opt_out_as_sent() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    let claimed = f.claim(now());
    // The opt-out arrives while the message is with the SMTP server; it goes out.
    f.store.opt_out_enrollment(&id, "link", now()).unwrap();
    let sent = Outcome::Sent {
        reply: "250 ok".to_string(),
        at: now(),
    };
    f.store
        .record_results(&f.config, &[(claimed[0].message_row, sent)])
        .unwrap();
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");

    let later = now() + Duration::hours(1);
    f.store.undo_opt_out(&id, later, &f.config).unwrap();
    let (state, next_step, send_at) = f.enrollment("pat@client.example");
    assert_eq!((state.as_str(), next_step), ("active", 2));
    let send_at = from_moment(send_at.unwrap()).unwrap();
    assert_eq!(send_at, now() + Duration::days(30));
    // Nothing goes out now, and certainly not the survey again.
    assert!(f.claim(later).is_empty());
    assert_eq!(f.claim(send_at).len(), 1);
}

#[test]
fn a_survey_answer_is_stored_once_and_updated() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    let first = SurveyAnswer {
        reason: Some("price".to_string()),
        better: Some("Cheaper plans.".to_string()),
        would_return: Some("maybe".to_string()),
    };
    assert_eq!(
        f.store
            .save_survey_answer(&id, &first, false, false, now())
            .unwrap(),
        SurveyOutcome::Saved {
            first: true,
            opted_out: false
        }
    );
    assert_eq!(f.store.survey_answer(&id).unwrap(), Some(first));
    let second = SurveyAnswer {
        reason: Some("competitor".to_string()),
        better: None,
        would_return: Some("no".to_string()),
    };
    let later = now() + Duration::hours(1);
    assert_eq!(
        f.store
            .save_survey_answer(&id, &second, true, false, later)
            .unwrap(),
        SurveyOutcome::Saved {
            first: false,
            opted_out: true
        }
    );
    let rows = f.store.survey_answers().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reason.as_deref(), Some("competitor"));
    assert_eq!(rows[0].better, None);
    assert_eq!(rows[0].answered_at, fmt_time(now()));
    assert_eq!(rows[0].updated_at, fmt_time(later));
    assert_eq!(f.suppression("pat@client.example").unwrap().2, "survey");
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
    // The person's words are not copied into the event log.
    assert!(
        f.events("survey_answer")
            .iter()
            .all(|(_, d)| !d.contains("Cheaper"))
    );
    assert_eq!(
        f.store
            .save_survey_answer(&Target::Legacy([9; 16]), &second, true, false, later)
            .unwrap(),
        SurveyOutcome::Unknown
    );
}

#[test]
fn export_gathers_everything_about_a_person() {
    let mut f = fixture();
    let id = f.import("pat@client.example");
    f.import("other@client.example");
    let claimed = f.claim(now());
    let results: Vec<_> = claimed
        .iter()
        .map(|c| {
            (
                c.message_row,
                Outcome::Sent {
                    reply: "250 ok".to_string(),
                    at: now(),
                },
            )
        })
        .collect();
    f.store.record_results(&f.config, &results).unwrap();
    let answer = SurveyAnswer {
        reason: Some("price".to_string()),
        ..SurveyAnswer::default()
    };
    f.store
        .save_survey_answer(&id, &answer, true, false, now())
        .unwrap();

    let export = f
        .store
        .export_person(" PAT@client.example ")
        .unwrap()
        .unwrap();
    assert_eq!(export["email"], "pat@client.example");
    assert_eq!(export["client"]["company"], "Globex");
    assert_eq!(export["client"]["fields"]["plan"], "gold");
    assert_eq!(export["enrollments"].as_array().unwrap().len(), 1);
    assert_eq!(export["enrollments"][0]["campaign"], "former-clients");
    assert_eq!(export["messages"].as_array().unwrap().len(), 1);
    assert_eq!(export["survey_answers"][0]["reason"], "price");
    assert_eq!(export["suppression"]["reason"], "opt_out");
    let kinds: Vec<&str> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"survey_answer") && kinds.contains(&"opt_out"),
        "{kinds:?}"
    );
    assert!(!export.to_string().contains("other@client.example"));
    assert_eq!(
        f.store.export_person("nobody@client.example").unwrap(),
        None
    );
    // An address only ever opted out is known by its suppression.
    f.store
        .record_opt_out("stranger@else.example", "cli", now())
        .unwrap();
    let export = f
        .store
        .export_person("stranger@else.example")
        .unwrap()
        .unwrap();
    assert_eq!(export["client"], Value::Null);
    assert_eq!(export["suppression"]["source"], "cli");
}

#[test]
fn forgetting_erases_the_person_and_keeps_them_unmailed_after_a_new_import() {
    let mut f = fixture();
    let email = "pat@client.example";
    let id = f.import(email);
    f.import("other@client.example");
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 2);
    let results: Vec<_> = claimed
        .iter()
        .map(|c| {
            (
                c.message_row,
                Outcome::Failed {
                    error: format!("550 <{}> unknown", c.client.email),
                    at: now(),
                },
            )
        })
        .collect();
    f.store.record_results(&f.config, &results).unwrap();
    let answer = SurveyAnswer {
        better: Some("Pat's own words".to_string()),
        ..SurveyAnswer::default()
    };
    f.store
        .save_survey_answer(&id, &answer, false, false, now())
        .unwrap();

    let report = f.store.forget_person("Pat@Client.example", now()).unwrap();
    assert_eq!(
        report,
        ForgetReport {
            client: true,
            enrollments: 1,
            messages: 1,
            survey_answers: 1,
            events: 2,
            was_suppressed: true
        }
    );
    assert!(report.knew_person());
    assert_eq!(
        f.suppression(email),
        Some((None, "forgotten".to_string(), "forget".to_string()))
    );
    // Nothing in the database names the person any more; the other client is intact.
    let dump: String = {
        let mut stmt = f
            .store
            .conn
            .prepare(
                "SELECT group_concat(x, ' ') FROM (
                       SELECT email || coalesce(name, '') AS x FROM clients
                       UNION ALL SELECT coalesce(email, '') || reason || source FROM suppressions
                       UNION ALL SELECT kind || detail || coalesce(client_id, '') FROM events
                       UNION ALL SELECT coalesce(better, '') FROM survey_answers)",
            )
            .unwrap();
        stmt.query_row([], |r| r.get(0)).unwrap()
    };
    assert!(
        !dump.contains(email) && !dump.contains("own words"),
        "{dump}"
    );
    assert!(dump.contains("other@client.example"));
    assert!(
        f.events("forget")
            .iter()
            .all(|(client, _)| client.is_none())
    );
    assert_eq!(
        f.store.export_person(email).unwrap().unwrap()["client"],
        Value::Null
    );
    // Not even in the file's free pages or the WAL.
    for suffix in ["", "-wal"] {
        let path = f.dir.path().join(format!("winback.db{suffix}"));
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(email.len()).any(|w| w == email.as_bytes()),
            "{} still holds the address",
            path.display()
        );
    }

    // A later import of the same address is enrolled, but never mailed.
    f.import(email);
    let later = now() + Duration::days(1);
    assert!(f.claim(later).is_empty());
    assert_eq!(f.enrollment(email).0, "opted_out");
    assert_eq!(
        f.store
            .opt_out_enrollment(&f.link(email), "link", later)
            .unwrap(),
        OptOutOutcome::AlreadyOptedOut
    );
    assert_eq!(f.suppression(email).unwrap().1, "forgotten");

    // Forgetting someone never seen still blocks the address.
    let report = f.store.forget_person("new@else.example", now()).unwrap();
    assert!(!report.knew_person());
    assert_eq!(f.suppression("new@else.example").unwrap().1, "forgotten");
}

/// A list of opt-outs: each address once in the counts, an address never imported
/// opted out all the same, and every sequence of a listed client stopped.
#[test]
fn a_list_of_opt_outs_counts_new_already_and_never_imported() {
    let mut f = fixture();
    f.import("pat@client.example");
    f.import("sam@client.example");
    f.import("kim@client.example");
    f.store
        .record_opt_out("sam@client.example", "link", now())
        .unwrap();
    let list = [
        "pat@client.example",
        "sam@client.example",
        "new@elsewhere.example",
    ]
    .map(str::to_string);
    let done = f.store.record_opt_outs(&list, "cli", now()).unwrap();
    assert_eq!(
        done,
        BulkOutcome {
            new: 2,
            already: 1,
            unknown: 1
        }
    );
    assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
    assert_eq!(f.suppression("new@elsewhere.example").unwrap().2, "cli");
    // The person's own opt-out became the operator's: their link cannot undo it.
    assert_eq!(f.suppression("sam@client.example").unwrap().2, "cli");
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].client.email, "kim@client.example");
}

/// A list of returns stops the known clients' sequences once; an unknown address
/// changes nothing and no client is made for it.
#[test]
fn a_list_of_returns_stops_known_clients_once_and_ignores_strangers() {
    let mut f = fixture();
    f.import("pat@client.example");
    f.import("kim@client.example");
    let list = ["pat@client.example", "new@elsewhere.example"].map(str::to_string);
    let done = f.store.record_returns(&list, now(), "listed").unwrap();
    assert_eq!(
        done,
        BulkOutcome {
            new: 1,
            already: 0,
            unknown: 1
        }
    );
    assert_eq!(f.enrollment("pat@client.example").0, "returned");
    assert_eq!(f.events("returned"), [(Some(1), "listed".to_string())]);
    let again = f
        .store
        .record_returns(&list, now() + Duration::days(1), "listed")
        .unwrap();
    assert_eq!((again.new, again.already, again.unknown), (0, 1, 1));
    assert_eq!(f.events("returned").len(), 1);
    let clients: i64 = f
        .store
        .conn
        .query_row("SELECT count(*) FROM clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(clients, 2);
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].client.email, "kim@client.example");
}

/// The customers list is kept: a client the client file adds after the list was read,
/// or says left again while still on it, is a customer and never mailed; the next list
/// replaces it as a whole.
#[test]
fn a_client_on_the_kept_customers_list_is_never_mailed() {
    let mut f = fixture();
    let list = ["ANN@client.example"].map(str::to_string);
    let done = f.store.sync_customers(&list, now(), "listed").unwrap();
    assert_eq!(done.unknown, 1);

    // Added by the client file after the list was read.
    f.import("ann@client.example");
    f.import("kim@client.example");
    assert_eq!(f.enrollment("ann@client.example").0, "returned");

    // Left again, by the client file, while still on the list.
    let later = ClientRecord {
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2026, 1, 20).unwrap()),
        ..record("ann@client.example")
    };
    let at = now() + Duration::days(10);
    f.store
        .import(
            vec![Ok((2, later))].into_iter(),
            &f.config,
            at,
            false,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(f.enrollment("ann@client.example").0, "returned");
    let claimed = f.claim(now() + Duration::days(200));
    let mailed: Vec<_> = claimed.iter().map(|c| c.client.email.as_str()).collect();
    assert_eq!(mailed, ["kim@client.example"]);

    // A new list without her replaces the old one.
    f.store
        .sync_customers(&[], now() + Duration::days(11), "listed")
        .unwrap();
    let kept: i64 = f
        .store
        .conn
        .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 0);
}

/// `winback survey` writes each answer as it is read: newest first along
/// `survey_answers_by_update`, with no sort that would hold every answer first.
#[test]
fn survey_answers_are_read_in_order_without_a_sort() {
    let f = fixture();
    let mut stmt = f
        .store
        .conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            super::survey::SURVEY_ANSWERS
        ))
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let plan = plan.join("; ");
    assert!(
        plan.starts_with("SCAN a USING INDEX survey_answers_by_update")
            && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}
