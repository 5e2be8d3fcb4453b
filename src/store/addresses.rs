//! Stored addresses in their one normalized form (see `model::normalize_email`): the Rust
//! step of the migration that brought domains to IDNA ASCII and local parts to NFC, and the
//! healing of hashed-only suppressions written under an older spelling.
//!
//! It must not decide anything about sending: it only makes two spellings of one mailbox
//! one row, so that the checks everywhere else see one person.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::clients::id_by_email;
use super::{Result, lower_hex};
use crate::domain::model::{legacy_spellings, normalize_email};
use crate::domain::suppression::{self, Reason, Recording, Suppression};

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
        match id_by_email(conn, &normalized)? {
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
                let this = Suppression::decode(&reason, &source);
                let other = Suppression::decode(&other_reason, &other_source);
                // A reason this build does not know stays as it was found: kept where it
                // is (see `suppression::record`), never moved over a known one.
                let stronger = this.reason != Reason::Unknown
                    && suppression::record(Some(&other), &this) == Recording::Replace;
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
mod tests;
