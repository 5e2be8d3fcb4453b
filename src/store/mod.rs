//! The SQLite database: the only place SQL lives.
//!
//! One file in WAL mode with a busy timeout, migrated by `PRAGMA user_version`. Methods are
//! named for intent (`claim_due`, `record_results`, `record_opt_out`) and run their work
//! in one transaction each. Scheduling decisions are taken by `schedule`, never here: the
//! store gathers the facts, asks, and writes the answer down. Calls block; async callers
//! run them on a blocking thread.

mod accounts;
mod addresses;
mod clients;
mod codec;
mod enroll;
mod import;
mod inbound;
mod links;
mod mailboxes;
mod migrate;
mod notices;
mod outbox;
mod people;
mod renames;
mod report;
mod shared;
mod syncs;
mod views;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

pub(crate) use import::{ImportChanges, ImportChunk, ImportCounts, ImportOutcome, PreparedClient};
pub(crate) use inbound::{Applied, Inbound, InboundRecord, InboxUndo};
pub(crate) use notices::{NoticeCounts, NoticeResult};
pub(crate) use outbox::{Claimed, Outcome, Step};
pub(crate) use people::survey::{SurveyAnswer, SurveyAnswerRow, SurveyOutcome};
pub(crate) use people::{BulkOutcome, EnrollmentView, OptOutOutcome, ReturnOutcome, UndoOutcome};
pub(crate) use report::{Funnel, InboundCount, Metrics, PeriodRows, ReportData, UpcomingCount};
pub(crate) use shared::SharedError;
pub(crate) use shared::SharedStore;
pub(crate) use views::{ATTENTION, MessageRow, PlanQuery, PlanRow};

use codec::add_email_hash_function;
pub(crate) use codec::email_hash;
pub(crate) use codec::{fmt_time, from_moment, lower_hex, moment, parse_opt_time, parse_time};

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database {path} was written by a newer winback (schema version {found}; this build knows up to {known}); upgrade winback, or restore a backup made by this version"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open the database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the database holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("{0}")]
    UnconfirmedRename(String),
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
    /// An in-memory copy for `import --dry-run`: its imports keep what they change.
    dry_run: bool,
}

/// Opens a write transaction. IMMEDIATE: it takes the write lock at once, so one that
/// reads before it writes waits (up to the busy timeout) for another connection's commit
/// instead of failing at once when that connection committed in between.
pub(crate) fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

impl Store {
    /// [`write_tx`] on this store's connection.
    fn write_tx(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        write_tx(&mut self.conn)
    }

    #[cfg(test)]
    /// How long a statement waits for another connection's lock before giving up (300 s
    /// unless set).
    pub(crate) fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<()> {
        Ok(self.conn.busy_timeout(timeout)?)
    }

    /// Opens (creating if needed, with mode 0600) and migrates the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        if !path.exists() {
            create_private_file(path).map_err(|e| open_error(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        // Generous: a large import holds the write lock for a while, and an opt-out or a
        // delivery pass must wait for it rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(300))?;
        // 8 KiB pages for a new file (an existing one keeps its own): a large import writes
        // every page to the WAL and again to the file, and larger pages halve those writes
        // (import writer: system time -25%, instructions -4%; delivery unchanged).
        conn.pragma_update(None, "page_size", 8192)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed claim, opt-out or import survives a power cut, not just a
        // killed process. WAL keeps the cost to one sequential sync per transaction.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Imports touch random pages of several indexes (email, hash, token id): a page
        // cache that holds them avoids spilling to the WAL mid-transaction. Bounded: 64 MiB.
        conn.pragma_update(None, "cache_size", -65536)?;
        // Room for every statement a delivery pass or an import uses (the outbox alone
        // caches 18; the default keeps 16), so none is evicted and parsed again.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        add_email_hash_function(&conn)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            dry_run: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// A consistent copy of the live database (SQLite's online backup).
    pub(crate) fn backup_to(&self, destination: &Path) -> Result<()> {
        if !destination.exists() {
            create_private_file(destination).map_err(|e| StoreError::Open {
                path: destination.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let mut target = Connection::open(destination)?;
        let backup = rusqlite::backup::Backup::new(&self.conn, &mut target)?;
        backup.run_to_completion(1024, std::time::Duration::ZERO, None)?;
        Ok(())
    }
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

pub(crate) fn log_event(
    conn: &Connection,
    at: DateTime<Utc>,
    client_id: Option<i64>,
    kind: &str,
    detail: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (at, client_id, kind, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![fmt_time(at), client_id, kind, detail])?;
    Ok(())
}
