//! Reading a former-clients CSV file into the store: `winback import`, and the daemon's
//! CRM sync (`[clients] sync_file`, imported at start and whenever the file changes).
//!
//! A file with bad rows changes nothing (unless the operator asked to skip them); the
//! daemon logs it, records the outcome for `status` and `/metrics`, and keeps the
//! database as it was. [`SyncWatch`] tells the daemon when the file changed, and when its
//! absence is worth logging again; it reads metadata only and decides nothing about clients.

pub(crate) mod csv;
pub(crate) mod list;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::store::{ImportChunk, ImportOutcome, PreparedClient, Store};
use csv::ReadSummary;

/// Rows handed from the reading thread to the writing one at a time, and how many such
/// chunks may wait: together they bound the memory an import of any size holds.
const CHUNK_ROWS: usize = 512;
const CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Header { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Imports one CSV file. `progress` is called with the number of rows read so far.
pub(crate) fn import_file(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    path: &Path,
    skip_invalid: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<(ImportOutcome, ReadSummary), SyncError> {
    let read_error = |source| SyncError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let rows = crate::import::csv::read_rows(reader, now, &config.clients.format).map_err(|e| {
        SyncError::Header {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    // Two threads: this one holds the write transaction and only writes; the other reads,
    // validates and computes each row's values and schedule, so that work is off the
    // writer, which is the slower of the two. Written chunks go back to be emptied and
    // refilled: freeing rows on the thread that made them is the cheaper side.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<ImportChunk>(CHUNKS_IN_FLIGHT);
    let (give_back, given_back) = std::sync::mpsc::sync_channel::<ImportChunk>(CHUNKS_IN_FLIGHT);
    let (outcome, summary) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let empty = || match given_back.try_recv() {
                Ok(mut chunk) => {
                    chunk.clear();
                    chunk
                }
                Err(_) => Vec::with_capacity(CHUNK_ROWS),
            };
            let mut chunk = empty();
            let mut rows = rows;
            for row in rows.by_ref() {
                chunk.push(row.and_then(|(line, record)| {
                    PreparedClient::new(record, config, now)
                        .map_err(|reason| crate::domain::model::RowError { line, reason })
                }));
                if chunk.len() == CHUNK_ROWS {
                    let full = std::mem::replace(&mut chunk, empty());
                    if sender.send(full).is_err() {
                        // The writer stopped (a database error): stop reading.
                        return rows.into_summary();
                    }
                }
            }
            let _ = sender.send(chunk);
            rows.into_summary()
        });
        let outcome = store.import_prepared(
            receiver.into_iter(),
            config,
            now,
            skip_invalid,
            progress,
            // If the reader is gone or behind, the chunk is freed here instead.
            &mut |chunk| drop(give_back.try_send(chunk)),
        );
        // The reader ends once the writer is done (it drops the receiving end).
        let summary = reader.join().unwrap_or_default();
        (outcome, summary)
    });
    Ok((outcome?, summary))
}

/// How long the sync file must keep its size and modification time before the daemon
/// reads it: a CRM that rewrites the file in place is given time to finish. (Writing it
/// elsewhere and renaming it into place is safer still: the README says so.)
pub(crate) const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// While the sync file stays missing, the error is logged (and counted) at each look,
/// but not more often than this: the daemon looks before every pass, and passes can
/// follow each other within seconds while much mail is due. The daemon's longest sleep.
const MISSING_REPEAT_SECONDS: i64 = 30;

/// A file's size and modification time: it changed if either did.
pub(crate) type Stamp = (SystemTime, u64);

/// The sync file's [`Stamp`] now.
pub(crate) fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

/// What a look at the sync file found.
#[derive(Debug)]
pub(crate) enum Look {
    /// As when last read (or refused): nothing to do.
    Unchanged,
    /// New or changed since then: read it once it has stopped changing.
    Changed(Stamp),
    /// It cannot be found or examined; `report` says whether to log it (and record it)
    /// this time: at each look, at most every [`MISSING_REPEAT_SECONDS`].
    Missing { error: std::io::Error, report: bool },
}

/// Remembers what the sync file looked like when last read, and when its absence was
/// last reported.
#[derive(Debug, Default)]
pub(crate) struct SyncWatch {
    seen: Option<Stamp>,
    missing_reported: Option<DateTime<Utc>>,
}

impl SyncWatch {
    pub(crate) fn look(&mut self, path: &Path, now: DateTime<Utc>) -> Look {
        match stamp(path) {
            Ok(stamp) => {
                self.missing_reported = None;
                if self.seen == Some(stamp) {
                    Look::Unchanged
                } else {
                    Look::Changed(stamp)
                }
            }
            Err(error) => {
                // When it comes back, it is read whatever its stamp.
                self.seen = None;
                let report = self
                    .missing_reported
                    .is_none_or(|at| now - at >= chrono::Duration::seconds(MISSING_REPEAT_SECONDS));
                if report {
                    self.missing_reported = Some(now);
                }
                Look::Missing { error, report }
            }
        }
    }

    /// The file with this stamp was read (imported or refused): not again until it changes.
    pub(crate) fn read(&mut self, stamp: Stamp) {
        self.seen = Some(stamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_reported_at_each_look_at_most_every_30_s_and_read_when_it_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.csv");
        let t0 = DateTime::UNIX_EPOCH;
        let mut watch = SyncWatch::default();
        let reported = |look: Look| match look {
            Look::Missing { report, .. } => report,
            other => panic!("expected missing, got {other:?}"),
        };
        assert!(reported(watch.look(&path, t0)));
        assert!(!reported(
            watch.look(&path, t0 + chrono::Duration::seconds(5))
        ));
        assert!(reported(
            watch.look(&path, t0 + chrono::Duration::seconds(30))
        ));
        assert!(reported(
            watch.look(&path, t0 + chrono::Duration::seconds(61))
        ));
        std::fs::write(&path, "email,churned_at\n").unwrap();
        let Look::Changed(stamp) = watch.look(&path, t0) else {
            panic!("a new file is read")
        };
        watch.read(stamp);
        assert!(matches!(watch.look(&path, t0), Look::Unchanged));
        std::fs::remove_file(&path).unwrap();
        assert!(
            reported(watch.look(&path, t0)),
            "gone again: reported at once"
        );
        std::fs::write(&path, "email,churned_at\n").unwrap();
        assert!(matches!(watch.look(&path, t0), Look::Changed(_)));
    }
}
