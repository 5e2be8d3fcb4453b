//! The `file://DIR` mailer: each message becomes `DIR/<message id>.eml`.
//!
//! Owns naming (the message id, reduced to `[A-Za-z0-9._-]`) and the atomic write: a
//! temporary file in DIR, synced, then renamed over the final name, so a resend overwrites
//! instead of duplicating and a reader never sees half a file. It must not interpret or
//! change the message bytes, and does its blocking file work off the async threads.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Delivered, Mailer, MailerError, OutgoingMessage, SendError};

/// Longest file stem kept from a message id, well under common 255-byte name limits.
const MAX_STEM_LEN: usize = 200;

pub(crate) struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    /// Creates `dir` (and its parents) now, so a bad path shows up at startup.
    pub(crate) fn new(dir: PathBuf) -> Result<FileMailer, MailerError> {
        fs::create_dir_all(&dir).map_err(|source| MailerError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(FileMailer { dir })
    }

    async fn deliver(&self, message: &OutgoingMessage) -> Result<Delivered, SendError> {
        let stem = file_stem(&message.message_id).ok_or_else(|| {
            SendError::Permanent(format!(
                "message id {:?} leaves no usable file name",
                message.message_id
            ))
        })?;
        let dir = self.dir.clone();
        let bytes = message.bytes.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&dir, &stem, &bytes))
            .await
            .map_err(|error| SendError::Transient(format!("the file writer stopped: {error}")))?;
        match written {
            Ok(path) => Ok(Delivered {
                reply: format!("written to {}", path.display()),
            }),
            Err((path, error)) => Err(SendError::Transient(format!(
                "cannot write {}: {error}",
                path.display()
            ))),
        }
    }
}

impl Mailer for FileMailer {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
        Box::pin(self.deliver(message))
    }
}

/// `<a1.b2@acme.example>` → `a1.b2_acme.example`: brackets dropped, every byte outside
/// `[A-Za-z0-9._-]` replaced by `_`, a leading dot too (no hidden files), at most
/// [`MAX_STEM_LEN`] bytes. `None` when nothing is left.
fn file_stem(message_id: &str) -> Option<String> {
    let id = message_id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    let mut stem: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_STEM_LEN)
        .collect();
    if stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    (!stem.is_empty()).then_some(stem)
}

/// Writes `DIR/STEM.eml` through a uniquely named temporary file in the same directory,
/// recreating DIR if it vanished. On error, returns the path it was working on.
fn write_atomically(dir: &Path, stem: &str, bytes: &[u8]) -> Result<PathBuf, (PathBuf, io::Error)> {
    let path = dir.join(format!("{stem}.eml"));
    let temporary = dir.join(format!(".{stem}.{:016x}.tmp", rand::random::<u64>()));
    let result = match write_then_rename(&temporary, &path, bytes) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).and_then(|()| write_then_rename(&temporary, &path, bytes))
        }
        other => other,
    };
    match result {
        Ok(()) => Ok(path),
        Err(error) => {
            let _ = fs::remove_file(&temporary);
            Err((path, error))
        }
    }
}

fn write_then_rename(temporary: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    // A message holds personal data and live links: private, like the database.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(temporary)?;
    file.write_all(bytes)?;
    // Durable before visible: after a crash the name never points at an empty file.
    file.sync_data()?;
    drop(file);
    fs::rename(temporary, path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn message(id: &str, bytes: &[u8]) -> OutgoingMessage {
        OutgoingMessage {
            message_id: id.to_owned(),
            envelope: super::super::Envelope {
                from: Some("success@acme.example".parse().expect("a valid address")),
                to: "ada@client.example".parse().expect("a valid address"),
            },
            bytes: bytes.to_vec(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read outbox")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn stems_keep_only_safe_characters() {
        let check = |id: &str, expected: Option<&str>| {
            assert_eq!(file_stem(id).as_deref(), expected, "{id:?}");
        };
        check("<a1.b2@acme.example>", Some("a1.b2_acme.example"));
        check("plain-id_1", Some("plain-id_1"));
        check("../../etc/passwd", Some("_._.._etc_passwd"));
        check(".hidden", Some("_hidden"));
        check("<é@x>", Some("__x"));
        check("<>", None);
        check("   ", None);
        assert_eq!(
            file_stem(&"x".repeat(500)).map(|s| s.len()),
            Some(MAX_STEM_LEN)
        );
    }

    #[tokio::test]
    async fn writes_one_file_and_overwrites_on_resend() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("outbox").join("nested");
        let mailer = FileMailer::new(dir.clone()).expect("mailer");

        let first = mailer
            .send(&message(
                "<m1@acme.example>",
                b"Subject: one\r\n\r\nfirst\r\n",
            ))
            .await
            .expect("first write");
        let path = dir.join("m1_acme.example.eml");
        assert_eq!(first.reply, format!("written to {}", path.display()));
        assert_eq!(
            fs::read(&path).expect("read"),
            b"Subject: one\r\n\r\nfirst\r\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "only the owner may read a message");
        }

        mailer
            .send(&message(
                "<m1@acme.example>",
                b"Subject: one\r\n\r\nsecond\r\n",
            ))
            .await
            .expect("resend");
        assert_eq!(
            fs::read(&path).expect("read"),
            b"Subject: one\r\n\r\nsecond\r\n"
        );
        assert_eq!(
            names(&dir),
            ["m1_acme.example.eml"],
            "no duplicate, no temp file left"
        );

        // The directory vanishing at runtime is recovered from.
        fs::remove_dir_all(&dir).expect("remove outbox");
        mailer
            .send(&message("<m2@acme.example>", b"x"))
            .await
            .expect("write after the directory vanished");
        assert_eq!(names(&dir), ["m2_acme.example.eml"]);

        let error = mailer.send(&message("<>", b"x")).await;
        assert!(matches!(error, Err(SendError::Permanent(_))), "{error:?}");
    }

    #[tokio::test]
    async fn a_reader_never_sees_half_a_file() {
        let temp = tempfile::tempdir().expect("tempdir");
        let mailer = FileMailer::new(temp.path().to_path_buf()).expect("mailer");
        let path = temp.path().join("same.eml");
        const LEN: usize = 256 * 1024;
        mailer
            .send(&message("same", &[b'a'; LEN]))
            .await
            .expect("first write");

        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (done, path) = (Arc::clone(&done), path.clone());
            std::thread::spawn(move || {
                let mut reads = 0_usize;
                while !done.load(Ordering::SeqCst) {
                    let bytes = fs::read(&path).expect("the final name always exists");
                    assert_eq!(bytes.len(), LEN, "a reader saw a partial file");
                    assert!(
                        bytes.iter().all(|&b| b == bytes[0]),
                        "a reader saw mixed content"
                    );
                    reads += 1;
                }
                reads
            })
        };
        for round in 0..40 {
            let fill = if round % 2 == 0 { b'b' } else { b'c' };
            mailer
                .send(&message("same", &[fill; LEN]))
                .await
                .expect("rewrite");
        }
        done.store(true, Ordering::SeqCst);
        let reads = reader.join().expect("reader thread");
        assert!(reads > 0);
        assert_eq!(names(temp.path()), ["same.eml"]);
    }
}
