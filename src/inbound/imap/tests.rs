//! The reader against a real Dovecot (tests/it/support/imap.rs): rounds are run one at a
//! time with `read_once`, never waited for.

use std::cell::RefCell;

use std::pin::Pin;

use super::*;
use crate::store::Store;

#[path = "../../../tests/it/support/imap.rs"]
#[allow(unreachable_pub)]
mod dovecot;

use dovecot::{Dovecot, IMAP_PASSWORD};

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: mailer-daemon@mx.example\r\nTo: bounces@acme.example\r\nSubject: Undelivered {n}\r\nMessage-ID: <{n}@mx.example>\r\n\r\nMessage {n}.\r\n"
    )
    .into_bytes()
}

fn store(dir: &tempfile::TempDir) -> SharedStore {
    SharedStore::new(Store::open(&dir.path().join("winback.db")).unwrap())
}

fn reader(server: &Dovecot, folder: &str, options: ReadOptions) -> Reader {
    let url = MailboxUrl::parse(&server.url(folder)).unwrap();
    // Never used: the test server speaks plain IMAP on 127.0.0.1.
    let tls = Tls::new("localhost").unwrap();
    Reader::with_tls(url, IMAP_PASSWORD.to_string(), options, tls)
}

/// Runs one round, recording what the callback saw; `fail` says which UIDs it refuses.
async fn round(
    reader: &Reader,
    store: &SharedStore,
    fail: impl Fn(u32) -> bool,
) -> (Round, Vec<(u32, Vec<u8>)>) {
    let seen = RefCell::new(Vec::new());
    let mut handle = |uid: u32, raw: Vec<u8>| {
        seen.borrow_mut().push((uid, raw));
        if fail(uid) {
            Err("cannot apply")
        } else {
            Ok(())
        }
    };
    let round = reader
        .read_once(store, Clock::system(), &mut handle)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (round, seen.into_inner())
}

#[tokio::test]
async fn new_messages_are_read_once_unread_and_a_restart_neither_misses_nor_repeats() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let one = server.append("INBOX", &message(1));
    let two = server.append("INBOX", &message(2));

    let first = reader(&server, "INBOX", ReadOptions::default());
    let db = store(&dir);
    let (done, seen) = round(&first, &db, |_| false).await;
    assert_eq!(seen, vec![(one, message(1)), (two, message(2))]);
    assert_eq!((done.processed, done.last_uid), (vec![one, two], two));
    assert!(!server.any_seen("INBOX"), "BODY.PEEK marks nothing read");

    let (_, seen) = round(&first, &db, |_| false).await;
    assert!(seen.is_empty(), "nothing new, nothing handed on: {seen:?}");

    // A new reader and a new store connection, as after a daemon restart.
    let three = server.append("INBOX", &message(3));
    drop((first, db));
    let again = reader(&server, "INBOX", ReadOptions::default());
    let db = store(&dir);
    let (_, seen) = round(&again, &db, |_| false).await;
    assert_eq!(seen, vec![(three, message(3))]);
    assert_eq!(server.messages("INBOX").len(), 3, "nothing is deleted");
}

#[tokio::test]
async fn a_message_whose_callback_fails_is_read_again_next_round() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let one = server.append("Bounces", &message(1));
    let two = server.append("Bounces", &message(2));
    let three = server.append("Bounces", &message(3));
    let reader = reader(&server, "Bounces", ReadOptions::default());

    let (done, seen) = round(&reader, &db, |uid| uid == two).await;
    assert_eq!(
        seen.len(),
        3,
        "the ones after a failure are still handed on"
    );
    assert_eq!(done.processed, vec![one, three]);
    assert_eq!(
        done.last_uid, one,
        "the position stays before the failed one"
    );
    let key = reader.url.key();
    let position = db
        .call(move |s| s.mailbox_position(&key, "Bounces"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(position.last_uid, one);
    assert!(
        position
            .last_error
            .is_some_and(|e| e.contains("cannot apply"))
    );

    let (done, seen) = round(&reader, &db, |_| false).await;
    let uids: Vec<u32> = seen.iter().map(|(uid, _)| *uid).collect();
    assert_eq!(uids, vec![two, three]);
    assert_eq!(done.last_uid, three);
    let (_, seen) = round(&reader, &db, |_| false).await;
    assert!(seen.is_empty());
}

#[tokio::test]
async fn a_new_uidvalidity_reads_the_folder_again_from_the_start() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    server.append("Bounces", &message(1));
    let reader = reader(&server, "Bounces", ReadOptions::default());
    let (before, _) = round(&reader, &db, |_| false).await;

    server.recreate("Bounces");
    let uid = server.append("Bounces", &message(2));
    let (after, seen) = round(&reader, &db, |_| false).await;
    assert_ne!(after.uidvalidity, before.uidvalidity);
    assert_eq!(seen, vec![(uid, message(2))]);
}

#[tokio::test]
async fn processed_mail_moves_to_the_processed_folder_unless_read_only() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    server.append("INBOX", &message(1));
    server.append("Bounces", &message(2));
    let options = |read_only| ReadOptions {
        read_only,
        processed_folder: Some("winback".to_string()),
    };

    let inbox = reader(&server, "INBOX", options(true));
    let (done, _) = round(&inbox, &db, |_| false).await;
    assert_eq!(done.processed.len(), 1);
    assert_eq!(
        server.messages("INBOX").len(),
        1,
        "a person's inbox is only read"
    );

    let bounces = reader(&server, "Bounces", options(false));
    round(&bounces, &db, |_| false).await;
    assert!(server.messages("Bounces").is_empty());
    assert_eq!(server.messages("winback"), vec![(1, message(2))]);
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_changes_nothing() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    server.append("INBOX", &message(1));
    let url = MailboxUrl::parse(&server.url("INBOX")).unwrap();
    let reader = Reader::with_tls(
        url,
        "wrong".into(),
        ReadOptions::default(),
        Tls::new("localhost").unwrap(),
    );
    let mut handle = |_: u32, _: Vec<u8>| -> Result<(), String> { panic!("nothing is read") };
    let error = reader
        .read_once(&db, Clock::system(), &mut handle)
        .await
        .unwrap_err();
    assert!(matches!(error, ImapError::Login { .. }), "{error}");
}

#[test]
fn mailbox_urls_are_read_and_bad_ones_explained() {
    let url = MailboxUrl::parse("imaps://winback@imap.acme.example/INBOX").unwrap();
    assert_eq!(
        url,
        MailboxUrl {
            security: Security::Implicit,
            user: "winback".into(),
            host: "imap.acme.example".into(),
            port: 993,
            folder: "INBOX".into(),
        }
    );
    assert_eq!(url.key(), "imaps://winback@imap.acme.example:993");
    let url = MailboxUrl::parse("imap://bounces%40acme.example@[::1]:1143/Bounces%20In").unwrap();
    assert_eq!(
        (url.security, url.user.as_str(), url.host.as_str(), url.port),
        (Security::StartTls, "bounces@acme.example", "::1", 1143)
    );
    assert_eq!(url.folder, "Bounces In");
    assert_eq!(MailboxUrl::parse("imap://w@h").unwrap().folder, "INBOX");
    for bad in [
        "pop3://w@h/INBOX",
        "imaps://imap.acme.example/INBOX",
        "imaps://w:secret@h/INBOX",
        "imaps://w@h:port/INBOX",
        "imaps://w@h/%zz",
    ] {
        assert!(MailboxUrl::parse(bad).is_err(), "{bad}");
    }
    assert!(
        MailboxUrl::parse("imaps://w:secret@h/INBOX")
            .unwrap_err()
            .contains("WINBACK_IMAP_PASSWORD")
    );
}

#[tokio::test]
async fn imap_upgrades_with_starttls_and_imaps_speaks_tls_from_the_start() {
    let server = Dovecot::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let uid = server.append("INBOX", &message(1));
    for url in [
        server.url("INBOX"),
        format!("imaps://winback@127.0.0.1:{}/INBOX", server.imaps_port()),
    ] {
        let url = MailboxUrl::parse(&url).unwrap();
        let key = url.key();
        let tls = Tls::trusting("127.0.0.1", &dovecot::ca_pem());
        let reader = Reader::with_tls(url, IMAP_PASSWORD.into(), ReadOptions::default(), tls);
        let (_, seen) = round(&reader, &db, |_| false).await;
        assert_eq!(seen, vec![(uid, message(1))], "{key}");
    }
    // The helper that appended logs in plain; both of the reader's logins went over TLS.
    let tls_logins = || {
        server
            .log()
            .lines()
            .filter(|l| l.contains("Login: user=<winback>") && l.contains(", TLS"))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tls_logins() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(tls_logins(), 2, "{}", server.log());
}

#[tokio::test]
async fn the_running_reader_hears_new_mail_through_idle() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let one = server.append("INBOX", &message(1));
    let reader = reader(&server, "INBOX", ReadOptions::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = reader.run(db, Clock::system(), move |uid, _raw: Vec<u8>| {
        tx.send(uid).map_err(|e| e.to_string())
    });
    tokio::pin!(run);
    // Well under the 60 s poll: only IDLE brings the second message in time.
    let limit = Duration::from_secs(20);
    let mut next = async |run: &mut Pin<&mut _>| {
        tokio::time::timeout(limit, async {
            tokio::select! {
                uid = rx.recv() => uid,
                () = run => None,
            }
        })
        .await
    };
    assert_eq!(next(&mut run).await, Ok(Some(one)));
    let two = server.append("INBOX", &message(2));
    assert_eq!(next(&mut run).await, Ok(Some(two)), "{}", server.log());
}

#[test]
fn a_password_goes_unencrypted_only_to_this_machine() {
    let allowed = |addr: &str| plain_login_allowed(Some(addr.parse().unwrap()));
    assert!(allowed("127.0.0.1:143"));
    assert!(allowed("127.8.9.10:143"));
    assert!(allowed("[::1]:143"));
    assert!(allowed("[::ffff:127.0.0.1]:143"));
    assert!(!allowed("192.168.1.10:143"));
    assert!(!allowed("203.0.113.7:143"));
    assert!(!allowed("[2001:db8::1]:143"));
    assert!(!plain_login_allowed(None));
}

#[tokio::test]
async fn an_unreachable_server_is_recorded_for_operators() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let url = MailboxUrl::parse(&format!("imap://winback@127.0.0.1:{port}/INBOX")).unwrap();
    let key = url.key();
    let reader = Reader::with_tls(
        url,
        IMAP_PASSWORD.into(),
        ReadOptions::default(),
        Tls::new("localhost").unwrap(),
    );
    let run = reader.run(db.clone(), Clock::system(), |_: u32, _: Vec<u8>| {
        Ok::<(), String>(())
    });
    tokio::pin!(run);
    let recorded = async {
        loop {
            let key = key.clone();
            let position = db
                .call(move |s| s.mailbox_position(&key, "INBOX"))
                .await
                .unwrap();
            if let Some(error) = position.and_then(|p| p.last_error) {
                return error;
            }
            tokio::task::yield_now().await;
        }
    };
    let error = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            error = recorded => error,
            () = &mut run => unreachable!("the reader never stops by itself"),
        }
    })
    .await
    .expect("the failure is recorded");
    assert!(error.contains("cannot reach 127.0.0.1"), "{error}");
}

#[tokio::test]
async fn a_server_without_idle_is_polled_and_without_move_keeps_processed_mail() {
    let server = Dovecot::start_without_idle_or_move();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let one = server.append("Bounces", &message(1));
    let options = ReadOptions {
        read_only: false,
        processed_folder: Some("winback".to_string()),
    };
    let reader = reader(&server, "Bounces", options).polling_every(Duration::ZERO);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = reader.run(db, Clock::system(), move |uid, _raw: Vec<u8>| {
        tx.send(uid).map_err(|e| e.to_string())
    });
    tokio::pin!(run);
    let limit = Duration::from_secs(20);
    let mut next = async |run: &mut Pin<&mut _>| {
        tokio::time::timeout(limit, async {
            tokio::select! {
                uid = rx.recv() => uid,
                () = run => None,
            }
        })
        .await
    };
    assert_eq!(next(&mut run).await, Ok(Some(one)));
    let two = server.append("Bounces", &message(2));
    assert_eq!(next(&mut run).await, Ok(Some(two)), "{}", server.log());
    assert_eq!(
        server.messages("Bounces").len(),
        2,
        "without MOVE nothing leaves the folder"
    );
}

/// The daemon spawns `run` as a task of its own: its future must be `Send + 'static` when
/// the reader and the callback are.
#[test]
fn the_running_reader_can_be_spawned() {
    fn spawnable<F: Future<Output = ()> + Send + 'static>(_: F) {}
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let url = MailboxUrl::parse("imap://winback@127.0.0.1:1/INBOX").unwrap();
    let reader = std::sync::Arc::new(Reader::with_tls(
        url,
        String::new(),
        ReadOptions::default(),
        Tls::new("localhost").unwrap(),
    ));
    spawnable(async move {
        reader
            .run(db, Clock::system(), |_: u32, _: Vec<u8>| {
                Ok::<(), String>(())
            })
            .await;
    });
}

#[tokio::test]
async fn the_running_reader_tries_a_refused_message_again_without_new_mail() {
    let server = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let db = store(&dir);
    let one = server.append("INBOX", &message(1));
    let reader = reader(&server, "INBOX", ReadOptions::default()).retrying_after(Duration::ZERO);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut calls = 0;
    let run = reader.run(db, Clock::system(), move |uid, _raw: Vec<u8>| {
        calls += 1;
        let _ = tx.send((uid, calls));
        if calls == 1 {
            Err("the database is busy")
        } else {
            Ok(())
        }
    });
    tokio::pin!(run);
    let mut next = async |run: &mut Pin<&mut _>| {
        tokio::time::timeout(Duration::from_secs(20), async {
            tokio::select! {
                got = rx.recv() => got,
                () = run => None,
            }
        })
        .await
    };
    assert_eq!(next(&mut run).await, Ok(Some((one, 1))));
    assert_eq!(next(&mut run).await, Ok(Some((one, 2))), "handed on again");
}
