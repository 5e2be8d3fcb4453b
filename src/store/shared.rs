//! One connection shared by async tasks: [`SharedStore`] runs store calls on a blocking
//! thread, one at a time, so delivery, the daemon's loop and the HTTP server never block
//! the async threads or hold the lock across an `.await`.
//!
//! Owns the lock and the trip to the blocking thread only: no SQL, no decisions, and it
//! says nothing about what a failure means to its caller (each maps [`SharedError`]).

use std::sync::{Arc, Mutex};

use super::{Store, StoreError};

/// A store behind a lock, cheap to clone into tasks. The lock is taken only on a
/// blocking thread and released before the call returns.
#[derive(Clone)]
pub(crate) struct SharedStore(Arc<Mutex<Store>>);

/// Why a call on a [`SharedStore`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SharedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a database task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A task panicked while it held the lock: what it was writing is in an unknown state.
    #[error("the database lock was poisoned by a crash in another task")]
    Poisoned,
}

impl SharedStore {
    pub(crate) fn new(store: Store) -> SharedStore {
        SharedStore(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` on the store on a blocking thread.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, SharedError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.blocking(f)).await?
    }

    /// Runs `f` on the store on this thread, for code already on a blocking thread (it
    /// waits for the lock).
    pub(crate) fn blocking<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, SharedError> {
        let mut store = self.0.lock().map_err(|_| SharedError::Poisoned)?;
        Ok(f(&mut store)?)
    }

    /// The lock itself, for tests that look at or poison the store.
    #[cfg(test)]
    pub(crate) fn lock(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Store>> {
        self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_runs_on_the_store_and_a_poisoned_lock_refuses_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let shared = SharedStore::new(Store::open(&dir.path().join("winback.db")).unwrap());
        let status = shared.call(|store| store.status()).await.unwrap();
        assert!(status.attention.is_empty());
        let poisoner = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poisoning the store lock on purpose");
        })
        .join();
        let refused = shared.call(|store| store.status()).await;
        assert!(matches!(refused, Err(SharedError::Poisoned)), "{refused:?}");
        assert!(matches!(
            shared.blocking(|store| store.status()),
            Err(SharedError::Poisoned)
        ));
    }
}
