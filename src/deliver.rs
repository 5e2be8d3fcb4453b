//! One delivery pass: claim due messages, render them, hand them to the mailer, record
//! what the server said. A message not fit to go (see `fitness`) is held, never sent.
//!
//! Claims are committed (`sending`), then each message's start, just before its SMTP
//! transaction, by its connection's worker in one transaction with the result of that
//! worker's previous send: a crash leaves at most one message per connection uncertain.
//! An open transaction is never abandoned; on shutdown no new one starts, and claimed
//! messages go back to the queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::Config;
use crate::mail::{Renderer, Vars};
use crate::mailer::{Mailer, OutgoingMessage, SendError};
use crate::store::{Claimed, Outcome, Start, Store};
use crate::token::{Secret, Target};

/// Messages claimed per batch, per SMTP connection: larger batches amortize the claim
/// transactions. A claimed message that never started goes back to the queue after a
/// crash, so the batch size does not bound what a crash leaves `uncertain`.
pub const BATCH_PER_CONNECTION: usize = 8;
/// Results committed in one transaction, at most.
const MAX_RESULTS_PER_COMMIT: usize = 256;
/// Results that could not be recorded are tried again after this, then twice as long
/// each time, up to `MAX_RECORD_WAIT`.
const FIRST_RECORD_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a pass gathers results before committing them.
const COMMIT_GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// A claimed message, rendered, or the outcome that replaces its send.
type Prepared = (Claimed, Result<OutgoingMessage, Outcome>);

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

/// Everything a pass needs; cheap to clone into tasks.
#[derive(Clone)]
pub struct Deliverer {
    pub config: Arc<Config>,
    pub renderer: Arc<Renderer>,
    pub mailer: Arc<dyn Mailer>,
    pub secret: Arc<Secret>,
    pub clock: Clock,
    pub store: Arc<Mutex<Store>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub uncertain: usize,
    /// Claimed, but not started: the person opted out (or bounced, or came back) meanwhile.
    pub withdrawn: usize,
    /// Not fit to go (a template error, a placeholder, no footer): held, not sent.
    pub held: usize,
    /// Claimed, never started (the daemon was stopping): back in the queue.
    pub returned: usize,
    /// Refused by a recipient's server by policy (5.7.x at RCPT or after the body); also
    /// counted in `retried`.
    pub blocked: usize,
    /// A rate limit stopped the pass; more may be due.
    pub throttled: bool,
    /// The mail server refused our connection or sender: the pass stopped early.
    pub setup_error: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("a database task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the database lock was poisoned by a crash in another task")]
    Poisoned,
}

impl Deliverer {
    /// Runs `f` on the store off the async threads.
    pub async fn with_store<T, F>(&self, f: F) -> Result<T, DeliverError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().map_err(|_| DeliverError::Poisoned)?;
            f(&mut guard).map_err(DeliverError::from)
        })
        .await?
    }

    pub fn unsubscribe_url(&self, enrollment_id: i64) -> String {
        crate::links::unsubscribe_url(
            &self.config,
            &self.secret,
            Target::Enrollment(enrollment_id),
        )
    }

    pub fn survey_url(&self, enrollment_id: i64) -> String {
        crate::links::survey_url(
            &self.config,
            &self.secret,
            Target::Enrollment(enrollment_id),
        )
    }

    /// How many more messages the rate limits allow right now.
    async fn allowance(&self, now: DateTime<Utc>) -> Result<usize, DeliverError> {
        let smtp = &self.config.smtp;
        let (per_minute, per_day) = (smtp.max_per_minute, smtp.max_per_day);
        let batch = smtp.connections * BATCH_PER_CONNECTION;
        if per_minute.is_none() && per_day.is_none() {
            return Ok(batch);
        }
        self.with_store(move |store| {
            let mut allowed = batch;
            if let Some(limit) = per_minute {
                let used = store.claimed_since(now - Duration::minutes(1))?;
                allowed = allowed.min((limit as u64).saturating_sub(used) as usize);
            }
            if let Some(limit) = per_day {
                let used = store.claimed_since(now - Duration::days(1))?;
                allowed = allowed.min((limit as u64).saturating_sub(used) as usize);
            }
            Ok(allowed)
        })
        .await
    }

    /// Sends everything due now, until nothing is due, a rate limit is reached, the server
    /// refuses us, or `stopping` says to stop (checked between claims only).
    ///
    /// Two stages overlap: one worker per connection re-checks, commits the start (with
    /// its previous result) and sends, while this task commits, in one transaction, the
    /// results no worker could record and the next claims, then renders what it claimed.
    /// It claims only while fewer than one batch is claimed but unrecorded. Once
    /// `stopping` is set, workers start nothing more and return what they are given.
    pub async fn pass(&self, stopping: Arc<AtomicBool>) -> Result<PassReport, DeliverError> {
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
            let (this, work_rx, done_tx, refused, own, stopping) = (
                self.clone(),
                work_rx.clone(),
                done_tx.clone(),
                refused.clone(),
                start_tx.clone(),
                stopping.clone(),
            );
            workers.spawn(async move {
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
                                    .send(this.record_alone(result, own.clone()).await)
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
                            at: this.clock.now(),
                        },
                        Ok(outgoing) => {
                            let (previous, verdict) =
                                this.start(&message, pending.take(), own.clone()).await;
                            if let Some(previous) = previous
                                && done_tx.send(previous).await.is_err()
                            {
                                break;
                            }
                            match verdict {
                                Some(not_started) => not_started,
                                None => {
                                    let outcome = this.send(&message, outgoing).await;
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
                        .send(this.record_alone(result, own.clone()).await)
                        .await;
                }
            });
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
                match outcome {
                    Outcome::Sent { .. } => report.sent += 1,
                    Outcome::Retry { .. } | Outcome::Deferred { .. } => report.retried += 1,
                    Outcome::Failed { .. } | Outcome::Abandoned { .. } => report.failed += 1,
                    Outcome::Uncertain { .. } => report.uncertain += 1,
                    Outcome::Withdrawn { .. } => report.withdrawn += 1,
                    Outcome::Held { .. } => report.held += 1,
                    Outcome::Returned { .. } => report.returned += 1,
                    Outcome::Blocked { .. } => {
                        report.retried += 1;
                        report.blocked += 1;
                    }
                }
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

    /// Records `results` and claims up to `limit` messages in one transaction, then
    /// renders the claimed messages, all off the async threads in one trip (the rendering
    /// after the store is unlocked): each message, or the outcome that replaces its send.
    async fn record_and_claim(
        &self,
        results: Vec<(i64, Outcome)>,
        limit: usize,
    ) -> Result<Result<Vec<Prepared>, DeliverError>, DeliverError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let claimed = {
                let mut store = this.store.lock().map_err(|_| DeliverError::Poisoned)?;
                let claim = Some((this.clock.now(), limit));
                store.record_and_claim(&this.config, &results, claim)?
            };
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(error) => return Ok(Err(DeliverError::from(error))),
            };
            Ok(Ok(claimed
                .into_iter()
                .map(|message| {
                    let rendered = this.render(&message).map_err(|reason| {
                        // Logged at every attempt: the step waits for someone to fix it.
                        tracing::error!(outbox_id = message.message_row, to = %message.client.email, campaign = %message.campaign, step = message.step, %reason, "held, not sent: fix the template (or the client's data) and restart winback; the step then goes");
                        Outcome::Held {
                            reason,
                            at: this.clock.now(),
                        }
                    });
                    (message, rendered)
                })
                .collect()))
        })
        .await?
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
                .with_store(move |store| store.start_many(&config, &work, at))
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

    /// Sends one prepared message; never fails, only reports.
    async fn send(&self, message: &Claimed, outgoing: OutgoingMessage) -> Outcome {
        let result = self.mailer.send(&outgoing).await;
        let at = self.clock.now();
        let (campaign, step, to, row) = (
            &message.campaign,
            message.step,
            &message.client.email,
            message.message_row,
        );
        match result {
            Ok(delivered) => {
                tracing::info!(outbox_id = row, %to, %campaign, step, attempt = message.attempt, reply = %delivered.reply, "sent");
                Outcome::Sent {
                    reply: delivered.reply,
                    at,
                }
            }
            Err(SendError::Transient(error)) => {
                tracing::warn!(outbox_id = row, %to, %campaign, step, attempt = message.attempt, %error, "temporary failure; will retry");
                Outcome::Retry { error, at }
            }
            Err(SendError::Permanent(error)) => {
                tracing::warn!(outbox_id = row, %to, %campaign, step, %error, "rejected; address suppressed");
                Outcome::Failed { error, at }
            }
            Err(SendError::Blocked(error)) => {
                tracing::warn!(outbox_id = row, %to, %campaign, step, attempt = message.attempt, %error, "refused by the recipient's server (policy); will retry until retry_give_up_hours after the first attempt");
                Outcome::Blocked { error, at }
            }
            Err(SendError::Setup(error)) => {
                tracing::error!(outbox_id = row, %to, %campaign, step, %error, "the mail server refused us (check [smtp] and WINBACK_SMTP_PASSWORD); the message waits");
                Outcome::Deferred { error, at }
            }
            Err(SendError::Uncertain(error)) => {
                tracing::error!(outbox_id = row, %to, %campaign, step, %error, "outcome unknown; not resent (see `winback outbox list`)");
                Outcome::Uncertain { error, at }
            }
            Err(SendError::Unsupported(error)) => {
                tracing::error!(outbox_id = row, %to, %campaign, step, %error, "the mail server refused the message as written or cannot carry it; sequence stopped, address not suppressed (see winback outbox list)");
                Outcome::Abandoned { error, at }
            }
        }
    }

    /// The message ready to send, or why it is not fit to go: it did not render, or what
    /// it rendered to lacks its footer or still holds a placeholder (see `fitness`).
    fn render(&self, message: &Claimed) -> Result<OutgoingMessage, String> {
        let campaign = self
            .config
            .campaign(&message.campaign)
            .ok_or_else(|| format!("campaign {} is no longer configured", message.campaign))?;
        let unsubscribe_url = self.unsubscribe_url(message.enrollment_id);
        let vars = Vars {
            client: &message.client,
            unsubscribe_url: unsubscribe_url.clone(),
            survey_url: self.survey_url(message.enrollment_id),
            now: self.clock.now(),
        };
        let rendered = self
            .renderer
            .render(campaign, message.step, &vars)
            .map_err(|e| e.to_string())?;
        let unfit = crate::mail::fitness::unfit(
            &rendered,
            &unsubscribe_url,
            &self.config.sender.postal_address,
        );
        if !unfit.is_empty() {
            return Err(crate::mail::fitness::held_reason(&unfit));
        }
        self.renderer
            .build_message(
                &self.config,
                &rendered,
                &message.client,
                &message.message_id,
                self.clock.now(),
                &unsubscribe_url,
            )
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::pin::Pin;

    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::domain::model::{ChurnedAt, ClientRecord};
    use crate::mailer::{Delivered, StubMailer};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
    }

    fn setup(dir: &std::path::Path) -> Config {
        let templates = dir.join("templates");
        std::fs::create_dir(&templates).unwrap();
        for ext in ["html", "txt"] {
            std::fs::write(
                templates.join(format!("survey.{ext}.hbs")),
                "Hello {{first_name}}. {{unsubscribe_url}} {{sender.postal_address}}",
            )
            .unwrap();
        }
        crate::test_support::config(dir, "connections = 1", crate::test_support::SURVEY_ONLY)
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
        }
    }

    /// Sends like the stub, but the first send also opts out everyone else on `people`
    /// (through its own connection, as the HTTP server would): an opt-out that arrives
    /// while the other messages wait in the queue.
    struct OptOutDuringFirstSend {
        stub: StubMailer,
        http: Mutex<Store>,
        people: Vec<String>,
        first: AtomicBool,
    }

    impl Mailer for OptOutDuringFirstSend {
        fn send<'a>(
            &'a self,
            message: &'a OutgoingMessage,
        ) -> Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
            if !self.first.swap(true, Ordering::SeqCst) {
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
            store: Arc::new(Mutex::new(store)),
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
    /// has room again: the pass keeps the results and records them then; nothing stays
    /// `sending`, nothing is sent twice.
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
        // Room comes back a while after every message went out (and failed to record).
        let watcher = mailer.clone();
        let room = std::thread::spawn(move || {
            for _ in 0..2000 {
                if watcher.sent().len() >= 3 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            disk.execute("DELETE FROM full_disk", []).unwrap();
        });
        let report = deliverer.pass(Arc::default()).await.unwrap();
        room.join().unwrap();
        assert_eq!((report.sent, mailer.sent().len()), (3, 3), "{report:?}");
        let status = deliverer.store.lock().unwrap().status().unwrap();
        assert_eq!(
            status.messages["former-clients"],
            [("sent".to_string(), 3)].into_iter().collect(),
            "{status:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_opt_out_while_a_message_waits_in_the_queue_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path());
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:?}"));
        let db = dir.path().join("winback.db");
        let mut store = Store::open(&db).unwrap();
        let people: Vec<String> = (1..=3).map(|n| format!("p{n}@client.example")).collect();
        let rows = people
            .iter()
            .map(|email| Ok((2, record(email))))
            .collect::<Vec<_>>();
        store
            .import(rows.into_iter(), &config, now(), false, &mut |_| {})
            .unwrap();
        let mailer = Arc::new(OptOutDuringFirstSend {
            stub: StubMailer::new(),
            http: Mutex::new(Store::open(&db).unwrap()),
            people: people.clone(),
            first: AtomicBool::new(false),
        });
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
}
