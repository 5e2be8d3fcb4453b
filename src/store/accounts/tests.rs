use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone};

use super::*;
use crate::domain::inbound::{InboundRules, Outcome};
use crate::domain::model::{ChurnedAt, ClientRecord};
use crate::store::inbound::tests::inbound;
use crate::store::{Inbound, ReturnOutcome, Store};

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    store: Store,
}

const CAMPAIGN: &str = r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"
# Who is stopped, not when: every contact's survey goes at once.
account_gap_days = 0

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

fn config_with(dir: &std::path::Path, account: Option<&str>) -> Config {
    let clients = match account {
        Some(account) => format!("[clients]\naccount = \"{account}\"\n"),
        None => String::new(),
    };
    crate::test_support::config(dir, "", &format!("{clients}{CAMPAIGN}"))
}

fn fixture(account: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), account);
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    Fixture { dir, config, store }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

const ANN: &str = "ann@acme.example";
const BOB: &str = "bob@acme.example";
const CAT: &str = "cat@gmail.com";
const DAN: &str = "dan@globex.example";

fn record(email: &str, company: &str) -> ClientRecord {
    ClientRecord {
        email: email.to_string(),
        name: None,
        first_name: None,
        company: Some(company.to_string()),
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()),
        churn_reason: Some("competitor".to_string()),
        timezone: None,
        fields: BTreeMap::from([("account id".to_string(), format!("A-{}", company.trim()))]),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

impl Fixture {
    fn import(&mut self, rows: &[(&str, &str)], at: DateTime<Utc>) {
        let rows: Vec<_> = rows.iter().map(|(e, c)| Ok((2, record(e, c)))).collect();
        let outcome = self
            .store
            .import(rows.into_iter(), &self.config, at, false, &mut |_| {})
            .unwrap();
        assert!(outcome.applied);
    }

    fn acme_and_globex(&mut self) {
        self.import(
            &[
                (ANN, " ACME  "),
                (BOB, "Acme"),
                (CAT, "acme"),
                (DAN, "Globex"),
            ],
            now(),
        );
    }

    fn key(&self, email: &str) -> Option<String> {
        self.store
            .conn
            .query_row(
                "SELECT account_key FROM clients WHERE email = ?1",
                params![email],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn id(&self, email: &str) -> i64 {
        self.store
            .conn
            .query_row(
                "SELECT id FROM clients WHERE email = ?1",
                params![email],
                |r| r.get(0),
            )
            .unwrap()
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

    fn returned_at(&self, email: &str) -> Option<String> {
        self.store
            .conn
            .query_row(
                "SELECT returned_at FROM clients WHERE email = ?1",
                params![email],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn events(&self, email: &str, kind: &str) -> Vec<String> {
        self.store
            .conn
            .prepare(
                "SELECT detail FROM events WHERE kind = ?2 AND client_id = (SELECT id FROM clients WHERE email = ?1) ORDER BY id",
            )
            .unwrap()
            .query_map(params![email, kind], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Claims and sends every due message at `at`; returns (address, Message-ID
    /// without brackets).
    fn send_all(&mut self, at: DateTime<Utc>) -> BTreeMap<String, String> {
        let claimed = self.store.claim_due(&self.config, at, 10).unwrap();
        let results: Vec<_> = claimed
            .iter()
            .map(|c| {
                (
                    c.message_row,
                    crate::store::Outcome::Sent {
                        reply: "250 ok".to_string(),
                        at,
                    },
                )
            })
            .collect();
        self.store.record_results(&self.config, &results).unwrap();
        claimed
            .into_iter()
            .map(|c| {
                let id = c.message_id.trim_matches(['<', '>']).to_string();
                (c.client.email, id)
            })
            .collect()
    }

    fn reply_from(&mut self, email: &str, message_id: &str, key: &str) -> i64 {
        let reply = Inbound {
            referenced_ids: vec![message_id.to_string()],
            from: Some(email.to_string()),
            ..inbound(key, Outcome::Reply)
        };
        self.store
            .apply_inbound(&reply, InboundRules::default(), now())
            .unwrap()
            .record
            .id
    }
}

#[test]
fn keys_are_stored_at_import_and_derived_again_when_the_rule_changes() {
    let mut f = fixture(Some("company"));
    f.acme_and_globex();
    assert_eq!(f.key(ANN).as_deref(), Some("acme"));
    assert_eq!(f.key(BOB).as_deref(), Some("acme"));
    assert_eq!(f.key(CAT).as_deref(), Some("acme"));
    assert_eq!(f.key(DAN).as_deref(), Some("globex"));

    // The rule changes: the keys follow at the next start.
    f.config = config_with(f.dir.path(), Some("domain"));
    f.store.sync_campaigns(&f.config, now()).unwrap();
    assert_eq!(f.key(ANN).as_deref(), Some("acme.example"));
    assert_eq!(f.key(BOB).as_deref(), Some("acme.example"));
    assert_eq!(f.key(CAT), None, "a free-mail address is nobody's account");
    assert_eq!(f.key(DAN).as_deref(), Some("globex.example"));

    f.config = config_with(f.dir.path(), Some("fields.account_id"));
    f.store.sync_campaigns(&f.config, now()).unwrap();
    assert_eq!(f.key(ANN).as_deref(), Some("a-acme"));
    assert_eq!(f.key(BOB).as_deref(), Some("a-acme"));

    f.config = config_with(f.dir.path(), None);
    f.store.sync_campaigns(&f.config, now()).unwrap();
    assert_eq!(f.key(ANN), None);
    assert_eq!(f.key(DAN), None);

    // An update of the row moves the key with it.
    f.config = config_with(f.dir.path(), Some("company"));
    f.import(&[(BOB, "Globex")], now() + Duration::days(1));
    assert_eq!(f.key(BOB).as_deref(), Some("globex"));
}

#[test]
fn a_return_stops_the_accounts_other_contacts_without_recording_them_returned() {
    let mut f = fixture(Some("company"));
    f.acme_and_globex();
    let outcome = f.store.record_return(ANN, now()).unwrap();
    assert_eq!(
        outcome,
        ReturnOutcome::Recorded {
            stopped: 1,
            account_stopped: 2
        }
    );
    assert_eq!(f.state(ANN), "returned");
    assert_eq!(f.state(BOB), "returned");
    assert_eq!(f.state(CAT), "returned");
    assert_eq!(f.state(DAN), "active", "another account goes on");
    assert!(f.returned_at(ANN).is_some());
    assert_eq!(
        f.returned_at(BOB),
        None,
        "a colleague is no win of their own"
    );
    let events = f.events(BOB, "account_returned");
    assert_eq!(events.len(), 1);
    assert!(events[0].contains(ANN), "{events:?}");
    assert!(f.events(DAN, "account_returned").is_empty());
}

#[test]
fn without_accounts_a_return_stops_only_its_person() {
    let mut f = fixture(None);
    f.acme_and_globex();
    f.store.record_return(ANN, now()).unwrap();
    assert_eq!(f.state(ANN), "returned");
    assert_eq!(f.state(BOB), "active");
    assert_eq!(f.key(ANN), None);
}

#[test]
fn a_list_of_returns_and_the_customers_file_stop_the_account_too() {
    let mut f = fixture(Some("company"));
    f.acme_and_globex();
    f.store
        .record_returns(&[BOB.to_string()], now(), "listed")
        .unwrap();
    assert_eq!(f.state(ANN), "returned");
    assert_eq!(f.state(DAN), "active");
    f.store
        .sync_customers(&[DAN.to_string()], now(), "customers")
        .unwrap();
    assert_eq!(f.state(DAN), "returned");
}

#[test]
fn a_new_contact_of_an_account_that_came_back_is_stopped_at_once() {
    let mut f = fixture(Some("company"));
    f.acme_and_globex();
    f.store.record_return(ANN, now()).unwrap();
    f.import(
        &[
            ("eve@acme.example", "Acme"),
            ("fay@initech.example", "Initech"),
        ],
        now() + Duration::days(1),
    );
    assert_eq!(f.state("eve@acme.example"), "returned");
    assert!(f.events("eve@acme.example", "account_returned")[0].contains(ANN));
    assert_eq!(f.state("fay@initech.example"), "active");
    // Moved into the account by a later export: stopped too.
    f.import(
        &[("fay@initech.example", "ACME")],
        now() + Duration::days(2),
    );
    assert_eq!(f.state("fay@initech.example"), "returned");
}

#[test]
fn a_return_in_the_crm_file_stops_the_account_whatever_the_row_order() {
    let mut f = fixture(Some("company"));
    let mut ann = record(ANN, "Acme");
    ann.returned_at = Some(ChurnedAt::Date(
        NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
    ));
    let rows = vec![
        Ok((2, record(BOB, "Acme"))),
        Ok((3, ann)),
        Ok((4, record("eve@acme.example", "Acme"))),
    ];
    let outcome = f
        .store
        .import(rows.into_iter(), &f.config, now(), false, &mut |_| {})
        .unwrap();
    assert_eq!(outcome.counts.returned, 1);
    assert_eq!(outcome.counts.account_stopped, 2, "Bob's and Eve's");
    assert_eq!(f.state(BOB), "returned", "enrolled before the return");
    assert_eq!(f.state("eve@acme.example"), "returned", "after it");
    assert_eq!(f.returned_at(BOB), None);
}

#[test]
fn setting_the_rule_stops_the_contacts_of_accounts_that_already_came_back() {
    let mut f = fixture(None);
    f.acme_and_globex();
    f.store.record_return(ANN, now()).unwrap();
    assert_eq!(f.state(BOB), "active");
    f.config = config_with(f.dir.path(), Some("company"));
    f.store.sync_campaigns(&f.config, now()).unwrap();
    assert_eq!(f.state(BOB), "returned");
    assert_eq!(f.state(DAN), "active");
}

#[test]
fn account_busy_is_when_the_accounts_contacts_were_mailed() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (DAN, "Globex")], now());
    let sent = f.send_all(now());
    assert_eq!(sent.len(), 2);
    f.import(&[(BOB, "Acme")], now());
    let since = now() - Duration::days(7);
    let (ann, bob, dan) = (f.id(ANN), f.id(BOB), f.id(DAN));
    assert_eq!(
        account_busy(&f.store.conn, bob, since, None).unwrap(),
        vec![now()],
        "Ann's message counts for Bob"
    );
    assert_eq!(
        account_busy(&f.store.conn, ann, since, None).unwrap(),
        vec![now()],
        "and for Ann herself: the account hears from us once per gap"
    );
    let anns_row: i64 = f
        .store
        .conn
        .query_row("SELECT id FROM messages WHERE client_id = ?1", [ann], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        account_busy(&f.store.conn, ann, since, Some(anns_row))
            .unwrap()
            .is_empty(),
        "the message being decided is not in its own way"
    );
    assert_eq!(
        account_busy(&f.store.conn, dan, since, None).unwrap(),
        vec![now()]
    );
    assert!(
        account_busy(&f.store.conn, bob, now() + Duration::seconds(1), None)
            .unwrap()
            .is_empty(),
        "nothing since"
    );
    // Without accounts, nobody's messages are the account's.
    let g = fixture(None);
    assert!(
        account_busy(&g.store.conn, 1, since, None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_reply_stops_the_account_and_its_undo_resumes_it_but_an_opt_out_stays_personal() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (BOB, "Acme"), (DAN, "Globex")], now());
    let sent = f.send_all(now());

    // An opt-out is personal.
    f.store.record_opt_out(DAN, "cli", now()).unwrap();
    f.import(&[("dee@globex.example", "Globex")], now());
    assert_eq!(f.state(DAN), "opted_out");
    assert_eq!(f.state("dee@globex.example"), "active");

    let reply = f.reply_from(ANN, &sent[ANN], "id:r1@acme.example");
    assert_eq!(f.state(ANN), "replied");
    assert_eq!(f.state(BOB), "replied");
    assert!(f.events(BOB, "account_replied")[0].contains(ANN));
    assert_eq!(f.state("dee@globex.example"), "active");

    // Bob replies too: undoing Ann's reply leaves both stopped by his.
    let bobs = f.reply_from(BOB, &sent[BOB], "id:r2@acme.example");
    f.store
        .undo_inbound(reply, now() + Duration::hours(1), &f.config)
        .unwrap();
    assert_eq!(f.state(ANN), "replied", "Bob's reply still stands");
    assert_eq!(f.state(BOB), "replied");
    f.store
        .undo_inbound(bobs, now() + Duration::hours(2), &f.config)
        .unwrap();
    assert_eq!(f.state(ANN), "active");
    assert_eq!(f.state(BOB), "active");
}

#[test]
fn an_undone_opt_out_does_not_resume_a_contact_whose_account_came_back() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (BOB, "Acme")], now());
    let id = f.id(BOB);
    f.store
        .record_opt_out(BOB, "unsubscribe_link", now())
        .unwrap();
    f.store.record_return(ANN, now()).unwrap();
    let link = crate::token::Target::Enrollment(
        f.store
            .conn
            .query_row(
                "SELECT id FROM enrollments WHERE client_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .unwrap(),
    );
    f.store
        .undo_opt_out(&link, now() + Duration::hours(1), &f.config)
        .unwrap();
    assert_eq!(f.state(BOB), "opted_out", "the account is a client again");
}

#[test]
fn a_contact_placed_by_a_campaign_added_after_the_account_came_back_is_not_mailed() {
    let dir = tempfile::tempdir().unwrap();
    let price_only = CAMPAIGN.replace(
        "account_gap_days = 0\n",
        "account_gap_days = 0\ninclude_reasons = [\"price\"]\n",
    );
    let clients = "[clients]\naccount = \"company\"\n";
    let config = crate::test_support::config(dir.path(), "", &format!("{clients}{price_only}"));
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    let mut f = Fixture { dir, config, store };
    let mut ann = record(ANN, "Acme");
    ann.churn_reason = Some("price".to_string());
    let bob = record(BOB, "Acme"); // competitor: no campaign takes him yet
    f.store
        .import(
            vec![Ok((2, ann)), Ok((3, bob))].into_iter(),
            &f.config,
            now(),
            false,
            &mut |_| {},
        )
        .unwrap();
    f.store.record_return(ANN, now()).unwrap();
    // A second campaign for everyone else is added.
    let everyone = CAMPAIGN.replace("former-clients", "everyone-else");
    f.config = crate::test_support::config(
        f.dir.path(),
        "",
        &format!("{clients}{price_only}{everyone}"),
    );
    f.store.sync_campaigns(&f.config, now()).unwrap();
    assert_eq!(
        f.state(BOB),
        "returned",
        "placed, then stopped with his account"
    );
    // A sequence made active by other means is still held at the claim.
    f.store
        .conn
        .execute("UPDATE enrollments SET state = 'active', send_at = 0, due_at = ?1 WHERE client_id = ?2", params![fmt_time(now()), f.id(BOB)])
        .unwrap();
    let sent = f.send_all(now() + Duration::days(1));
    assert!(
        !sent.contains_key(BOB),
        "Bob's company came back, yet he was mailed: {sent:?}"
    );
    assert_eq!(f.state(BOB), "returned");
}

#[test]
fn a_contact_new_to_an_account_whose_reply_stands_is_not_surveyed() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme")], now());
    let sent = f.send_all(now());
    let reply = f.reply_from(ANN, &sent[ANN], "id:r1@acme.example");
    f.import(&[("eve@acme.example", "Acme")], now() + Duration::days(2));
    let sent = f.send_all(now() + Duration::days(2));
    assert!(
        !sent.contains_key("eve@acme.example"),
        "Acme is talking to the team, yet Eve got a survey: {sent:?}"
    );
    assert_eq!(f.state("eve@acme.example"), "replied");
    assert!(f.events("eve@acme.example", "account_replied")[0].contains(ANN));
    // Undoing the reply resumes her, as it resumes the contacts it stopped.
    f.store
        .undo_inbound(reply, now() + Duration::days(3), &f.config)
        .unwrap();
    assert_eq!(f.state("eve@acme.example"), "active");
    let sent = f.send_all(now() + Duration::days(3));
    assert!(sent.contains_key("eve@acme.example"), "{sent:?}");
}

#[test]
fn a_contact_placed_by_a_new_campaign_while_a_reply_of_the_account_stands_is_stopped_as_replied() {
    let dir = tempfile::tempdir().unwrap();
    let price_only = CAMPAIGN.replace(
        "account_gap_days = 0\n",
        "account_gap_days = 0\ninclude_reasons = [\"price\"]\n",
    );
    let clients = "[clients]\naccount = \"company\"\n";
    let config = crate::test_support::config(dir.path(), "", &format!("{clients}{price_only}"));
    let store = Store::open(&dir.path().join("winback.db")).unwrap();
    let mut f = Fixture { dir, config, store };
    let mut ann = record(ANN, "Acme");
    ann.churn_reason = Some("price".to_string());
    let bob = record(BOB, "Acme");
    f.store
        .import(
            vec![Ok((2, ann)), Ok((3, bob))].into_iter(),
            &f.config,
            now(),
            false,
            &mut |_| {},
        )
        .unwrap();
    let sent = f.send_all(now());
    f.reply_from(ANN, &sent[ANN], "id:r1@acme.example");
    let everyone = CAMPAIGN.replace("former-clients", "everyone-else");
    f.config = crate::test_support::config(
        f.dir.path(),
        "",
        &format!("{clients}{price_only}{everyone}"),
    );
    f.store.sync_campaigns(&f.config, now()).unwrap();
    assert_eq!(f.state(BOB), "replied");
    let sent = f.send_all(now() + Duration::days(1));
    assert!(!sent.contains_key(BOB), "{sent:?}");
}

/// Makes `email`'s sequence active and due at `at`, whatever stopped it: a sequence
/// made active by a path that does not look at the account.
fn force_active(f: &Fixture, email: &str, at: DateTime<Utc>) {
    f.store
        .conn
        .execute(
            "UPDATE enrollments SET state = 'active', stopped_at = NULL, send_at = 0, due_at = ?1
             WHERE client_id = ?2",
            params![fmt_time(at), f.id(email)],
        )
        .unwrap();
}

#[test]
fn the_claim_holds_a_contact_whose_account_came_back_or_replied_however_they_became_active() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (BOB, "Acme"), (DAN, "Globex")], now());
    // Ann's return written without stopping anyone else.
    f.store
        .conn
        .execute(
            "UPDATE clients SET returned_at = ?1 WHERE email = ?2",
            params![fmt_time(now()), ANN],
        )
        .unwrap();
    let sent = f.send_all(now());
    assert_eq!(sent.keys().collect::<Vec<_>>(), [DAN], "{sent:?}");
    assert_eq!(f.state(BOB), "returned");

    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (BOB, "Acme")], now());
    let sent = f.send_all(now());
    f.reply_from(ANN, &sent[ANN], "id:r1@acme.example");
    force_active(&f, BOB, now());
    let later = now() + Duration::days(40);
    let sent = f.send_all(later);
    assert!(sent.is_empty(), "Acme replied, yet: {sent:?}");
    assert_eq!(f.state(BOB), "replied");
    assert_eq!(f.state(ANN), "replied", "her own reply stopped her");
}

#[test]
fn the_check_before_sending_withdraws_a_message_whose_account_came_back_or_replied() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (BOB, "Acme"), (DAN, "Globex")], now());
    let claimed = f.store.claim_due(&f.config, now(), 10).unwrap();
    let row = |email: &str| {
        claimed
            .iter()
            .find(|c| c.client.email == email)
            .unwrap()
            .message_row
    };
    f.store
        .conn
        .execute(
            "UPDATE clients SET returned_at = ?1 WHERE email = ?2",
            params![fmt_time(now()), ANN],
        )
        .unwrap();
    let why = f.store.withdrawal(&f.config, row(BOB)).unwrap();
    assert!(
        why.as_deref().is_some_and(|w| w.contains("came back")),
        "{why:?}"
    );
    assert_eq!(f.store.withdrawal(&f.config, row(DAN)).unwrap(), None);

    // A reply of Ann's, applied while Bob's message waited to start.
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "Acme"), (BOB, "Acme")], now());
    let sent = f.send_all(now());
    let later = now() + Duration::days(40);
    force_active(&f, BOB, later);
    let claimed = f.store.claim_due(&f.config, later, 10).unwrap();
    let bobs = claimed
        .iter()
        .find(|c| c.client.email == BOB)
        .unwrap()
        .message_row;
    f.reply_from(ANN, &sent[ANN], "id:r1@acme.example");
    force_active(&f, BOB, later);
    let why = f.store.withdrawal(&f.config, bobs).unwrap();
    assert!(
        why.as_deref().is_some_and(|w| w.contains("replied")),
        "{why:?}"
    );
}

#[test]
fn the_largest_accounts_are_listed_without_placeholders() {
    let mut f = fixture(Some("company"));
    let many: Vec<(String, &str)> = (0..52)
        .map(|i| (format!("p{i}@big.example"), "Big Reseller"))
        .chain((0..3).map(|i| (format!("q{i}@small.example"), "Small")))
        .collect();
    let rows: Vec<(&str, &str)> = many.iter().map(|(e, c)| (e.as_str(), *c)).collect();
    f.import(&rows, now());
    let (large, total) = f.store.large_accounts(10).unwrap();
    assert_eq!(large, [("big reseller".to_string(), 52)]);
    assert_eq!(total, 1);
    // A placeholder key stored before placeholders gave none is not named.
    f.store
        .conn
        .execute(
            "UPDATE clients SET account_key = 'n/a' WHERE company = 'Big Reseller'",
            [],
        )
        .unwrap();
    assert_eq!(f.store.large_accounts(10).unwrap(), (vec![], 0));
    let path = f.dir.path().join("winback.db");
    assert_eq!(
        Store::large_accounts_at(&path, 10).unwrap(),
        Some((vec![], 0))
    );
}

#[test]
fn placeholder_companies_are_no_account() {
    let mut f = fixture(Some("company"));
    f.import(&[(ANN, "N/A"), (BOB, "n/a"), (DAN, "-")], now());
    assert_eq!(f.key(ANN), None);
    assert_eq!(f.key(DAN), None);
    f.store.record_return(ANN, now()).unwrap();
    assert_eq!(
        f.state(BOB),
        "active",
        "two freelancers are not one company"
    );
}
