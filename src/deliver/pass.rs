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
use crate::mailer::OutgoingMessage;
use crate::store::{Claimed, Outcome, Start};

/// The most messages a worker starts in one transaction and then sends one after the
/// other: one commit (one sync to disk) for up to this many SMTP transactions instead of
/// one each. A crash leaves at most this many started messages per connection
/// `uncertain`. A worker takes only what is already queued, and only as many as it sends
/// in about the time its start took (see [`group_limit`]): a slow server or a trickle
/// still starts one message at a time.
pub(crate) const START_GROUP: usize = 8;

/// How many messages a worker starts together next: one more than the sends that fit in
/// the time its last start took to commit, at most [`START_GROUP`]. Grouping pays only
/// where a commit costs several sends (a local relay); against a slow server it would
/// only leave more messages uncertain after a crash.
pub(crate) fn group_limit(
    start: std::time::Duration,
    sends: std::time::Duration,
    sent: usize,
) -> usize {
    let per_send = sends.as_nanos() / sent.max(1) as u128;
    let fit = start.as_nanos().checked_div(per_send).unwrap_or(u128::MAX);
    usize::try_from(fit.saturating_add(1))
        .unwrap_or(usize::MAX)
        .min(START_GROUP)
}
/// Results committed in one transaction, at most.
const MAX_RESULTS_PER_COMMIT: usize = 256;
/// Results that could not be recorded are tried again after this, then twice as long
/// each time, up to `MAX_RECORD_WAIT`.
const FIRST_RECORD_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a pass gathers results before committing them.
const COMMIT_GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// What the starter answers a worker: whether its results were recorded and, for each
/// message it asked to start, in order, why it must not (`None`: started).
type Answer = Result<(bool, Vec<Option<String>>), String>;

/// Asks the pass's starter to record `results` and start `rows`.
async fn ask(
    starter: &mpsc::Sender<StartRequest>,
    results: Vec<(i64, Outcome)>,
    rows: Vec<i64>,
) -> Answer {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = StartRequest {
        results,
        rows,
        reply,
    };
    if starter.send(request).await.is_err() {
        return Err("the pass stopped writing".to_string());
    }
    answer
        .await
        .unwrap_or_else(|_| Err("the pass stopped writing".to_string()))
}

/// A worker's request to the pass's starter: record `results`, and start `rows` (its
/// next group, sent one after the other).
struct StartRequest {
    results: Vec<(i64, Outcome)>,
    rows: Vec<i64>,
    reply: tokio::sync::oneshot::Sender<Answer>,
}

/// What replaces the send of a message a stopping daemon never handed to the server.
fn not_started(deliverer: &Deliverer) -> Outcome {
    Outcome::Returned {
        reason: "not started: the daemon was stopping".to_string(),
        at: deliverer.clock.now(),
    }
}

/// Takes what is queued right now onto `group`, up to `limit` messages.
fn take_queued(queue: &mut mpsc::Receiver<Prepared>, group: &mut Vec<Prepared>, limit: usize) {
    while group.len() < limit {
        match queue.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
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
    /// Two stages overlap: one worker per connection re-checks, commits the start of a
    /// group (with its previous results) and sends it, each message checked again just
    /// before its send, while this task commits, in one transaction, the
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

    /// One connection's worker: takes rendered messages from the queue, what is queued up
    /// to a group of [`START_GROUP`], has them re-checked and their starts committed (with
    /// this worker's previous results) in one transaction, sends them one after the other,
    /// and hands every outcome to the pass. Ends when the queue closes or the pass stops.
    async fn work(
        self,
        work_rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Prepared>>>,
        done_tx: mpsc::Sender<Done>,
        refused: Arc<AtomicBool>,
        own: mpsc::Sender<StartRequest>,
        stopping: Arc<AtomicBool>,
    ) {
        // The outcomes of this worker's last group, not yet recorded: recorded in the
        // same transaction as its next group's start, or alone before the worker waits
        // for work. So a crash finds at most one group of started messages per
        // connection whose fate is unknown: the one being sent.
        let mut pending: Vec<(i64, Outcome)> = Vec::new();
        // One at a time until this worker has seen what a start and a send cost.
        let mut limit = 1;
        'work: loop {
            let mut group: Vec<Prepared> = Vec::with_capacity(START_GROUP);
            // Never wait for the queue's lock with results in hand: the worker holding
            // it may be waiting for work that only those results free.
            if !pending.is_empty()
                && let Ok(mut queue) = work_rx.try_lock()
            {
                take_queued(&mut queue, &mut group, limit);
            }
            if group.is_empty() {
                if !pending.is_empty() {
                    let results = std::mem::take(&mut pending);
                    for done in self.record_alone(results, own.clone()).await {
                        if done_tx.send(done).await.is_err() {
                            break 'work;
                        }
                    }
                }
                let mut queue = work_rx.lock().await;
                let Some(first) = queue.recv().await else {
                    break;
                };
                group.push(first);
                take_queued(&mut queue, &mut group, limit);
            }
            if done_tx.is_closed() {
                // The pass stopped on a database error: not started, so they go back to
                // the queue at the next start.
                break;
            }
            let mut ready = Vec::with_capacity(group.len());
            for (message, rendered) in group {
                let outcome = match rendered {
                    Err(outcome) => outcome,
                    Ok(_) if stopping.load(Ordering::SeqCst) => not_started(&self),
                    Ok(outgoing) => {
                        ready.push((message, outgoing));
                        continue;
                    }
                };
                let done = Done {
                    row: message.message_row,
                    outcome,
                    recorded: false,
                };
                if done_tx.send(done).await.is_err() {
                    break 'work;
                }
            }
            if ready.is_empty() {
                continue;
            }
            let results = std::mem::take(&mut pending);
            let asked = tokio::time::Instant::now();
            let (previous, verdicts) = self.start(&ready, results, own.clone()).await;
            let started = asked.elapsed();
            let sending = tokio::time::Instant::now();
            let mut sent = 0;
            for done in previous {
                if done_tx.send(done).await.is_err() {
                    break 'work;
                }
            }
            for (index, ((message, outgoing), verdict)) in
                ready.into_iter().zip(verdicts).enumerate()
            {
                let row = message.message_row;
                // Only a message the start let through has its start on record.
                let started = verdict.is_none();
                // The first went through its check in the start's transaction; each later
                // one is checked again now, just before its own SMTP transaction.
                let verdict = match verdict {
                    None if index > 0 && !stopping.load(Ordering::SeqCst) => {
                        self.check_again(&message).await
                    }
                    verdict => verdict,
                };
                let outcome = match verdict {
                    Some(not_sent) => not_sent,
                    // Started, but never handed to the server: back in the queue.
                    None if stopping.load(Ordering::SeqCst) => not_started(&self),
                    None => {
                        let outcome = self.send(&message, outgoing).await;
                        sent += 1;
                        if matches!(outcome, Outcome::Deferred { .. }) {
                            refused.store(true, Ordering::SeqCst);
                        }
                        pending.push((row, outcome));
                        continue;
                    }
                };
                if started {
                    // Started but not sent (withdrawn by the check, or stopping): recorded
                    // with this worker's next start, like a result, so that its start is
                    // cleared before another group's begins and a crash still finds at
                    // most one group started per connection.
                    pending.push((row, outcome));
                    continue;
                }
                let done = Done {
                    row,
                    outcome,
                    recorded: false,
                };
                if done_tx.send(done).await.is_err() {
                    break 'work;
                }
            }
            if sent > 0 {
                limit = group_limit(started, sending.elapsed(), sent);
            }
        }
        if !pending.is_empty() {
            for done in self.record_alone(pending, own.clone()).await {
                let _ = done_tx.send(done).await;
            }
        }
    }

    /// Asked just before a group's SMTP transactions start: the claim checked each
    /// person's standing, but the messages may have waited in the queue since, and no
    /// message is started after an opt-out. Those that may go have their start committed,
    /// in one transaction with `previous` (the outcomes of this worker's last group): only
    /// a started message can be uncertain after a crash. Returns `previous`, saying
    /// whether it is recorded, and for each message `None` to send it, else what replaces
    /// its send. `starter` writes for the pass.
    async fn start(
        &self,
        group: &[(Claimed, OutgoingMessage)],
        previous: Vec<(i64, Outcome)>,
        starter: mpsc::Sender<StartRequest>,
    ) -> (Vec<Done>, Vec<Option<Outcome>>) {
        let rows = group
            .iter()
            .map(|(message, _)| message.message_row)
            .collect();
        let verdict = ask(&starter, previous.clone(), rows).await;
        let recorded = matches!(verdict, Ok((true, _)));
        let previous = previous
            .into_iter()
            .map(|(row, outcome)| Done {
                row,
                outcome,
                recorded,
            })
            .collect();
        let outcomes = match verdict {
            Ok((_, withdrawn)) => group
                .iter()
                .zip(withdrawn)
                .map(|((message, _), reason)| {
                    let reason = reason?;
                    let row = message.message_row;
                    tracing::info!(outbox_id = row, to = %message.client.email, %reason, "not sent");
                    Some(Outcome::Withdrawn {
                        reason,
                        at: self.clock.now(),
                    })
                })
                .collect(),
            Err(error) => group
                .iter()
                .map(|(message, _)| {
                    // Not started: never send a message whose start is not on record.
                    let row = message.message_row;
                    tracing::warn!(outbox_id = row, %error, "cannot record the start of a message; it goes back to the queue");
                    Some(Outcome::Returned {
                        reason: format!("not started: its start could not be recorded: {error}"),
                        at: self.clock.now(),
                    })
                })
                .collect(),
        };
        (previous, outcomes)
    }

    /// Checks a started message once more, just before its SMTP transaction, on the
    /// connection that only reads: `None` to send it, else what replaces its send.
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
                Some(Outcome::Returned {
                    reason: format!("not started: it could not be checked: {error}"),
                    at: self.clock.now(),
                })
            }
        }
    }

    /// Records one worker's results through the starter (if that fails, the pass records
    /// them with the next claims).
    async fn record_alone(
        &self,
        results: Vec<(i64, Outcome)>,
        starter: mpsc::Sender<StartRequest>,
    ) -> Vec<Done> {
        let answer = ask(&starter, results.clone(), Vec::new()).await;
        if let Err(error) = &answer {
            tracing::warn!(results = results.len(), %error, "cannot record results yet; trying again");
        }
        let recorded = matches!(answer, Ok((true, _)));
        results
            .into_iter()
            .map(|(row, outcome)| Done {
                row,
                outcome,
                recorded,
            })
            .collect()
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
                .map(|request| (request.results.clone(), request.rows.clone()))
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
