//! The import's fast path: former clients upserted by address from a CRM file, each new
//! one enrolled at once, and what the daemon's last look at its sync file found.
//!
//! An import runs in one transaction: a file with bad rows changes nothing unless the
//! operator asks to skip them. Suppressions (opt-outs, bounces) are keyed by address and
//! are never touched by an import. Whether a returned client left again is
//! `domain::lifecycle`'s to say; enrolling is `enroll`'s.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Statement, Transaction, params};

use super::clients::{ClientFacts, fields_json, load_by_email};
use super::enroll;
use super::{Result, Store, StoreError, fmt_time, log_event};
use crate::config::Config;
use crate::domain::lifecycle;
use crate::domain::model::RowError;
use crate::domain::model::{ClientRecord, SyncOutcome, SyncReport};

/// Bad rows kept for the report; beyond this they are only counted.
const MAX_REPORTED_ERRORS: usize = 1000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ImportOutcome {
    pub counts: ImportCounts,
    /// The first bad rows, in file order.
    pub errors: Vec<RowError>,
    /// All bad rows, including those not kept in `errors`.
    pub error_count: u64,
    /// False when bad rows made the whole file be rolled back.
    pub applied: bool,
}

/// Rows as an import takes them: a batch of prepared rows and bad ones, in file order.
pub(crate) type ImportChunk = Vec<std::result::Result<PreparedClient, RowError>>;

/// A valid row with every value its insert needs already computed (texts, the
/// first step in each campaign). Making one is pure and needs no database, so a large
/// import makes them on another thread while this one writes.
pub(crate) struct PreparedClient {
    record: ClientRecord,
    churned_at: String,
    fields: String,
    /// One per configured campaign, in order; `None` where it does not take them in.
    first_steps: Vec<Option<enroll::FirstStep>>,
}

impl PreparedClient {
    pub(crate) fn new(record: ClientRecord, config: &Config, now: DateTime<Utc>) -> PreparedClient {
        let facts = ClientFacts::of(0, &record);
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

impl Store {
    #[cfg(test)]
    /// Upserts former clients by address. With `skip_invalid` false, any bad row rolls
    /// the whole file back. `progress` is called now and then with the rows read so far.
    pub(crate) fn import<I>(
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
    pub(crate) fn import_prepared<I>(
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
}

impl Store {
    /// Keeps what the daemon's last look at the sync file found, for `status` and
    /// `/metrics`; a failed sync keeps the time of the last one applied.
    pub(crate) fn record_sync(&mut self, report: &SyncReport) -> Result<()> {
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
    pub(crate) fn last_sync(&self) -> Result<Option<SyncReport>> {
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

/// Adds a client if the address is new (one index search when it is, as most rows of a
/// large import are).
const INSERT_CLIENT: &str = "INSERT INTO clients (email, name, first_name, company, churned_at, churn_reason, timezone, fields, created_at, updated_at, country)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) ON CONFLICT (email) DO NOTHING";

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
    insert.raw_bind_parameter(10, &record.country)?;
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
    let merged = lifecycle::merged(&existing.record, record);
    if existing.record == merged {
        counts.unchanged += 1;
        return Ok(());
    }
    let record = &merged;
    let timezone = record.timezone.map(|t| t.name());
    let fields = &fields_json(&record.fields);
    tx.prepare_cached(
        "UPDATE clients SET name = ?2, first_name = ?3, company = ?4, churned_at = ?5, churn_reason = ?6, timezone = ?7,
                fields = ?8, updated_at = ?9, country = ?10 WHERE id = ?1",
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
        now_text,
        record.country
    ])?;
    let facts = ClientFacts::of(existing.id, record);
    // Left again after coming back: a new sequence (an opt-out still stops it at claim time).
    let left_again = lifecycle::churned_again(
        existing.returned_at,
        record.churned_at,
        record.timezone,
        config.campaigns.first(),
    );
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
mod tests;
