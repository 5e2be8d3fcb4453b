//! Former clients: import (upsert by address), opt-outs, returns.
//!
//! An import runs in one transaction: a file with bad rows changes nothing unless the
//! operator asks to skip them. Suppressions (opt-outs, bounces) are keyed by address and
//! are never touched by an import.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension, Statement, Transaction, params};

use super::enroll::{self, ClientFacts};
use super::{Result, Store, StoreError, email_hash, fmt_time, log_event, parse_opt_time};
use crate::config::Config;
use crate::domain::model::{
    ChurnedAt, ClientRecord, EnrollmentState, SyncOutcome, SyncReport, normalize_email,
};
use crate::domain::suppression::{self, Reason, Recording, Suppression};
use crate::import::csv::RowError;

/// Bad rows kept for the report; beyond this they are only counted.
const MAX_REPORTED_ERRORS: usize = 1000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub counts: ImportCounts,
    /// The first bad rows, in file order.
    pub errors: Vec<RowError>,
    /// All bad rows, including those not kept in `errors`.
    pub error_count: u64,
    /// False when bad rows made the whole file be rolled back.
    pub applied: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReturnOutcome {
    Unknown,
    /// Sequences stopped (how many were active).
    Recorded {
        stopped: usize,
    },
    AlreadyReturned,
}

/// A client row as stored.
pub(crate) struct StoredClient {
    pub id: i64,
    pub record: ClientRecord,
    pub returned_at: Option<DateTime<Utc>>,
}

impl StoredClient {
    pub fn facts(&self) -> ClientFacts<'_> {
        ClientFacts {
            id: self.id,
            churned_at: self.record.churned_at,
            churn_reason: self.record.churn_reason.as_deref(),
            timezone: self.record.timezone,
        }
    }
}

/// Rows as an import takes them: a batch of prepared rows and bad ones, in file order.
pub type ImportChunk = Vec<std::result::Result<PreparedClient, RowError>>;

/// A valid row with every value its insert needs already computed (texts, the
/// first step in each campaign). Making one is pure and needs no database, so a large
/// import makes them on another thread while this one writes.
pub struct PreparedClient {
    record: ClientRecord,
    churned_at: String,
    fields: String,
    /// One per configured campaign, in order; `None` where it does not take them in.
    first_steps: Vec<Option<enroll::FirstStep>>,
}

impl PreparedClient {
    pub fn new(record: ClientRecord, config: &Config, now: DateTime<Utc>) -> PreparedClient {
        let facts = ClientFacts {
            id: 0,
            churned_at: record.churned_at,
            churn_reason: record.churn_reason.as_deref(),
            timezone: record.timezone,
        };
        let first_steps = config
            .campaigns
            .iter()
            .map(|campaign| enroll::first_step(campaign, &facts, now))
            .collect();
        PreparedClient {
            churned_at: record.churned_at.to_string(),
            fields: fields_json(&record.fields),
            first_steps,
            record,
        }
    }
}

const CLIENT_COLUMNS: &str =
    "id, email, name, first_name, company, churned_at, churn_reason, timezone, fields, returned_at";

/// [`CLIENT_COLUMNS`] of `clients` aliased `c`, for queries that join it.
pub(crate) const JOINED_CLIENT_COLUMNS: &str = "c.id, c.email, c.name, c.first_name, c.company, c.churned_at, c.churn_reason, c.timezone, c.fields, c.returned_at";

pub(crate) fn client_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, [Option<String>; 9])> {
    client_from_row_at(r, 0)
}

/// The client columns of a row in which they start at column `first`.
pub(crate) fn client_from_row_at(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<(i64, [Option<String>; 9])> {
    let mut cols: [Option<String>; 9] = Default::default();
    for (i, col) in cols.iter_mut().enumerate() {
        *col = r.get(first + 1 + i)?;
    }
    Ok((r.get(first)?, cols))
}

pub(crate) fn decode_client(id: i64, cols: [Option<String>; 9]) -> Result<StoredClient> {
    let [
        email,
        name,
        first_name,
        company,
        churned_at,
        churn_reason,
        timezone,
        fields,
        returned_at,
    ] = cols;
    let churned_text = churned_at.unwrap_or_default();
    let churned_at = ChurnedAt::parse(&churned_text)
        .ok_or_else(|| StoreError::Corrupt(format!("churned_at {churned_text:?}")))?;
    let timezone = decode_timezone(timezone.as_deref())?;
    let fields: BTreeMap<String, String> = serde_json::from_str(fields.as_deref().unwrap_or("{}"))
        .map_err(|e| StoreError::Corrupt(format!("fields: {e}")))?;
    Ok(StoredClient {
        id,
        record: ClientRecord {
            email: email.unwrap_or_default(),
            name,
            first_name,
            company,
            churned_at,
            churn_reason,
            timezone,
            fields,
        },
        returned_at: parse_opt_time(returned_at)?,
    })
}

/// A client's stored time zone, if they have one of their own.
pub(crate) fn decode_timezone(text: Option<&str>) -> Result<Option<Tz>> {
    text.map(|t| {
        t.parse::<Tz>()
            .map_err(|_| StoreError::Corrupt(format!("timezone {t:?}")))
    })
    .transpose()
}

pub(crate) fn load_facts(conn: &Connection, id: i64) -> Result<Option<StoredClient>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1"
        ))?
        .query_row(params![id], client_from_row)
        .optional()?;
    row.map(|(id, cols)| decode_client(id, cols)).transpose()
}

pub(crate) fn load_by_email(conn: &Connection, email: &str) -> Result<Option<StoredClient>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE email = ?1"
        ))?
        .query_row(params![normalize_email(email)], client_from_row)
        .optional()?;
    row.map(|(id, cols)| decode_client(id, cols)).transpose()
}

fn fields_json(fields: &BTreeMap<String, String>) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "{}".to_string())
}

/// Stops every active enrollment of a client, and cancels their queued retries.
pub(crate) fn stop_client(
    conn: &Connection,
    client_id: i64,
    state: EnrollmentState,
    now: DateTime<Utc>,
) -> Result<usize> {
    let stopped = conn
        .prepare_cached(
            "UPDATE enrollments SET state = ?2, send_at = NULL, due_at = NULL, stopped_at = ?3, updated_at = ?3
             WHERE client_id = ?1 AND state = 'active'",
        )?
        .execute(params![client_id, state.as_str(), fmt_time(now)])?;
    conn.prepare_cached(
        "UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = ?2 WHERE client_id = ?1 AND state IN ('retry', 'held')",
    )?
    .execute(params![client_id, fmt_time(now)])?;
    Ok(stopped)
}

impl Store {
    /// Upserts former clients by address. With `skip_invalid` false, any bad row rolls
    /// the whole file back. `progress` is called now and then with the rows read so far.
    pub fn import<I>(
        &mut self,
        rows: I,
        config: &Config,
        now: DateTime<Utc>,
        skip_invalid: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ImportOutcome>
    where
        I: Iterator<Item = std::result::Result<(u64, ClientRecord), RowError>>,
    {
        let prepared =
            rows.map(|row| vec![row.map(|(_, record)| PreparedClient::new(record, config, now))]);
        self.import_prepared(prepared, config, now, skip_invalid, progress, &mut drop)
    }

    /// [`Store::import`] for rows already prepared (see [`PreparedClient`]), in chunks.
    /// Each chunk, once written, goes to `done`: a chunk made on another thread is best
    /// freed there, which is cheaper than freeing it here.
    pub fn import_prepared<I>(
        &mut self,
        chunks: I,
        config: &Config,
        now: DateTime<Utc>,
        skip_invalid: bool,
        progress: &mut dyn FnMut(u64),
        done: &mut dyn FnMut(ImportChunk),
    ) -> Result<ImportOutcome>
    where
        I: Iterator<Item = ImportChunk>,
    {
        self.sync_campaigns(config, now)?;
        // Foreign keys off for the import itself (it can only be switched between
        // transactions): each enrollment it adds refers to the client it added just
        // before, and the one row it may delete (an unstarted enrollment) takes its
        // dependents with it explicitly. The checks would cost a lookup per enrollment.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let imported = self.import_rows(chunks, config, now, skip_invalid, progress, done);
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        imported
    }

    fn import_rows<I>(
        &mut self,
        chunks: I,
        config: &Config,
        now: DateTime<Utc>,
        skip_invalid: bool,
        progress: &mut dyn FnMut(u64),
        done: &mut dyn FnMut(ImportChunk),
    ) -> Result<ImportOutcome>
    where
        I: Iterator<Item = ImportChunk>,
    {
        let tx = self.conn.transaction()?;
        let now_text = fmt_time(now);
        let mut new_rows = NewRows::prepare(&tx, config, &now_text)?;
        let mut outcome = ImportOutcome::default();
        let mut seen = 0u64;
        let mut unread_rest = false;
        for chunk in chunks {
            for row in &chunk {
                seen += 1;
                if seen.is_multiple_of(10_000) {
                    progress(seen);
                }
                match row {
                    Ok(client) => {
                        if outcome.error_count > 0 && !skip_invalid {
                            continue; // it will be rolled back anyway; just keep validating
                        }
                        upsert(
                            &tx,
                            &mut new_rows,
                            config,
                            client,
                            now,
                            &now_text,
                            &mut outcome.counts,
                        )?;
                    }
                    Err(e) => {
                        unread_rest |= e.ends_the_file();
                        outcome.error_count += 1;
                        outcome.counts.skipped += 1;
                        if outcome.errors.len() < MAX_REPORTED_ERRORS {
                            outcome.errors.push(e.clone());
                        }
                    }
                }
            }
            done(chunk);
        }
        progress(seen);
        new_rows.flush()?;
        drop(new_rows);
        if outcome.error_count > 0 && (!skip_invalid || unread_rest) {
            tx.rollback()?;
            outcome.counts = ImportCounts {
                skipped: seen,
                ..ImportCounts::default()
            };
            return Ok(outcome);
        }
        log_event(
            &tx,
            now,
            None,
            "import",
            &format!(
                "added {}, updated {}, unchanged {}, skipped {}",
                outcome.counts.added,
                outcome.counts.updated,
                outcome.counts.unchanged,
                outcome.counts.skipped
            ),
        )?;
        tx.commit()?;
        outcome.applied = true;
        Ok(outcome)
    }

    /// Opts an address out of everything, now and for good (also one never imported).
    /// Returns false if it was already opted out.
    pub fn record_opt_out(
        &mut self,
        email: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let tx = self.write_tx()?;
        let newly = opt_out(&tx, email, source, now)?;
        tx.commit()?;
        Ok(newly)
    }

    /// The client came back: stop their sequences and record the win.
    pub fn record_return(&mut self, email: &str, now: DateTime<Utc>) -> Result<ReturnOutcome> {
        let tx = self.write_tx()?;
        let Some(client) = load_by_email(&tx, email)? else {
            return Ok(ReturnOutcome::Unknown);
        };
        if client.returned_at.is_some() {
            return Ok(ReturnOutcome::AlreadyReturned);
        }
        tx.execute(
            "UPDATE clients SET returned_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![client.id, fmt_time(now)],
        )?;
        let stopped = stop_client(&tx, client.id, EnrollmentState::Returned, now)?;
        log_event(
            &tx,
            now,
            Some(client.id),
            "returned",
            "came back as a client",
        )?;
        tx.commit()?;
        Ok(ReturnOutcome::Recorded { stopped })
    }
}

impl Store {
    /// Keeps what the daemon's last look at the sync file found, for `status` and
    /// `/metrics`; a failed sync keeps the time of the last one applied.
    pub fn record_sync(&mut self, report: &SyncReport) -> Result<()> {
        let tx = self.write_tx()?;
        let mut report = report.clone();
        if report.outcome == SyncOutcome::Imported {
            report.last_imported_at = Some(report.at);
        } else if report.last_imported_at.is_none() {
            report.last_imported_at = last_sync(&tx)?.and_then(|r| r.last_imported_at);
        }
        let text = serde_json::to_string(&report)
            .map_err(|e| StoreError::Corrupt(format!("last sync: {e}")))?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_sync', ?1)",
            params![text],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The daemon's last look at the sync file, if it ever looked.
    pub fn last_sync(&self) -> Result<Option<SyncReport>> {
        last_sync(&self.conn)
    }
}

fn last_sync(conn: &Connection) -> Result<Option<SyncReport>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'last_sync'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("last sync: {e}")))
    })
    .transpose()
}

/// Records an opt-out from `source` for an address (imported or not) and stops the
/// client's sequences. Returns whether the address was not opted out before (a bounce
/// alone is not an opt-out). A stronger suppression already there is kept (see
/// [`suppression::record`]); an operator's opt-out over the person's own replaces it, so
/// the person's link can no longer undo it.
pub(crate) fn opt_out(
    tx: &Transaction<'_>,
    email: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let email = normalize_email(email);
    // A person forgotten under an older spelling is found (and no address is stored).
    super::addresses::heal_suppression(tx, &email)?;
    let before = suppress(tx, &email, &Suppression::new(Reason::OptOut, source), now)?;
    let newly = !before.is_some_and(|s| s.is_opt_out());
    let client_id: Option<i64> = tx
        .query_row(
            "SELECT id FROM clients WHERE email = ?1",
            params![email],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = client_id {
        stop_client(tx, id, EnrollmentState::OptedOut, now)?;
        if newly {
            log_event(tx, now, Some(id), "opt_out", source)?;
        }
    }
    Ok(newly)
}

/// Records `new` for a (normalised) address, keeping whichever of it and the stored one
/// is stronger; returns the one stored before. A stored reason this build does not know
/// is kept as it is, and counts as an opt-out.
pub(crate) fn suppress(
    tx: &Connection,
    email: &str,
    new: &Suppression,
    now: DateTime<Utc>,
) -> Result<Option<Suppression>> {
    let hash = email_hash(email);
    let stored: Option<(String, String)> = tx
        .prepare_cached("SELECT reason, source FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![hash], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let before = match &stored {
        None => None,
        Some((reason, source)) => match Suppression::parse(reason, source) {
            Some(known) => Some(known),
            None => return Ok(Some(Suppression::new(Reason::OptOut, source))),
        },
    };
    match suppression::record(before.as_ref(), new) {
        Recording::Insert => {
            tx.prepare_cached(
                "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![hash, email, new.reason.as_str(), new.source, fmt_time(now)])?;
        }
        Recording::Replace => {
            tx.prepare_cached(
                "UPDATE suppressions SET reason = ?2, source = ?3, created_at = ?4 WHERE email_hash = ?1",
            )?
            .execute(params![hash, new.reason.as_str(), new.source, fmt_time(now)])?;
        }
        Recording::Keep => {}
    }
    Ok(before)
}

/// Adds a client if the address is new (one index search when it is, as most rows of a
/// large import are).
const INSERT_CLIENT: &str = "INSERT INTO clients (email, name, first_name, company, churned_at, churn_reason, timezone, fields, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) ON CONFLICT (email) DO NOTHING";

/// The statements every new row runs, prepared once per import with the values that are
/// the same for every row already bound: looking a statement up in the connection's
/// cache and handing it back (which also frees its bound values) costs more than binding
/// the row, and each bound text is a copy.
struct NewRows<'c> {
    /// [`INSERT_CLIENT`], with the import's time bound.
    client: Statement<'c>,
    /// New enrollments in each configured campaign, in order.
    enrollments: Vec<enroll::NewEnrollments<'c>>,
}

impl<'c> NewRows<'c> {
    fn prepare(tx: &'c Transaction<'_>, config: &Config, now: &str) -> Result<NewRows<'c>> {
        let mut client = tx.prepare(INSERT_CLIENT)?;
        client.raw_bind_parameter(9, now)?;
        let enrollments = config
            .campaigns
            .iter()
            .map(|campaign| enroll::NewEnrollments::prepare(tx, &campaign.name, now))
            .collect::<Result<_>>()?;
        Ok(NewRows {
            client,
            enrollments,
        })
    }

    /// Writes the enrollments still waiting, before anything reads enrollments.
    fn flush(&mut self) -> Result<()> {
        self.enrollments
            .iter_mut()
            .try_for_each(enroll::NewEnrollments::flush)
    }
}

/// What a row says about a known client, over what is stored: a value the row lacks (its
/// column is absent from the file, or its cell is empty) keeps the stored one. A partial
/// export must never erase what an earlier one said, least of all a churn reason that
/// keeps the client out of every campaign.
fn merged(stored: &ClientRecord, row: &ClientRecord) -> ClientRecord {
    let keep = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
    let mut fields = stored.fields.clone();
    for (name, value) in &row.fields {
        if !value.is_empty() || !fields.contains_key(name) {
            fields.insert(name.clone(), value.clone());
        }
    }
    ClientRecord {
        email: row.email.clone(),
        name: keep(&row.name, &stored.name),
        first_name: keep(&row.first_name, &stored.first_name),
        company: keep(&row.company, &stored.company),
        churned_at: row.churned_at,
        churn_reason: keep(&row.churn_reason, &stored.churn_reason),
        timezone: row.timezone.or(stored.timezone),
        fields,
    }
}

fn upsert(
    tx: &Transaction<'_>,
    new_rows: &mut NewRows<'_>,
    config: &Config,
    client: &PreparedClient,
    now: DateTime<Utc>,
    now_text: &str,
    counts: &mut ImportCounts,
) -> Result<()> {
    let record = &client.record;
    let churned_text = &client.churned_at;
    let timezone = record.timezone.map(|t| t.name());
    let fields = &client.fields;
    let insert = &mut new_rows.client;
    insert.raw_bind_parameter(1, &record.email)?;
    insert.raw_bind_parameter(2, &record.name)?;
    insert.raw_bind_parameter(3, &record.first_name)?;
    insert.raw_bind_parameter(4, &record.company)?;
    insert.raw_bind_parameter(5, churned_text)?;
    insert.raw_bind_parameter(6, &record.churn_reason)?;
    insert.raw_bind_parameter(7, timezone)?;
    insert.raw_bind_parameter(8, fields)?;
    if insert.raw_execute()? == 1 {
        let id = tx.last_insert_rowid();
        if crate::domain::model::may_have_legacy_spelling(&record.email) {
            super::addresses::heal_suppression(tx, &record.email)?;
        }
        for (enrollments, step) in new_rows.enrollments.iter_mut().zip(&client.first_steps) {
            if let Some(step) = step {
                enrollments.add(id, step)?;
            }
        }
        counts.added += 1;
        return Ok(());
    }
    // A known address: what follows reads its enrollments (it may even be a row of this
    // file, repeated), so the ones still waiting are written first.
    new_rows.flush()?;
    let Some(existing) = load_by_email(tx, &record.email)? else {
        return Err(StoreError::Corrupt(format!(
            "client {} vanished during the import",
            record.email
        )));
    };
    let merged = merged(&existing.record, record);
    if existing.record == merged {
        counts.unchanged += 1;
        return Ok(());
    }
    let record = &merged;
    let timezone = record.timezone.map(|t| t.name());
    let fields = &fields_json(&record.fields);
    tx.prepare_cached(
        "UPDATE clients SET name = ?2, first_name = ?3, company = ?4, churned_at = ?5, churn_reason = ?6, timezone = ?7,
                fields = ?8, updated_at = ?9 WHERE id = ?1",
    )?
    .execute(params![
        existing.id,
        record.name,
        record.first_name,
        record.company,
        churned_text,
        record.churn_reason,
        timezone,
        fields,
        now_text
    ])?;
    let facts = ClientFacts {
        id: existing.id,
        churned_at: record.churned_at,
        churn_reason: record.churn_reason.as_deref(),
        timezone: record.timezone,
    };
    // Left again after coming back: a new sequence (an opt-out still stops it at claim time).
    let left_again = existing.returned_at.is_some_and(|returned| {
        config
            .campaigns
            .first()
            .map(|c| {
                record
                    .churned_at
                    .instant(crate::domain::schedule::zone(c, record.timezone))
                    > returned
            })
            .unwrap_or(false)
    });
    if left_again {
        tx.execute(
            "UPDATE clients SET returned_at = NULL WHERE id = ?1",
            params![existing.id],
        )?;
        log_event(tx, now, Some(existing.id), "churned_again", churned_text)?;
        for campaign in &config.campaigns {
            enroll::restart(tx, campaign, &facts, now)?;
        }
    } else {
        for campaign in &config.campaigns {
            enroll::reconcile(tx, campaign, &facts, now)?;
        }
    }
    counts.updated += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::ChurnedAt;
    use crate::store::parse_time;

    /// An empty store, its configuration (one survey-only campaign) and the import's time.
    fn fixture() -> (tempfile::TempDir, Config, Store, DateTime<Utc>) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::test_support::config(dir.path(), "", crate::test_support::SURVEY_ONLY);
        let store = Store::open(&dir.path().join("winback.db")).unwrap();
        let now = parse_time("2026-01-01T00:00:00.000000Z").unwrap();
        (dir, config, store, now)
    }

    /// Client `c{i}@client.example`, who left for the price on `churned_at`.
    fn record(i: usize, churned_at: &str) -> ClientRecord {
        ClientRecord {
            email: format!("c{i}@client.example"),
            name: None,
            first_name: None,
            company: None,
            churned_at: ChurnedAt::parse(churned_at).unwrap(),
            churn_reason: Some("price".to_string()),
            timezone: None,
            fields: Default::default(),
        }
    }

    /// New enrollments are written several to a statement. However the rows fall, every
    /// client gets exactly one, and an address that comes back later in the same file
    /// (here while its enrollment is still waiting to be written) is updated, not enrolled
    /// twice.
    #[test]
    fn every_new_client_is_enrolled_once_however_rows_fall_into_statements() {
        let (_dir, config, mut store, now) = fixture();
        // Two full statements' worth (64 rows), then 6 more; client 65 again right after
        // its own row, a month later.
        let mut rows: Vec<_> = (0..70).map(|i| (i, record(i, "2025-06-01"))).collect();
        rows.insert(66, (65, record(65, "2025-07-01")));
        let outcome = store
            .import(
                rows.into_iter().map(|(i, r)| Ok((i as u64 + 2, r))),
                &config,
                now,
                false,
                &mut |_| {},
            )
            .unwrap();
        assert!(outcome.applied);
        assert_eq!(
            (outcome.counts.added, outcome.counts.updated),
            (70, 1),
            "{outcome:?}"
        );
        let per_client: Vec<(String, i64)> = store
            .conn
            .prepare(
                "SELECT c.email, count(e.id) FROM clients c LEFT JOIN enrollments e ON e.client_id = c.id
                 GROUP BY c.id ORDER BY c.id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(per_client.len(), 70);
        assert!(per_client.iter().all(|(_, n)| *n == 1), "{per_client:?}");
        let due = |email: &str| -> DateTime<Utc> {
            let text: String = store
                .conn
                .query_row(
                    "SELECT e.due_at FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                    params![email],
                    |r| r.get(0),
                )
                .unwrap();
            parse_time(&text).unwrap()
        };
        assert_eq!(
            due("c65@client.example") - due("c64@client.example"),
            chrono::Duration::days(30)
        );
        assert_eq!(due("c69@client.example"), due("c0@client.example"));
    }

    /// A later file without a column, or with an empty cell, leaves what is stored: a
    /// client we let go stays out of every campaign, and keeps their name.
    #[test]
    fn a_partial_file_never_clears_a_stored_value() {
        let (_dir, config, mut store, now) = fixture();
        let full = ClientRecord {
            name: Some("Fred Flint".to_string()),
            first_name: Some("Fred".to_string()),
            company: Some("Quarry".to_string()),
            churn_reason: Some("we_ended".to_string()),
            timezone: Some(chrono_tz::Europe::Paris),
            fields: [("plan".to_string(), "gold".to_string())].into(),
            ..record(1, "2025-06-01")
        };
        let bare = ClientRecord {
            churn_reason: None,
            fields: [("plan".to_string(), String::new())].into(),
            ..record(1, "2025-07-01")
        };
        for row in [full.clone(), bare] {
            let outcome = store
                .import(
                    std::iter::once(Ok((2, row))),
                    &config,
                    now,
                    false,
                    &mut |_| {},
                )
                .unwrap();
            assert!(outcome.applied, "{outcome:?}");
        }
        let stored = load_by_email(&store.conn, "c1@client.example")
            .unwrap()
            .unwrap();
        let expected = ClientRecord {
            churned_at: ChurnedAt::parse("2025-07-01").unwrap(),
            ..full
        };
        assert_eq!(stored.record, expected);
        let enrolled: i64 = store
            .conn
            .query_row("SELECT count(*) FROM enrollments", [], |r| r.get(0))
            .unwrap();
        assert_eq!(enrolled, 0, "we ended it: never enrolled");
    }

    /// Several rows to a statement are inserted `OR IGNORE`: a row that was not written
    /// (an enrollment left without its client, which only a damaged file holds) fails the
    /// import instead of passing unnoticed, and the import writes nothing.
    #[test]
    fn an_enrollment_that_cannot_be_written_fails_the_whole_import() {
        let (_dir, config, mut store, now) = fixture();
        store
            .conn
            .pragma_update(None, "foreign_keys", "OFF")
            .unwrap();
        store
            .conn
            .execute(
                "INSERT INTO enrollments (client_id, campaign, state, next_step, created_at, updated_at)
                 VALUES (5, 'former-clients', 'completed', 2, 'x', 'x')",
                [],
            )
            .unwrap();
        let rows = (0..40).map(|i| Ok((i as u64 + 2, record(i, "2025-06-01"))));
        let error = store
            .import(rows, &config, now, false, &mut |_| {})
            .unwrap_err();
        assert!(error.to_string().contains("already existed"), "{error}");
        let counts: (i64, i64) = store
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM enrollments)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(counts, (0, 1));
    }
}
