use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{NaiveDate, TimeZone};

use super::*;
use crate::domain::model::{ChurnedAt, ClientRecord};
use crate::mailer::{Delivered, StubMailer};
use crate::store::Store;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn setup(dir: &std::path::Path) -> Config {
    setup_over(dir, 1)
}

/// [`setup`] with `connections` SMTP connections.
fn setup_over(dir: &std::path::Path, connections: usize) -> Config {
    let templates = dir.join("templates");
    std::fs::create_dir(&templates).unwrap();
    for ext in ["html", "txt"] {
        std::fs::write(
            templates.join(format!("survey.{ext}.hbs")),
            "Hello {{first_name}}. {{unsubscribe_url}} {{sender.postal_address}}",
        )
        .unwrap();
    }
    crate::test_support::config(
        dir,
        &format!("connections = {connections}"),
        crate::test_support::SURVEY_ONLY,
    )
}

fn record(email: &str) -> ClientRecord {
    ClientRecord {
        email: email.to_string(),
        name: Some("Pat Smith".to_string()),
        first_name: None,
        company: None,
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()),
        churn_reason: Some("competitor".to_string()),
        timezone: None,
        fields: BTreeMap::new(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

/// A database in `dir` with `count` people imported, each with a survey due at `now()`:
/// the configuration, the file and the store, and their addresses in import order.
fn imported(
    dir: &std::path::Path,
    count: usize,
) -> (Config, std::path::PathBuf, Store, Vec<String>) {
    imported_over(dir, count, 1)
}

/// [`imported`] with `connections` SMTP connections.
fn imported_over(
    dir: &std::path::Path,
    count: usize,
    connections: usize,
) -> (Config, std::path::PathBuf, Store, Vec<String>) {
    let config = setup_over(dir, connections);
    let db = dir.join("winback.db");
    let mut store = Store::open(&db).unwrap();
    let people: Vec<String> = (1..=count)
        .map(|n| format!("p{n}@client.example"))
        .collect();
    let rows = people
        .iter()
        .map(|email| Ok((2, record(email))))
        .collect::<Vec<_>>();
    store
        .import(rows.into_iter(), &config, now(), false, &mut |_| {})
        .unwrap();
    (config, db, store, people)
}

/// Sends like the stub, but send number `at` also opts out everyone else on `people`
/// (through its own connection, as the HTTP server would): an opt-out that arrives
/// while the other messages wait, claimed or already started.
struct OptOutDuringSend {
    stub: StubMailer,
    http: Mutex<Store>,
    people: Vec<String>,
    sends: AtomicUsize,
    at: usize,
}

/// Messages the pass left started and unrecorded: what a crash now would leave
/// `uncertain`.
fn left_started(deliverer: &Deliverer) -> usize {
    deliverer
        .store
        .lock()
        .unwrap()
        .started_unrecorded()
        .unwrap()
}

impl OptOutDuringSend {
    /// Opts `people` out in `db` during send number `at` (1 for the first).
    fn at(db: &std::path::Path, people: Vec<String>, at: usize) -> Arc<OptOutDuringSend> {
        Arc::new(OptOutDuringSend {
            stub: StubMailer::new(),
            http: Mutex::new(Store::open(db).unwrap()),
            people,
            sends: AtomicUsize::new(0),
            at,
        })
    }
}

impl Mailer for OptOutDuringSend {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
        if self.sends.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let mut store = self.http.lock().unwrap();
            for person in self
                .people
                .iter()
                .filter(|p| **p != message.envelope.to.to_string())
            {
                store.record_opt_out(person, "link", now()).unwrap();
            }
        }
        self.stub.send(message)
    }
}

/// Sends like the stub, and notes before each send how many messages are started and
/// not yet recorded (read on a connection of its own): what a crash then would leave
/// `uncertain`.
struct NotesStarted {
    stub: StubMailer,
    db: Mutex<Store>,
    seen: Mutex<Vec<usize>>,
}

impl Mailer for NotesStarted {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
        let started = self.db.lock().unwrap().started_unrecorded().unwrap();
        self.seen.lock().unwrap().push(started);
        self.stub.send(message)
    }
}

/// A deliverer over `store`, sending with `mailer`, its clock at `now()`.
fn deliverer(
    config: Config,
    renderer: Renderer,
    mailer: Arc<dyn Mailer>,
    store: Store,
) -> Deliverer {
    Deliverer {
        config: Arc::new(config),
        renderer: Arc::new(renderer),
        mailer,
        secret: Arc::new(Secret::generate()),
        clock: Clock::starting_at(now()),
        checks: SharedStore::new(store.open_for_checks().unwrap()),
        store: SharedStore::new(store),
    }
}

/// A pass over one imported client with the survey templates `html` and `text`.
async fn pass_with(
    html: &str,
    text: &str,
) -> (PassReport, Deliverer, Arc<StubMailer>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let templates = dir.path().join("templates");
    std::fs::write(templates.join("survey.html.hbs"), html).unwrap();
    std::fs::write(templates.join("survey.txt.hbs"), text).unwrap();
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
    let mut store = Store::open(&dir.path().join("winback.db")).unwrap();
    let rows = vec![Ok((2, record("pat@client.example")))];
    store
        .import(rows.into_iter(), &config, now(), false, &mut |_| {})
        .unwrap();
    let mailer = Arc::new(StubMailer::new());
    let deliverer = deliverer(config, renderer, mailer.clone(), store);
    let report = deliverer.pass(Arc::default()).await.unwrap();
    (report, deliverer, mailer, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_not_fit_to_go_is_held_never_sent_and_its_sequence_waits() {
    const FOOTER: &str = "{{unsubscribe_url}} {{sender.postal_address}}";
    for (html, text, why) in [
        // The footer only the sample (Jordan) sees.
        (
            format!(
                "Hi {{{{first_name}}}} {{{{#if (eq first_name \"Jordan\")}}}}{FOOTER}{{{{/if}}}}"
            ),
            format!("Hi {FOOTER}"),
            "HTML part lacks the unsubscribe link",
        ),
        // A placeholder only some people see.
        (
            format!("Hi {FOOTER}"),
            format!("Hi {{{{#if (eq first_name \"Pat\")}}}}[EDIT: news]{{{{/if}}}} {FOOTER}"),
            "text part still contains the placeholder \"[EDIT: news]\"",
        ),
        // A column the sample has and Pat lacks: the template fails for Pat.
        (
            format!("Hi {{{{fields.plan}}}} {FOOTER}"),
            format!("Hi {FOOTER}"),
            "uses {{fields.plan}}, but this client has no \"plan\" value",
        ),
    ] {
        let (report, deliverer, mailer, _dir) = pass_with(&html, &text).await;
        assert!(mailer.sent().is_empty(), "{why}");
        assert_eq!(
            (report.sent, report.held, report.failed),
            (0, 1, 0),
            "{why}"
        );
        let store = deliverer.store.lock().unwrap();
        let status = store.status().unwrap();
        assert_eq!(
            status.enrollments["former-clients"].get("active"),
            Some(&1),
            "{why}: {status:?}"
        );
        let held = &status.attention[0];
        assert_eq!(held.state, "held", "{why}");
        assert!(held.error.as_deref().unwrap().contains(why), "{held:?}");
    }
}

/// A database that refuses the results (a full disk, as SQLite reports it) until it
/// has room again: the pass keeps the results, starts nothing more meanwhile (the
/// starts share the refused transaction), and records and sends the rest then; nothing
/// stays `sending`, nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_cannot_be_written_are_written_once_the_database_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
    let db = dir.path().join("winback.db");
    let mut store = Store::open(&db).unwrap();
    let rows = (1..=3)
        .map(|n| Ok((2, record(&format!("p{n}@client.example")))))
        .collect::<Vec<_>>();
    store
        .import(rows.into_iter(), &config, now(), false, &mut |_| {})
        .unwrap();
    let disk = rusqlite::Connection::open(&db).unwrap();
    disk.execute_batch(
        "CREATE TABLE full_disk (x);
         INSERT INTO full_disk VALUES (1);
         CREATE TRIGGER no_room BEFORE UPDATE OF state ON messages
         WHEN NEW.state = 'sent' AND EXISTS (SELECT 1 FROM full_disk)
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();
    let mailer = Arc::new(StubMailer::new());
    let deliverer = deliverer(config, renderer, mailer.clone(), store);
    // Room comes back a while after the first message went out (and failed to record);
    // what went out meanwhile is noted.
    let watcher = mailer.clone();
    let room = std::thread::spawn(move || {
        for _ in 0..2000 {
            if !watcher.sent().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(600));
        let sent_while_full = watcher.sent().len();
        disk.execute("DELETE FROM full_disk", []).unwrap();
        sent_while_full
    });
    let report = deliverer.pass(Arc::default()).await.unwrap();
    let sent_while_full = room.join().unwrap();
    assert_eq!(
        sent_while_full, 1,
        "sent while its result could not be written"
    );
    assert_eq!((report.sent, mailer.sent().len()), (3, 3), "{report:?}");
    let status = deliverer.store.lock().unwrap().status().unwrap();
    assert_eq!(
        status.messages["former-clients"],
        [("sent".to_string(), 3)].into_iter().collect(),
        "{status:?}"
    );
}

/// A pass whose claim cannot be written (the disk full before anything was sent; here
/// the write lock held by another connection) fails with the error: the daemon then
/// pauses before the next pass rather than claiming again at once, and `run --once`
/// says why instead of exiting 0 with nothing sent. Once the database takes writes,
/// the next pass sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_cannot_claim_fails_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
    let db = dir.path().join("winback.db");
    let mut store = Store::open(&db).unwrap();
    let rows = vec![Ok((2, record("pat@client.example")))];
    store
        .import(rows.into_iter(), &config, now(), false, &mut |_| {})
        .unwrap();
    store
        .set_busy_timeout(std::time::Duration::from_millis(10))
        .unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mailer = Arc::new(StubMailer::new());
    let deliverer = deliverer(config, renderer, mailer.clone(), store);
    let refused = deliverer.pass(Arc::default()).await;
    assert!(
        matches!(refused, Err(DeliverError::Store(_))),
        "{refused:?}"
    );
    assert!(mailer.sent().is_empty());
    other.execute_batch("ROLLBACK").unwrap();
    let report = deliverer.pass(Arc::default()).await.unwrap();
    assert_eq!((report.sent, mailer.sent().len()), (1, 1), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_while_a_message_waits_in_the_queue_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, db, store, people) = imported(dir.path(), 3);
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
    let mailer = OptOutDuringSend::at(&db, people, 1);
    let deliverer = deliverer(config, renderer, mailer.clone(), store);
    let report = deliverer.pass(Arc::default()).await.unwrap();
    let sent: Vec<String> = mailer
        .stub
        .sent()
        .into_iter()
        .map(|m| m.envelope.to.to_string())
        .collect();
    assert_eq!(sent.len(), 1, "only the message already started: {sent:?}");
    assert_eq!((report.sent, report.withdrawn), (1, 2), "{report:?}");
    let mut store = deliverer.store.lock().unwrap();
    assert!(
        store
            .claim_due(&deliverer.config, now() + Duration::days(1), 10)
            .unwrap()
            .is_empty()
    );
}

/// Sends that cost nothing, over one connection and over four sharing the queue: the
/// pass starts several messages in one transaction, and never more than its bound, so a
/// crash at any moment would leave at most that many uncertain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_starts_several_messages_at_once_never_more_than_its_bound() {
    for connections in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let count = 40 * connections;
        let (config, db, store, _) = imported_over(dir.path(), count, connections);
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
        let mailer = Arc::new(NotesStarted {
            stub: StubMailer::new(),
            db: Mutex::new(Store::open(&db).unwrap()),
            seen: Mutex::new(Vec::new()),
        });
        let deliverer = deliverer(config, renderer, mailer.clone(), store);
        let report = deliverer.pass(Arc::default()).await.unwrap();
        assert_eq!(
            (report.sent, mailer.stub.sent().len()),
            (count, count),
            "{report:?}"
        );
        let seen = mailer.seen.lock().unwrap().clone();
        assert!(
            seen.iter().any(|n| *n > connections),
            "{connections} connections: one start per connection at a time: {seen:?}"
        );
        assert!(
            seen.iter()
                .all(|n| *n <= connections * pass::START_PER_CONNECTION),
            "{connections} connections: more started at once than the bound: {seen:?}"
        );
        assert_eq!(left_started(&deliverer), 0);
    }
}

#[test]
fn a_pass_starts_ahead_what_its_connections_send_in_its_transactions_time() {
    use super::pass::{START_PER_CONNECTION, start_depth};
    use std::time::Duration as Span;
    let us = Span::from_micros;
    // A local relay: 0.1 ms a send, 1 ms a transaction: 4 × 10 ahead, plus one each.
    assert_eq!(start_depth(4, us(1000), us(100)), 44);
    assert_eq!(start_depth(4, us(5000), us(100)), 4 * START_PER_CONNECTION);
    assert_eq!(
        start_depth(2, us(1000), Span::ZERO),
        2 * START_PER_CONNECTION
    );
    // A slow server (50 ms a send on each of 4 connections): about one each.
    assert_eq!(start_depth(4, us(2000), us(12_500)), 4);
    assert_eq!(start_depth(1, Span::ZERO, us(1000)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_while_started_messages_wait_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let (config, db, store, people) = imported(dir.path(), 20);
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
    // The first transaction starts one message; the next, after its send, several:
    // everyone else opts out while the first of those is being sent.
    let mailer = OptOutDuringSend::at(&db, people, 2);
    let deliverer = deliverer(config, renderer, mailer.clone(), store);
    let report = deliverer.pass(Arc::default()).await.unwrap();
    let sent = mailer.stub.sent();
    assert_eq!((sent.len(), report.sent), (2, 2), "{report:?}");
    // The first claim (16, before any send) and any later one made before the opt-out:
    // started and waiting, or claimed and not started, each withdrawn, none sent, none
    // back in the queue, none left started. Those claimed after it were stopped by
    // their claim.
    assert!(
        (14..=18).contains(&report.withdrawn) && report.returned == 0,
        "{report:?}"
    );
    assert_eq!(left_started(&deliverer), 0);
    let status = deliverer.store.lock().unwrap().status().unwrap();
    assert_eq!(
        status.messages["former-clients"].get("sent"),
        Some(&2),
        "{status:?}"
    );
}

/// Notes before each send how many messages are started and not yet recorded, and at the
/// send to `trigger` opts out `victims` (as the HTTP server would).
struct OptsOutSome {
    stub: StubMailer,
    db: Mutex<Store>,
    seen: Mutex<Vec<(String, usize)>>,
    trigger: String,
    victims: Vec<String>,
}

impl Mailer for OptsOutSome {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
        let to = message.envelope.to.to_string();
        {
            let mut db = self.db.lock().unwrap();
            let started = db.started_unrecorded().unwrap();
            self.seen.lock().unwrap().push((to.clone(), started));
            if to == self.trigger {
                for victim in &self.victims {
                    db.record_opt_out(victim, "link", now()).unwrap();
                }
            }
        }
        self.stub.send(message)
    }
}

/// A message the check before its send withdraws stays started until the pass's next
/// transaction records it, and counts against the bound meanwhile: a crash still finds
/// no more started than the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_withdrawn_after_their_start_never_take_the_started_past_the_bound() {
    let count = 160;
    let run = |trigger: String, victims: Vec<String>| async move {
        let dir = tempfile::tempdir().unwrap();
        let (config, db, store, _) = imported(dir.path(), count);
        let mailer = Arc::new(OptsOutSome {
            stub: StubMailer::new(),
            db: Mutex::new(Store::open(&db).unwrap()),
            seen: Mutex::new(Vec::new()),
            trigger,
            victims,
        });
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
        let deliverer = deliverer(config, renderer, mailer.clone(), store);
        deliverer.pass(Arc::default()).await.unwrap();
        let left = left_started(&deliverer);
        assert_eq!(left, 0);
        mailer.seen.lock().unwrap().clone()
    };
    // The order of the sends, with nobody opting out.
    let order: Vec<String> = run(String::new(), Vec::new())
        .await
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    for at in (60..76).filter(|at| at + 4 < order.len()) {
        // The three after a send opt out while it goes: started and waiting, or about to
        // start.
        let seen = run(order[at].clone(), order[at + 1..at + 4].to_vec()).await;
        assert!(
            seen.iter().all(|(_, n)| *n <= pass::START_PER_CONNECTION),
            "opt-outs after send {at}: more started at once than the bound: {:?}",
            seen.iter().map(|(_, n)| n).collect::<Vec<_>>()
        );
    }
}
