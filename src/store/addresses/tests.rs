use super::*;
use chrono::DateTime;

use crate::store::migrate::MIGRATIONS;
use crate::store::{Store, email_hash, parse_time};
use crate::token::Target;

const T: &str = "2026-01-01T00:00:00.000000Z";

/// A database as the first schema left it, with addresses spelt as versions before
/// IDNA normalization stored them: Ann twice (her domain in Unicode, not yet mailed,
/// and in ASCII, surveyed), Bob opted out under the Unicode spelling, Dan bounced
/// under one spelling and opted out under the other, Carol forgotten (a hash only).
fn old_database(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(MIGRATIONS[0]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    for (id, email) in [(7, "ann@bücher.example"), (8, "ann@xn--bcher-kva.example")] {
        conn.execute(
            "INSERT INTO clients (id, email, email_hash, name, churned_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, '2025-06-01', ?5, ?5)",
            params![
                id,
                email,
                hash_as_spelled(email),
                (id == 7).then_some("Ann"),
                T
            ],
        )
        .unwrap();
    }
    conn.execute(
            "INSERT INTO enrollments (id, client_id, campaign, public_id, state, next_step, due_at, send_at, created_at, updated_at)
             VALUES (3, 7, 'former-clients', x'01', 'active', 1, ?1, ?1, ?1, ?1),
                    (4, 8, 'former-clients', x'02', 'active', 2, ?1, NULL, ?1, ?1)",
            params![T],
        )
        .unwrap();
    conn.execute(
            "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, first_claimed_at, claimed_at, sent_at, updated_at)
             VALUES (4, 8, 'former-clients', 1, 1, 'survey', 'sent', '<1@x>', ?1, ?1, ?1, ?1, ?1)",
            params![T],
        )
        .unwrap();
    for (email, stored, reason) in [
        ("bob@bücher.example", true, "opt_out"),
        ("dan@bücher.example", true, "bounce"),
        ("dan@xn--bcher-kva.example", true, "opt_out"),
        ("carol@bücher.example", false, "forgotten"),
    ] {
        conn.execute(
                "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, ?2, ?3, 'cli', ?4)",
                params![hash_as_spelled(email), stored.then_some(email), reason, T],
            )
            .unwrap();
    }
}

/// Ann came back as a client under the Unicode spelling, and a custom field was only
/// known there, while the ASCII spelling still had a step due. The one Ann left
/// after the migration has come back (and is mailed no more) and keeps the field.
#[test]
fn a_merged_client_keeps_the_return_and_the_fields_of_either_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    old_database(&path);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
            "UPDATE clients SET returned_at = '{T}', fields = '{{\"plan\":\"gold\"}}' WHERE id = 7;
             UPDATE clients SET fields = '{{\"seats\":\"12\"}}' WHERE id = 8;
             UPDATE enrollments SET state = 'returned', send_at = NULL, stopped_at = '{T}' WHERE id = 3;
             UPDATE enrollments SET send_at = '{T}' WHERE id = 4;"
        ))
        .unwrap();
    drop(conn);
    let store = Store::open(&path).unwrap();

    let (returned_at, fields): (Option<String>, String) = store
        .conn
        .query_row(
            "SELECT returned_at, fields FROM clients WHERE email = 'ann@xn--bcher-kva.example'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(returned_at.as_deref(), Some(T));
    assert_eq!(fields, r#"{"plan":"gold","seats":"12"}"#);
    let later = parse_time("2027-01-01T00:00:00.000000Z").unwrap();
    let planned = store.plan_data(later, DateTime::UNIX_EPOCH).unwrap().rows;
    assert!(planned.is_empty(), "she came back: nothing is planned");
}

fn suppressions(store: &Store) -> Vec<(String, Option<String>, String)> {
    store
        .conn
        .prepare("SELECT email_hash, email, reason FROM suppressions ORDER BY reason, email")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap()
}

/// Imports these addresses as a CRM file spells them (each who left on 2025-06-01,
/// for no given reason) and returns who is planned to be mailed.
fn import_and_plan(store: &mut Store, dir: &std::path::Path, emails: &[&str]) -> Vec<String> {
    let config = crate::test_support::config(dir, "", crate::test_support::SURVEY_ONLY);
    let now = parse_time("2026-06-01T00:00:00.000000Z").unwrap();
    let rows = emails.iter().enumerate().map(|(i, email)| {
        Ok((
            i as u64 + 2,
            crate::test_support::left_on_june_1(&normalize_email(email)),
        ))
    });
    assert!(
        store
            .import(rows, &config, now, false, &mut |_| {})
            .unwrap()
            .applied
    );
    store
        .plan_data(now, DateTime::UNIX_EPOCH)
        .unwrap()
        .rows
        .into_iter()
        .map(|row| row.email)
        .collect()
}

/// Ann was surveyed under both spellings; the migration keeps one enrollment. The
/// links in the survey to the other spelling still reach her (one-click opt-out
/// included), as an old-style link to it does.
#[test]
fn the_links_of_a_merged_enrollment_still_reach_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    old_database(&path);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
            "UPDATE enrollments SET public_id = x'{}' WHERE id = 3;
             UPDATE enrollments SET send_at = '{T}' WHERE id = 4;
             INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, first_claimed_at, claimed_at, sent_at, updated_at)
             VALUES (3, 7, 'former-clients', 1, 1, 'survey', 'sent', '<2@x>', '{T}', '{T}', '{T}', '{T}', '{T}');",
            "03".repeat(16)
        ))
        .unwrap();
    drop(conn);
    let mut store = Store::open(&path).unwrap();

    for link in [Target::Enrollment(3), Target::Legacy([3; 16])] {
        let view = store.enrollment_by_link(&link).unwrap();
        assert_eq!(
            view.map(|v| (v.enrollment_id, v.email)),
            Some((4, "ann@xn--bcher-kva.example".to_string())),
            "{link:?}"
        );
    }
    let now = parse_time("2026-06-01T00:00:00.000000Z").unwrap();
    assert_eq!(
        store
            .opt_out_enrollment(&Target::Enrollment(3), "link", now)
            .unwrap(),
        crate::store::OptOutOutcome::OptedOut
    );
    let later = parse_time("2027-01-01T00:00:00.000000Z").unwrap();
    assert!(store.plan_data(later, now).unwrap().rows.is_empty());
}

/// Older versions hashed an address as the file spelt it, only lower-cased: a CRM
/// that writes accents decomposed (e + U+0301) had a forgotten person hashed that way.
/// The same file imported now (read in NFC, the domain in IDNA) still plans nothing
/// for them.
#[test]
fn a_forgotten_address_hashed_with_decomposed_accents_stays_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("winback.db")).unwrap();
    let rene = "rene\u{301}@x.example";
    let zoe = "zoe\u{308}@bu\u{308}cher.example";
    for email in [rene, zoe] {
        store
            .conn
            .execute(
                "INSERT INTO suppressions (email_hash, email, reason, source, created_at)
                     VALUES (?1, NULL, 'forgotten', 'cli', ?2)",
                params![hash_as_spelled(email), T],
            )
            .unwrap();
    }
    let planned = import_and_plan(&mut store, dir.path(), &[rene, zoe, "eve@x.example"]);
    assert_eq!(planned, ["eve@x.example"]);
}

/// Carol was forgotten under the Unicode spelling (a hash only). Opting her out now
/// finds that she already is, and writes her address nowhere.
#[test]
fn opting_out_a_person_forgotten_under_an_older_spelling_stores_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("winback.db")).unwrap();
    store
        .conn
        .execute(
            "INSERT INTO suppressions (email_hash, email, reason, source, created_at)
                 VALUES (?1, NULL, 'forgotten', 'cli', ?2)",
            params![hash_as_spelled("carol@bücher.example"), T],
        )
        .unwrap();
    let now = parse_time("2026-06-01T00:00:00.000000Z").unwrap();
    let newly = store
        .record_opt_out("carol@xn--bcher-kva.example", "cli", now)
        .unwrap();
    assert!(!newly, "she is already suppressed");
    let carol = "carol@xn--bcher-kva.example";
    assert_eq!(
        suppressions(&store),
        [(email_hash(carol), None, "forgotten".into())]
    );
}

#[test]
fn the_migration_makes_two_spellings_of_one_mailbox_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winback.db");
    old_database(&path);
    let mut store = Store::open(&path).unwrap();

    let clients: Vec<(i64, String, Option<String>)> = store
        .conn
        .prepare("SELECT id, email, name FROM clients")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(
        clients,
        [(8, "ann@xn--bcher-kva.example".into(), Some("Ann".into()))]
    );
    let enrollments: Vec<(i64, i64)> = store
        .conn
        .prepare("SELECT id, client_id FROM enrollments")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    assert_eq!(
        enrollments,
        [(4, 8)],
        "the surveyed one stays; no second survey"
    );
    assert_eq!(
        crate::store::migrate::dangling_reference(&store.conn).unwrap(),
        None
    );

    let bob = "bob@xn--bcher-kva.example";
    let dan = "dan@xn--bcher-kva.example";
    let carol_old = hash_as_spelled("carol@bücher.example");
    assert_eq!(
        suppressions(&store),
        [
            (carol_old, None, "forgotten".into()),
            (email_hash(bob), Some(bob.into()), "opt_out".into()),
            (email_hash(dan), Some(dan.into()), "opt_out".into()),
        ]
    );

    // Importing any spelling of Bob, Dan or Carol plans nothing for them.
    let planned = import_and_plan(
        &mut store,
        dir.path(),
        &[
            "bob@bücher.example",
            dan,
            "carol@BÜCHER.example",
            "eve@bücher.example",
        ],
    );
    assert_eq!(planned, ["eve@xn--bcher-kva.example"]);
}
