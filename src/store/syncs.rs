//! The daemon's looks at the CRM files it syncs (`[clients] sync_file`, `customers_file`):
//! each kept as a row for `status`, `report` and `/metrics`, and failed looks counted.
//!
//! Holds no rules: whether a look repeats the last one is `SyncReport::repeats`'s to say.
//! Never touches clients.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Result, Store, StoreError, fmt_time, parse_opt_time, parse_time};
use crate::domain::model::{SyncOutcome, SyncReport, SyncRun};

/// Rows kept; older ones go (the failure count stays in `meta`).
const KEPT: i64 = 1000;

const COLUMNS: &str = "file, first_at, at, looks, outcome, added, updated, unchanged, bad_rows, error, last_imported_at";

impl Store {
    /// Keeps what a look at a sync file found. A failed look that repeats the latest one
    /// of that file (the same failure) adds to its count of looks; every failed look adds
    /// one to the failures counted for `/metrics`. A failed sync keeps the time of the
    /// last import of the file.
    pub(crate) fn record_sync(&mut self, report: &SyncReport) -> Result<()> {
        let tx = self.write_tx()?;
        let latest = tx
            .prepare_cached(&format!(
                "SELECT id, {COLUMNS} FROM syncs WHERE file = ?1 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row(params![report.file], |r| {
                Ok((r.get::<_, i64>(0)?, raw(r, 1)?))
            })
            .optional()?;
        let latest = latest
            .map(|(id, raw)| Ok::<_, StoreError>((id, decode(raw)?)))
            .transpose()?;
        let mut report = report.clone();
        if report.outcome == SyncOutcome::Imported {
            report.last_imported_at = Some(report.at);
        } else if report.last_imported_at.is_none() {
            report.last_imported_at = latest
                .as_ref()
                .and_then(|(_, run)| run.report.last_imported_at);
        }
        match latest {
            Some((id, run)) if report.repeats(&run.report) => {
                tx.execute(
                    "UPDATE syncs SET at = ?2, looks = looks + 1 WHERE id = ?1",
                    params![id, fmt_time(report.at)],
                )?;
            }
            _ => {
                tx.execute(
                    &format!("INSERT INTO syncs ({COLUMNS}) VALUES (?1, ?2, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                    params![
                        report.file,
                        fmt_time(report.at),
                        report.outcome.as_str(),
                        report.added as i64,
                        report.updated as i64,
                        report.unchanged as i64,
                        report.bad_rows as i64,
                        report.error,
                        report.last_imported_at.map(fmt_time),
                    ],
                )?;
                tx.execute(
                    "DELETE FROM syncs WHERE id <= ?1",
                    params![tx.last_insert_rowid() - KEPT],
                )?;
            }
        }
        if report.outcome != SyncOutcome::Imported {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('sync_failures_total', 1)
                 ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The latest look at any sync file, if the daemon ever looked.
    pub(crate) fn last_sync(&self) -> Result<Option<SyncRun>> {
        Ok(self.recent_syncs(1)?.pop())
    }

    /// The latest look at each sync file, by file name.
    pub(crate) fn latest_syncs(&self) -> Result<Vec<SyncRun>> {
        runs(
            &self.conn,
            &format!(
                "SELECT {COLUMNS} FROM syncs WHERE id IN (SELECT MAX(id) FROM syncs GROUP BY file)
                 ORDER BY file"
            ),
            [],
        )
    }

    /// The latest `limit` looks, newest first.
    pub(crate) fn recent_syncs(&self, limit: usize) -> Result<Vec<SyncRun>> {
        runs(
            &self.conn,
            &format!("SELECT {COLUMNS} FROM syncs ORDER BY id DESC LIMIT ?1"),
            [limit as i64],
        )
    }

    /// Failed looks at sync files (refused, missing, unreadable), ever: a counter that
    /// survives restarts.
    pub(crate) fn sync_failures_total(&self) -> Result<u64> {
        let total: Option<i64> = self
            .conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'sync_failures_total'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(total.unwrap_or(0).max(0) as u64)
    }
}

type Raw = (
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

fn raw(r: &Row<'_>, from: usize) -> rusqlite::Result<Raw> {
    Ok((
        r.get(from)?,
        r.get(from + 1)?,
        r.get(from + 2)?,
        r.get(from + 3)?,
        r.get(from + 4)?,
        r.get(from + 5)?,
        r.get(from + 6)?,
        r.get(from + 7)?,
        r.get(from + 8)?,
        r.get(from + 9)?,
        r.get(from + 10)?,
    ))
}

fn decode(raw: Raw) -> Result<SyncRun> {
    let (file, first_at, at, looks, outcome, added, updated, unchanged, bad_rows, error, last) =
        raw;
    let outcome = match outcome.as_str() {
        "imported" => SyncOutcome::Imported,
        "refused" => SyncOutcome::Refused,
        "missing" => SyncOutcome::Missing,
        "unreadable" => SyncOutcome::Unreadable,
        other => {
            return Err(StoreError::Corrupt(format!(
                "sync outcome {other:?} of {file}"
            )));
        }
    };
    let count = |n: i64| n.max(0) as u64;
    Ok(SyncRun {
        report: SyncReport {
            at: parse_time(&at)?,
            file,
            outcome,
            added: count(added),
            updated: count(updated),
            unchanged: count(unchanged),
            bad_rows: count(bad_rows),
            error,
            last_imported_at: parse_opt_time(last)?,
        },
        first_at: parse_time(&first_at)?,
        looks: count(looks),
    })
}

fn runs<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> Result<Vec<SyncRun>> {
    let rows = conn
        .prepare_cached(sql)?
        .query_map(params, |r| raw(r, 0))?
        .collect::<rusqlite::Result<Vec<Raw>>>()?;
    rows.into_iter().map(decode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// The time of a look `minutes` after `t0`.
    fn at(t0: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        t0 + chrono::Duration::minutes(minutes)
    }

    fn look(outcome: SyncOutcome, at: DateTime<Utc>) -> SyncReport {
        SyncReport {
            at,
            file: "/crm/clients.csv".to_string(),
            outcome,
            added: u64::from(outcome == SyncOutcome::Imported) * 3,
            updated: 0,
            unchanged: 0,
            bad_rows: 0,
            error: (outcome != SyncOutcome::Imported).then(|| "No such file".to_string()),
            last_imported_at: None,
        }
    }

    #[test]
    fn each_sync_is_kept_repeated_failures_are_one_run_and_failures_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("winback.db");
        let t0 = DateTime::parse_from_rfc3339("2026-06-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        {
            let mut store = Store::open(&path).unwrap();
            assert_eq!(store.last_sync().unwrap(), None);
            assert_eq!(store.sync_failures_total().unwrap(), 0);
            store
                .record_sync(&look(SyncOutcome::Imported, at(t0, 0)))
                .unwrap();
            for minute in 1..=3 {
                store
                    .record_sync(&look(SyncOutcome::Missing, at(t0, minute)))
                    .unwrap();
            }
            let mut other = look(SyncOutcome::Unreadable, at(t0, 4));
            other.file = "/crm/customers.csv".to_string();
            store.record_sync(&other).unwrap();
        }
        // Reopened: nothing was only in memory.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.sync_failures_total().unwrap(), 4);
        let recent = store.recent_syncs(10).unwrap();
        assert_eq!(recent.len(), 3, "{recent:#?}");
        let missing = &recent[1];
        assert_eq!(missing.report.outcome, SyncOutcome::Missing);
        assert_eq!(
            (missing.first_at, missing.report.at, missing.looks),
            (at(t0, 1), at(t0, 3), 3)
        );
        assert_eq!(missing.report.last_imported_at, Some(t0));
        assert_eq!(recent[2].report.added, 3);
        let latest: Vec<(String, SyncOutcome)> = store
            .latest_syncs()
            .unwrap()
            .into_iter()
            .map(|r| (r.report.file, r.report.outcome))
            .collect();
        assert_eq!(
            latest,
            [
                ("/crm/clients.csv".to_string(), SyncOutcome::Missing),
                ("/crm/customers.csv".to_string(), SyncOutcome::Unreadable)
            ]
        );
        assert_eq!(
            store.last_sync().unwrap().map(|r| r.report.file),
            Some("/crm/customers.csv".to_string())
        );
    }

    #[test]
    fn the_one_sync_kept_before_this_schema_becomes_its_first_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("winback.db");
        let mine = include_str!("schema12.sql");
        let before = super::super::migrate::MIGRATIONS
            .iter()
            .position(|sql| *sql == mine)
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            super::super::add_email_hash_function(&conn).unwrap();
            for sql in &super::super::migrate::MIGRATIONS[..before] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_sync', ?1)",
                [r#"{"at":"2026-06-01T10:00:00Z","file":"/crm/clients.csv","outcome":"refused","added":0,"updated":0,"unchanged":0,"bad_rows":2,"error":"line 3: invalid email address","last_imported_at":"2026-05-31T22:00:00Z"}"#],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", before as i64)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let run = store.last_sync().unwrap().unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            run,
            SyncRun {
                report: SyncReport {
                    at: t("2026-06-01T10:00:00Z"),
                    file: "/crm/clients.csv".to_string(),
                    outcome: SyncOutcome::Refused,
                    added: 0,
                    updated: 0,
                    unchanged: 0,
                    bad_rows: 2,
                    error: Some("line 3: invalid email address".to_string()),
                    last_imported_at: Some(t("2026-05-31T22:00:00Z")),
                },
                first_at: t("2026-06-01T10:00:00Z"),
                looks: 1,
            }
        );
        assert_eq!(store.sync_failures_total().unwrap(), 1);
    }
}
