//! One delivery pass: the loop that writes, one transaction at a time, what became of the
//! messages sent, the starts of the next ones and the next claims; and the workers (one
//! per SMTP connection) that check each started message once more and send it. What one
//! message needs (rendering, sending, the rate limits) is in `deliver.rs`.
//!
//! Must not touch SQL (the store does) nor decide who is due (the store asks `domain`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// Why a pass hands no more messages to the server, if it must not.
fn halted(stopping: &AtomicBool, refused: &AtomicBool) -> Option<&'static str> {
    if stopping.load(Ordering::SeqCst) {
        Some("the daemon was stopping")
    } else if refused.load(Ordering::SeqCst) {
        Some("the mail server refused us")
    } else {
        None
    }
}

impl Deliverer {
    /// Sends everything due now, until nothing is due, a rate limit is reached, the server
    /// refuses us, or `stopping` says to stop (checked between transactions).
    ///
    /// This task writes, one transaction at a time: the results gathered since its last
    /// one, the start of claimed messages (each checked once more, as many as keep the
    /// connections busy, see [`start_depth`]) and, when fewer than half a batch wait
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
        let (done_tx, mut done_rx) = mpsc::channel::<(i64, Outcome)>(most);
        let refused = Arc::new(AtomicBool::new(false));
        let mut workers = JoinSet::new();
        for _ in 0..connections {
            workers.spawn(self.clone().work(
                queue_rx.clone(),
                done_tx.clone(),
                refused.clone(),
                stopping.clone(),
            ));
        }
        drop(done_tx);
        let mut report = PassReport::default();
        let mut claim_error = None;
        let mut store_error = None;
        // Claimed and rendered, not started: a crash sends these back to the queue.
        let mut pool: VecDeque<Prepared> = VecDeque::new();
        // Outcomes to record with the next transaction.
        let mut results: Vec<(i64, Outcome)> = Vec::new();
        // Started and handed to the workers, no outcome yet: what a crash now would
        // leave uncertain.
        let mut unsent = 0usize;
        let mut claiming = true;
        let mut depth = connections;
        // How long to wait before trying again to record results that could not be.
        let mut record_wait = FIRST_RECORD_WAIT;
        // When the last transaction began, and the outcomes gathered since.
        let mut last_began: Option<Instant> = None;
        let mut arrived = 0usize;
        // How long the pass's recent transactions (with their rendering) took.
        let mut busy = Duration::ZERO;
        loop {
            let halt = halted(&stopping, &refused);
            if halt.is_some() {
                claiming = false;
            }
            let mut starts: Vec<(Claimed, OutgoingMessage)> = Vec::new();
            while halt.is_some() || unsent + starts.len() < depth {
                let Some((message, rendered)) = pool.pop_front() else {
                    break;
                };
                match (rendered, halt) {
                    (Err(outcome), _) => results.push((message.message_row, outcome)),
                    (Ok(_), Some(why)) => {
                        results.push((message.message_row, not_started(self, why)));
                    }
                    (Ok(outgoing), None) => starts.push((message, outgoing)),
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
                let began = Instant::now();
                if let Some(last) = last_began.filter(|_| arrived > 0) {
                    let per_send = (began - last) / u32::try_from(arrived).unwrap_or(u32::MAX);
                    depth = start_depth(connections, busy, per_send);
                }
                let step = Step {
                    results: std::mem::take(&mut results),
                    starts: starts.iter().map(|(m, _)| m.message_row).collect(),
                    claim: (limit > 0).then_some((now, limit)),
                    at: now,
                };
                let (step, written) = self.write_step(step).await?;
                // The longest recent transaction, fading: one that claims and renders takes
                // several times one that only records and starts.
                busy = began.elapsed().max(busy * 3 / 4);
                last_began = Some(began);
                arrived = 0;
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
                        results = step.results;
                        for (message, outgoing) in starts.into_iter().rev() {
                            pool.push_front((message, Ok(outgoing)));
                        }
                        if stopping.load(Ordering::SeqCst) {
                            // Stopping: those stay `sending`, and the next start finds
                            // them (uncertain if started, else back in the queue).
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
                            self.wait_to_record(record_wait, &stopping).await;
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
                // A worker ends before the queue closes only if it panicked: what it had
                // started stays `sending` (uncertain at the next start, never resent).
                Some(joined) = workers.join_next() => {
                    joined?;
                    None
                }
            };
            let Some(first) = first else {
                break;
            };
            results.push(first);
            unsent -= 1;
            let deadline = Instant::now() + COMMIT_GATHER;
            while unsent > 0 && results.len() < depth.div_ceil(2) {
                match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                    Ok(Some(result)) => {
                        results.push(result);
                        unsent -= 1;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            // Outcomes also arrive while a transaction runs: counted in the next gather.
            while let Ok(result) = done_rx.try_recv() {
                results.push(result);
                unsent -= 1;
            }
            arrived += results.len();
        }
        drop(queue_tx);
        drop(done_rx);
        while let Some(joined) = workers.join_next().await {
            joined?;
        }
        report.setup_error = refused.load(Ordering::SeqCst);
        match store_error.or(claim_error) {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Waits `wait` before results are tried again, or less if `stopping` is set (the next
    /// failure then gives up).
    async fn wait_to_record(&self, wait: Duration, stopping: &AtomicBool) {
        let until = Instant::now() + wait;
        while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
            tokio::time::sleep(FIRST_RECORD_WAIT.min(until - Instant::now())).await;
        }
    }

    /// One connection's worker: takes started messages from the queue one at a time,
    /// checks each once more just before its SMTP transaction, sends it, and hands its
    /// outcome to the pass. Ends when the queue closes or the pass stops.
    async fn work(
        self,
        queue: Arc<tokio::sync::Mutex<mpsc::Receiver<(Claimed, OutgoingMessage)>>>,
        done: mpsc::Sender<(i64, Outcome)>,
        refused: Arc<AtomicBool>,
        stopping: Arc<AtomicBool>,
    ) {
        loop {
            let next = queue.lock().await.recv().await;
            let Some((message, outgoing)) = next else {
                break;
            };
            let outcome = match halted(&stopping, &refused) {
                // Started, but never handed to the server: back in the queue.
                Some(why) => not_started(&self, why),
                None => match self.check_again(&message).await {
                    Some(not_sent) => not_sent,
                    None => {
                        let outcome = self.send(&message, outgoing).await;
                        if matches!(outcome, Outcome::Deferred { .. }) {
                            refused.store(true, Ordering::SeqCst);
                        }
                        outcome
                    }
                },
            };
            if done.send((message.message_row, outcome)).await.is_err() {
                break;
            }
        }
    }

    /// Checks a started message once more, just before its SMTP transaction, on the
    /// connection that only reads: `None` to send it, else what replaces its send. Its
    /// start was checked too, but it may have waited in the queue since, and no message
    /// is sent after an opt-out.
    async fn check_again(&self, message: &Claimed) -> Option<Outcome> {
        let row = message.message_row;
        // On this thread: one indexed read, on a connection only these checks use, that
        // a commit never blocks (WAL); a trip to a blocking thread would cost more.
        match self
            .checks
            .blocking(|store| store.withdrawal(&self.config, row))
        {
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
