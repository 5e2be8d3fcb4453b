//! One delivery pass: the loop that claims and records in one transaction at a time, the
//! workers (one per SMTP connection) that start and send, and the task that writes their
//! starts. What one message needs (rendering, sending, the rate limits) is in `deliver.rs`.
//!
//! Must not touch SQL (the store does) nor decide who is due (the store asks `domain`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{BATCH_PER_CONNECTION, DeliverError, Deliverer, PassReport, Prepared};
use crate::store::{Claimed, Outcome, Start};

/// Results committed in one transaction, at most.
const MAX_RESULTS_PER_COMMIT: usize = 256;
/// Results that could not be recorded are tried again after this, then twice as long
/// each time, up to `MAX_RECORD_WAIT`.
const FIRST_RECORD_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a pass gathers results before committing them.
const COMMIT_GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Asks the pass's starter to record `results` and start `row`.
async fn ask(
    starter: &mpsc::Sender<StartRequest>,
    results: Vec<(i64, Outcome)>,
    row: Option<i64>,
) -> Result<(bool, Option<String>), String> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = StartRequest {
        results,
        row,
        reply,
    };
    if starter.send(request).await.is_err() {
        return Err("the pass stopped writing".to_string());
    }
    answer
        .await
        .unwrap_or_else(|_| Err("the pass stopped writing".to_string()))
}

/// A worker's request to the pass's starter: record `results`, and start `row` if any.
struct StartRequest {
    results: Vec<(i64, Outcome)>,
    row: Option<i64>,
    reply: tokio::sync::oneshot::Sender<Result<(bool, Option<String>), String>>,
}

/// What became of a claimed message, and whether a worker has already recorded it.
struct Done {
    row: i64,
    outcome: Outcome,
    recorded: bool,
}

impl Deliverer {
    /// Sends everything due now, until nothing is due, a rate limit is reached, the server
    /// refuses us, or `stopping` says to stop (checked between claims only).
    ///
    /// Two stages overlap: one worker per connection re-checks, commits the start (with
    /// its previous result) and sends, while this task commits, in one transaction, the
    /// results no worker could record and the next claims, then renders what it claimed.
    /// It claims only while fewer than one batch is claimed but unrecorded. Once
    /// `stopping` is set, workers start nothing more and return what they are given.
    pub(crate) async fn pass(&self, stopping: Arc<AtomicBool>) -> Result<PassReport, DeliverError> {
        let connections = self.config.smtp.connections;
        let batch = connections * BATCH_PER_CONNECTION;
        let (work_tx, work_rx) = mpsc::channel::<Prepared>(batch);
        let work_rx = Arc::new(tokio::sync::Mutex::new(work_rx));
        let (done_tx, done_rx) = mpsc::channel::<Done>(batch * 2);
        let refused = Arc::new(AtomicBool::new(false));

        // One task writes the workers' starts and results, several at a time: one commit
        // (one sync to disk) for the starts of every connection ready at that moment.
        let (start_tx, start_rx) = mpsc::channel::<StartRequest>(connections);
        let starter = tokio::spawn(self.clone().starter(start_rx));
        let mut workers = JoinSet::new();
        for _ in 0..connections {
            workers.spawn(self.clone().work(
                work_rx.clone(),
                done_tx.clone(),
                refused.clone(),
                start_tx.clone(),
                stopping.clone(),
            ));
        }
        drop(done_tx);
        drop(start_tx);
        let mut done_rx = done_rx;
        let mut work_tx = Some(work_tx);
        let mut report = PassReport::default();
        let mut claim_error = None;
        let mut store_error = None;
        // Claimed and not yet recorded: what a crash now would leave uncertain.
        let mut in_flight = 0usize;
        // How long to wait before trying again to record results that could not be.
        let mut record_wait = FIRST_RECORD_WAIT;
        let mut results: Vec<Done> = Vec::new();
        // Claim at least half a batch at a time (amortized claims), while the workers
        // still have the other half to send.
        let least = batch.div_ceil(2);
        loop {
            if work_tx.is_some()
                && (stopping.load(Ordering::SeqCst) || refused.load(Ordering::SeqCst))
            {
                work_tx = None;
            }
            // The results about to be recorded free their room in the same transaction.
            let room = batch - (in_flight - results.len());
            let mut limit = 0;
            if work_tx.is_some() && room >= least {
                let now = self.clock.now();
                match self.allowance(now).await {
                    Ok(0) => {
                        tracing::info!("rate limit reached; the rest waits");
                        report.throttled = true;
                        work_tx = None;
                    }
                    Ok(allowed) => limit = allowed.min(room),
                    Err(e) => {
                        claim_error = Some(e);
                        work_tx = None;
                    }
                }
            }
            if limit > 0 || !results.is_empty() {
                let done = std::mem::take(&mut results);
                let count = done.len();
                let unrecorded: Vec<(i64, Outcome)> = done
                    .into_iter()
                    .filter(|done| !done.recorded)
                    .map(|done| (done.row, done.outcome))
                    .collect();
                let kept = unrecorded.clone();
                match self.record_and_claim(unrecorded, limit).await {
                    Ok(Err(e)) => {
                        // The results are recorded; only the claim failed: send no more,
                        // but keep recording what is in flight.
                        in_flight -= count;
                        claim_error = Some(e);
                        work_tx = None;
                    }
                    Ok(Ok(claimed)) => {
                        in_flight = in_flight - count + claimed.len();
                        if limit > 0 && claimed.is_empty() {
                            work_tx = None;
                        }
                        if let Some(queue) = &work_tx {
                            for message in claimed {
                                // Workers only stop when this sender is dropped, so the send
                                // cannot fail while they run; if it did, the message stays
                                // `sending` → uncertain.
                                if queue.send(message).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) if stopping.load(Ordering::SeqCst) => {
                        // Stopping: those results stay `sending`, and the next start
                        // finds them (uncertain if started, else back in the queue).
                        store_error = Some(e);
                        work_tx = None;
                        break;
                    }
                    Err(e) if kept.is_empty() => {
                        // Only a claim was refused (the disk full before the pass, say):
                        // as when the claim alone fails, send no more, and the pass fails,
                        // so the daemon pauses before the next one instead of claiming
                        // again at once, four times a second.
                        in_flight -= count;
                        claim_error = Some(e);
                        work_tx = None;
                    }
                    Err(e) => {
                        // Nothing of this transaction happened (a full disk, say): claim
                        // no more, and keep trying to record these results until it
                        // works; the rows stay `sending` meanwhile, never stuck for good.
                        tracing::error!(error = %e, results = kept.len(), wait = ?record_wait, "cannot record the results of sent messages; trying again");
                        work_tx = None;
                        in_flight -= count - kept.len();
                        results.extend(kept.into_iter().map(|(row, outcome)| Done {
                            row,
                            outcome,
                            recorded: false,
                        }));
                        // A stop cuts the wait short (the next failure then gives up).
                        let until = tokio::time::Instant::now() + record_wait;
                        while tokio::time::Instant::now() < until
                            && !stopping.load(Ordering::SeqCst)
                        {
                            tokio::time::sleep(
                                FIRST_RECORD_WAIT.min(until - tokio::time::Instant::now()),
                            )
                            .await;
                        }
                        record_wait = (record_wait * 2).min(MAX_RECORD_WAIT);
                        continue;
                    }
                }
            }
            if work_tx.is_none() && in_flight == 0 {
                break;
            }
            // Gather for a moment: one commit per few dozen messages, not per message.
            let Some(first) = done_rx.recv().await else {
                break;
            };
            results.push(first);
            let deadline = tokio::time::Instant::now() + COMMIT_GATHER;
            // Or until the results free room for the next claim.
            while results.len() < MAX_RESULTS_PER_COMMIT.min(least) {
                match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                    Ok(Some(result)) => results.push(result),
                    Ok(None) | Err(_) => break,
                }
            }
            for Done { outcome, .. } in &results {
                report.count(outcome);
            }
        }
        drop(work_tx);
        drop(done_rx);
        while let Some(joined) = workers.join_next().await {
            joined?;
        }
        starter.await?;
        report.setup_error = refused.load(Ordering::SeqCst);
        match store_error.or(claim_error) {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// One connection's worker: takes rendered messages from the queue, has each
    /// re-checked and its start committed (with this worker's previous result), sends it,
    /// and hands every outcome to the pass. Ends when the queue closes or the pass stops.
    async fn work(
        self,
        work_rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Prepared>>>,
        done_tx: mpsc::Sender<Done>,
        refused: Arc<AtomicBool>,
        own: mpsc::Sender<StartRequest>,
        stopping: Arc<AtomicBool>,
    ) {
        // The outcome of this worker's last send, not yet recorded: it is recorded
        // in the same transaction as the next start, or alone before the worker
        // waits for work. So a crash finds at most one started message per
        // connection whose fate is unknown: the one whose transaction was open.
        let mut pending: Option<(i64, Outcome)> = None;
        loop {
            // Never wait for the queue's lock with a result in hand: the worker
            // holding it may be waiting for work that only that result frees.
            let queued = match work_rx.try_lock() {
                Ok(mut queue) if pending.is_some() => queue.try_recv().ok(),
                _ => None,
            };
            let next = match queued {
                Some(next) => Some(next),
                None => {
                    if let Some(result) = pending.take()
                        && done_tx
                            .send(self.record_alone(result, own.clone()).await)
                            .await
                            .is_err()
                    {
                        break;
                    }
                    work_rx.lock().await.recv().await
                }
            };
            let Some((message, rendered)) = next else {
                break;
            };
            if done_tx.is_closed() {
                // The pass stopped on a database error: not started, so it goes
                // back to the queue at the next start.
                break;
            }
            let row = message.message_row;
            let outcome = match rendered {
                Err(outcome) => outcome,
                Ok(_) if stopping.load(Ordering::SeqCst) => Outcome::Returned {
                    reason: "not started: the daemon was stopping".to_string(),
                    at: self.clock.now(),
                },
                Ok(outgoing) => {
                    let (previous, verdict) =
                        self.start(&message, pending.take(), own.clone()).await;
                    if let Some(previous) = previous
                        && done_tx.send(previous).await.is_err()
                    {
                        break;
                    }
                    match verdict {
                        Some(not_started) => not_started,
                        None => {
                            let outcome = self.send(&message, outgoing).await;
                            if matches!(outcome, Outcome::Deferred { .. }) {
                                refused.store(true, Ordering::SeqCst);
                            }
                            pending = Some((row, outcome));
                            continue;
                        }
                    }
                }
            };
            let done = Done {
                row,
                outcome,
                recorded: false,
            };
            if done_tx.send(done).await.is_err() {
                break;
            }
        }
        if let Some(result) = pending.take() {
            let _ = done_tx
                .send(self.record_alone(result, own.clone()).await)
                .await;
        }
    }

    /// Asked just before a message's SMTP transaction starts: the claim checked the
    /// person's standing, but the message may have waited in the queue since, and no
    /// message is started after an opt-out. If it may go, its start is committed, in one
    /// transaction with `previous` (the outcome of this worker's last send): only a
    /// started message can be uncertain after a crash. Returns `previous`, saying whether
    /// it is recorded, and `None` to send the message, else what replaces its send. `own`
    /// is the worker's connection; without it, the main one.
    async fn start(
        &self,
        message: &Claimed,
        previous: Option<(i64, Outcome)>,
        starter: mpsc::Sender<StartRequest>,
    ) -> (Option<Done>, Option<Outcome>) {
        let row = message.message_row;
        let results: Vec<(i64, Outcome)> = previous.iter().cloned().collect();
        let verdict = ask(&starter, results, Some(row)).await;
        let previous = previous.map(|(row, outcome)| Done {
            row,
            outcome,
            recorded: matches!(verdict, Ok((true, _))),
        });
        let outcome = match verdict {
            Ok((_, None)) => None,
            Ok((_, Some(reason))) => {
                tracing::info!(outbox_id = row, to = %message.client.email, %reason, "not sent");
                Some(Outcome::Withdrawn {
                    reason,
                    at: self.clock.now(),
                })
            }
            Err(error) => {
                // Not started: never send a message whose start is not on record.
                tracing::warn!(outbox_id = row, %error, "cannot record the start of a message; it goes back to the queue");
                Some(Outcome::Returned {
                    reason: format!("not started: its start could not be recorded: {error}"),
                    at: self.clock.now(),
                })
            }
        };
        (previous, outcome)
    }

    /// Records one worker's result through the starter (if that fails, the pass records
    /// it with the next claims).
    async fn record_alone(
        &self,
        result: (i64, Outcome),
        starter: mpsc::Sender<StartRequest>,
    ) -> Done {
        let recorded = ask(&starter, vec![result.clone()], None).await;
        if let Err(error) = &recorded {
            tracing::warn!(outbox_id = result.0, %error, "cannot record a result yet; trying again");
        }
        Done {
            row: result.0,
            outcome: result.1,
            recorded: matches!(recorded, Ok((true, _))),
        }
    }

    /// Writes the workers' requests as they come, all those waiting in one transaction.
    async fn starter(self, mut requests: mpsc::Receiver<StartRequest>) {
        while let Some(first) = requests.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = requests.try_recv() {
                batch.push(more);
            }
            let work: Vec<Start> = batch
                .iter()
                .map(|request| (request.results.clone(), request.row))
                .collect();
            let (config, at) = (self.config.clone(), self.clock.now());
            let answers = self
                .store
                .call(move |store| store.start_many(&config, &work, at))
                .await;
            match answers {
                Ok(answers) => {
                    for (request, answer) in batch.into_iter().zip(answers) {
                        let _ = request.reply.send(Ok(answer));
                    }
                }
                Err(error) => {
                    for request in batch {
                        let _ = request.reply.send(Err(error.to_string()));
                    }
                }
            }
        }
    }
}
