//! The daemon's client sync: `[clients] sync_file` imported once it changed and stopped
//! changing, each outcome logged and recorded for `status`, `report` and `/metrics`.
//!
//! The import itself is `crate::import`; this decides only when to run it and what to
//! say about it.

use crate::deliver::Deliverer;
use crate::domain::model::{SyncOutcome, SyncReport};
use std::path::Path;

use crate::import::{Look, SyncWatch};

/// Imports `[clients] sync_file` if it changed since the last look, once it has stopped
/// changing. A bad file is logged and changes nothing; a missing one is logged at each
/// look (at most every 30 s). Each outcome is recorded for `status`, `report` and
/// `/metrics`.
pub(super) async fn sync_clients(
    deliverer: &Deliverer,
    watch: &mut SyncWatch,
) -> anyhow::Result<()> {
    let Some(path) = deliverer.config.clients.sync_file.clone() else {
        return Ok(());
    };
    let shown = path.display().to_string();
    let report = |outcome, error| bare_report(deliverer, &shown, outcome, error);
    if !look_settled(deliverer, watch, &path, "the client sync file", "sync_file").await {
        return Ok(());
    }
    let config = deliverer.config.clone();
    let now = deliverer.clock.now();
    let result = deliverer
        .store
        .call(move |store| {
            match crate::import::import_file(store, &config, now, &path, false, &mut |_| {}) {
                Ok(outcome) => Ok(Ok(outcome)),
                Err(crate::import::SyncError::Store(e)) => Err(e),
                Err(other) => Ok(Err(other)),
            }
        })
        .await?;
    let result = result.map(|(outcome, summary)| {
        for line in summary.lines() {
            tracing::info!(file = %shown, "{line}");
        }
        outcome
    });
    let done = match result {
        Ok(outcome) if outcome.applied => {
            let c = outcome.counts;
            tracing::info!(file = %shown, added = c.added, updated = c.updated, unchanged = c.unchanged, returned = c.returned, repeated_addresses = c.repeated, not_enrolled_too_late = c.too_late, past_horizon = c.past_horizon, "clients synced");
            SyncReport {
                added: c.added,
                updated: c.updated,
                unchanged: c.unchanged,
                ..report(SyncOutcome::Imported, None)
            }
        }
        Ok(outcome) => {
            for e in &outcome.errors {
                tracing::error!(file = %shown, line = e.line, reason = %crate::domain::model::printable(&e.reason), "bad row");
            }
            tracing::error!(file = %shown, bad_rows = outcome.error_count, "client file not imported: fix the rows above; the database is unchanged");
            let first = outcome.errors.first().map(|e| e.to_string());
            SyncReport {
                bad_rows: outcome.error_count,
                ..report(SyncOutcome::Refused, first)
            }
        }
        Err(e) => {
            tracing::error!(file = %shown, error = %e, "client file not imported; the database is unchanged");
            let outcome = match e {
                crate::import::SyncError::Read { .. } => SyncOutcome::Unreadable,
                _ => SyncOutcome::Refused,
            };
            report(outcome, Some(e.to_string()))
        }
    };
    record_sync(deliverer, done).await;
    Ok(())
}

/// A [`SyncReport`] of `outcome` for `file`, now, with no counts.
pub(super) fn bare_report(
    deliverer: &Deliverer,
    file: &str,
    outcome: SyncOutcome,
    error: Option<String>,
) -> SyncReport {
    SyncReport {
        at: deliverer.clock.now(),
        file: file.to_string(),
        outcome,
        added: 0,
        updated: 0,
        unchanged: 0,
        bad_rows: 0,
        error,
        last_imported_at: None,
    }
}

/// Looks at a synced file (`what`, `[clients] key`): true once it changed since the last
/// look and has stopped changing, and the caller reads it now. A missing or unreadable
/// one is logged and recorded (at each look, at most every 30 s); a file still being
/// written is left for the next look.
pub(super) async fn look_settled(
    deliverer: &Deliverer,
    watch: &mut SyncWatch,
    path: &Path,
    what: &str,
    key: &str,
) -> bool {
    let shown = path.display().to_string();
    let stamp = match watch.look(path, deliverer.clock.now()) {
        Look::Unchanged | Look::Missing { report: false, .. } => return false,
        Look::Missing { error, .. } => {
            let outcome = if error.kind() == std::io::ErrorKind::NotFound {
                SyncOutcome::Missing
            } else {
                SyncOutcome::Unreadable
            };
            tracing::error!(file = %shown, %error, "{what} cannot be read; nothing taken from it (check [clients] {key} and the CRM export)");
            let report = bare_report(deliverer, &shown, outcome, Some(error.to_string()));
            record_sync(deliverer, report).await;
            return false;
        }
        Look::Changed(stamp) => stamp,
    };
    // A file the CRM is still writing would be read cut short: wait, and read it only if
    // its size and modification time stayed the same.
    tokio::time::sleep(crate::import::SETTLE).await;
    if crate::import::stamp(path).ok() != Some(stamp) {
        tracing::info!(file = %shown, "{what} is still being written; it is read once it stops changing");
        return false;
    }
    watch.read(stamp);
    true
}

/// Keeps a sync's outcome for `status`, `report` and `/metrics`; failing to is logged,
/// not fatal.
pub(super) async fn record_sync(deliverer: &Deliverer, report: SyncReport) {
    let file = report.file.clone();
    if let Err(error) = deliverer
        .store
        .call(move |store| store.record_sync(&report))
        .await
    {
        tracing::error!(%file, %error, "could not record the sync's outcome");
    }
}
