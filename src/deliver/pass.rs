//! One delivery pass: the loop that writes, one transaction at a time, what became of the
//! messages sent, the starts of the next ones and the next claims; and the workers (one
//! per SMTP connection) that check each started message once more and send it. What one
//! message needs (rendering, sending, the rate limits) is in `deliver.rs`.
//!
//! Must not touch SQL (the store does) nor decide who is due (the store asks `domain`).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{BATCH_PER_CONNECTION, DeliverError, Deliverer, PassReport, Prepared};
use crate::mailer::OutgoingMessage;
use crate::store::{Claimed, Outcome, Step};

/// The most messages a pass keeps started and not yet sent, per connection: what a crash
/// can leave `uncertain` at worst. A pass keeps fewer unless its connections send faster
/// than it commits (see [`start_depth`]).
pub(crate) const START_PER_CONNECTION: usize = 16;

/// How many messages a pass keeps started ahead of its connections: one per connection,
/// and as many more as they send, one every `per_send`, in four times the time of the
/// pass's recent transactions (`busy`: between two of them the pass also gathers results
/// and hops between threads); at most [`START_PER_CONNECTION`] each. Against a local
/// relay that sends a message in a fraction of a commit this hides the commits; against
/// a slow server it stays near one per connection, so a crash leaves about that many
/// uncertain.
pub(crate) fn start_depth(connections: usize, busy: Duration, per_send: Duration) -> usize {
    let ahead = (4 * busy.as_nanos())
        .checked_div(per_send.as_nanos())
        .unwrap_or(u128::MAX);
    let most = connections.saturating_mul(START_PER_CONNECTION);
    usize::try_from(ahead)
        .unwrap_or(usize::MAX)
        .saturating_add(connections)
        .min(most)
        .max(1)
}

/// Results that could not be recorded are tried again after this, then twice as long
/// each time, up to `MAX_RECORD_WAIT`.
const FIRST_RECORD_WAIT: Duration = Duration::from_millis(250);
const MAX_RECORD_WAIT: Duration = Duration::from_secs(30);
/// How long a pass gathers results before its next transaction, at most.
const COMMIT_GATHER: Duration = Duration::from_millis(20);

/// What replaces the send of a message started or claimed but never handed to the server.
fn not_started(deliverer: &Deliverer, why: &str) -> Outcome {
    Outcome::Returned {
        reason: format!("not started: {why}"),
        at: deliverer.clock.now(),
    }
}

/// What tells a pass and its workers to hand no more messages to the server.
struct Halt {
    /// The daemon is stopping (set by its caller).
    stopping: Arc<AtomicBool>,
    /// The mail server refused our connection or sender.
    refused: AtomicBool,
    /// The pass failed (the database lock poisoned, a task that died).
    failed: AtomicBool,
}

impl Halt {
    /// Why nothing more may go, if so.
    fn why(&self) -> Option<&'static str> {
        if self.stopping.load(Ordering::SeqCst) {
            Some("the daemon was stopping")
        } else if self.refused.load(Ordering::SeqCst) {
            Some("the mail server refused us")
        } else if self.failed.load(Ordering::SeqCst) {
            Some("the delivery pass failed")
        } else {
            None
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// What a worker hands back for one started message.
struct Done {
    row: i64,
    outcome: Outcome,
    /// How long its SMTP transaction took, if it was sent.
    took: Option<Duration>,
}

/// A failure after which the pass cannot go on: it stops starting, lets the workers
/// finish, and ends with the error.
fn fatal(error: &DeliverError) -> bool {
    matches!(
        error,
        DeliverError::Poisoned | DeliverError::Join(_) | DeliverError::WorkerStopped
    )
}

impl Deliverer {
    /// Sends everything due now, until nothing is due, a rate limit is reached, the server
    /// refuses us, or `stopping` says to stop (checked between transactions).
    ///
    /// This task writes, one transaction at a time: the results gathered since its last
    /// one, the start of claimed messages (each checked once more, as many as keep the
    /// connections busy, see [`start_depth`]) and, when no more than half a batch waits
    /// rendered, the next claim, which it then renders. The workers, one per connection,
    /// check each started message again just before its SMTP transaction and send it.
    /// Once `stopping` is set, nothing more starts and every claimed message goes back to
    /// the queue.
    pub(crate) async fn pass(&self, stopping: Arc<AtomicBool>) -> Result<PassReport, DeliverError> {
        let connections = self.config.smtp.connections;
        let most = connections * START_PER_CONNECTION;
        let batch = connections * BATCH_PER_CONNECTION;
        let (queue_tx, queue_rx) = mpsc::channel::<(Claimed, OutgoingMessage)>(most);
        let queue_rx = Arc::new(tokio::sync::Mutex::new(queue_rx));
        let (done_tx, mut done_rx) = mpsc::channel::<Done>(most);
        let halt = Arc::new(Halt {
            stopping,
            refused: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        });
        let mut workers = JoinSet::new();
        for _ in 0..connections {
            workers.spawn(
                self.clone()
                    .work(queue_rx.clone(), done_tx.clone(), halt.clone()),
            );
        }
        drop(done_tx);
        let mut report = PassReport::default();
        let mut claim_error = None;
        let mut store_error = None;
        // Claimed and rendered, not started: a crash sends these back to the queue.
        let mut pool: VecDeque<Prepared> = VecDeque::new();
        // Outcomes to record with the next transaction.
        let mut results: Vec<(i64, Outcome)> = Vec::new();
        // Started and handed to the workers, no outcome yet.
        let mut unsent = 0usize;
        let mut claiming = true;
        let mut depth = connections;
        // How long to wait before trying again to record results that could not be.
        let mut record_wait = FIRST_RECORD_WAIT;
        // How long the pass's recent transactions took, and a connection's recent sends.
        let mut busy = Duration::ZERO;
        let mut send_time: Option<Duration> = None;
        loop {
            let halted = halt.why();
            if halted.is_some() {
                claiming = false;
            }
            let mut starts: Vec<(Claimed, OutgoingMessage)> = Vec::new();
            if let Some(why) = halted {
                self.give_back(&mut pool, why, &mut results);
            }
            while unsent + starts.len() < depth {
                let Some((message, rendered)) = pool.pop_front() else {
                    break;
                };
                match rendered {
                    Err(outcome) => results.push((message.message_row, outcome)),
                    Ok(outgoing) => starts.push((message, outgoing)),
                }
            }
            let now = self.clock.now();
            let mut limit = 0;
            if claiming && pool.len() <= batch / 2 {
                match self.allowance(now).await {
                    Ok(0) => {
                        tracing::info!("rate limit reached; the rest waits");
                        report.throttled = true;
                        claiming = false;
                    }
                    Ok(allowed) => limit = allowed.min(batch - pool.len()),
                    Err(e) => {
                        claim_error = Some(e);
                        claiming = false;
                    }
                }
            }
            if !starts.is_empty() || limit > 0 || !results.is_empty() {
                if let Some(took) = send_time {
                    let per_send = took / u32::try_from(connections).unwrap_or(u32::MAX);
                    depth = start_depth(connections, busy, per_send);
                }
                let began = Instant::now();
                let step = Arc::new(Step {
                    results: std::mem::take(&mut results),
                    starts: starts.iter().map(|(m, _)| m.message_row).collect(),
                    claim: (limit > 0).then_some((now, limit)),
                    at: now,
                });
                let written = self.write_step(step.clone()).await;
                // The longest recent transaction, fading: one that claims and renders takes
                // several times one that only records and starts.
                busy = began.elapsed().max(busy * 3 / 4);
                match written {
                    Ok((withdrawn, claimed)) => {
                        record_wait = FIRST_RECORD_WAIT;
                        for (_, outcome) in &step.results {
                            report.count(outcome);
                        }
                        for ((message, outgoing), reason) in starts.into_iter().zip(withdrawn) {
                            match reason {
                                None => {
                                    unsent += 1;
                                    // The queue holds `most`, and never more than `depth`
                                    // are unsent: this never waits, and fails only if
                                    // every worker is gone (the row then stays started:
                                    // uncertain at the next start, never sent twice).
                                    if queue_tx.send((message, outgoing)).await.is_err() {
                                        unsent -= 1;
                                    }
                                }
                                Some(reason) => {
                                    let row = message.message_row;
                                    tracing::info!(outbox_id = row, to = %message.client.email, %reason, "not sent");
                                    let at = self.clock.now();
                                    results.push((row, Outcome::Withdrawn { reason, at }));
                                }
                            }
                        }
                        match claimed {
                            Ok(claimed) => {
                                if limit > 0 && claimed.is_empty() {
                                    claiming = false;
                                }
                                pool.extend(claimed);
                            }
                            Err(e) => {
                                // The results and starts stand; claim no more.
                                claim_error = Some(e);
                                claiming = false;
                            }
                        }
                    }
                    Err(e) => {
                        // Nothing of it happened (a full disk, say): claim no more. What
                        // was to start waits at the head of the pool, unstarted.
                        claiming = false;
                        results = Arc::try_unwrap(step)
                            .map_or_else(|step| step.results.clone(), |step| step.results);
                        for (message, outgoing) in starts.into_iter().rev() {
                            pool.push_front((message, Ok(outgoing)));
                        }
                        if halt.stopping() || fatal(&e) {
                            // What is left is written once more on the way out, if it can
                            // be; else the next start settles it (uncertain if started,
                            // else back in the queue).
                            store_error = Some(e);
                            break;
                        }
                        if results.is_empty() && pool.is_empty() {
                            // Only a claim was refused (the disk full before the pass,
                            // say): the pass fails, so the daemon pauses before the next
                            // one instead of claiming again at once.
                            claim_error = Some(e);
                        } else {
                            // Keep trying until it works; the rows stay `sending`
                            // meanwhile, never stuck for good.
                            if results.is_empty() {
                                tracing::error!(error = %e, waiting = pool.len(), wait = ?record_wait, "cannot record the start of the next messages; trying again");
                            } else {
                                tracing::error!(error = %e, results = results.len(), waiting = pool.len(), wait = ?record_wait, "cannot record the results of sent messages; trying again");
                            }
                            self.wait_to_record(record_wait, &halt).await;
                            record_wait = (record_wait * 2).min(MAX_RECORD_WAIT);
                            continue;
                        }
                    }
                }
            }
            if unsent == 0 {
                if !claiming && pool.is_empty() && results.is_empty() {
                    break;
                }
                continue;
            }
            // Gather for a moment: one transaction for many outcomes, but soon enough that
            // the connections never run out of started messages.
            let first = tokio::select! {
                first = done_rx.recv() => first,
                // A worker never ends before the queue closes: if one did, its message
                // stays started (uncertain at the next start, never resent).
                Some(joined) = workers.join_next() => {
                    store_error = Some(joined.err().map_or(DeliverError::WorkerStopped, DeliverError::from));
                    break;
                }
            };
            let Some(first) = first else {
                break;
            };
            let mut gathered = vec![first];
            let deadline = Instant::now() + COMMIT_GATHER;
            while unsent > gathered.len() && gathered.len() < depth.div_ceil(2) {
                match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                    Ok(Some(done)) => gathered.push(done),
                    Ok(None) | Err(_) => break,
                }
            }
            // Outcomes also arrive while a transaction runs.
            while let Ok(done) = done_rx.try_recv() {
                gathered.push(done);
            }
            unsent -= gathered.len();
            for done in gathered {
                if let Some(took) = done.took {
                    send_time = Some(send_time.map_or(took, |avg| (avg * 7 + took) / 8));
                }
                results.push((done.row, done.outcome));
            }
        }
        if store_error.is_some() {
            halt.failed.store(true, Ordering::SeqCst);
        }
        // The workers hand back what is queued, finish what they are sending, and end.
        drop(queue_tx);
        while let Some(done) = done_rx.recv().await {
            results.push((done.row, done.outcome));
        }
        self.give_back(
            &mut pool,
            halt.why().unwrap_or("the delivery pass ended"),
            &mut results,
        );
        if !results.is_empty() {
            // Once more on the way out (after a stop or a failure), if the database takes
            // them; else the next start settles them.
            let step = Arc::new(Step {
                results: std::mem::take(&mut results),
                ..Step::default()
            });
            match self.write_step(step.clone()).await {
                Ok(_) => {
                    for (_, outcome) in &step.results {
                        report.count(outcome);
                    }
                    if store_error.as_ref().is_some_and(|e| !fatal(e)) {
                        store_error = None;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, results = step.results.len(), "cannot record what became of these messages; the next start settles them (those started become uncertain: see `winback outbox list`)");
                }
            }
        }
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                store_error.get_or_insert(DeliverError::from(e));
            }
        }
        report.setup_error = halt.refused.load(Ordering::SeqCst);
        match store_error.or(claim_error) {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Empties `pool` into `results`: each claimed message back to the queue, never
    /// started (`why`), or what replaces its send if it was not fit to go.
    fn give_back(
        &self,
        pool: &mut VecDeque<Prepared>,
        why: &str,
        results: &mut Vec<(i64, Outcome)>,
    ) {
        for (message, rendered) in pool.drain(..) {
            let outcome = rendered.err().unwrap_or_else(|| not_started(self, why));
            results.push((message.message_row, outcome));
        }
    }

    /// Waits `wait` before results are tried again, or less if the daemon is stopping
    /// (the next failure then gives up).
    async fn wait_to_record(&self, wait: Duration, halt: &Halt) {
        let until = Instant::now() + wait;
        while Instant::now() < until && !halt.stopping() {
            tokio::time::sleep(FIRST_RECORD_WAIT.min(until - Instant::now())).await;
        }
    }

    /// One connection's worker: takes started messages from the queue one at a time,
    /// checks each once more just before its SMTP transaction, sends it, and hands its
    /// outcome to the pass. Ends when the queue closes or the pass stops listening.
    async fn work(
        self,
        queue: Arc<tokio::sync::Mutex<mpsc::Receiver<(Claimed, OutgoingMessage)>>>,
        done: mpsc::Sender<Done>,
        halt: Arc<Halt>,
    ) {
        loop {
            let next = queue.lock().await.recv().await;
            let Some((message, outgoing)) = next else {
                break;
            };
            let row = message.message_row;
            let mut took = None;
            let outcome = match halt.why() {
                // Started, but never handed to the server: back in the queue.
                Some(why) => not_started(&self, why),
                None => match self.check_again(&message) {
                    Some(not_sent) => not_sent,
                    None => {
                        let began = Instant::now();
                        let outcome = AssertUnwindSafe(self.send(&message, outgoing))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                // The server may have it: never resent on its own.
                                tracing::error!(outbox_id = row, "the send stopped on an internal error; outcome unknown, not resent (see `winback outbox list`)");
                                Outcome::Uncertain {
                                    error: "the send stopped on an internal error".to_string(),
                                    at: self.clock.now(),
                                }
                            });
                        took = Some(began.elapsed());
                        if matches!(outcome, Outcome::Deferred { .. }) {
                            halt.refused.store(true, Ordering::SeqCst);
                        }
                        outcome
                    }
                },
            };
            if done.send(Done { row, outcome, took }).await.is_err() {
                break;
            }
        }
    }

    /// Checks a started message once more, just before its SMTP transaction, on the
    /// connection that only reads: `None` to send it, else what replaces its send. Its
    /// start was checked too, but it may have waited in the queue since, and no message
    /// is sent after an opt-out.
    fn check_again(&self, message: &Claimed) -> Option<Outcome> {
        let row = message.message_row;
        // On this thread: one indexed read, on a connection only these checks use, that
        // a commit never blocks (WAL); a trip to a blocking thread would cost more.
        let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.checks
                .blocking(|store| store.withdrawal(&self.config, row))
                .map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|_| Err("an internal error".to_string()));
        match read {
            Ok(None) => None,
            Ok(Some(reason)) => {
                tracing::info!(outbox_id = row, to = %message.client.email, %reason, "not sent");
                Some(Outcome::Withdrawn {
                    reason,
                    at: self.clock.now(),
                })
            }
            Err(error) => {
                // Never send a message whose standing could not be read.
                tracing::warn!(outbox_id = row, %error, "cannot check a message before sending it; it goes back to the queue");
                Some(not_started(
                    self,
                    &format!("it could not be checked: {error}"),
                ))
            }
        }
    }
}
