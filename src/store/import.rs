//! The import's fast path: former clients upserted by address from a CRM file, each new
//! one enrolled at once; and the in-memory copy a dry run imports into.
//!
//! An import runs in one transaction: a file with bad rows changes nothing unless the
//! operator asks to skip them. Suppressions (opt-outs, bounces) are keyed by address and
//! are never touched by an import. Whether a returned client left again is
//! `domain::lifecycle`'s to say; enrolling is `enroll`'s.

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, Statement, Transaction, params};

use super::accounts;
use super::clients::{ClientFacts, fields_json, load_by_email};
use super::enroll;
use super::people;
use super::{Result, Store, StoreError, fmt_time, log_event};
use crate::config::Config;
use crate::domain::accounts::{AccountStop, stop_for};
use crate::domain::audience;
use crate::domain::changes::{FieldChange, field_changes};
use crate::domain::lifecycle;
use crate::domain::model::ClientRecord;
use crate::domain::model::RowError;

/// Bad rows kept for the report; beyond this they are only counted.
const MAX_REPORTED_ERRORS: usize = 1000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    /// Rows whose `returned_at` recorded a return (each also counted as added, updated
    /// or unchanged).
    pub returned: u64,
    /// Addresses on more than one row of the file: their rows are merged (see
    /// [`lifecycle::merged_repeat`]).
    pub repeated: u64,
    /// Sequences of other contacts stopped because their account came back (a return
    /// this import recorded, or a contact new to an account that had).
    pub account_stopped: u64,
    /// Sequences of contacts new to an account (or moved into one) stopped as `replied`:
    /// another contact's reply stands, the team is talking to the account.
    pub account_replied: u64,
    /// Clients not enrolled (new, or left again after a return) because their survey
    /// would have been due more than the campaign's `enroll_within_days` before.
    pub too_late: u64,
    /// Clients of the file already past their campaign's `max_days_since_churn`.
    pub past_horizon: u64,
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
    /// What the import changed, client by client: kept only by a dry run's copy (see
    /// [`Store::dry_run_copy`]).
    pub changes: Option<ImportChanges>,
}

/// Clients listed by a dry run for each kind of change; beyond this they are only counted.
pub(crate) const MAX_LISTED_CHANGES: usize = 50;

/// Who a dry run would add, update (and how) or mark returned, the first
/// [`MAX_LISTED_CHANGES`] of each in file order; [`ImportCounts`] has the totals.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ImportChanges {
    pub added: Vec<String>,
    pub updated: Vec<UpdatedClient>,
    /// Rows with a `returned_at` for a client not recorded as returned.
    pub returned: Vec<String>,
    pub returned_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct UpdatedClient {
    pub email: String,
    pub fields: Vec<FieldChange>,
}

impl ImportChanges {
    fn returned(&mut self, email: &str) {
        self.returned_count += 1;
        if self.returned.len() < MAX_LISTED_CHANGES {
            self.returned.push(email.to_string());
        }
    }

    /// A new client; a return the import records for them is listed by the caller, from
    /// the return that stands, not the row's raw `returned_at`.
    fn added(&mut self, record: &ClientRecord) {
        if self.added.len() < MAX_LISTED_CHANGES {
            self.added.push(record.email.clone());
        }
    }

    fn updated(&mut self, before: &ClientRecord, after: &ClientRecord) {
        if self.updated.len() < MAX_LISTED_CHANGES {
            self.updated.push(UpdatedClient {
                email: after.email.clone(),
                fields: field_changes(before, after),
            });
        }
    }
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
    /// The campaign a new client is enrolled in, if any, and their first step there.
    placement: enroll::Placement,
    /// Whether the client is past the consent horizon of the first campaign that admits
    /// them.
    past_horizon: bool,
    /// The return its `returned_at` records, if one stands (see [`lifecycle::crm_return`]).
    returned: Option<DateTime<Utc>>,
    /// Its account under `[clients] account`, if it has one.
    account_key: Option<String>,
}

impl PreparedClient {
    /// The row's values, or what is wrong with it (a return in the future), in words for
    /// the row's report.
    pub(crate) fn new(
        record: ClientRecord,
        config: &Config,
        now: DateTime<Utc>,
    ) -> std::result::Result<PreparedClient, String> {
        let returned = lifecycle::crm_return(
            record.returned_at,
            record.churned_at,
            record.timezone,
            config.campaigns.first(),
            now,
        )?;
        let facts = ClientFacts::of(0, &record);
        let placement = enroll::placement(&config.campaigns, &facts, now);
        let past_horizon = match &placement {
            enroll::Placement::In(index, _) | enroll::Placement::TooLate(index) => {
                let campaign = &config.campaigns[*index];
                let tz = crate::domain::schedule::zone(campaign, record.timezone);
                audience::past_horizon(campaign, record.churned_at, tz, now)
            }
            enroll::Placement::Nowhere => false,
        };
        Ok(PreparedClient {
            account_key: account_key_of(config, &record),
            churned_at: record.churned_at.to_string(),
            fields: fields_json(&record.fields),
            placement,
            past_horizon,
            returned,
            record,
        })
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
        let prepared = rows.map(|row| {
            vec![row.and_then(|(line, record)| {
                PreparedClient::new(record, config, now).map_err(|reason| RowError { line, reason })
            })]
        });
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
        let mut outcome = ImportOutcome {
            changes: self.dry_run.then(ImportChanges::default),
            ..ImportOutcome::default()
        };
        // Immediate: the import reads before it writes, and a deferred transaction whose
        // snapshot a running daemon's pass has moved past fails at its first write with
        // "database is locked" instead of waiting its turn.
        let tx = self.write_tx()?;
        let now_text = fmt_time(now);
        let mut new_rows = NewRows::prepare(&tx, config, &now_text)?;
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
                            outcome.changes.as_mut(),
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
    /// A copy of the database at `path` in memory, for `import --dry-run`: whatever is
    /// imported into it is lost when it is dropped, and its imports list what they
    /// change. The file is opened read-only and never created (a missing one is an empty
    /// database); the copy takes as much memory as the file is large.
    pub(crate) fn dry_run_copy(path: &Path) -> Result<Store> {
        let open_error = |e: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut conn = Connection::open_in_memory()?;
        if path.exists() {
            let source = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_error)?;
            source.busy_timeout(std::time::Duration::from_secs(300))?;
            // An in-memory copy must have the file's page size.
            let page_size: i64 = source
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .map_err(open_error)?;
            conn.pragma_update(None, "page_size", page_size)?;
            rusqlite::backup::Backup::new(&source, &mut conn)?.run_to_completion(
                1024,
                std::time::Duration::ZERO,
                None,
            )?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(super::STATEMENT_CACHE);
        super::add_email_hash_function(&conn)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            dry_run: true,
        };
        store.migrate()?;
        Ok(store)
    }
}

/// Adds a client if the address is new (one index search when it is, as most rows of a
/// large import are).
const INSERT_CLIENT: &str = "INSERT INTO clients (email, name, first_name, company, churned_at, churn_reason, timezone, fields, created_at, updated_at, country, account_key)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11) ON CONFLICT (email) DO NOTHING";

/// The statements every new row runs, prepared once per import with the values that are
/// the same for every row already bound: looking a statement up in the connection's
/// cache and handing it back (which also frees its bound values) costs more than binding
/// the row, and each bound text is a copy.
struct NewRows<'c> {
    /// [`INSERT_CLIENT`], with the import's time bound.
    client: Statement<'c>,
    /// New enrollments in each configured campaign, in order.
    enrollments: Vec<enroll::NewEnrollments<'c>>,
    /// Whether a customers list is kept: each row is looked up on it only then.
    customers: bool,
    /// The highest client id before this import: a higher one was added by a row of it.
    last_old_id: i64,
    /// Clients from before this import that a row of it met, and those met twice or more
    /// (only known addresses: new ones are told by their id).
    met: HashSet<i64>,
    repeated: HashSet<i64>,
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
            customers: people::has_customers(tx)?,
            last_old_id: tx
                .query_row("SELECT coalesce(max(id), 0) FROM clients", [], |r| r.get(0))?,
            met: HashSet::new(),
            repeated: HashSet::new(),
        })
    }

    /// Writes the enrollments still waiting, before anything reads enrollments.
    fn flush(&mut self) -> Result<()> {
        self.enrollments
            .iter_mut()
            .try_for_each(enroll::NewEnrollments::flush)
    }
}

/// The source of an opt-out a CRM export's flag column recorded.
const CRM_OPT_OUT_SOURCE: &str = "crm";

#[allow(clippy::too_many_arguments)] // the import's state, borrowed field by field
fn upsert(
    tx: &Transaction<'_>,
    new_rows: &mut NewRows<'_>,
    config: &Config,
    client: &PreparedClient,
    now: DateTime<Utc>,
    now_text: &str,
    counts: &mut ImportCounts,
    mut changes: Option<&mut ImportChanges>,
) -> Result<()> {
    let record = &client.record;
    if record.opted_out {
        // The CRM's own opt-out flag: suppressed like `winback optout`, never undone by an
        // import (a later export without the flag lifts nothing).
        people::opt_out(tx, &record.email, CRM_OPT_OUT_SOURCE, now)?;
    }
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
    insert.raw_bind_parameter(11, &client.account_key)?;
    let inserted = insert.raw_execute()? == 1;
    // On the latest customers list: a customer again as of its sync, whatever the row's
    // dates say (they are still a customer, or the list would not have them).
    let listed = match new_rows.customers {
        true => people::customer_since(tx, &record.email)?,
        false => None,
    };
    if inserted {
        let id = tx.last_insert_rowid();
        if crate::domain::model::may_have_legacy_spelling(&record.email) {
            super::addresses::heal_suppression(tx, &record.email)?;
        }
        match &client.placement {
            enroll::Placement::In(index, step) => {
                if let Some(enrollments) = new_rows.enrollments.get_mut(*index) {
                    enrollments.add(id, step)?;
                }
            }
            enroll::Placement::TooLate(_) => counts.too_late += 1,
            enroll::Placement::Nowhere => {}
        }
        counts.past_horizon += u64::from(client.past_horizon);
        if let Some(at) = client.returned.max(listed) {
            // Enrolled, then stopped, as `winback returned` after the import would: its
            // enrollments are written first.
            new_rows.flush()?;
            let (_, account) = people::mark_returned(tx, id, at, now, &return_detail(at, listed))?;
            counts.returned += 1;
            counts.account_stopped += account as u64;
        } else if let Some(key) = &client.account_key
            && stop_for(accounts::hold(tx, key, id)?).is_some()
        {
            // New to an account that is a client again, or whose reply stands: stopped
            // at once (its enrollments are written first).
            new_rows.flush()?;
            count_account_stop(counts, accounts::stop_if_account_stops(tx, id, now)?);
        }
        counts.added += 1;
        if let Some(changes) = changes {
            changes.added(record);
            if client.returned.max(listed).is_some() {
                changes.returned(&record.email);
            }
        }
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
    // A return the file records comes first: a later churn date in the same row is
    // then a churn after it (`crm_return` gave none in that case). The later of the
    // stored return and the row's counts: a client who came back a second time is
    // judged against that second return, not the first.
    let mut returned_at = existing.returned_at;
    if let Some(at) = client.returned.max(listed) {
        match returned_at {
            None => {
                let (_, account) =
                    people::mark_returned(tx, existing.id, at, now, &return_detail(at, listed))?;
                counts.returned += 1;
                counts.account_stopped += account as u64;
                if let Some(changes) = changes.as_deref_mut() {
                    changes.returned(&record.email);
                }
            }
            // Only the file's own later return moves a stored one: the customers list,
            // read again at every sync, already keeps its clients returned.
            Some(stored) => {
                if let Some(row) = client.returned.filter(|&row| row > stored) {
                    people::update_return(tx, existing.id, row, now, &returned_detail(row))?;
                }
            }
        }
        returned_at = returned_at.max(client.returned).or(Some(at));
    }
    // An address met before in this file: its rows merge, whatever their order.
    let repeat = existing.id > new_rows.last_old_id || !new_rows.met.insert(existing.id);
    if repeat && new_rows.repeated.insert(existing.id) {
        counts.repeated += 1;
    }
    if !repeat {
        counts.past_horizon += u64::from(client.past_horizon);
    }
    let merged = match repeat {
        true => lifecycle::merged_repeat(&existing.record, record, &config.campaigns),
        false => lifecycle::merged(&existing.record, record),
    };
    if let Some(changes) = changes
        && existing.record != merged
    {
        changes.updated(&existing.record, &merged);
    }
    if existing.record == merged {
        counts.unchanged += 1;
        return Ok(());
    }
    let record = &merged;
    let churned_text = &record.churned_at.to_string();
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
    let account_key = account_key_of(config, record);
    tx.prepare_cached("UPDATE clients SET account_key = ?2 WHERE id = ?1")?
        .execute(params![existing.id, account_key])?;
    let facts = ClientFacts::of(existing.id, record);
    // Left again after coming back: a new sequence (an opt-out still stops it at claim time).
    let left_again = listed.is_none()
        && lifecycle::churned_again(
            returned_at,
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
        let placed = enroll::restart(tx, &config.campaigns, &facts, now)?;
        if let enroll::Placement::TooLate(_) = placed {
            counts.too_late += 1;
        }
    } else {
        for campaign in &config.campaigns {
            enroll::reconcile(tx, &config.campaigns, campaign, &facts, now)?;
        }
    }
    if account_key.is_some() {
        // Moved into an account that is a client again, or a new sequence in one.
        count_account_stop(
            counts,
            accounts::stop_if_account_stops(tx, existing.id, now)?,
        );
    }
    counts.updated += 1;
    Ok(())
}

/// Counts the sequences an account stopped (see [`accounts::stop_if_account_stops`]).
fn count_account_stop(counts: &mut ImportCounts, stopped: Option<(AccountStop, usize)>) {
    match stopped {
        Some((AccountStop::Returned, n)) => counts.account_stopped += n as u64,
        Some((AccountStop::Replied, n)) => counts.account_replied += n as u64,
        None => {}
    }
}

/// The account of a row under `[clients] account`, if it has one.
fn account_key_of(config: &Config, record: &ClientRecord) -> Option<String> {
    let rule = config.clients.account.as_ref()?;
    crate::domain::accounts::account_key(
        rule,
        &record.email,
        record.company.as_deref(),
        &record.fields,
    )
}

/// The event a return the import records is logged with: from the customers list (when
/// `at` is its sync) or from the row's `returned_at`.
fn return_detail(at: DateTime<Utc>, listed: Option<DateTime<Utc>>) -> String {
    if listed == Some(at) {
        format!(
            "came back as a client (in the customers list read {})",
            fmt_time(at)
        )
    } else {
        returned_detail(at)
    }
}

/// The event a return from the CRM file's `returned_at` is logged with.
fn returned_detail(at: DateTime<Utc>) -> String {
    format!(
        "came back as a client (returned_at {} in the CRM file)",
        fmt_time(at)
    )
}

#[cfg(test)]
mod tests;
