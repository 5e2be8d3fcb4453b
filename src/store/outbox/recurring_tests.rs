//! The outbox with recurring steps: each occurrence a row of its own, claimed once; a
//! paused campaign claims nothing and catches up when unpaused; the consent horizon ends
//! a sequence `expired`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rusqlite::params;

use super::*;
use crate::config::Config;
use crate::domain::model::{ChurnedAt, ClientRecord};
use crate::store::{Store, moment};

/// Survey; a newsletter 30 days later, then every 30 days. `EXTRA` takes campaign keys.
const RECURRING: &str = r#"
[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"
timezone = "UTC"
EXTRA

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign.step]]
kind = "newsletter"
after_days = 30
every_days = 30
template = "newsletter"
subject = "News"
"#;

fn config(dir: &std::path::Path, extra: &str) -> Config {
    crate::test_support::config(dir, "", &RECURRING.replace("EXTRA", extra))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Churned 1 June 2025: the survey is long overdue on 15 January 2026.
fn pat() -> ClientRecord {
    ClientRecord {
        email: "pat@client.example".to_string(),
        name: None,
        first_name: None,
        company: None,
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()),
        churn_reason: Some("price".to_string()),
        timezone: None,
        fields: BTreeMap::new(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    store: Store,
}

fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), extra);
    let mut store = Store::open(&dir.path().join("winback.db")).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
    let rows = vec![Ok((2, pat()))];
    assert!(
        store
            .import(rows.into_iter(), &config, now, false, &mut |_| {})
            .unwrap()
            .applied
    );
    Fixture {
        _dir: dir,
        config,
        store,
    }
}

impl Fixture {
    /// Claims at `when` and records each claimed message sent then; (step, occurrence)
    /// of each.
    fn pass(&mut self, when: &str) -> Vec<(u32, u32)> {
        let claimed = self.store.claim_due(&self.config, at(when), 10).unwrap();
        let mut out = Vec::new();
        for c in claimed {
            let occurrence: u32 = self
                .store
                .conn
                .query_row(
                    "SELECT occurrence FROM messages WHERE id = ?1",
                    params![c.message_row],
                    |r| r.get(0),
                )
                .unwrap();
            self.store
                .record_results(
                    &self.config,
                    &[(
                        c.message_row,
                        Outcome::Sent {
                            reply: "250 ok".to_string(),
                            at: at(when),
                        },
                    )],
                )
                .unwrap();
            out.push((c.step, occurrence));
        }
        out
    }

    /// The enrollment's state, step, occurrence and next moment.
    fn enrollment(&self) -> (String, u32, u32, Option<i64>) {
        self.store
            .conn
            .query_row(
                "SELECT state, next_step, next_occurrence, send_at FROM enrollments",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }
}

#[test]
fn each_occurrence_of_a_recurring_step_is_claimed_once_and_the_sequence_goes_on() {
    let mut f = fixture("");
    assert_eq!(f.pass("2026-01-16T10:00:00Z"), [(1, 1)]);
    assert_eq!(f.pass("2026-02-14T10:00:00Z"), [], "not due yet");
    assert_eq!(f.pass("2026-02-15T10:00:00Z"), [(2, 1)]);
    assert_eq!(f.pass("2026-03-17T10:00:00Z"), [(2, 2)]);
    assert_eq!(f.pass("2026-04-16T10:00:00Z"), [(2, 3)]);
    let (state, step, occurrence, send_at) = f.enrollment();
    assert_eq!((state.as_str(), step, occurrence), ("active", 2, 4));
    assert_eq!(send_at, Some(moment(at("2026-05-16T10:00:00Z"))));
    // A crash left the pointer at an occurrence that already went: not sent again, the
    // sequence moves on from it.
    f.store
        .conn
        .execute(
            "UPDATE enrollments SET next_occurrence = 3, due_at = '2026-04-16T10:00:00.000000Z', send_at = ?1",
            params![moment(at("2026-04-24T10:00:00Z"))],
        )
        .unwrap();
    assert_eq!(f.pass("2026-04-24T10:00:00Z"), []);
    let copies: i64 = f
        .store
        .conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE step = 2 AND occurrence = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(copies, 1);
    assert_eq!(f.enrollment().2, 4, "moved past the occurrence that went");
    let refused: i64 = f
        .store
        .conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'duplicate_refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 1);
}

#[test]
fn a_paused_campaign_claims_nothing_and_catches_up_at_a_send_at_moment_when_unpaused() {
    let mut f = fixture("");
    let paused = config(f._dir.path(), "paused = true");
    f.store
        .sync_campaigns(&paused, at("2026-01-15T12:00:00Z"))
        .unwrap();
    let unpaused = std::mem::replace(&mut f.config, paused);
    assert_eq!(f.pass("2026-01-16T10:00:00Z"), [], "paused");
    assert_eq!(
        f.enrollment().3,
        Some(moment(at("2026-01-17T10:00:00Z"))),
        "looked at again at the first moment an hour on"
    );
    // Unpaused at 15:00 on the 20th, past the 10:00 moment's catch-up window: the
    // survey goes at the next moment, not at once.
    f.config = unpaused;
    f.store
        .sync_campaigns(&f.config, at("2026-01-20T15:00:00Z"))
        .unwrap();
    assert_eq!(f.enrollment().3, Some(moment(at("2026-01-21T10:00:00Z"))));
    assert_eq!(f.pass("2026-01-20T15:00:00Z"), []);
    assert_eq!(f.pass("2026-01-21T10:00:00Z"), [(1, 1)]);
}

#[test]
fn past_the_consent_horizon_the_sequence_ends_expired() {
    // Churned 1 June 2025, horizon 300 days: no message starts after 28 March 2026.
    let mut f = fixture("max_days_since_churn = 300");
    assert_eq!(f.pass("2026-01-16T10:00:00Z"), [(1, 1)]);
    assert_eq!(f.pass("2026-02-15T10:00:00Z"), [(2, 1)]);
    assert_eq!(f.pass("2026-03-17T10:00:00Z"), [(2, 2)]);
    let (state, _, _, send_at) = f.enrollment();
    assert_eq!((state.as_str(), send_at), ("expired", None));
    assert_eq!(f.pass("2026-04-16T10:00:00Z"), []);
}

/// Passes at 10:00 on each of `days` (January 2026); what each sent.
fn passes(f: &mut Fixture, days: std::ops::RangeInclusive<u32>) -> Vec<(u32, u32)> {
    days.flat_map(|d| f.pass(&format!("2026-01-{d:02}T10:00:00Z")))
        .collect()
}

#[test]
fn unpausing_while_another_process_already_stored_the_unpaused_campaign_still_sends() {
    let mut f = fixture("");
    let paused = config(f._dir.path(), "paused = true");
    f.store
        .sync_campaigns(&paused, at("2026-01-15T12:00:00Z"))
        .unwrap();
    let unpaused = std::mem::replace(&mut f.config, paused);
    assert_eq!(f.pass("2026-01-16T10:00:00Z"), [], "paused");
    // `paused` removed from the file and `winback plan` run (it stores the campaign as
    // the file has it) while the daemon still runs paused.
    f.store
        .sync_campaigns(&unpaused, at("2026-01-20T15:00:00Z"))
        .unwrap();
    assert_eq!(
        f.pass("2026-01-21T10:00:00Z"),
        [],
        "the daemon is still paused"
    );
    let (_, _, _, send_at) = f.enrollment();
    assert_eq!(
        send_at,
        Some(moment(at("2026-01-22T10:00:00Z"))),
        "a paused campaign's people keep a moment to be looked at again"
    );
    // Then the daemon reloads: nothing changed by the fingerprints, yet the survey goes
    // at the next moment.
    f.config = unpaused;
    f.store
        .sync_campaigns(&f.config, at("2026-01-21T11:00:00Z"))
        .unwrap();
    assert_eq!(passes(&mut f, 22..=23), [(1, 1)]);
}

#[test]
fn a_paused_campaign_unpaused_after_a_long_pause_catches_up_at_a_moment_not_at_once() {
    let mut f = fixture("");
    let paused = config(f._dir.path(), "paused = true");
    f.store
        .sync_campaigns(&paused, at("2026-01-15T12:00:00Z"))
        .unwrap();
    let unpaused = std::mem::replace(&mut f.config, paused);
    assert_eq!(passes(&mut f, 16..=19), [], "paused");
    // The unpaused file is stored at 15:00 on the 19th, past the catch-up window, and a
    // pass runs at once: nothing goes at that odd hour.
    f.config = unpaused;
    f.store
        .sync_campaigns(&f.config, at("2026-01-19T15:00:00Z"))
        .unwrap();
    assert_eq!(f.pass("2026-01-19T15:00:00Z"), []);
    assert_eq!(f.pass("2026-01-19T23:00:00Z"), []);
    assert_eq!(f.pass("2026-01-20T10:00:00Z"), [(1, 1)]);
}

#[test]
fn a_new_campaign_stored_by_plan_before_the_daemon_reloads_still_sends() {
    // The daemon's file has one campaign that does not take Pat (price).
    let mut f = fixture("include_reasons = [\"competitor\"]");
    let second = RECURRING
        .replace("EXTRA", "")
        .replace("former-clients", "price-first");
    let with_new = crate::test_support::config(
        f._dir.path(),
        "",
        &format!(
            "{}\n{second}",
            RECURRING.replace("EXTRA", "include_reasons = [\"competitor\"]")
        ),
    );
    // `winback plan` with the new campaign in the file enrolls Pat in it.
    f.store
        .sync_campaigns(&with_new, at("2026-01-20T15:00:00Z"))
        .unwrap();
    assert_eq!(f.enrollment().0, "active");
    // The daemon, not yet reloaded, does not know the campaign.
    assert_eq!(f.pass("2026-01-21T10:00:00Z"), []);
    // It reloads with the new file; the campaign's fingerprint is the stored one.
    f.config = with_new;
    f.store
        .sync_campaigns(&f.config, at("2026-01-21T11:00:00Z"))
        .unwrap();
    assert_eq!(passes(&mut f, 22..=23), [(1, 1)]);
}

#[test]
fn the_step_after_a_moved_recurring_message_keeps_min_gap_days_from_it() {
    // An article 68 days after the first newsletter (24 April); 16 to 20 April kept
    // free, so the third newsletter, due 16 April, goes on the 21st.
    let mut f = fixture("");
    let text = format!(
        "{}\n[[campaign.step]]\nkind = \"article\"\nafter_days = 68\ntemplate = \"article\"\nsubject = \"Read\"\n",
        RECURRING.replace("EXTRA", "quiet_dates = [\"04-16..04-20\"]")
    );
    f.config = crate::test_support::config(f._dir.path(), "", &text);
    f.store
        .sync_campaigns(&f.config, at("2026-01-15T12:00:00Z"))
        .unwrap();
    assert_eq!(f.pass("2026-01-16T10:00:00Z"), [(1, 1)]);
    assert_eq!(f.pass("2026-02-15T10:00:00Z"), [(2, 1)]);
    assert_eq!(f.pass("2026-03-17T10:00:00Z"), [(2, 2)]);
    let mut sent = Vec::new();
    for day in 16..=30 {
        let when = format!("2026-04-{day:02}T10:00:00Z");
        for (step, occurrence) in f.pass(&when) {
            sent.push((step, occurrence, day));
        }
    }
    // The article waits 7 days after the newsletter of the 21st: the 28th, not the 24th.
    assert_eq!(sent, [(2, 3, 21), (3, 1, 28)]);
}
