//! Delivery: claim due messages, render them, hand them to the mailer, record what the
//! server said. A message not fit to go (see `fitness`) is held, never sent.
//!
//! Claims are committed (`sending`), then each message's start, before its SMTP
//! transaction: a pass writes, in one transaction at a time, the results of the messages
//! sent since its last one, the start of the next few and the next claim, so one sync to
//! disk serves many messages. It keeps only as many messages started ahead of the
//! connections as they send in a few of its transactions' time (see `pass::start_depth`),
//! and each is checked again just before its send, so a crash leaves few `uncertain`.
//! An open transaction is never abandoned; on shutdown no new one starts, and claimed
//! messages go back to the queue.
//!
//! This file owns the [`Deliverer`] and what one message needs: the rate limits, the
//! claim with its rendering, the send and what its result means. `pass.rs` runs a pass
//! (the writing loop and the workers that send); `notices.rs` sends the notices to the
//! team between passes. Must not touch SQL (the store does) nor decide who is due (the
//! store asks `domain`).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::config::Config;
use crate::mail::{Origin, Renderer, Vars};
use crate::mailer::{Mailer, OutgoingMessage, SendError};
use crate::store::{Claimed, Outcome, SharedError, SharedStore, Step};
use crate::token::{Secret, Target};

mod notices;
mod pass;
#[cfg(test)]
mod tests;

/// Messages a pass keeps claimed and rendered ahead, per SMTP connection, ready to start:
/// larger batches amortize the claims. A claimed message that never started goes back to
/// the queue after a crash, so this does not bound what a crash leaves `uncertain`.
pub(crate) const BATCH_PER_CONNECTION: usize = 16;

/// A claimed message, rendered, or the outcome that replaces its send.
type Prepared = (Claimed, Result<OutgoingMessage, Outcome>);

/// What a pass's transaction did, as [`Deliverer::write_step`] gives it: for each start,
/// in order, why it must not go (`None`: started), and what it claimed, rendered (or why
/// the claim alone failed); or why nothing of it happened (a task that died included).
type Written = Result<(Vec<Option<String>>, Result<Vec<Prepared>, DeliverError>), DeliverError>;

/// Everything a pass needs; cheap to clone into tasks.
#[derive(Clone)]
pub(crate) struct Deliverer {
    pub config: Arc<Config>,
    pub renderer: Arc<Renderer>,
    pub mailer: Arc<dyn Mailer>,
    pub secret: Arc<Secret>,
    pub clock: Clock,
    pub store: SharedStore,
    /// A second connection to the database, for the check just before each send: it
    /// reads, so it never waits behind the commits (and syncs to disk) of `store`, and
    /// it is read on the worker's own thread (see `Store::open_for_checks`).
    pub checks: SharedStore,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PassReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub uncertain: usize,
    /// Claimed, but not started: the person opted out (or bounced, or came back) meanwhile.
    pub withdrawn: usize,
    /// Not fit to go (a template error, a placeholder, no footer): held, not sent.
    pub held: usize,
    /// Claimed or started, never handed to the server (the daemon was stopping, the mail
    /// server refused us, or the check before the send could not be read): back in the
    /// queue.
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
pub(crate) enum DeliverError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("a database task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the database lock was poisoned by a crash in another task")]
    Poisoned,
    #[error("a delivery worker stopped before its pass ended")]
    WorkerStopped,
}

impl PassReport {
    /// Counts one message's outcome.
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Sent { .. } => self.sent += 1,
            Outcome::Retry { .. } | Outcome::Deferred { .. } => self.retried += 1,
            Outcome::Failed { .. } | Outcome::Abandoned { .. } => self.failed += 1,
            Outcome::Uncertain { .. } => self.uncertain += 1,
            Outcome::Withdrawn { .. } => self.withdrawn += 1,
            Outcome::Held { .. } => self.held += 1,
            Outcome::Returned { .. } => self.returned += 1,
            Outcome::Blocked { .. } => {
                self.retried += 1;
                self.blocked += 1;
            }
        }
    }
}

impl From<SharedError> for DeliverError {
    fn from(error: SharedError) -> DeliverError {
        match error {
            SharedError::Store(error) => DeliverError::Store(error),
            SharedError::Join(error) => DeliverError::Join(error),
            SharedError::Poisoned => DeliverError::Poisoned,
        }
    }
}

impl Deliverer {
    pub(crate) fn unsubscribe_url(&self, enrollment_id: i64) -> String {
        crate::links::unsubscribe_url(
            &self.config,
            &self.secret,
            Target::Enrollment(enrollment_id),
        )
    }

    pub(crate) fn survey_url(&self, enrollment_id: i64) -> String {
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
        let allowed = self.store.call(move |store| {
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
        });
        Ok(allowed.await?)
    }

    /// Writes `step` in one transaction (see [`crate::store::Store::deliver_step`]), then
    /// renders what it claimed, all off the async threads in one trip (the rendering
    /// after the store is unlocked).
    async fn write_step(&self, step: Arc<Step>) -> Written {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let stepped = this
                .store
                .blocking(|store| store.deliver_step(&this.config, &step))?;
            let claimed = stepped.claimed.map_err(DeliverError::from).map(|claimed| {
                claimed
                    .into_iter()
                    .map(|message| this.prepare(message))
                    .collect()
            });
            Ok((stepped.withdrawn, claimed))
        })
        .await?
    }

    /// A claimed message rendered, or the outcome that replaces its send.
    fn prepare(&self, message: Claimed) -> Prepared {
        let rendered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.render(&message)))
                .unwrap_or_else(|_| Err("rendering stopped on an internal error".to_string()));
        let rendered = rendered.map_err(|reason| {
            // Logged at every attempt: the step waits for someone to fix it.
            tracing::error!(outbox_id = message.message_row, to = %message.client.email, campaign = %message.campaign, step = message.step, %reason, "held, not sent: fix the template (or the client's data) and restart winback; the step then goes");
            Outcome::Held {
                reason,
                at: self.clock.now(),
            }
        });
        (message, rendered)
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
        let return_path = match &self.config.inbound.return_path {
            None => None,
            Some(base) => Some(
                crate::inbound::verp::address(&self.secret, base, message.message_row)
                    .ok_or_else(|| format!("[inbound] return_path {base} gives no address with this message's reference"))?,
            ),
        };
        let origin = Origin {
            campaign: &message.campaign,
            step: message.step,
            return_path,
        };
        self.renderer
            .build_message(
                &self.config,
                &rendered,
                &message.client,
                &origin,
                &message.message_id,
                self.clock.now(),
                &unsubscribe_url,
            )
            .map_err(|e| e.to_string())
    }
}
