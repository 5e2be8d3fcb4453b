//! Where a command may write a file it was asked for (`report --html`, `preview --html`,
//! `preview --gallery`, `backup`), and the write itself.
//!
//! An existing file is replaced only with `--force`; the database, its WAL, SHM, journal
//! and lock files, the configuration, the DKIM keys, the sync file and anything in the
//! templates folder are never written, with `--force` or not. Paths are compared after
//! resolving symlinks and `..`, so another name for a protected file is caught too. The
//! write goes to a temporary file beside the target, renamed into place: a symlink at the
//! target is replaced, never followed, and an interrupted write leaves no half file. This
//! module must not decide what goes into a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;

/// Checks that `path` may be written, and returns it made absolute (symlinks in its
/// folder resolved, the last component kept as given).
pub(crate) fn output_path(config: &Config, path: &Path, force: bool) -> anyhow::Result<PathBuf> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if absolute.is_dir() {
        bail!(
            "{} is a folder; give a file name, e.g. {}",
            absolute.display(),
            absolute.join("winback-output.html").display()
        );
    }
    let (Some(folder), Some(_)) = (absolute.parent(), absolute.file_name()) else {
        bail!("{} is not a file name", absolute.display());
    };
    if !folder.is_dir() {
        bail!(
            "the folder {} does not exist; create it first",
            folder.display()
        );
    }
    let target = canonical(&absolute);
    if let Some(what) = protected(config, &target) {
        bail!(
            "{} is {what}; winback never writes over it, even with --force. Choose another file name",
            path.display()
        );
    }
    let exists = absolute.symlink_metadata().is_ok();
    if exists && !force {
        bail!(
            "{} already exists; choose a new file name, or pass --force to replace it",
            path.display()
        );
    }
    Ok(absolute)
}

/// Writes `contents` to `path` after [`output_path`]'s checks: through a temporary file
/// in the same folder, synced, then renamed over the name asked for.
pub(crate) fn write_output(
    config: &Config,
    path: &Path,
    contents: &[u8],
    force: bool,
) -> anyhow::Result<PathBuf> {
    let target = output_path(config, path, force)?;
    let partial = partial_path(&target)?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_data()
        })
        .and_then(|()| std::fs::rename(&partial, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("cannot write {}", target.display()));
    }
    Ok(target)
}

/// A name beside `target` for writing it in full before it takes the name asked for.
pub(crate) fn partial_path(target: &Path) -> anyhow::Result<PathBuf> {
    let (Some(folder), Some(name)) = (target.parent(), target.file_name()) else {
        bail!("{} is not a file name", target.display());
    };
    Ok(folder.join(format!(
        ".{}.partial-{}-{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    )))
}

/// What `target` (canonical) is, if it is a file winback reads or keeps.
fn protected(config: &Config, target: &Path) -> Option<&'static str> {
    // SQLite keeps its WAL and SHM beside the real file, and so does the daemon its lock.
    let database = &canonical(&absolute(&config.database_path));
    let beside = |suffix: &str| {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut files: Vec<(PathBuf, &'static str)> = vec![
        (database.clone(), "the live database itself"),
        (beside("-wal"), "the database's write-ahead log"),
        (beside("-shm"), "the database's shared-memory file"),
        (beside("-journal"), "the database's journal"),
        (beside(".lock"), "the daemon's lock file"),
        (config.file.clone(), "the configuration"),
    ];
    if let Some(sync) = &config.clients.sync_file {
        files.push((sync.clone(), "the client sync file"));
    }
    if let Some(dkim) = &config.dkim {
        files.push((dkim.key_file.clone(), "a DKIM key"));
        if let Some(second) = &dkim.second {
            files.push((second.key_file.clone(), "a DKIM key"));
        }
    }
    if let Some((_, what)) = files
        .iter()
        .find(|(file, _)| canonical(&absolute(file)) == target)
    {
        return Some(what);
    }
    let templates = canonical(&absolute(&config.templates_dir));
    target
        .starts_with(&templates)
        .then_some("in the templates folder")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` with every symlink and `..` resolved; for a name that does not exist yet, its
/// folder's canonical path joined with the name.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(folder), Some(name)) => canonical(folder).join(name),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut config = crate::test_support::config(dir, "", crate::test_support::SURVEY_ONLY);
        config.database_path = dir.join("winback.db");
        config
    }

    #[test]
    fn protected_files_are_refused_by_any_name_even_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("winback.db"), b"db").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("winback.db"), dir.path().join("link.db"))
            .unwrap();
        for name in [
            "winback.db",
            "sub/../winback.db",
            "winback.db-wal",
            "winback.db-shm",
            "winback.db.lock",
            "winback.toml",
            "templates/survey.hbs",
            "templates/new.html",
            #[cfg(unix)]
            "link.db",
        ] {
            for force in [false, true] {
                let error = write_output(&config, &dir.path().join(name), b"x", force)
                    .expect_err(name)
                    .to_string();
                assert!(error.contains("never writes over it"), "{name}: {error}");
            }
        }
        assert_eq!(std::fs::read(dir.path().join("winback.db")).unwrap(), b"db");
        assert!(
            std::fs::read_to_string(dir.path().join("winback.toml"))
                .unwrap()
                .contains("[smtp]")
        );
    }

    #[test]
    fn an_existing_file_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let out = dir.path().join("report.html");
        write_output(&config, &out, b"one", false).unwrap();
        let error = write_output(&config, &out, b"two", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--force"), "{error}");
        assert_eq!(std::fs::read(&out).unwrap(), b"one");
        write_output(&config, &out, b"two", true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        let partials = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains("partial"))
            })
            .count();
        assert_eq!(partials, 0, "no partial file is left");
        assert!(write_output(&config, dir.path(), b"x", true).is_err());
    }
}
