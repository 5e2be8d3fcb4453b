//! Crash safety, end to end: a daemon killed (SIGKILL) in the middle of a large send, again
//! and again, then restarted, never sends anyone the same message twice. What had started
//! its SMTP transaction when it died is `uncertain` (the server may have it: the test
//! server saves a message before its slow reply, exactly the case where only the server
//! knows); what was only claimed goes back to the queue, and everything else goes out
//! once. And a SIGTERM lets the open transactions finish and starts no more: nothing
//! uncertain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::delivery::{COLUMNS, Env, counts, csv, instant, rfc3339};
use crate::support::wait_until;

/// Due clients, all at the same `send_at` moment.
const CLIENTS: usize = 2500;
const CONNECTIONS: usize = 4;
/// The most messages a pass keeps started and unsent per connection (the daemon's
/// `START_PER_CONNECTION`): what one kill can leave uncertain per connection.
const START_PER_CONNECTION: usize = 16;
const KILLS: usize = 10;
/// The test server's delay before its reply to DATA (after it has saved the message).
const DELAY_MS: u64 = 10;
/// The survey moment of clients who churned on 2026-01-08: 10:00 EDT on churn + 90 days.
const SURVEY_MOMENT: &str = "2026-04-08T14:00:05Z";

/// Imports `count` former clients whose survey is due at `SURVEY_MOMENT`; their emails.
pub(crate) fn import_clients(env: &Env, count: usize) -> Vec<String> {
    let emails: Vec<String> = (0..count)
        .map(|n| format!("client{n:04}@crash.example"))
        .collect();
    let rows: Vec<Vec<&str>> = emails
        .iter()
        .map(|email| {
            vec![
                email.as_str(),
                "Cora Crash",
                "Crash Co",
                "2026-01-08",
                "price",
                "",
            ]
        })
        .collect();
    let rows: Vec<&[&str]> = rows.iter().map(|row| row.as_slice()).collect();
    env.import(&csv(COLUMNS, &rows), "2026-04-01T00:00:00Z");
    emails
}

/// The clock of the whole run: the survey moment, then on in real time across restarts.
struct RunClock {
    started: Instant,
}

impl RunClock {
    fn now(&self) -> String {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).expect("a short run");
        rfc3339(instant(SURVEY_MOMENT) + elapsed)
    }
}

/// The emails of messages `winback outbox list` shows in `state`.
fn outbox_emails(env: &Env, state: &str) -> Vec<String> {
    let output = env.project.winback(&["outbox", "list"]);
    output.assert_success();
    output
        .stdout
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.len() >= 4 && words[0].parse::<i64>().is_ok() && words[1] == state)
                .then(|| words[3].to_lowercase())
        })
        .collect()
}

/// Waits (bounded) until the daemon has nothing left: no mail for `quiet`, and the outbox
/// holds neither `sending` nor anything still waiting.
fn wait_for_quiescence(env: &Env, clients: usize, quiet: Duration, timeout: Duration) -> bool {
    let mut last_count = usize::MAX;
    let mut last_change = Instant::now();
    wait_until(timeout, || {
        let count = env.received_rcpts().len();
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
            return false;
        }
        if last_change.elapsed() < quiet {
            return false;
        }
        let status = env.status();
        let messages = counts(&status, "messages");
        let settled = messages.get("sent").copied().unwrap_or(0)
            + messages.get("uncertain").copied().unwrap_or(0);
        !messages.contains_key("sending") && settled == clients as u64
    })
}

/// SIGKILL mid-send, again and again, then a final run: zero duplicates, every client
/// delivered once or `uncertain`, no kill leaves more messages uncertain than the
/// connections had started (the bound each), and every message that never started was
/// sent in the end.
#[test]
fn killing_the_daemon_mid_send_never_sends_twice() {
    let started = Instant::now();
    let env = Env::start(
        json!({"delay_ms": DELAY_MS}),
        &format!("connections = {CONNECTIONS}"),
        "0 10 * * *",
        &[("survey", 0), ("newsletter", 30)],
    );
    let emails = import_clients(&env, CLIENTS);
    let clock = RunClock {
        started: Instant::now(),
    };

    // Per kill: the messages it left `sending` (claimed, result not recorded), and the
    // `uncertain` count seen before it (each start turns what the kill before it left
    // started into `uncertain`, before it sends anything).
    let mut left_sending: Vec<u64> = Vec::new();
    let mut uncertain_seen: Vec<u64> = Vec::new();
    for round in 0..KILLS {
        let before = env.received_rcpts().len();
        // A different number each round, so kills fall at different points of a batch.
        let wanted = (before + 120 + 17 * round).min(CLIENTS);
        let mut daemon = env.project.spawn_winback(&["run", "--now", &clock.now()]);
        let arrived = wait_until(Duration::from_secs(20), || {
            env.received_rcpts().len() >= wanted
        });
        assert!(
            arrived,
            "round {round}: the daemon sent {} of {wanted} messages in 20 s:\n{}",
            env.received_rcpts().len(),
            daemon.stderr_so_far()
        );
        assert!(
            daemon.is_running(),
            "round {round}: the daemon exited:\n{}",
            daemon.stderr_so_far()
        );
        uncertain_seen.push(
            counts(&env.status(), "messages")
                .get("uncertain")
                .copied()
                .unwrap_or(0),
        );
        daemon.child().kill().expect("SIGKILL the daemon");
        let status = daemon.wait(Duration::from_secs(5)).status;
        assert!(
            !status.success(),
            "round {round}: the daemon finished before it was killed"
        );
        let status = env.status();
        left_sending.push(
            counts(&status, "messages")
                .get("sending")
                .copied()
                .unwrap_or(0),
        );
        assert!(
            env.received_rcpts().len() < CLIENTS,
            "round {round}: everything went out before the kill"
        );
    }

    let daemon = env.project.spawn_winback(&["run", "--now", &clock.now()]);
    assert!(
        wait_for_quiescence(
            &env,
            CLIENTS,
            Duration::from_secs(2),
            Duration::from_secs(40)
        ),
        "the final run did not settle: {} messages received, status {:#}\n{}",
        env.received_rcpts().len(),
        env.status(),
        daemon.stderr_so_far()
    );
    daemon.stop(Duration::from_secs(10)).assert_success();

    // Zero duplicates.
    let received = env.received_rcpts();
    let mut per_rcpt: BTreeMap<&str, usize> = BTreeMap::new();
    for rcpt in &received {
        *per_rcpt.entry(rcpt.as_str()).or_insert(0) += 1;
    }
    let twice: Vec<(&&str, &usize)> = per_rcpt.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");

    // Every client: delivered once, or uncertain (and then at most once).
    let status = env.status();
    let messages = counts(&status, "messages");
    let sent = messages.get("sent").copied().unwrap_or(0) as usize;
    let uncertain: BTreeSet<String> = outbox_emails(&env, "uncertain").into_iter().collect();
    assert_eq!(
        messages
            .keys()
            .filter(|state| *state != "sent" && *state != "uncertain")
            .count(),
        0,
        "{status:#}"
    );
    assert_eq!(
        messages.get("uncertain").copied().unwrap_or(0) as usize,
        uncertain.len(),
        "{status:#}"
    );
    assert_eq!(sent + uncertain.len(), CLIENTS, "{status:#}");
    let missing: Vec<&String> = emails
        .iter()
        .filter(|email| !uncertain.contains(*email) && !per_rcpt.contains_key(email.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} clients neither received nor uncertain: {missing:?}",
        missing.len()
    );
    let strangers: Vec<&&str> = per_rcpt
        .keys()
        .filter(|r| !emails.iter().any(|e| e == **r))
        .collect();
    assert!(
        strangers.is_empty(),
        "mail to addresses never imported: {strangers:?}"
    );

    // What each kill caught started became `uncertain` at the next start: never more
    // than the bound per connection. What it caught only claimed went back to the queue and
    // was sent.
    let kills = left_sending.len();
    uncertain_seen.push(uncertain.len() as u64);
    let per_kill: Vec<u64> = uncertain_seen.windows(2).map(|w| w[1] - w[0]).collect();
    let received_uncertain = uncertain
        .iter()
        .filter(|e| per_rcpt.contains_key(e.as_str()))
        .count();
    let summary = format!(
        "{kills} kills left {left_sending:?} messages `sending`, of which {per_kill:?} became \
         uncertain (at most {} each); {sent} delivered, {} uncertain, of which \
         {received_uncertain} reached the server and {} never left; {:?}",
        CONNECTIONS * START_PER_CONNECTION,
        uncertain.len(),
        uncertain.len() - received_uncertain,
        started.elapsed()
    );
    eprintln!("crash test: {summary}");
    assert_eq!(uncertain_seen[0], 0, "{summary}");
    assert!(
        per_kill
            .iter()
            .all(|n| *n <= (CONNECTIONS * START_PER_CONNECTION) as u64),
        "a kill left more messages uncertain than the connections had started: {summary}"
    );
    assert!(
        left_sending.iter().sum::<u64>() > uncertain.len() as u64,
        "no kill caught a message claimed but not started: the test proved nothing: {summary}"
    );
    assert!(
        !uncertain.is_empty(),
        "no kill landed during a send: the test proved nothing"
    );

    // The next step's timing counts an uncertain survey as sent: nothing more today.
    let later = env.pass(&rfc3339(
        instant(SURVEY_MOMENT) + chrono::Duration::hours(1),
    ));
    assert!(
        later.is_empty(),
        "{} messages after the run settled",
        later.len()
    );
}

/// SIGTERM while a slow server is taking a large send: the daemon stops claiming, lets the
/// batch in flight finish, and exits 0; nothing is left `sending` or `uncertain`, and a
/// later run sends the rest, each once.
#[test]
fn sigterm_finishes_the_batch_in_flight() {
    const SOME: usize = 200;
    let env = Env::start(
        json!({"delay_ms": 20}),
        "connections = 2",
        "0 10 * * *",
        &[("survey", 0)],
    );
    let emails = import_clients(&env, SOME);
    let clock = RunClock {
        started: Instant::now(),
    };

    let daemon = env.project.spawn_winback(&["run", "--now", &clock.now()]);
    assert!(
        wait_until(Duration::from_secs(20), || !env.received_rcpts().is_empty()),
        "nothing was sent:\n{}",
        daemon.stderr_so_far()
    );
    let asked = Instant::now();
    daemon.stop(Duration::from_secs(10)).assert_success();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        asked.elapsed()
    );

    let stopped_at = env.received_rcpts().len();
    assert!(
        stopped_at < SOME,
        "everything went out before SIGTERM: nothing was tested"
    );
    let status = env.status();
    let messages = counts(&status, "messages");
    assert_eq!(
        messages.get("sent").copied().unwrap_or(0) as usize,
        stopped_at,
        "every message the server took is recorded as sent: {status:#}"
    );
    assert!(
        !messages.contains_key("sending") && !messages.contains_key("uncertain"),
        "a clean stop left messages in doubt: {status:#}"
    );

    let rest = env.pass(&clock.now());
    assert_eq!(stopped_at + rest.len(), SOME);
    let received: BTreeSet<String> = env.received_rcpts().into_iter().collect();
    assert_eq!(env.received_rcpts().len(), SOME, "someone got two");
    assert_eq!(received, emails.into_iter().collect::<BTreeSet<_>>());
}

/// SIGTERM while each message takes the server 8 seconds: the two open transactions
/// finish, no claimed message starts after the signal, and the daemon exits 0 within the
/// per-message timeout; what was claimed but not started is back in the queue (`retry`,
/// due now), nothing is `sending` or `uncertain`, and the next run sends the rest.
#[test]
fn sigterm_starts_nothing_new_and_exits_within_the_message_timeout() {
    const SOME: usize = 6;
    const TIMEOUT_SECONDS: u64 = 10;
    let env = Env::start(
        json!({"delay_ms": 8000}),
        &format!("connections = 2\ntimeout_seconds = {TIMEOUT_SECONDS}"),
        "0 10 * * *",
        &[("survey", 0)],
    );
    import_clients(&env, SOME);
    let clock = RunClock {
        started: Instant::now(),
    };

    let daemon = env.project.spawn_winback(&["run", "--now", &clock.now()]);
    // The server saves a message before its slow reply: two transactions are open.
    assert!(
        wait_until(Duration::from_secs(20), || env.received_rcpts().len() >= 2),
        "nothing was sent:\n{}",
        daemon.stderr_so_far()
    );
    let asked = Instant::now();
    let stopped = daemon.stop(Duration::from_secs(3 * TIMEOUT_SECONDS));
    let took = asked.elapsed();
    stopped.assert_success();
    assert!(
        took < Duration::from_secs(TIMEOUT_SECONDS),
        "SIGTERM took {took:?}, longer than one message may take:\n{}",
        stopped.stderr
    );
    assert_eq!(
        env.received_rcpts().len(),
        2,
        "a message started after SIGTERM"
    );
    let status = env.status();
    let messages = counts(&status, "messages");
    assert_eq!(messages.get("sent").copied(), Some(2), "{status:#}");
    assert_eq!(
        messages.get("retry").copied(),
        Some(SOME as u64 - 2),
        "claimed messages go back to the queue: {status:#}"
    );
    assert!(
        !messages.contains_key("sending") && !messages.contains_key("uncertain"),
        "a clean stop left messages in doubt: {status:#}"
    );
}
