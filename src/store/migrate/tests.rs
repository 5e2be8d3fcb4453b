//! Migrations from each earlier schema: data kept, ids never reused, links and
//! suppressions still working, foreign keys on.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::*;
use crate::store::{email_hash, from_moment, moment, parse_time};
use crate::token::Target;

const T: &str = "2026-01-01T00:00:00.000000Z";

/// How many messages `plan` finds due by `until` (from the start of time).
fn planned(store: &Store, until: DateTime<Utc>) -> usize {
    store
        .plan_data(until, DateTime::UNIX_EPOCH)
        .unwrap()
        .rows
        .len()
}

/// Far enough ahead for any fixture's message to be due.
fn ever() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + chrono::Duration::days(30_000)
}

/// Whether the connection enforces foreign keys (1) or not (0).
fn foreign_keys(store: &Store) -> i64 {
    store
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap()
}

/// A database as the first schema left it: one client, enrolled at `next_step` with a
/// random public id that emailed links carry.
fn version_1_enrollment(path: &Path, next_step: u32) -> [u8; 16] {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    let public_id: [u8; 16] = rand::random();
    conn.execute(
        "INSERT INTO clients (id, email, email_hash, churned_at, churn_reason, created_at, updated_at)
         VALUES (7, 'pat@client.example', ?1, '2025-06-01', 'price', ?2, ?2)",
        params![email_hash("pat@client.example"), T],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO enrollments (id, client_id, campaign, public_id, state, next_step, due_at, send_at, created_at, updated_at)
         VALUES (3, 7, 'former-clients', ?1, 'active', ?2, ?3, ?3, ?3, ?3)",
        params![public_id.to_vec(), next_step, T],
    )
    .unwrap();
    public_id
}

/// The same, one step on: a sent survey and its answer.
fn version_1_database(path: &Path) -> [u8; 16] {
    let public_id = version_1_enrollment(path, 2);
    let conn = Connection::open(path).unwrap();
    conn.execute(
        "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, first_claimed_at, claimed_at, sent_at, updated_at)
         VALUES (3, 7, 'former-clients', 1, 1, 'survey', 'sent', '<1@x>', ?1, ?1, ?1, ?1, ?1)",
        params![T],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO survey_answers (enrollment_id, client_id, campaign, reason, created_at, updated_at)
         VALUES (3, 7, 'former-clients', 'price', ?1, ?1)",
        params![T],
    )
    .unwrap();
    public_id
}

#[test]
fn a_new_file_gets_8_kib_pages_and_an_existing_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |store: &Store| -> i64 {
        store
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    };
    let new = Store::open(&dir.path().join("new.db")).unwrap();
    assert_eq!(page_size(&new), 8192);
    let old_path = dir.path().join("old.db");
    version_1_enrollment(&old_path, 1);
    let old = Store::open(&old_path).unwrap();
    assert_eq!(page_size(&old), 4096);
    assert_eq!(planned(&old, ever()), 1, "the old file is read as before");
}

#[test]
fn an_import_leaves_no_dangling_row_and_foreign_keys_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    version_1_enrollment(&path, 1);
    let config = crate::test_support::config(dir.path(), "", crate::test_support::SURVEY_ONLY);
    let mut store = Store::open(&path).unwrap();
    let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_500);
    let record = |reason: &str| crate::domain::model::ClientRecord {
        churn_reason: Some(reason.to_string()),
        ..crate::test_support::left_on_june_1("pat@client.example")
    };
    // A file with a bad row changes nothing, and leaves foreign keys on.
    let bad = vec![
        Ok((2, record("we_ended"))),
        Err(crate::domain::model::RowError {
            line: 3,
            reason: "bad".to_string(),
        }),
    ];
    let outcome = store
        .import(bad.into_iter(), &config, now, false, &mut |_| {})
        .unwrap();
    assert!(!outcome.applied);
    assert_eq!(foreign_keys(&store), 1);
    // The CRM now says we ended it: the unstarted enrollment goes, with its old link.
    let good = vec![Ok((2, record("we_ended")))];
    let outcome = store
        .import(good.into_iter(), &config, now, false, &mut |_| {})
        .unwrap();
    assert!(outcome.applied);
    assert_eq!(foreign_keys(&store), 1);
    let left: (i64, i64) = store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM enrollments), (SELECT count(*) FROM legacy_links)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(left, (0, 0));
    assert_eq!(dangling_reference(&store.conn).unwrap(), None);
}

#[test]
fn waiting_times_from_before_version_4_keep_their_exact_moment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    version_1_enrollment(&path, 1);
    let text = "2026-03-10T14:00:00.123456Z";
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE enrollments SET send_at = ?1", params![text])
        .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    let at = parse_time(text).unwrap();
    let (stored, kind): (i64, String) = store
        .conn
        .query_row(
            "SELECT send_at, typeof(send_at) FROM enrollments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((stored, kind.as_str()), (moment(at), "integer"));
    assert_eq!(from_moment(stored).unwrap(), at);
    assert_eq!(store.next_wake().unwrap(), Some(at));
    assert_eq!(planned(&store, at - chrono::Duration::microseconds(1)), 0);
    assert_eq!(planned(&store, at), 1);
    let indexed: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'enrollments_waiting'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1);
}

#[test]
fn links_sent_before_version_2_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    let public_id = version_1_database(&path);
    let store = Store::open(&path).unwrap();
    let version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    // Nothing was lost to a cascade while the table was rebuilt.
    let counts: (i64, i64, i64) = store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM enrollments WHERE id = 3 AND state = 'active' AND next_step = 2),
                    (SELECT count(*) FROM messages WHERE enrollment_id = 3),
                    (SELECT count(*) FROM survey_answers WHERE enrollment_id = 3)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(counts, (1, 1, 1));
    assert_eq!(dangling_reference(&store.conn).unwrap(), None);
    assert_eq!(foreign_keys(&store), 1, "foreign keys are on again");
    // The old link and a new one lead to the same enrollment; an unknown one nowhere.
    let old = store
        .enrollment_by_link(&Target::Legacy(public_id))
        .unwrap()
        .expect("the old link still resolves");
    assert_eq!((old.enrollment_id, old.client_id), (3, 7));
    let new = store
        .enrollment_by_link(&Target::Enrollment(3))
        .unwrap()
        .unwrap();
    assert_eq!(new, old);
    assert!(
        store
            .enrollment_by_link(&Target::Legacy([1; 16]))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .survey_answer(&Target::Legacy(public_id))
            .unwrap()
            .and_then(|a| a.reason)
            .as_deref(),
        Some("price")
    );
    drop(store);
    // Opening again migrates nothing twice; forgetting the person removes the old id.
    let mut store = Store::open(&path).unwrap();
    store
        .forget_person("pat@client.example", DateTime::UNIX_EPOCH)
        .unwrap();
    let legacy: i64 = store
        .conn
        .query_row("SELECT count(*) FROM legacy_links", [], |r| r.get(0))
        .unwrap();
    assert_eq!(legacy, 0);
}

/// The enrollment id of `email`'s one enrollment.
fn enrollment_of(store: &Store, email: &str) -> i64 {
    store
        .conn
        .query_row(
            "SELECT e.id FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
            params![email],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn enrollment_ids_are_never_used_twice_even_across_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    // Before version 5: Pat is enrollment 3; Bob, enrollment 4 (the largest id ever
    // issued), was mailed and then forgotten.
    version_1_enrollment(&path, 1);
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO events (at, client_id, kind, detail) VALUES (?1, NULL, 'forget', 'a person''s data was erased on request')",
        params![T],
    )
    .unwrap();
    drop(conn);
    let config = crate::test_support::config(dir.path(), "", crate::test_support::SURVEY_ONLY);
    let mut store = Store::open(&path).unwrap();
    let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_500);
    let import = |store: &mut Store, email: &str| {
        let record = crate::test_support::left_on_june_1(email);
        let rows = vec![Ok((2, record))];
        let outcome = store
            .import(rows.into_iter(), &config, now, false, &mut |_| {})
            .unwrap();
        assert!(outcome.applied);
        enrollment_of(store, email)
    };
    // Carol, imported after the upgrade, is not given Bob's 4.
    let carol = import(&mut store, "carol@client.example");
    assert!(carol > 4, "Carol got enrollment {carol}");
    assert_eq!(enrollment_of(&store, "pat@client.example"), 3);
    // After the upgrade: forget the newest, import another; the freed id stays unused
    // and its links lead nowhere.
    store.forget_person("carol@client.example", now).unwrap();
    let dave = import(&mut store, "dave@client.example");
    assert!(
        dave > carol,
        "Dave got enrollment {dave}, Carol had {carol}"
    );
    for gone in [4, carol] {
        assert!(
            store
                .enrollment_by_link(&Target::Enrollment(gone))
                .unwrap()
                .is_none()
        );
    }
    // Many at once (the import writes them 32 to a statement): all new, all above.
    let mut ids = Vec::new();
    let rows: Vec<_> = (0..70)
        .map(|i| {
            let record = crate::test_support::left_on_june_1(&format!("p{i}@client.example"));
            Ok((i + 2, record))
        })
        .collect();
    assert!(
        store
            .import(rows.into_iter(), &config, now, false, &mut |_| {})
            .unwrap()
            .applied
    );
    for i in 0..70 {
        ids.push(enrollment_of(&store, &format!("p{i}@client.example")));
    }
    ids.sort_unstable();
    assert_eq!(ids, ((dave + 1)..(dave + 71)).collect::<Vec<_>>());
}

#[test]
fn suppressions_from_before_version_3_still_stop_their_people() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    version_1_enrollment(&path, 1);
    let store = Store::open(&path).unwrap();
    assert_eq!(planned(&store, ever()), 1, "not suppressed: planned");
    let stored_hash: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('clients') WHERE name = 'email_hash'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored_hash, 0, "the copy of the hash is gone");
    drop(store);
    // A suppression keyed by hash alone, as every version writes them (here a
    // forgotten address: its stored email is gone), found through the client's address.
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, NULL, 'forgotten', 'cli', ?2)",
        params![email_hash("Pat@Client.example"), T],
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();
    assert_eq!(planned(&store, ever()), 0, "suppressed: not planned");
}

#[test]
fn link_keys_are_added_beside_the_first_never_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("winback.db")).unwrap();
    let first = store.secret().unwrap();
    assert_eq!(first.key_id(), 1);
    assert_eq!(store.secret().unwrap(), first, "generated once");
    assert_eq!(store.add_link_key(first.to_bytes()).unwrap(), None);
    assert_eq!(store.add_link_key([9; 32]).unwrap(), Some(2));
    assert_eq!(store.add_link_key([9; 32]).unwrap(), None);
    let ring = store.secret().unwrap();
    assert_eq!((ring.key_id(), ring.to_bytes()), (2, [9; 32]));
    let token = crate::token::issue(
        &first,
        crate::token::Purpose::Survey,
        crate::token::Target::Enrollment(7),
    );
    assert_eq!(
        crate::token::verify(&ring, crate::token::Purpose::Survey, &token),
        Some(crate::token::Target::Enrollment(7))
    );
    // A database whose first key is a WINBACK_SECRET keeps it as key 1.
    let mut fresh = Store::open(&dir.path().join("fresh.db")).unwrap();
    assert_eq!(fresh.add_link_key([5; 32]).unwrap(), Some(1));
    assert_eq!(fresh.secret().unwrap().to_bytes(), [5; 32]);
}

#[test]
fn version_15_keeps_every_message_and_refuses_a_second_copy_of_an_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    let conn = Connection::open(&path).unwrap();
    for sql in &MIGRATIONS[..14] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 14).unwrap();
    conn.execute(
        "INSERT INTO clients (id, email, churned_at, created_at, updated_at) VALUES (7, 'pat@client.example', '2025-06-01', ?1, ?1)",
        params![T],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO enrollments (id, client_id, campaign, state, next_step, due_at, send_at, created_at, updated_at)
         VALUES (3, 7, 'former-clients', 'active', 2, ?1, NULL, ?1, ?1)",
        params![T],
    )
    .unwrap();
    for (id, step, state, sent) in [(40, 1, "sent", Some(T)), (41, 2, "retry", None)] {
        conn.execute(
            "INSERT INTO messages (id, enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, attempts,
                                   first_claimed_at, claimed_at, next_attempt_at, sent_at, smtp_reply, last_error, updated_at, started_at)
             VALUES (?1, 3, 7, 'former-clients', 1, ?2, 'survey', ?3, ?4, ?5, 2, ?5, ?5, ?5, ?6, '250 ok', 'late', ?5, ?5)",
            params![id, step, state, format!("<{id}@x>"), T, sent],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO inbound_messages (key, received_at, outcome, client_id, message_row) VALUES ('id:<r@x>', ?1, 'reply', 7, 40)",
        params![T],
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&path).unwrap();
    assert_eq!(foreign_keys(&store), 1);
    // Every column of every row, as it was, and occurrence 1.
    type Row = (i64, u32, String, String, u32, Option<String>, String, u32);
    let rows: Vec<Row> = store
        .conn
        .prepare(
            "SELECT id, step, state, message_id, attempts, sent_at, started_at || smtp_reply || last_error || next_attempt_at, occurrence
             FROM messages ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let kept = format!("{T}250 oklate{T}");
    assert_eq!(
        rows,
        vec![
            (
                40,
                1,
                "sent".to_string(),
                "<40@x>".to_string(),
                2,
                Some(T.to_string()),
                kept.clone(),
                1
            ),
            (
                41,
                2,
                "retry".to_string(),
                "<41@x>".to_string(),
                2,
                None,
                kept,
                1
            ),
        ]
    );
    // The indexes the claim, the retries and status read are all there.
    let indexes: Vec<String> = store
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "messages_by_claim",
            "messages_by_client",
            "messages_by_state",
            "messages_retry",
            "messages_sent"
        ]
    );
    // The reply still points at its message; the pointer stands at occurrence 1.
    let answered: Option<i64> = store
        .conn
        .query_row("SELECT message_row FROM inbound_messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(answered, Some(40));
    let occurrence: u32 = store
        .conn
        .query_row(
            "SELECT next_occurrence FROM enrollments WHERE id = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(occurrence, 1);
    // A step's second occurrence is a row of its own; a second copy of one is refused.
    let insert = |id: i64, occurrence: u32| {
        store.conn.execute(
            "INSERT INTO messages (id, enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at,
                                   first_claimed_at, claimed_at, updated_at, occurrence)
             VALUES (?1, 3, 7, 'former-clients', 1, 1, 'survey', 'sent', ?2, ?3, ?3, ?3, ?3, ?4)",
            params![id, format!("<{id}@x>"), T, occurrence],
        )
    };
    assert!(insert(42, 2).is_ok());
    assert!(insert(43, 2).is_err(), "a second copy of occurrence 2");
    assert!(insert(44, 1).is_err(), "a second copy of occurrence 1");
}
