//! The daemon's lock: one daemon per database, found through any name of its real file.
//!
//! Only the lock file; it must not open the database.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

/// Holds the database's daemon lock for as long as it lives.
pub(crate) struct DaemonLock {
    _file: File,
    /// Where the lock file is (the tests check it sits beside the real file).
    #[cfg_attr(not(test), allow(dead_code))]
    path: PathBuf,
}

impl DaemonLock {
    /// Refuses if another daemon holds the lock on the same database. The lock file sits
    /// beside the database's real file (symlinks and `..` resolved), so a second daemon
    /// reaching the same database by another name finds the same lock.
    pub(crate) fn acquire(database: &Path) -> anyhow::Result<DaemonLock> {
        // The database (and so its folder) may not exist yet on a first run.
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let real = real_path(database);
        let mut name = real.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DaemonLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(anyhow!(
                "another winback daemon is already running on {} (it holds {}); stop it first — one daemon per database",
                database.display(),
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// `path` with symlinks and `..` resolved; for a file not created yet, its folder's real
/// path joined with its name.
fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(folder), Some(name)) if !folder.as_os_str().is_empty() => {
            real_path(folder).join(name)
        }
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_second_daemon_through_a_symlink_finds_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("winback.db");
        std::fs::write(&database, b"").unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let link = other.join("alias.db");
        std::os::unix::fs::symlink(&database, &link).unwrap();
        let first = DaemonLock::acquire(&database).unwrap();
        for second in [link.clone(), other.join("../winback.db")] {
            let refused = DaemonLock::acquire(&second).map(|_| ()).unwrap_err();
            assert!(
                refused.to_string().contains("already running"),
                "{second:?}: {refused}"
            );
        }
        drop(first);
        let again = DaemonLock::acquire(&link).unwrap();
        assert!(again.path().starts_with(dir.path().canonicalize().unwrap()));
        assert!(again.path().ends_with("winback.db.lock"));
    }
}
