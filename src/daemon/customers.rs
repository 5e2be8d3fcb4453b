//! The daemon's customers sync: `[clients] customers_file`, the CRM's list of current
//! customers, read once it changed and stopped changing, before the pass that follows.
//! Every known former client in it is recorded as returned as of the sync (their
//! sequences stop before the next claim), and the list is kept until the next sync, so
//! an import between syncs never enrolls someone on it; each outcome is logged and recorded for
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
use crate::import::SyncWatch;
use crate::import::list::ListError;

use super::sync::{bare_report, look_settled, record_sync};

/// Records the customers in `[clients] customers_file` as returned if it changed since
/// the last look, once it has stopped changing. A line that is not an address is
/// logged and counted, and the others are applied; a missing one is logged at each look (at most
/// every 30 s).
pub(super) async fn sync_customers(
    deliverer: &Deliverer,
    watch: &mut SyncWatch,
) -> anyhow::Result<()> {
    let Some(path) = deliverer.config.clients.customers_file.clone() else {
        return Ok(());
    };
    let shown = path.display().to_string();
    let report = |outcome, error| bare_report(deliverer, &shown, outcome, error);
    if !look_settled(
        deliverer,
        watch,
        &path,
        "the customers file",
        "customers_file",
    )
    .await
    {
        return Ok(());
    }
    let list = match crate::import::list::read_list_file(&path, &deliverer.config.clients.format) {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(file = %shown, %error, "customers file not read; no return recorded");
            let outcome = match error {
                ListError::Read { .. } => SyncOutcome::Unreadable,
                ListError::Content { .. } => SyncOutcome::Refused,
            };
            record_sync(deliverer, report(outcome, Some(error.to_string()))).await;
            return Ok(());
        }
    };
    // A return only ever stops mail: a bad line is logged and counted, never a reason to
    // leave the valid addresses around it mailed.
    for bad in &list.invalid {
        tracing::error!(file = %shown, line = bad.line, reason = %printable(&bad.reason), "bad line skipped; the other lines are applied");
    }
    let bad_rows = list.invalid.len() as u64;
    let first_bad = list.invalid.first().map(ToString::to_string);
    let now = deliverer.clock.now();
    let detail = format!("came back as a client (in the customers file {shown})");
    let addresses = list.addresses;
    let done = deliverer
        .store
        .call(move |store| store.sync_customers(&addresses, now, &detail))
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
        bad_rows,
        ..report(SyncOutcome::Imported, first_bad)
    };
    record_sync(deliverer, synced).await;
    Ok(())
}
