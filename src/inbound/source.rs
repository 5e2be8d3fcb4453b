//! Where `winback inbound` reads messages from: files (one message each), folders (a
//! Maildir's `new/` and `cur/`, or a folder of `.eml` files) and standard input.
//!
//! Reads only; never moves, renames or deletes a message (a mailbox is the sender's to
//! keep). Knows nothing about what a message means.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest message read (a returned original with attachments stays well below).
pub(crate) const MAX_MESSAGE_BYTES: u64 = 50 * 1024 * 1024;

/// Why the paths given cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SourceError {
    #[error(
        "{path}: no such file or folder; give message files, a Maildir or a folder of .eml files"
    )]
    Missing { path: String },
    #[error("{path}: cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: larger than {MAX_MESSAGE_BYTES} bytes; that is not one mail message")]
    TooLarge { path: String },
}

/// Every message file the arguments name, in a stable order: each file as given, and a
/// folder's messages sorted by name (Maildir names start with their delivery time).
pub(crate) fn message_files(args: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::Missing {
                path: arg.display().to_string(),
            },
            _ => unreadable(arg, &e),
        })?;
        if !meta.is_dir() {
            files.push(arg.clone());
            continue;
        }
        let maildir = ["new", "cur"].map(|sub| arg.join(sub));
        if maildir.iter().any(|d| d.is_dir()) {
            for sub in maildir.iter().filter(|d| d.is_dir()) {
                files.extend(folder(sub, |_| true)?);
            }
        } else {
            files.extend(folder(arg, |name| {
                name.rsplit_once('.')
                    .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("eml"))
            })?);
        }
    }
    Ok(files)
}

/// The plain files in `dir` whose name `wanted` accepts, sorted; hidden ones skipped.
fn folder(dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, SourceError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, &e))? {
        let entry = entry.map_err(|e| unreadable(dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry
            .file_type()
            .map_err(|e| unreadable(dir, &e))?
            .is_file()
            || entry.path().is_file();
        if is_file && !name.starts_with('.') && wanted(&name) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

fn unreadable(path: &Path, e: &std::io::Error) -> SourceError {
    SourceError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// One message file's bytes.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, &e))?;
    read_bounded(file, &path.display().to_string())
}

/// The one message on standard input.
pub(crate) fn read_stdin() -> Result<Vec<u8>, SourceError> {
    read_bounded(std::io::stdin().lock(), "standard input")
}

fn read_bounded(reader: impl Read, name: &str) -> Result<Vec<u8>, SourceError> {
    let mut raw = Vec::new();
    reader
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| SourceError::Unreadable {
            path: name.to_string(),
            reason: e.to_string(),
        })?;
    if raw.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(SourceError::TooLarge {
            path: name.to_string(),
        });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_maildirs_or_eml_folders_and_files_are_taken_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::write(maildir.join("new/2.host"), "b").unwrap();
        std::fs::write(maildir.join("cur/1.host:2,S"), "a").unwrap();
        std::fs::write(maildir.join("tmp/3.host"), "half written").unwrap();
        let emls = dir.path().join("emls");
        std::fs::create_dir(&emls).unwrap();
        for name in ["b.eml", "a.EML", "notes.txt", ".hidden.eml"] {
            std::fs::write(emls.join(name), "x").unwrap();
        }
        let single = dir.path().join("one.msg");
        std::fs::write(&single, "x").unwrap();

        let files = message_files(&[maildir.clone(), emls.clone(), single.clone()]).unwrap();
        assert_eq!(
            files,
            vec![
                maildir.join("new/2.host"),
                maildir.join("cur/1.host:2,S"),
                emls.join("a.EML"),
                emls.join("b.eml"),
                single,
            ]
        );
        let missing = dir.path().join("nope");
        assert!(matches!(
            message_files(&[missing]),
            Err(SourceError::Missing { .. })
        ));
        assert_eq!(read_file(&files[0]).unwrap(), b"b");
    }
}
