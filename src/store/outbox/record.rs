//! Starting claimed messages and recording what became of them: the check just before
//! an SMTP transaction starts, each outcome's effect on the message, its sequence and its
//! address, recovery of rows a stop left `sending`, held messages and operator resends.
//!
//! Must not claim (that is `claim.rs`) nor decide a schedule (that is `domain`).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{BLOCKED, Outcome, Recovered, enrollment_state, history, message_state, standing_of};
use crate::config::{Campaign, Config};
use crate::domain::accounts::{AccountStop, stop_for};
use crate::domain::model::{ChurnedAt, EnrollmentState, MessageState};
use crate::domain::retry::{AfterFailure, RetryPolicy, Sequence, held_retry_at, superseded};
use crate::domain::schedule::{self, Next, Sent};
use crate::domain::suppression::{Reason, Suppression};
use crate::store::accounts::hold;
use crate::store::clients::decode_timezone;
use crate::store::enroll::stop;
use crate::store::{Result, Store, StoreError, fmt_time, log_event, moment, parse_time};

impl Store {
    /// Asked just before a claimed message's SMTP transaction starts: the reason it must
    /// not start after all, or `None` if it may. A claim can wait in the queue behind a
    /// slow server; an opt-out, bounce or return recorded meanwhile (or the person being
    /// forgotten, or their sequence starting over) still stops it. Reads only: delivery
    /// asks it on a connection of its own (see [`Store::open_for_checks`]) just before
    /// each send, the start having been committed a moment earlier.
    pub(crate) fn withdrawal(&self, config: &Config, row: i64) -> Result<Option<String>> {
        withdrawal_in(&self.conn, config, row)
    }

    #[cfg(test)]
    /// Messages started and not yet recorded: what a crash now would leave `uncertain`.
    pub(crate) fn started_unrecorded(&self) -> Result<usize> {
        let count: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE state = 'sending' AND started_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(count as usize)
    }

    /// For the daemon's connection: SQLite's temporary structures (a savepoint's undo
    /// journal, a claim's sort) stay in memory instead of a file created and deleted in
    /// /var/tmp for each, one every few messages a pass sends. Its statements are small;
    /// the commands that sort a million rows keep spilling to disk.
    pub(crate) fn keep_temporary_in_memory(&self) -> Result<()> {
        Ok(self.conn.pragma_update(None, "temp_store", "MEMORY")?)
    }

    /// Another connection to the same database, for delivery's checks before each send:
    /// a reader there never waits for this connection's commits (WAL), and sees each once
    /// it is committed. Those checks run on an async thread, so in the rare case SQLite
    /// makes a reader wait (another process recovering the log), it gives up after a
    /// second instead of five minutes: the message then goes back to the queue.
    pub(crate) fn open_for_checks(&self) -> Result<Store> {
        let store = Store::open(&self.path)?;
        store.conn.busy_timeout(std::time::Duration::from_secs(1))?;
        Ok(store)
    }

    #[cfg(test)]
    /// Just before a claimed message's SMTP transaction begins: its [`Store::withdrawal`]
    /// check, and if it may go, `started_at` committed in the same transaction as
    /// `results` (see [`Store::deliver_step`]). Only a started message can be `uncertain`
    /// after a crash; a claimed one that never started goes back to the queue (see
    /// [`Store::recover_interrupted`]). Returns the withdrawal reason, if any.
    pub(crate) fn start(
        &mut self,
        config: &Config,
        results: &[(i64, Outcome)],
        row: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let step = super::Step {
            results: results.to_vec(),
            starts: vec![row],
            claim: None,
            at,
        };
        Ok(self.deliver_step(config, &step)?.withdrawn.pop().flatten())
    }
}

/// Starts `rows` at `at` in the caller's transaction: for each, in order, why it must not
/// start (see [`Store::withdrawal`]), or `None` and its `started_at` written.
pub(super) fn start_in(
    tx: &Connection,
    config: &Config,
    rows: &[i64],
    at: DateTime<Utc>,
) -> Result<Vec<Option<String>>> {
    let mut withdrawn = Vec::with_capacity(rows.len());
    for row in rows {
        let reason = withdrawal_in(tx, config, *row)?;
        if reason.is_none() {
            tx.prepare_cached("UPDATE messages SET started_at = ?2 WHERE id = ?1")?
                .execute(params![row, fmt_time(at)])?;
        }
        withdrawn.push(reason);
    }
    Ok(withdrawn)
}

/// See [`Store::withdrawal`].
fn withdrawal_in(conn: &Connection, config: &Config, row: i64) -> Result<Option<String>> {
    // One statement: this runs before every single send.
    type Facts = (
        String,
        String,
        i64,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<bool>,
        Option<String>,
        Option<String>,
    );
    let facts: Option<Facts> = conn
            .prepare_cached(
                "SELECT m.state, m.campaign, m.cycle, e.client_id, e.state, e.cycle, c.churn_reason,
                        CASE WHEN c.id IS NULL THEN NULL ELSE c.returned_at IS NOT NULL END,
                        (SELECT s.reason FROM suppressions s WHERE s.email_hash = email_hash(c.email)),
                        c.account_key
                 FROM messages m
                 LEFT JOIN enrollments e ON e.id = m.enrollment_id
                 LEFT JOIN clients c ON c.id = e.client_id
                 WHERE m.id = ?1",
            )?
            .query_row(params![row], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })
            .optional()?;
    let Some((
        state,
        campaign_name,
        cycle,
        client_id,
        sequence_state,
        sequence_cycle,
        churn_reason,
        returned,
        suppression,
        account_key,
    )) = facts
    else {
        return Ok(Some(
            "its record is gone (the person was forgotten)".to_string(),
        ));
    };
    let state = message_state(&state)?;
    if state != MessageState::Sending {
        return Ok(Some(format!("it is {} now", state.as_str())));
    }
    let (Some(_), Some(sequence_state), Some(sequence_cycle)) =
        (client_id, sequence_state, sequence_cycle)
    else {
        return Ok(Some("its enrollment is gone".to_string()));
    };
    let Some(returned) = returned else {
        return Ok(Some("its person is gone".to_string()));
    };
    if let Some(stop) = standing_of(suppression.as_deref(), returned).stop() {
        return Ok(Some(format!("the person is {} now", stop.as_str())));
    }
    // Their account's return or standing reply too (one query, only with an account).
    if let (Some(key), Some(client_id)) = (account_key, client_id)
        && let Some(stop) = stop_for(hold(conn, &key, client_id)?)
    {
        return Ok(Some(match stop {
            AccountStop::Returned => "another contact of the account came back".to_string(),
            AccountStop::Replied => "another contact of the account replied".to_string(),
        }));
    }
    let sequence = Sequence {
        state: enrollment_state(&sequence_state)?,
        cycle: sequence_cycle,
    };
    Ok(config
        .campaign(&campaign_name)
        .and_then(|campaign| superseded(sequence, cycle, campaign, churn_reason.as_deref()))
        .map(str::to_string))
}

impl Store {
    /// At start-up: messages caught mid-send by a crash become `uncertain` (they count as
    /// sent for the timing of the next step, and are not resent); messages claimed but
    /// never started (no `started_at`) go back to the queue and are sent now.
    ///
    /// Held messages are tried again from `now` (at their next `send_at` moment): the
    /// templates were just read again, perhaps fixed.
    pub(crate) fn recover_interrupted(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<Recovered> {
        let tx = self.write_tx()?;
        retry_held_in(&tx, now)?;
        let recovered = recover_sending(&tx, config, now)?;
        tx.commit()?;
        Ok(recovered)
    }

    /// Held messages are tried again from `now` (at their next `send_at` moment): the
    /// templates were just read again (a reload), perhaps fixed. Returns how many.
    pub(crate) fn retry_held(&mut self, now: DateTime<Utc>) -> Result<usize> {
        Ok(retry_held_in(&self.conn, now)?)
    }

    /// Between passes, when nothing is in flight: a message still `sending` is stuck (its
    /// result could not be written, and the pass gave up on it). Settled as at start-up
    /// (see [`Store::recover_interrupted`]), without touching held messages.
    pub(crate) fn recover_stuck(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<Recovered> {
        let tx = self.write_tx()?;
        let recovered = recover_sending(&tx, config, now)?;
        tx.commit()?;
        Ok(recovered)
    }
}

/// Settles every `sending` row: started ones become `uncertain`, the others go back to
/// the queue. Only when no message is in flight.
fn recover_sending(tx: &Connection, config: &Config, now: DateTime<Utc>) -> Result<Recovered> {
    let rows: Vec<(i64, String, Option<String>)> = tx
        .prepare("SELECT id, claimed_at, started_at FROM messages WHERE state = 'sending'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let mut recovered = Recovered::default();
    for (row, claimed_at, started_at) in &rows {
        let outcome = match started_at {
            Some(started_at) => {
                recovered.uncertain += 1;
                Outcome::Uncertain {
                    error: format!(
                        "the process stopped during the SMTP transaction (found at start-up {})",
                        fmt_time(now)
                    ),
                    at: parse_time(started_at)?,
                }
            }
            None => {
                recovered.returned += 1;
                Outcome::Returned {
                    reason: format!(
                        "claimed at {claimed_at} but never started: the process stopped first"
                    ),
                    at: now,
                }
            }
        };
        record_one(tx, config, *row, &outcome)?;
    }
    Ok(recovered)
}

impl Store {
    /// An operator decided an `uncertain` (or `failed`, or `held`) message should go out
    /// again. Returns false if there is no such message in a resendable state.
    ///
    /// A failed message that ended its sequence at its own step (before messages were
    /// held, a template error did that) makes the sequence active again at that step: once
    /// the message goes, the sequence continues.
    pub(crate) fn resend(&mut self, row: i64, now: DateTime<Utc>) -> Result<bool> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE enrollments SET state = 'active', send_at = NULL, moved_reason = NULL, stopped_at = NULL, updated_at = ?2
             WHERE state = 'completed'
               AND (id, cycle, next_step, next_occurrence) = (SELECT enrollment_id, cycle, step, occurrence FROM messages WHERE id = ?1 AND state = 'failed')",
            params![row, fmt_time(now)],
        )?;
        let changed = tx.execute(
            "UPDATE messages SET state = 'retry', next_attempt_at = ?2, first_claimed_at = ?2, updated_at = ?2,
                    last_error = 'resend requested by an operator'
             WHERE id = ?1 AND state IN ('uncertain', 'failed', 'held')",
            params![row, fmt_time(now)],
        )?;
        if changed > 0 {
            let client_id: i64 = tx.query_row(
                "SELECT client_id FROM messages WHERE id = ?1",
                params![row],
                |r| r.get(0),
            )?;
            log_event(
                &tx,
                now,
                Some(client_id),
                "resend",
                &format!("message {row}"),
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }
}

/// See [`Store::retry_held`].
fn retry_held_in(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE messages SET next_attempt_at = ?1 WHERE state = 'held'",
        params![fmt_time(now)],
    )
}

/// `[smtp]`'s retry settings, as the outbox applies them.
fn retry_policy(config: &Config) -> RetryPolicy {
    config.smtp.retry_policy()
}

pub(super) fn record_one(
    tx: &Connection,
    config: &Config,
    row: i64,
    outcome: &Outcome,
) -> Result<()> {
    if let Outcome::Sent { reply, at } = outcome {
        // The common case, in one statement: what `set_state` below does for `Sent`.
        let sent = tx
            .prepare_cached(
                "UPDATE messages SET state = 'sent', sent_at = ?2, smtp_reply = ?3, next_attempt_at = NULL, updated_at = ?2
                 WHERE id = ?1 AND state = 'sending'
                 RETURNING enrollment_id, client_id, campaign, cycle, step, occurrence",
            )?
            .query_row(params![row, fmt_time(*at), reply], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, (r.get::<_, u32>(4)?, r.get::<_, u32>(5)?)))
            })
            .optional()?;
        if let Some((enrollment_id, client_id, campaign, cycle, step)) = sent {
            advance(
                tx,
                config.campaign(&campaign),
                enrollment_id,
                client_id,
                cycle,
                step,
                *at,
            )?;
        }
        return Ok(());
    }
    let Some((enrollment_id, client_id, campaign_name, cycle, step, attempts, first_claimed_at)) = tx
        .prepare_cached("SELECT enrollment_id, client_id, campaign, cycle, step, attempts, first_claimed_at, occurrence FROM messages WHERE id = ?1 AND state = 'sending'")?
        .query_row(params![row], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, (r.get::<_, u32>(4)?, r.get::<_, u32>(7)?), r.get::<_, u32>(5)?, r.get::<_, String>(6)?)))
        .optional()?
    else {
        return Ok(()); // already recorded
    };
    let campaign = config.campaign(&campaign_name);
    let set_state = |state: MessageState,
                     at: DateTime<Utc>,
                     reply: Option<&str>,
                     error: Option<&str>,
                     next: Option<DateTime<Utc>>|
     -> Result<()> {
        tx.prepare_cached(
            "UPDATE messages SET state = ?2, sent_at = CASE WHEN ?7 THEN ?3 ELSE sent_at END,
                    smtp_reply = COALESCE(?4, smtp_reply), last_error = COALESCE(?5, last_error), next_attempt_at = ?6, updated_at = ?3
             WHERE id = ?1",
        )?
        .execute(params![row, state.as_str(), fmt_time(at), reply, error, next.map(fmt_time), state.went_out()])?;
        Ok(())
    };
    match outcome {
        Outcome::Sent { reply, at } => {
            set_state(MessageState::Sent, *at, Some(reply), None, None)?;
            advance(tx, campaign, enrollment_id, client_id, cycle, step, *at)?;
        }
        Outcome::Uncertain { error, at } => {
            set_state(MessageState::Uncertain, *at, None, Some(error), None)?;
            advance(tx, campaign, enrollment_id, client_id, cycle, step, *at)?;
            log_event(
                tx,
                *at,
                Some(client_id),
                "uncertain",
                &format!("message {row}: {error}"),
            )?;
        }
        Outcome::Blocked { error, at } => {
            log_event(
                tx,
                *at,
                Some(client_id),
                "blocked",
                &format!("message {row}: {error}"),
            )?;
            let retry = Outcome::Retry {
                error: format!("{BLOCKED} {error}"),
                at: *at,
            };
            return record_one(tx, config, row, &retry);
        }
        Outcome::Retry { error, at } => {
            let first_attempt = parse_time(&first_claimed_at)?;
            match retry_policy(config).after_failure(attempts, first_attempt, *at) {
                AfterFailure::GiveUp => {
                    let error = format!("gave up after {attempts} attempts: {error}");
                    set_state(MessageState::Failed, *at, None, Some(&error), None)?;
                    bounce(tx, client_id, &error, *at)?;
                }
                AfterFailure::RetryAt(next) => {
                    set_state(MessageState::Retry, *at, None, Some(error), Some(next))?;
                }
            }
        }
        Outcome::Deferred { error, at } => {
            set_state(
                MessageState::Retry,
                *at,
                None,
                Some(error),
                Some(retry_policy(config).after_deferral(*at)),
            )?;
            // Our server refusing us says nothing about the recipient: the time until
            // giving up on their address starts again.
            tx.prepare_cached("UPDATE messages SET first_claimed_at = ?2 WHERE id = ?1")?
                .execute(params![row, fmt_time(*at)])?;
        }
        Outcome::Failed { error, at } => {
            set_state(MessageState::Failed, *at, None, Some(error), None)?;
            bounce(tx, client_id, error, *at)?;
        }
        Outcome::Held { reason, at } => {
            set_state(
                MessageState::Held,
                *at,
                None,
                Some(reason),
                Some(held_retry_at(*at)),
            )?;
            // Never handed to the server: not an attempt (retries back off by attempts).
            tx.prepare_cached("UPDATE messages SET attempts = max(attempts - 1, 0) WHERE id = ?1")?
                .execute(params![row])?;
            log_event(
                tx,
                *at,
                Some(client_id),
                "held",
                &format!("message {row}: {reason}"),
            )?;
        }
        Outcome::Withdrawn { reason, at } => {
            set_state(MessageState::Cancelled, *at, None, Some(reason), None)?;
            log_event(
                tx,
                *at,
                Some(client_id),
                "withdrawn",
                &format!("message {row}: not started: {reason}"),
            )?;
        }
        Outcome::Returned { reason, at } => {
            set_state(MessageState::Retry, *at, None, Some(reason), Some(*at))?;
            // Never handed to the server: not an attempt.
            tx.prepare_cached("UPDATE messages SET attempts = max(attempts - 1, 0), started_at = NULL WHERE id = ?1")?
                .execute(params![row])?;
        }
        Outcome::Abandoned { error, at } => {
            set_state(MessageState::Failed, *at, None, Some(error), None)?;
            stop(tx, enrollment_id, EnrollmentState::Completed, *at)?;
            log_event(
                tx,
                *at,
                Some(client_id),
                "abandoned",
                &format!("message {row}: {error}"),
            )?;
        }
    }
    Ok(())
}

/// A permanent failure: the address is suppressed and every sequence to it stops.
fn bounce(tx: &Connection, client_id: i64, error: &str, at: DateTime<Utc>) -> Result<()> {
    let email: String = tx.query_row(
        "SELECT email FROM clients WHERE id = ?1",
        params![client_id],
        |r| r.get(0),
    )?;
    // Over the person's own opt-out, so that their link's Undo cannot lift it.
    let bounced = Suppression::new(Reason::Bounce, "smtp");
    crate::store::people::suppress(tx, &email, &bounced, at)?;
    crate::store::enroll::stop_client(tx, client_id, EnrollmentState::Bounced, at)?;
    log_event(tx, at, Some(client_id), "bounce", error)?;
    Ok(())
}

/// Moves an enrollment past a message that went out (or may have) at `at`: `step` is its
/// step and occurrence. What comes next is counted from the sequence's history, this
/// message included; a next message due past the consent horizon ends it `expired`.
pub(super) fn advance(
    tx: &Connection,
    campaign: Option<&Campaign>,
    enrollment_id: i64,
    client_id: i64,
    cycle: i64,
    (step, occurrence): (u32, u32),
    at: DateTime<Utc>,
) -> Result<()> {
    // The sequence's position, and the person's own time zone and churn date (`None`:
    // the person is gone).
    type Position = ((String, i64, u32, u32), Option<(Option<String>, String)>);
    let current: Option<Position> = tx
        .prepare_cached(
            "SELECT e.state, e.cycle, e.next_step, e.next_occurrence, c.id, c.timezone, c.churned_at FROM enrollments e
             LEFT JOIN clients c ON c.id = ?2 WHERE e.id = ?1",
        )?
        .query_row(params![enrollment_id, client_id], |r| {
            let person: Option<i64> = r.get(4)?;
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                person
                    .map(|_| Ok::<_, rusqlite::Error>((r.get(5)?, r.get(6)?)))
                    .transpose()?,
            ))
        })
        .optional()?;
    let (sequence, client) = match current {
        Some((sequence, client)) => (Some(sequence), client),
        None => (None, None),
    };
    // Only the sequence this message belongs to, and only if nothing stopped it meanwhile.
    if sequence
        != Some((
            EnrollmentState::Active.as_str().to_string(),
            cycle,
            step,
            occurrence,
        ))
    {
        tx.prepare_cached("UPDATE enrollments SET last_sent_at = ?2 WHERE id = ?1 AND cycle = ?3")?
            .execute(params![enrollment_id, fmt_time(at), cycle])?;
        return Ok(());
    }
    let Some(campaign) = campaign else {
        tx.execute("UPDATE enrollments SET last_sent_at = ?2, next_step = ?3, next_occurrence = 1, send_at = NULL, moved_reason = NULL WHERE id = ?1", params![enrollment_id, fmt_time(at), step + 1])?;
        return Ok(());
    };
    let Some((timezone, churned_at)) = client else {
        return Ok(());
    };
    let tz = schedule::zone(campaign, decode_timezone(timezone.as_deref())?);
    let churned_at = ChurnedAt::parse(&churned_at)
        .ok_or_else(|| StoreError::Corrupt(format!("churned_at {churned_at:?}")))?;
    let mut history = history(tx, enrollment_id, cycle)?;
    if !history
        .iter()
        .any(|s| (s.step, s.occurrence) == (step, occurrence))
    {
        // Not a row of its own (a survey another campaign sent), or not recorded yet.
        history.push(Sent {
            step,
            occurrence,
            at,
        });
    }
    match schedule::next_message(campaign, churned_at, &history, tz) {
        Next::Message(next)
            if schedule::horizon(campaign, churned_at, tz).is_some_and(|h| next.due >= h) =>
        {
            tx.prepare_cached("UPDATE enrollments SET last_sent_at = ?2 WHERE id = ?1")?
                .execute(params![enrollment_id, fmt_time(at)])?;
            stop(tx, enrollment_id, EnrollmentState::Expired, at)?;
        }
        Next::Message(next) => {
            let send_at =
                schedule::earliest_send(campaign, tz, next.due, next.due, next.due).map(moment);
            tx.prepare_cached(
                "UPDATE enrollments SET next_step = ?2, next_occurrence = ?6, due_at = ?3, send_at = ?4, moved_reason = NULL, last_sent_at = ?5, updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![enrollment_id, next.step, fmt_time(next.due), send_at, fmt_time(at), next.occurrence])?;
        }
        Next::Completed => {
            tx.prepare_cached(
                "UPDATE enrollments SET state = 'completed', next_step = ?2, next_occurrence = 1, due_at = NULL, send_at = NULL, moved_reason = NULL, last_sent_at = ?3, stopped_at = ?3, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![enrollment_id, step + 1, fmt_time(at)])?;
        }
    }
    Ok(())
}
