//! The daemon's customers sync: `[clients] customers_file`, the CRM's list of current
//! customers, read once it changed and stopped changing, before the pass that follows.
//! Every known former client in it is recorded as returned as of the sync (their
//! sequences stop before the next claim); each outcome is logged and recorded for
//! `status`, `report` and `/metrics` like the client sync's (`updated` counts the
//! people newly recorded as returned, `unchanged` the others).
//!
//! Someone no longer in the list is not "un-returned": a list that lost a line is no
//! word that they left (an export filtered or cut short would restart mail to
//! customers), and a client who leaves again says so with a later `churned_at`, which
//! starts a new sequence. Reading the list is `import::list`'s, recording the returns
//! the store's; this decides only when, and what to say about it.

use crate::deliver::Deliverer;
use crate::domain::model::{SyncOutcome, SyncReport, printable};
use crate::import::list::ListError;
use crate::import::{Look, SyncWatch};

/// Records the customers in `[clients] customers_file` as returned if it changed since
/// the last look, once it has stopped changing. A file with a line that is not an
/// address changes nothing and is logged; a missing one is logged (at once, then hourly).
pub(super) async fn sync_customers(
    deliverer: &Deliverer,
    watch: &mut SyncWatch,
) -> anyhow::Result<()> {
    let Some(path) = deliverer.config.clients.customers_file.clone() else {
        return Ok(());
    };
    let shown = path.display().to_string();
    let report = |outcome, error: Option<String>| SyncReport {
        at: deliverer.clock.now(),
        file: shown.clone(),
        outcome,
        added: 0,
        updated: 0,
        unchanged: 0,
        bad_rows: 0,
        error,
        last_imported_at: None,
    };
    let stamp = match watch.look(&path, deliverer.clock.now()) {
        Look::Unchanged | Look::Missing { report: false, .. } => return Ok(()),
        Look::Missing { error, .. } => {
            let outcome = if error.kind() == std::io::ErrorKind::NotFound {
                SyncOutcome::Missing
            } else {
                SyncOutcome::Unreadable
            };
            tracing::error!(file = %shown, %error, "the customers file cannot be read; no return recorded (check [clients] customers_file and the CRM export)");
            record(deliverer, report(outcome, Some(error.to_string()))).await;
            return Ok(());
        }
        Look::Changed(stamp) => stamp,
    };
    tokio::time::sleep(crate::import::SETTLE).await;
    if crate::import::stamp(&path).ok() != Some(stamp) {
        tracing::info!(file = %shown, "the customers file is still being written; it is read once it stops changing");
        return Ok(());
    }
    watch.read(stamp);
    let list = match crate::import::list::read_list_file(&path, &deliverer.config.clients.format) {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(file = %shown, %error, "customers file not read; no return recorded");
            let outcome = match error {
                ListError::Read { .. } => SyncOutcome::Unreadable,
                ListError::Content { .. } => SyncOutcome::Refused,
            };
            record(deliverer, report(outcome, Some(error.to_string()))).await;
            return Ok(());
        }
    };
    if !list.invalid.is_empty() {
        for bad in &list.invalid {
            tracing::error!(file = %shown, line = bad.line, reason = %printable(&bad.reason), "bad line");
        }
        tracing::error!(file = %shown, bad_lines = list.invalid.len(), "customers file not applied: fix the lines above; no return recorded");
        let first = list.invalid.first().map(ToString::to_string);
        let refused = SyncReport {
            bad_rows: list.invalid.len() as u64,
            ..report(SyncOutcome::Refused, first)
        };
        record(deliverer, refused).await;
        return Ok(());
    }
    let now = deliverer.clock.now();
    let detail = format!("came back as a client (in the customers file {shown})");
    let addresses = list.addresses;
    let done = deliverer
        .store
        .call(move |store| store.record_returns(&addresses, now, &detail))
        .await?;
    tracing::info!(
        file = %shown,
        returned = done.new,
        already_returned = done.already,
        not_former_clients = done.unknown,
        "customers synced: the newly returned clients' sequences stopped"
    );
    let synced = SyncReport {
        updated: done.new,
        unchanged: done.already + done.unknown,
        ..report(SyncOutcome::Imported, None)
    };
    record(deliverer, synced).await;
    Ok(())
}

/// Keeps a sync's outcome for `status`, `report` and `/metrics`; failing to is logged,
/// not fatal.
async fn record(deliverer: &Deliverer, report: SyncReport) {
    if let Err(error) = deliverer
        .store
        .call(move |store| store.record_sync(&report))
        .await
    {
        tracing::error!(%error, "could not record the customers sync's outcome");
    }
}
