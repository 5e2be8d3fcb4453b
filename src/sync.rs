//! Reading a former-clients CSV file into the store: `winback import`, and the daemon's
//! CRM sync (`[clients] sync_file`, imported at start and whenever the file changes).
//!
//! A file with bad rows changes nothing (unless the operator asked to skip them); the
//! daemon only logs it and keeps the database as it was.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::store::{ImportChunk, ImportOutcome, PreparedClient, Store};

/// Rows handed from the reading thread to the writing one at a time, and how many such
/// chunks may wait: together they bound the memory an import of any size holds.
const CHUNK_ROWS: usize = 512;
const CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
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
pub fn import_file(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    path: &Path,
    skip_invalid: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportOutcome, SyncError> {
    let read_error = |source| SyncError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let rows = crate::import::read_rows(reader, now).map_err(|e| SyncError::Header {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Two threads: this one holds the write transaction and only writes; the other reads,
    // validates and computes each row's values and schedule, so that work is off the
    // writer, which is the slower of the two. Written chunks go back to be emptied and
    // refilled: freeing rows on the thread that made them is the cheaper side.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<ImportChunk>(CHUNKS_IN_FLIGHT);
    let (give_back, given_back) = std::sync::mpsc::sync_channel::<ImportChunk>(CHUNKS_IN_FLIGHT);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(move || {
            let empty = || match given_back.try_recv() {
                Ok(mut chunk) => {
                    chunk.clear();
                    chunk
                }
                Err(_) => Vec::with_capacity(CHUNK_ROWS),
            };
            let mut chunk = empty();
            for row in rows {
                chunk.push(row.map(|(_, record)| PreparedClient::new(record, config, now)));
                if chunk.len() == CHUNK_ROWS {
                    let full = std::mem::replace(&mut chunk, empty());
                    if sender.send(full).is_err() {
                        return; // the writer stopped (a database error): stop reading
                    }
                }
            }
            let _ = sender.send(chunk);
        });
        store.import_prepared(
            receiver.into_iter(),
            config,
            now,
            skip_invalid,
            progress,
            // If the reader is gone or behind, the chunk is freed here instead.
            &mut |chunk| drop(give_back.try_send(chunk)),
        )
    });
    Ok(outcome?)
}

/// Remembers what the sync file looked like when last imported.
#[derive(Debug, Default)]
pub struct SyncWatch {
    seen: Option<(SystemTime, u64)>,
}

impl SyncWatch {
    /// Whether the file changed since the last call that returned true (or ever).
    pub fn changed(&mut self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        if self.seen == Some(stamp) {
            return false;
        }
        self.seen = Some(stamp);
        true
    }
}
