//! Stored addresses in their one normalized form (see `model::normalize_email`): the Rust
//! step of the migration that brought domains to IDNA ASCII and local parts to NFC, and the
//! healing of hashed-only suppressions written under an older spelling.
//!
//! It must not decide anything about sending: it only makes two spellings of one mailbox
//! one row, so that the checks everywhere else see one person.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Result, lower_hex};
use crate::domain::model::{legacy_spellings, normalize_email};
use crate::domain::suppression::{self, Recording, Suppression};

/// The suppression key of a text exactly as given (no normalization): what older
/// versions stored for the spelling they had.
fn hash_as_spelled(text: &str) -> String {
    lower_hex(&Sha256::digest(text.as_bytes()))
}

/// The migration's Rust step, run in its transaction with foreign keys off: every client
/// and every suppression that still shows its address gets the normalized spelling (and
/// the hash of it). Two clients that turn out to be one mailbox become one (see
/// [`merge_client`]); two suppressions become one with the stronger reason. Hashed-only
/// suppressions (forgotten people) cannot be spelled again; those of clients present now
/// are found through [`heal_suppression`], later ones when the address is imported.
pub(super) fn normalize_stored(conn: &Connection) -> Result<()> {
    // Only a non-ASCII address can change: an ASCII one was already trimmed and
    // lower-cased. `length` counts characters of a text and bytes of a blob.
    let clients: Vec<(i64, String)> = conn
        .prepare(
            "SELECT id, email FROM clients WHERE length(email) <> length(CAST(email AS BLOB)) ORDER BY id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    for (id, email) in clients {
        let normalized = normalize_email(&email);
        if normalized == email {
            continue;
        }
        let keeper: Option<i64> = conn
            .query_row(
                "SELECT id FROM clients WHERE email = ?1",
                params![normalized],
                |r| r.get(0),
            )
            .optional()?;
        match keeper {
            None => {
                conn.execute(
                    "UPDATE clients SET email = ?2 WHERE id = ?1",
                    params![id, normalized],
                )?;
            }
            Some(keeper) => merge_client(conn, keeper, id)?,
        }
    }

    let suppressions: Vec<(String, String, String, String)> = conn
        .prepare(
            "SELECT email_hash, email, reason, source FROM suppressions
             WHERE email IS NOT NULL AND length(email) <> length(CAST(email AS BLOB))",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<std::result::Result<_, _>>()?;
    for (hash, email, reason, source) in suppressions {
        let normalized = normalize_email(&email);
        let new_hash = hash_as_spelled(&normalized);
        if normalized == email && new_hash == hash {
            continue;
        }
        let other: Option<(String, String)> = conn
            .query_row(
                "SELECT reason, source FROM suppressions WHERE email_hash = ?1",
                params![new_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match other {
            None => {
                conn.execute(
                    "UPDATE suppressions SET email_hash = ?2, email = ?3 WHERE email_hash = ?1",
                    params![hash, new_hash, normalized],
                )?;
            }
            Some((other_reason, other_source)) => {
                let stronger = match (
                    Suppression::parse(&reason, &source),
                    Suppression::parse(&other_reason, &other_source),
                ) {
                    (Some(this), Some(other)) => {
                        suppression::record(Some(&other), &this) == Recording::Replace
                    }
                    // A reason this build does not know stays as it was found.
                    _ => false,
                };
                if stronger {
                    conn.execute(
                        "UPDATE suppressions SET (reason, source, created_at) =
                             (SELECT reason, source, created_at FROM suppressions WHERE email_hash = ?1)
                         WHERE email_hash = ?2",
                        params![hash, new_hash],
                    )?;
                }
                conn.execute(
                    "DELETE FROM suppressions WHERE email_hash = ?1",
                    params![hash],
                )?;
            }
        }
    }

    let respelt_clients: Vec<String> = conn
        .prepare(
            "SELECT email FROM clients
             WHERE email LIKE '%xn--%' OR length(email) <> length(CAST(email AS BLOB))",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for email in respelt_clients {
        heal_suppression(conn, &email)?;
    }
    Ok(())
}

/// A suppression written for `email` under an older spelling (the domain in Unicode, or
/// accents decomposed: see [`legacy_spellings`]), hashed before addresses were normalized
/// and kept as a hash only once the person was forgotten, is keyed again by the
/// normalized spelling, so it stops `email` as it stopped the old one. Run when a client
/// is added and when an address is opted out. Cheap when `email` is plain ASCII without
/// IDNA labels: nothing to look up.
pub(super) fn heal_suppression(conn: &Connection, email: &str) -> Result<()> {
    for old in legacy_spellings(email) {
        let healed = conn
            .prepare_cached(
                "UPDATE suppressions SET email_hash = ?2
                 WHERE email_hash = ?1 AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ?2)",
            )?
            .execute(params![hash_as_spelled(&old), hash_as_spelled(email)])?;
        if healed > 0 {
            break;
        }
    }
    Ok(())
}

/// Makes client `duplicate` (another spelling of `keeper`'s mailbox) part of `keeper`:
/// its empty values are filled in (a return too: a person who came back under either
/// spelling is mailed no more; custom fields only one of them had are kept), and of two enrollments in one campaign the one with
/// more messages stays (with a survey answer from either, and the links sent for the
/// other, see `merged_enrollments`), so the person is never surveyed twice; an
/// enrollment only the duplicate had moves over. Its events follow;
/// then the duplicate row goes.
fn merge_client(conn: &Connection, keeper: i64, duplicate: i64) -> Result<()> {
    conn.execute(
        "UPDATE clients SET
             name = coalesce(name, (SELECT name FROM clients WHERE id = ?2)),
             first_name = coalesce(first_name, (SELECT first_name FROM clients WHERE id = ?2)),
             company = coalesce(company, (SELECT company FROM clients WHERE id = ?2)),
             churn_reason = coalesce(churn_reason, (SELECT churn_reason FROM clients WHERE id = ?2)),
             timezone = coalesce(timezone, (SELECT timezone FROM clients WHERE id = ?2)),
             returned_at = coalesce(returned_at, (SELECT returned_at FROM clients WHERE id = ?2)),
             fields = json_patch((SELECT fields FROM clients WHERE id = ?2), fields)
         WHERE id = ?1",
        params![keeper, duplicate],
    )?;
    let enrollments: Vec<(i64, String)> = conn
        .prepare("SELECT id, campaign FROM enrollments WHERE client_id = ?1")?
        .query_map(params![duplicate], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let messages = |enrollment: i64| -> Result<i64> {
        Ok(conn.query_row(
            "SELECT count(*) FROM messages WHERE enrollment_id = ?1",
            params![enrollment],
            |r| r.get(0),
        )?)
    };
    for (theirs, campaign) in enrollments {
        let ours: Option<i64> = conn
            .query_row(
                "SELECT id FROM enrollments WHERE client_id = ?1 AND campaign = ?2",
                params![keeper, campaign],
                |r| r.get(0),
            )
            .optional()?;
        let (stays, goes) = match ours {
            None => (theirs, None),
            Some(ours) if messages(theirs)? > messages(ours)? => (theirs, Some(ours)),
            Some(ours) => (ours, Some(theirs)),
        };
        if let Some(goes) = goes {
            conn.execute(
                "UPDATE survey_answers SET enrollment_id = ?2
                 WHERE enrollment_id = ?1 AND NOT EXISTS (SELECT 1 FROM survey_answers WHERE enrollment_id = ?2)",
                params![goes, stays],
            )?;
            // Links were sent for it if it has messages: they go on reaching the person.
            if messages(goes)? > 0 {
                conn.execute(
                    "INSERT INTO merged_enrollments (id, enrollment_id) VALUES (?1, ?2)",
                    params![goes, stays],
                )?;
            }
            conn.execute(
                "UPDATE legacy_links SET enrollment_id = ?2 WHERE enrollment_id = ?1",
                params![goes, stays],
            )?;
            for table in ["messages", "survey_answers"] {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE enrollment_id = ?1"),
                    params![goes],
                )?;
            }
            conn.execute("DELETE FROM enrollments WHERE id = ?1", params![goes])?;
        }
        conn.execute(
            "UPDATE enrollments SET client_id = ?2 WHERE id = ?1",
            params![stays, keeper],
        )?;
        for table in ["messages", "survey_answers"] {
            conn.execute(
                &format!("UPDATE {table} SET client_id = ?2 WHERE enrollment_id = ?1"),
                params![stays, keeper],
            )?;
        }
    }
    conn.execute(
        "UPDATE events SET client_id = ?2 WHERE client_id = ?1",
        params![duplicate, keeper],
    )?;
    conn.execute("DELETE FROM clients WHERE id = ?1", params![duplicate])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    use crate::domain::model::{ChurnedAt, ClientRecord};
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
                params![id, email, hash_as_spelled(email), (id == 7).then_some("Ann"), T],
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
                ClientRecord {
                    email: normalize_email(email),
                    name: None,
                    first_name: None,
                    company: None,
                    churned_at: ChurnedAt::parse("2025-06-01").unwrap(),
                    churn_reason: None,
                    timezone: None,
                    fields: Default::default(),
                },
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
}
