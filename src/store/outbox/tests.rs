use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rusqlite::{OptionalExtension, params};

use super::*;
use crate::config::Config;
use crate::domain::model::{ChurnedAt, ClientRecord};
use crate::domain::retry::HELD_RETRY_HOURS;
use crate::store::{Store, email_hash, fmt_time, moment};

const CAMPAIGN: &str = r#"
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

const OTHER_CAMPAIGN: &str = r#"
[[campaign]]
name = "other"
send_at = "* * * * *"
timezone = "UTC"
exclude_reasons = ["we_ended", "competitor"]

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"
"#;

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    store: Store,
}

fn config(dir: &std::path::Path, campaigns: &str) -> Config {
    crate::test_support::config(dir, "retry_give_up_hours = 72", campaigns)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), CAMPAIGN);
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    Fixture { dir, config, store }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> ChurnedAt {
    ChurnedAt::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

fn record(email: &str, churned_at: ChurnedAt, reason: &str) -> ClientRecord {
    ClientRecord {
        email: email.to_string(),
        name: Some("Pat Smith".to_string()),
        first_name: None,
        company: Some("Globex".to_string()),
        churned_at,
        churn_reason: Some(reason.to_string()),
        timezone: None,
        fields: BTreeMap::new(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

fn retry(at: DateTime<Utc>) -> Outcome {
    Outcome::Retry {
        error: "451 4.7.1 try later".to_string(),
        at,
    }
}

fn sent(at: DateTime<Utc>) -> Outcome {
    Outcome::Sent {
        reply: "250 ok".to_string(),
        at,
    }
}

impl Fixture {
    fn import(&mut self, record: ClientRecord, at: DateTime<Utc>) {
        let rows = vec![Ok((2, record))];
        let outcome = self
            .store
            .import(rows.into_iter(), &self.config, at, false, &mut |_| {})
            .unwrap();
        assert!(outcome.applied);
    }

    /// `name@client.example` for each name, all alike (churned 2025-06-01 for a
    /// competitor), imported now.
    fn import_people(&mut self, names: &[&str]) {
        for name in names {
            self.import(
                record(
                    &format!("{name}@client.example"),
                    date(2025, 6, 1),
                    "competitor",
                ),
                now(),
            );
        }
    }

    fn claim(&mut self, at: DateTime<Utc>) -> Vec<Claimed> {
        self.store.claim_due(&self.config, at, 10).unwrap()
    }

    fn record(&mut self, row: i64, outcome: Outcome) {
        self.store
            .record_results(&self.config, &[(row, outcome)])
            .unwrap();
    }

    /// (campaign, cycle, step, state) of every message, in order.
    fn messages(&self) -> Vec<(String, i64, u32, String)> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT campaign, cycle, step, state FROM messages ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    /// (state, cycle, next_step, send_at) of the person's enrollment in `campaign`.
    fn enrollment(&self, campaign: &str) -> (String, i64, u32, Option<i64>) {
        self.store
            .conn
            .query_row(
                "SELECT state, cycle, next_step, send_at FROM enrollments WHERE campaign = ?1",
                params![campaign],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    fn suppression(&self, email: &str) -> Option<String> {
        self.store
            .conn
            .query_row(
                "SELECT reason FROM suppressions WHERE email_hash = ?1",
                params![email_hash(email)],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    }
}

fn held(at: DateTime<Utc>) -> Outcome {
    Outcome::Held {
        reason: "the HTML part still contains the placeholder \"[EDIT: x]\"".to_string(),
        at,
    }
}

#[test]
fn a_held_step_keeps_the_sequence_waiting_and_goes_once_it_renders() {
    let mut f = fixture();
    f.import_people(&["pat"]);
    let first = f.claim(now());
    assert_eq!(first.len(), 1);
    f.record(first[0].message_row, held(now()));
    assert_eq!(
        f.messages(),
        vec![("former-clients".to_string(), 1, 1, "held".to_string())]
    );
    // Not completed: the sequence waits at its step, with nothing else planned.
    assert_eq!(
        f.enrollment("former-clients"),
        ("active".to_string(), 1, 1, None)
    );
    let status = f.store.status().unwrap();
    assert_eq!(status.attention.len(), 1);
    assert_eq!(status.attention[0].state, "held");
    assert!(
        status.attention[0]
            .error
            .as_deref()
            .unwrap()
            .contains("[EDIT: x]")
    );
    assert_eq!(f.store.held().unwrap().len(), 1);
    assert_eq!(f.store.claimed_since(now() - Duration::days(1)).unwrap(), 0);
    // No storm: not tried again within the day...
    assert!(f.claim(now() + Duration::hours(1)).is_empty());
    let retry_at = now() + Duration::hours(HELD_RETRY_HOURS);
    assert_eq!(f.store.next_wake().unwrap(), Some(retry_at));
    // ...but at every start, and the same row is claimed again (never a second copy).
    let start = now() + Duration::hours(2);
    f.store.recover_interrupted(&f.config, start).unwrap();
    let again = f.claim(start);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_row, first[0].message_row);
    assert_eq!(
        again[0].attempt, 1,
        "a held message was never handed to a server"
    );
    f.record(again[0].message_row, sent(start));
    assert_eq!(
        f.messages(),
        vec![("former-clients".to_string(), 1, 1, "sent".to_string())]
    );
    let (state, _, next_step, send_at) = f.enrollment("former-clients");
    assert_eq!((state.as_str(), next_step), ("active", 2));
    assert!(send_at.is_some(), "the next step is scheduled");
}

#[test]
fn a_held_step_waits_a_day_then_goes_and_an_opt_out_drops_it() {
    let mut f = fixture();
    f.import_people(&["pat", "sam"]);
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 2);
    for message in &claimed {
        f.record(message.message_row, held(now()));
    }
    f.store
        .record_opt_out("sam@client.example", "cli", now())
        .unwrap();
    let later = now() + Duration::hours(HELD_RETRY_HOURS);
    let again = f.claim(later);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].client.email, "pat@client.example");
    let states: Vec<String> = f.messages().into_iter().map(|m| m.3).collect();
    assert_eq!(states, vec!["sending", "cancelled"]);
    assert_eq!(f.store.held().unwrap().len(), 0);
}

#[test]
fn resending_a_message_that_ended_its_sequence_lets_the_sequence_continue() {
    let mut f = fixture();
    f.import_people(&["pat"]);
    let first = f.claim(now());
    // What a template error did before such messages were held.
    let abandoned = Outcome::Abandoned {
        error: "survey.html.hbs: no such variable".to_string(),
        at: now(),
    };
    f.record(first[0].message_row, abandoned);
    assert_eq!(f.enrollment("former-clients").0, "completed");
    assert!(f.store.resend(first[0].message_row, now()).unwrap());
    assert_eq!(
        f.enrollment("former-clients"),
        ("active".to_string(), 1, 1, None)
    );
    let again = f.claim(now());
    assert_eq!(again.len(), 1);
    f.record(again[0].message_row, sent(now()));
    let (state, _, next_step, send_at) = f.enrollment("former-clients");
    assert_eq!((state.as_str(), next_step), ("active", 2));
    assert!(send_at.is_some(), "the next step is scheduled");

    // Only a sequence completed at that very step comes back: a bounce stays.
    let mut f = fixture();
    f.import_people(&["sam"]);
    let survey = f.claim(now());
    f.record(survey[0].message_row, sent(now()));
    let news = f.claim(now() + Duration::days(31));
    assert_eq!(news.len(), 1);
    f.record(
        news[0].message_row,
        Outcome::Failed {
            error: "550 no".to_string(),
            at: now() + Duration::days(31),
        },
    );
    f.store
        .resend(news[0].message_row, now() + Duration::days(32))
        .unwrap();
    assert_eq!(f.enrollment("former-clients").0, "bounced");
}

#[test]
fn a_stop_leaves_uncertain_only_what_had_started_and_requeues_the_rest() {
    let mut f = fixture();
    f.import_people(&["ann", "bob", "cy"]);
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 3);
    let started = claimed[0].message_row;
    assert_eq!(f.store.start(&f.config, &[], started, now()).unwrap(), None);
    // The process dies here: one started, two only claimed.
    let restart = now() + Duration::minutes(1);
    let recovered = f.store.recover_interrupted(&f.config, restart).unwrap();
    assert_eq!(
        recovered,
        Recovered {
            uncertain: 1,
            returned: 2
        }
    );
    let again = f.claim(restart);
    let mut rows: Vec<i64> = again.iter().map(|c| c.message_row).collect();
    rows.sort_unstable();
    let mut expected: Vec<i64> = claimed[1..].iter().map(|c| c.message_row).collect();
    expected.sort_unstable();
    assert_eq!(rows, expected, "the unstarted ones, the same rows, at once");
    assert!(
        again.iter().all(|c| c.attempt == 1),
        "a claim that never started is not an attempt"
    );
    let states: Vec<String> = f.messages().into_iter().map(|m| m.3).collect();
    assert_eq!(states, vec!["uncertain", "sending", "sending"]);
    // The daemon stopping returns a claimed message the same way.
    f.record(
        again[0].message_row,
        Outcome::Returned {
            reason: "stopping".to_string(),
            at: restart,
        },
    );
    assert_eq!(f.claim(restart).len(), 1);
}

#[test]
fn a_policy_refusal_is_retried_counted_and_given_up_from_the_first_attempt() {
    let mut f = fixture();
    f.import_people(&["ann"]);
    let blocked = |at| Outcome::Blocked {
        error: "554 5.7.1 Message refused by policy".to_string(),
        at,
    };
    let mut at = now();
    let row = f.claim(at)[0].message_row;
    f.record(row, blocked(at));
    assert_eq!(f.store.metrics(at).unwrap().blocked, 1);
    assert_eq!(f.messages()[0].3, "retry");
    // Retried while the give-up time (72 h from the first attempt) runs, then given up;
    // a refusal of one recipient never restarts that clock.
    let mut attempts = 1;
    while f.messages()[0].3 == "retry" {
        at += Duration::hours(6);
        let again = f.claim(at);
        if let Some(message) = again.first() {
            attempts += 1;
            f.record(message.message_row, blocked(at));
        }
        assert!(at - now() <= Duration::hours(80), "still retrying at {at}");
    }
    assert_eq!(f.messages()[0].3, "failed");
    assert!(at - now() >= Duration::hours(72), "gave up at {at}");
    assert!(attempts > 2);
    assert_eq!(
        f.suppression("ann@client.example").as_deref(),
        Some("bounce")
    );
    assert_eq!(f.store.metrics(at).unwrap().blocked, 0);
}

#[test]
fn a_claim_takes_at_most_its_limit_and_the_next_claim_the_rest() {
    let mut f = fixture();
    for n in 1..=5 {
        f.import(
            record(
                &format!("p{n}@client.example"),
                date(2025, 6, 1),
                "competitor",
            ),
            now(),
        );
    }
    let mut rows = Vec::new();
    for expected in [2, 2, 1, 0] {
        let claimed = f.store.claim_due(&f.config, now(), 2).unwrap();
        assert_eq!(claimed.len(), expected);
        rows.extend(claimed.iter().map(|c| c.message_row));
    }
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len(), 5, "each waiting person claimed once");
    // Retries too: the limit holds, and nothing is claimed twice.
    for &row in &rows {
        f.record(row, retry(now()));
    }
    let later = now() + Duration::days(1);
    let first = f.store.claim_due(&f.config, later, 3).unwrap();
    let second = f.store.claim_due(&f.config, later, 3).unwrap();
    assert_eq!((first.len(), second.len()), (3, 2));
    let mut again: Vec<i64> = first.iter().chain(&second).map(|c| c.message_row).collect();
    again.sort_unstable();
    assert_eq!(again, rows);
}

#[test]
fn a_pass_at_the_imports_own_now_finds_what_the_import_made_due() {
    // `import --now T` reads its clock a little after T (and stamps that as "due
    // now"); `run --once --now T` may claim a little sooner.
    let mut f = fixture();
    f.import(
        record("ann@client.example", date(2025, 6, 1), "competitor"),
        now() + Duration::milliseconds(400),
    );
    assert_eq!(f.claim(now()).len(), 1);
}

#[test]
fn a_claim_that_fails_undoes_only_itself_and_keeps_the_results() {
    let mut f = fixture();
    f.import_people(&["ann", "bob"]);
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 2);
    f.import(
        record("cat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    // A row the claim cannot read.
    f.store
        .conn
        .execute(
            "UPDATE clients SET timezone = 'Not/AZone' WHERE email = 'cat@client.example'",
            [],
        )
        .unwrap();
    let results: Vec<(i64, Outcome)> = claimed
        .iter()
        .map(|c| (c.message_row, sent(now())))
        .collect();
    let outcome = f
        .store
        .record_and_claim(&f.config, &results, Some((now(), 10)))
        .unwrap();
    assert!(
        matches!(outcome, Err(crate::store::StoreError::Corrupt(_))),
        "{outcome:?}"
    );
    let states: Vec<String> = f.messages().into_iter().map(|m| m.3).collect();
    assert_eq!(
        states,
        ["sent", "sent"],
        "the results stand, the claim left nothing"
    );
}

#[test]
fn a_queued_retry_never_reaches_a_client_reimported_as_we_ended() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 1);
    f.record(claimed[0].message_row, retry(now()));
    // The CRM is corrected: we ended this relationship.
    let later = now() + Duration::minutes(1);
    f.import(
        record("pat@client.example", date(2025, 6, 1), "we_ended"),
        later,
    );
    assert!(f.claim(later + Duration::hours(1)).is_empty());
    assert_eq!(f.messages()[0].3, "cancelled");
    assert_eq!(f.enrollment("former-clients").0, "completed");
}

#[test]
fn a_retry_from_before_a_return_never_goes_out_in_the_new_sequence() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    // They come back while the survey is with the SMTP server, which answers 451.
    f.store.record_return("pat@client.example", now()).unwrap();
    f.record(claimed[0].message_row, retry(now()));
    // And leave again the next day: a new sequence, with a new quiet period.
    let next_day = now() + Duration::days(1);
    f.import(
        record("pat@client.example", date(2026, 1, 16), "price"),
        next_day,
    );
    assert_eq!(f.enrollment("former-clients").1, 2);
    for hours in [1, 24, 24 * 30] {
        assert!(
            f.claim(next_day + Duration::hours(hours)).is_empty(),
            "sent {hours} hours after leaving again"
        );
    }
    assert_eq!(f.messages()[0].3, "cancelled");
    // The new survey goes out after the new quiet period, once.
    let due = Utc.with_ymd_and_hms(2026, 4, 16, 0, 0, 0).unwrap();
    let claimed = f.claim(due);
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        f.messages()[1],
        ("former-clients".to_string(), 2, 1, "sending".to_string())
    );
}

#[test]
fn a_queued_retry_respects_a_corrected_churn_date() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    f.record(claimed[0].message_row, retry(now()));
    // The churn date was wrong: they left ten days ago.
    let later = now() + Duration::minutes(1);
    f.import(
        record("pat@client.example", date(2026, 1, 5), "competitor"),
        later,
    );
    assert!(f.claim(later + Duration::hours(1)).is_empty());
    assert!(
        f.claim(Utc.with_ymd_and_hms(2026, 4, 4, 12, 0, 0).unwrap())
            .is_empty()
    );
    let due = Utc.with_ymd_and_hms(2026, 4, 5, 0, 0, 0).unwrap();
    let claimed = f.claim(due);
    assert_eq!(claimed.len(), 1);
    assert_eq!(f.messages().len(), 1, "the retry, not a second copy");
    // Its first real attempt is greylisted: a retry, not a give-up.
    f.record(claimed[0].message_row, retry(due));
    assert_eq!(f.messages()[0].3, "retry");
    assert_eq!(f.suppression("pat@client.example"), None);
}

#[test]
fn a_campaign_removed_and_put_back_resumes_without_a_second_copy() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    f.import(
        record("sam@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 2);
    let pat = claimed
        .iter()
        .find(|c| c.client.email.starts_with("pat"))
        .unwrap();
    let sam = claimed
        .iter()
        .find(|c| c.client.email.starts_with("sam"))
        .unwrap();
    let (pat_row, sam_row) = (pat.message_row, sam.message_row);
    f.record(pat_row, retry(now()));
    f.record(sam_row, sent(now()));

    // The operator comments the campaign out for a while...
    let without = config(f.dir.path(), OTHER_CAMPAIGN);
    let later = now() + Duration::hours(1);
    f.store.sync_campaigns(&without, later).unwrap();
    assert!(f.store.claim_due(&without, later, 10).unwrap().is_empty());
    // ...and puts it back.
    let back = now() + Duration::days(2);
    f.store.sync_campaigns(&f.config, back).unwrap();
    let claimed = f.claim(back);
    assert_eq!(claimed.len(), 1, "pat's survey resumes");
    assert_eq!(claimed[0].message_row, pat_row);
    // Sam's next step comes 30 days after the survey.
    assert!(f.claim(now() + Duration::days(29)).is_empty());
    let claimed = f.claim(now() + Duration::days(30));
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].client.email, "sam@client.example");
    assert_eq!(claimed[0].step, 2);
}

#[test]
fn a_message_row_already_there_never_makes_the_claim_fail() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    f.import(
        record("sam@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        f.record(c.message_row, sent(now()));
    }
    // Whatever put it there, an enrollment is due again at a step that has a row.
    f.store
        .conn
        .execute(
            "UPDATE enrollments SET next_step = 1, due_at = ?1, send_at = ?2 WHERE client_id = (SELECT id FROM clients WHERE email = 'pat@client.example')",
            params![fmt_time(now()), moment(now())],
        )
        .unwrap();
    let later = now() + Duration::days(1);
    assert!(f.claim(later).is_empty());
    assert!(f.claim(later + Duration::minutes(1)).is_empty());
    assert_eq!(f.messages().len(), 2);
}

#[test]
fn an_excluded_reason_never_erases_the_history_of_an_earlier_sequence() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    f.record(claimed[0].message_row, sent(now()));
    f.store.record_return("pat@client.example", now()).unwrap();
    // They leave again, and this time we ended it.
    let later = now() + Duration::days(2);
    f.import(
        record("pat@client.example", date(2026, 1, 16), "we_ended"),
        later,
    );
    assert_eq!(
        f.messages(),
        vec![("former-clients".to_string(), 1, 1, "sent".to_string())]
    );
    assert!(f.claim(later + Duration::days(200)).is_empty());
}

#[test]
fn a_resent_message_gets_a_fresh_retry_window() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let claimed = f.claim(now());
    let row = claimed[0].message_row;
    f.record(
        row,
        Outcome::Uncertain {
            error: "no final reply".to_string(),
            at: now(),
        },
    );
    // A week later the operator asks for it again; the server greylists the first try.
    let later = now() + Duration::days(7);
    assert!(f.store.resend(row, later).unwrap());
    let claimed = f.claim(later);
    assert_eq!(claimed.len(), 1);
    f.record(row, retry(later));
    assert_eq!(f.suppression("pat@client.example"), None);
    assert_eq!(f.messages()[0].3, "retry");
}

#[test]
fn days_of_our_server_refusing_us_do_not_count_towards_giving_up() {
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let mut at = now();
    let row = f.claim(at)[0].message_row;
    // A bad password over a long weekend.
    let deferred = |at| Outcome::Deferred {
        error: "535 5.7.8 authentication failed".to_string(),
        at,
    };
    f.record(row, deferred(at));
    while at < now() + Duration::days(4) {
        at += Duration::hours(6);
        let claimed = f.claim(at);
        assert_eq!(claimed.len(), 1);
        f.record(row, deferred(at));
    }
    // Fixed; the recipient's server greylists the first real attempt.
    at += Duration::hours(6);
    assert_eq!(f.claim(at).len(), 1);
    f.record(row, retry(at));
    assert_eq!(f.suppression("pat@client.example"), None);
    assert_eq!(f.messages()[0].3, "retry");
}

#[test]
fn writers_on_two_connections_never_fail_each_other() {
    // The daemon's delivery connection commits all the time; the HTTP server writes
    // opt-outs on its own connection, and the CLI on a third. None of them may fail
    // because another committed between its first read and its first write.
    let mut f = fixture();
    f.import(
        record("pat@client.example", date(2025, 6, 1), "competitor"),
        now(),
    );
    let enrollment: i64 = f
        .store
        .conn
        .query_row("SELECT id FROM enrollments", [], |r| r.get(0))
        .unwrap();
    let id = crate::token::Target::Enrollment(enrollment);
    let path = f.dir.path().join("winback.db");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cli = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut other = Store::open(&path).unwrap();
            let mut failures = Vec::new();
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let email = format!("someone{n}@else.example");
                if let Err(e) = other.record_opt_out(&email, "cli", now()) {
                    failures.push(e.to_string());
                }
            }
            failures
        })
    };
    let mut failures = Vec::new();
    let answer = crate::store::SurveyAnswer::default();
    for _ in 0..200 {
        let results = [
            f.store.opt_out_enrollment(&id, "link", now()).map(drop),
            f.store.undo_opt_out(&id, now(), &f.config).map(drop),
            f.store
                .save_survey_answer(&id, &answer, false, false, now())
                .map(drop),
        ];
        failures.extend(
            results
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string())),
        );
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let cli_failures = cli.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} link actions failed: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        cli_failures.is_empty(),
        "{} CLI opt-outs failed: {:?}",
        cli_failures.len(),
        cli_failures.first()
    );
}

#[test]
fn the_check_before_each_send_sees_every_reason_to_withdraw() {
    let mut f = fixture();
    let people = ["ann", "bob", "cat", "dan", "eve", "fay", "gus"];
    f.import_people(&people);
    let claimed = f.claim(now());
    assert_eq!(claimed.len(), people.len());
    let row = |name: &str| {
        claimed
            .iter()
            .find(|c| c.client.email == format!("{name}@client.example"))
            .unwrap()
            .message_row
    };
    // Changed since the claim, each in its own way (one of them not at all).
    let later = now() + Duration::seconds(1);
    f.store
        .record_opt_out("bob@client.example", "link", later)
        .unwrap();
    f.store.record_return("cat@client.example", later).unwrap();
    f.store.forget_person("dan@client.example", later).unwrap();
    f.store
        .conn
        .execute(
            "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, 'eve@client.example', 'bounce', 'smtp', ?2)",
            params![email_hash("eve@client.example"), fmt_time(later)],
        )
        .unwrap();
    f.store
        .conn
        .execute(
            "UPDATE messages SET state = 'uncertain' WHERE id = ?1",
            params![row("fay")],
        )
        .unwrap();
    f.import(
        record("gus@client.example", date(2025, 6, 1), "we_ended"),
        later,
    );
    let check = |name: &str| f.store.withdrawal(&f.config, row(name)).unwrap();
    assert_eq!(check("ann"), None);
    assert_eq!(check("bob").as_deref(), Some("the person is opted_out now"));
    assert_eq!(check("cat").as_deref(), Some("the person is returned now"));
    assert_eq!(
        check("dan").as_deref(),
        Some("its record is gone (the person was forgotten)")
    );
    assert_eq!(check("eve").as_deref(), Some("the person is bounced now"));
    assert_eq!(check("fay").as_deref(), Some("it is uncertain now"));
    assert_eq!(
        check("gus").as_deref(),
        Some("dropped: the campaign's audience no longer includes this client")
    );
}

#[test]
fn the_sql_list_of_states_that_take_up_a_day_is_the_domains() {
    let states: Vec<String> = MessageState::ALL
        .into_iter()
        .filter(|s| s.takes_the_day())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    assert_eq!(takes_the_day!(), format!("({})", states.join(", ")));
}
