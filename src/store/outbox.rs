//! The outbox: claiming due messages and recording what the SMTP server said.
//!
//! The never-send-twice rule lives here. A message row is committed in state `sending`
//! when claimed, in the same transaction that re-checks opt-outs, bounces and returns,
//! and its `started_at` just before its SMTP transaction starts. A started row still
//! `sending` at start-up becomes `uncertain` and is not sent again unless an operator
//! says so; one only claimed goes back to the queue. A message not fit to go is `held`: its
//! sequence waits at that step, and it is tried again at each start and once a day.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::clients::{
    JOINED_CLIENT_COLUMNS, StoredClient, client_from_row_at, decode_client, decode_timezone,
    load_facts,
};
use super::enroll::stop;
use super::{Result, Store, email_hash, fmt_time, from_moment, log_event, moment, parse_time};
use crate::config::{Campaign, Config};
use crate::domain::model::{EnrollmentState, MessageState};
use crate::domain::schedule::{self, Decision, Next, Standing};
use crate::domain::suppression::{Reason, Suppression};

/// Retries back off from `retry_first`, doubling, but never wait longer than this.
const MAX_BACKOFF_HOURS: i64 = 6;
/// How far back sends count for the one-message-per-local-day rule.
const BUSY_LOOKBACK_HOURS: i64 = 48;
/// A held message is tried again (and its reason logged again) after this long, at its
/// next `send_at` moment; and at every start, since a fix to a template needs one.
const HELD_RETRY_HOURS: i64 = 24;

/// A message claimed for sending: its row is `sending` and committed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message_row: i64,
    pub message_id: String,
    pub campaign: String,
    pub step: u32,
    pub attempt: u32,
    pub client: crate::domain::model::ClientRecord,
    /// The enrollment, which the link tokens point at.
    pub enrollment_id: i64,
}

/// What became of one claimed message.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        reply: String,
        at: DateTime<Utc>,
    },
    /// A transient failure (4xx, or no answer before the message was handed over).
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// The recipient's server refused it by policy (5.7.x at RCPT or after the body):
    /// retried like [`Outcome::Retry`], given up after the give-up time, counted as
    /// `blocked` in the event log.
    Blocked {
        error: String,
        at: DateTime<Utc>,
    },
    /// The server refused us, not the recipient (bad login, refused sender): try again
    /// later, without counting towards giving up.
    Deferred {
        error: String,
        at: DateTime<Utc>,
    },
    /// A permanent failure (5xx): the address bounced.
    Failed {
        error: String,
        at: DateTime<Utc>,
    },
    /// The server may or may not have taken it: never resent blindly.
    Uncertain {
        error: String,
        at: DateTime<Utc>,
    },
    /// Not sent for a reason of ours that no fix to the templates can change (the mail
    /// server cannot carry it): stop this sequence.
    Abandoned {
        error: String,
        at: DateTime<Utc>,
    },
    /// Not fit to go (it did not render, lacks its footer, or still holds a placeholder):
    /// kept, with the step, until a fix lets it render; never counts as sent or failed.
    Held {
        reason: String,
        at: DateTime<Utc>,
    },
    /// Not started after all: an opt-out, bounce or return (or a new sequence) was
    /// recorded between the claim and the SMTP transaction. See [`Store::withdrawal`].
    Withdrawn {
        reason: String,
        at: DateTime<Utc>,
    },
    /// Claimed, but its SMTP transaction never began (the daemon is stopping, or its start
    /// could not be recorded): back in the queue at once, not an attempt.
    Returned {
        reason: String,
        at: DateTime<Utc>,
    },
}

fn standing(conn: &Connection, client: &StoredClient) -> Result<Standing> {
    let reason: Option<String> = conn
        .prepare_cached("SELECT reason FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![email_hash(&client.record.email)], |r| r.get(0))
        .optional()?;
    Ok(standing_of(reason.as_deref(), client.returned_at.is_some()))
}

/// A person's standing from their suppression reason (if any) and whether they came back.
fn standing_of(suppression: Option<&str>, returned: bool) -> Standing {
    crate::domain::lifecycle::standing(suppression.map(Reason::decode), returned)
}

/// When this person's recent messages went (or may have gone) out.
fn busy(
    conn: &Connection,
    client_id: i64,
    now: DateTime<Utc>,
    except_row: Option<i64>,
) -> Result<Vec<DateTime<Utc>>> {
    let since = fmt_time(now - Duration::hours(BUSY_LOOKBACK_HOURS));
    let times: Vec<String> = conn
        .prepare_cached(
            "SELECT COALESCE(sent_at, claimed_at) FROM messages
             WHERE client_id = ?1 AND claimed_at >= ?2 AND state IN ('sending', 'sent', 'uncertain') AND id IS NOT ?3",
        )?
        .query_map(params![client_id, since, except_row], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    times.iter().map(|t| parse_time(t)).collect()
}

/// When another enrollment of the person sent (or is sending) them a survey since
/// `since`, the earliest such moment.
fn survey_elsewhere(
    conn: &Connection,
    client_id: i64,
    enrollment_id: i64,
    since: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let at: Option<String> = conn
        .prepare_cached(
            "SELECT MIN(COALESCE(sent_at, claimed_at)) FROM messages
             WHERE client_id = ?1 AND enrollment_id <> ?2 AND kind = 'survey' AND claimed_at >= ?3
               AND state IN ('sending', 'sent', 'uncertain', 'retry')",
        )?
        .query_row(params![client_id, enrollment_id, fmt_time(since)], |r| {
            r.get(0)
        })?;
    at.map(|t| parse_time(&t)).transpose()
}

/// The most rows one claim reads, written into its SQL: a bound LIMIT would make SQLite
/// (which plans with the LIMIT's value) re-parse the statement at every claim. The claim
/// stops reading at its own, smaller limit.
const MAX_CLAIM: usize = 4096;
/// How far ahead of `now` a claim looks at waiting enrollments (see `claim`).
const LOOK_AHEAD_SECONDS: i64 = 1;

/// The claim itself, inside the caller's transaction (see [`Store::claim_due`]).
fn claim_in(
    tx: &Connection,
    config: &Config,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Claimed>> {
    let mut claimed = Vec::new();
    let now_text = fmt_time(now);
    // Retries and held messages first: they were due earlier. Each half reads its own
    // index (retries: `messages_retry`; the few held ones: `messages_by_state`).
    let retries: Vec<RetryRow> = tx
        .prepare_cached(&format!(
            "SELECT id, enrollment_id, campaign, cycle, step, due_at, next_attempt_at FROM messages
             WHERE state = 'retry' AND next_attempt_at <= ?1
             UNION ALL
             SELECT id, enrollment_id, campaign, cycle, step, due_at, next_attempt_at FROM messages
             WHERE state = 'held' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT {MAX_CLAIM}",
        ))?
        .query_map(params![now_text], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .take(limit)
        .collect::<std::result::Result<_, _>>()?;
    for (row, enrollment_id, campaign_name, cycle, step, due_at, next_attempt_at) in retries {
        let Some(sequence) = enrollment_client(tx, enrollment_id)? else {
            continue;
        };
        let client_id = sequence.client_id;
        let Some(client) = load_facts(tx, client_id)? else {
            continue;
        };
        let Some(campaign) = config.campaign(&campaign_name) else {
            // The campaign left the configuration: keep the row, but park it.
            tx.execute("UPDATE messages SET next_attempt_at = NULL, state = 'cancelled', last_error = 'campaign removed from the configuration' WHERE id = ?1", params![row])?;
            continue;
        };
        if let Some(reason) = superseded(
            &sequence,
            cycle,
            campaign,
            client.record.churn_reason.as_deref(),
        ) {
            // Not for this person any more, whatever their standing: drop it.
            tx.execute(
                "UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![row, reason, now_text],
            )?;
            if sequence.cycle == cycle && sequence.state == EnrollmentState::Active.as_str() {
                stop(tx, enrollment_id, EnrollmentState::Completed, now)?;
            }
            continue;
        }
        let tz = schedule::zone(campaign, client.record.timezone);
        let busy = busy(tx, client_id, now, Some(row))?;
        let decision = schedule::decide(
            campaign,
            tz,
            parse_time(&due_at)?,
            parse_time(&next_attempt_at)?,
            now,
            standing(tx, &client)?,
            &busy,
        );
        match decision {
            Decision::SendNow => {
                // A held message's time until giving up on the address starts now: holding
                // it said nothing about the address.
                let (message_id, attempts): (String, u32) = tx.query_row(
                    "UPDATE messages SET state = 'sending', attempts = attempts + 1, claimed_at = ?2, started_at = NULL, next_attempt_at = NULL, updated_at = ?2,
                            first_claimed_at = CASE state WHEN 'held' THEN ?2 ELSE first_claimed_at END
                     WHERE id = ?1 RETURNING message_id, attempts",
                    params![row, now_text],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                claimed.push(Claimed {
                    message_row: row,
                    message_id,
                    campaign: campaign.name.clone(),
                    step,
                    attempt: attempts,
                    client: client.record,
                    enrollment_id,
                });
            }
            Decision::Wait(t) => {
                tx.execute(
                    "UPDATE messages SET next_attempt_at = ?2 WHERE id = ?1",
                    params![row, fmt_time(t)],
                )?;
            }
            Decision::Stop(state) => {
                tx.execute("UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = ?2 WHERE id = ?1", params![row, now_text])?;
                stop(tx, enrollment_id, state, now)?;
            }
            Decision::Never => {
                tx.execute("UPDATE messages SET next_attempt_at = NULL, state = 'cancelled', last_error = 'send_at never fires again' WHERE id = ?1", params![row])?;
            }
        }
    }
    let remaining = limit.saturating_sub(claimed.len());
    // A second ahead: an import at the same --now stamps a step due "now" with its own
    // clock reading, which can be a few milliseconds later than a pass that started
    // faster. `decide` below still says when each one may really go.
    let horizon = moment(now + Duration::seconds(LOOK_AHEAD_SECONDS));
    // Each with its person and their suppression, if any: one statement for the lot.
    let waiting: Vec<(WaitingRow, Option<String>, ClientColumns)> = tx
        .prepare_cached(&format!(
            "SELECT e.id, e.campaign, e.cycle, e.next_step, e.due_at, s.reason, {JOINED_CLIENT_COLUMNS}
             FROM enrollments e
             JOIN clients c ON c.id = e.client_id
             LEFT JOIN suppressions s ON s.email_hash = email_hash(c.email)
             WHERE e.state = 'active' AND e.send_at IS NOT NULL AND e.send_at <= ?1
             ORDER BY e.send_at LIMIT {MAX_CLAIM}"
        ))?
        .query_map(params![horizon], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                r.get(5)?,
                client_from_row_at(r, 6)?,
            ))
        })?
        .take(remaining)
        .collect::<std::result::Result<_, _>>()?;
    for ((enrollment_id, campaign_name, cycle, step_number, due_at), suppression, columns) in
        waiting
    {
        let client = decode_client(columns.0, columns.1)?;
        let client_id = client.id;
        let standing = standing_of(suppression.as_deref(), client.returned_at.is_some());
        let Some(campaign) = config.campaign(&campaign_name) else {
            tx.execute(
                "UPDATE enrollments SET send_at = NULL WHERE id = ?1",
                params![enrollment_id],
            )?;
            continue;
        };
        let Some(step) = campaign.step(step_number) else {
            stop(tx, enrollment_id, EnrollmentState::Completed, now)?;
            continue;
        };
        if !campaign.admits(client.record.churn_reason.as_deref()) {
            stop(tx, enrollment_id, EnrollmentState::Completed, now)?;
            continue;
        }
        let tz = schedule::zone(campaign, client.record.timezone);
        let elsewhere = match step.kind {
            crate::domain::model::StepKind::Survey => survey_elsewhere(
                tx,
                client_id,
                enrollment_id,
                client.record.churned_at.instant(tz),
            )?,
            _ => None,
        };
        if let Some(at) = schedule::survey_given_elsewhere(step.kind, elsewhere) {
            advance(
                tx,
                Some(campaign),
                enrollment_id,
                client_id,
                cycle,
                step_number,
                at,
            )?;
            log_event(
                tx,
                now,
                Some(client_id),
                "survey_skipped",
                &format!(
                    "campaign {}: already surveyed by another campaign",
                    campaign.name
                ),
            )?;
            continue;
        }
        let due = parse_time(&due_at)?;
        let busy = busy(tx, client_id, now, None)?;
        match schedule::decide(campaign, tz, due, due, now, standing, &busy) {
            Decision::SendNow => {
                // The schema refuses a second row for a step; never let that fail the
                // whole claim (and with it every pass after it).
                let existing: Option<(i64, String, Option<String>)> = tx
                    .prepare_cached("SELECT id, state, sent_at FROM messages WHERE enrollment_id = ?1 AND cycle = ?2 AND step = ?3")?
                    .query_row(params![enrollment_id, cycle, step_number], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let (row, message_id, attempt) = match existing {
                    Some((row, state, sent_at)) if state != MessageState::Cancelled.as_str() => {
                        settle_existing(
                            tx,
                            campaign,
                            enrollment_id,
                            client_id,
                            (cycle, step_number),
                            (row, &state, sent_at.as_deref()),
                            now,
                        )?;
                        continue;
                    }
                    // Dropped before it was ever sent: this claim takes it up again.
                    Some((row, _, _)) => {
                        let (message_id, attempts): (String, u32) = tx.query_row(
                            "UPDATE messages SET state = 'sending', attempts = attempts + 1, due_at = ?2, first_claimed_at = ?3, claimed_at = ?3,
                                    started_at = NULL, next_attempt_at = NULL, updated_at = ?3
                             WHERE id = ?1 RETURNING message_id, attempts",
                            params![row, due_at, now_text],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )?;
                        (row, message_id, attempts)
                    }
                    None => {
                        let message_id = crate::mail::new_message_id(config, now);
                        tx.prepare_cached(
                            "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, attempts,
                                                   first_claimed_at, claimed_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'sending', ?7, ?8, 1, ?9, ?9, ?9)",
                        )?
                        .execute(params![enrollment_id, client_id, campaign.name, cycle, step_number, step.kind.as_str(), message_id, due_at, now_text])?;
                        (tx.last_insert_rowid(), message_id, 1)
                    }
                };
                tx.prepare_cached(
                    "UPDATE enrollments SET send_at = NULL, updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![enrollment_id, now_text])?;
                claimed.push(Claimed {
                    message_row: row,
                    message_id,
                    campaign: campaign.name.clone(),
                    step: step_number,
                    attempt,
                    client: client.record,
                    enrollment_id,
                });
            }
            Decision::Wait(t) => {
                tx.prepare_cached("UPDATE enrollments SET send_at = ?2 WHERE id = ?1")?
                    .execute(params![enrollment_id, moment(t)])?;
            }
            Decision::Stop(state) => stop(tx, enrollment_id, state, now)?,
            Decision::Never => {
                tx.execute(
                    "UPDATE enrollments SET send_at = NULL WHERE id = ?1",
                    params![enrollment_id],
                )?;
            }
        }
    }
    Ok(claimed)
}

impl Store {
    /// Claims up to `limit` messages that may go out at `now`, committing each as
    /// `sending` before returning it. Enrollments that are not sendable now get their next
    /// moment; those whose person opted out, bounced or returned are stopped.
    pub fn claim_due(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        self.record_and_claim(config, &[], Some((now, limit)))?
    }

    /// Records the fate of claimed messages, all in one transaction (batching the commits
    /// is what makes a durable outbox fast).
    pub fn record_results(&mut self, config: &Config, results: &[(i64, Outcome)]) -> Result<()> {
        self.record_and_claim(config, results, None)??;
        Ok(())
    }

    /// [`Store::record_results`], then [`Store::claim_due`] at `now` for up to `limit`
    /// messages when `claim` says so, in one transaction: a delivery pass commits once
    /// per batch, not twice. The outer error means nothing
    /// was recorded; the inner one that the results were, but the claim failed (it is
    /// undone on its own, so a bad row never costs the results of a batch).
    pub fn record_and_claim(
        &mut self,
        config: &Config,
        results: &[(i64, Outcome)],
        claim: Option<(DateTime<Utc>, usize)>,
    ) -> Result<Result<Vec<Claimed>>> {
        let mut tx = self.write_tx()?;
        for (row, outcome) in results {
            record_one(&tx, config, *row, outcome)?;
        }
        let claimed = if let Some((now, limit)) = claim.filter(|&(_, limit)| limit > 0) {
            let savepoint = tx.savepoint()?;
            match claim_in(&savepoint, config, now, limit) {
                Ok(claimed) => {
                    savepoint.commit()?;
                    Ok(claimed)
                }
                // Dropping the savepoint rolls the claim back.
                Err(error) => Err(error),
            }
        } else {
            Ok(Vec::new())
        };
        tx.commit()?;
        Ok(claimed)
    }

    /// Asked just before a claimed message's SMTP transaction starts: the reason it must
    /// not start after all, or `None` if it may. A claim can wait in the queue behind a
    /// slow server; an opt-out, bounce or return recorded meanwhile (or the person being
    /// forgotten, or their sequence starting over) still stops it.
    pub fn withdrawal(&self, config: &Config, row: i64) -> Result<Option<String>> {
        withdrawal_in(&self.conn, config, row)
    }

    /// Just before a claimed message's SMTP transaction begins: its [`Store::withdrawal`]
    /// check, and if it may go, `started_at` committed in the same transaction, together
    /// with `results` (the same connection's last send, so that it never has more than
    /// one started message unrecorded). Only a started message can be `uncertain` after
    /// a crash; a claimed one that never started goes back to the queue (see
    /// [`Store::recover_interrupted`]).
    ///
    /// Returns whether `results` were recorded (if not, the start may still be: the
    /// caller records them another way) and the withdrawal reason, if any.
    pub fn start(
        &mut self,
        config: &Config,
        results: &[(i64, Outcome)],
        row: i64,
        at: DateTime<Utc>,
    ) -> Result<(bool, Option<String>)> {
        let mut answers = self.start_many(config, &[(results.to_vec(), Some(row))], at)?;
        Ok(answers.pop().unwrap_or((false, None)))
    }

    /// [`Store::start`] for several connections' workers in one transaction (one commit
    /// for them all): each entry is a worker's results and the message it starts, if any.
    pub fn start_many(
        &mut self,
        config: &Config,
        starts: &[Start],
        at: DateTime<Utc>,
    ) -> Result<Vec<(bool, Option<String>)>> {
        let mut tx = self.write_tx()?;
        let mut answers = Vec::with_capacity(starts.len());
        for (results, row) in starts {
            let recorded = {
                let savepoint = tx.savepoint()?;
                let recorded = results
                    .iter()
                    .try_for_each(|(row, outcome)| record_one(&savepoint, config, *row, outcome));
                match recorded {
                    Ok(()) => {
                        savepoint.commit()?;
                        true
                    }
                    // Dropping the savepoint undoes what was recorded of them.
                    Err(_) => false,
                }
            };
            let withdrawn = match row {
                Some(row) => {
                    let withdrawn = withdrawal_in(&tx, config, *row)?;
                    if withdrawn.is_none() {
                        tx.prepare_cached("UPDATE messages SET started_at = ?2 WHERE id = ?1")?
                            .execute(params![row, fmt_time(at)])?;
                    }
                    withdrawn
                }
                None => None,
            };
            answers.push((recorded, withdrawn));
        }
        tx.commit()?;
        Ok(answers)
    }
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
    );
    let facts: Option<Facts> = conn
            .prepare_cached(
                "SELECT m.state, m.campaign, m.cycle, e.client_id, e.state, e.cycle, c.churn_reason,
                        CASE WHEN c.id IS NULL THEN NULL ELSE c.returned_at IS NOT NULL END,
                        (SELECT s.reason FROM suppressions s WHERE s.email_hash = email_hash(c.email))
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
    )) = facts
    else {
        return Ok(Some(
            "its record is gone (the person was forgotten)".to_string(),
        ));
    };
    if state != MessageState::Sending.as_str() {
        return Ok(Some(format!("it is {state} now")));
    }
    let (Some(client_id), Some(sequence_state), Some(sequence_cycle)) =
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
    let sequence = Sequence {
        client_id,
        state: sequence_state,
        cycle: sequence_cycle,
    };
    Ok(config
        .campaign(&campaign_name)
        .and_then(|campaign| superseded(&sequence, cycle, campaign, churn_reason.as_deref()))
        .map(str::to_string))
}

/// A worker's results to record, and the message it starts, if any.
pub type Start = (Vec<(i64, Outcome)>, Option<i64>);

/// What start-up found of messages a stop caught `sending`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Their SMTP transaction had begun: the server may have them.
    pub uncertain: usize,
    /// Claimed, never started: back in the queue.
    pub returned: usize,
}

impl Store {
    /// At start-up: messages caught mid-send by a crash become `uncertain` (they count as
    /// sent for the timing of the next step, and are not resent); messages claimed but
    /// never started (no `started_at`) go back to the queue and are sent now.
    ///
    /// Held messages are tried again from `now` (at their next `send_at` moment): the
    /// templates were just read again, perhaps fixed.
    pub fn recover_interrupted(
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
    pub fn retry_held(&mut self, now: DateTime<Utc>) -> Result<usize> {
        Ok(retry_held_in(&self.conn, now)?)
    }

    /// Between passes, when nothing is in flight: a message still `sending` is stuck (its
    /// result could not be written, and the pass gave up on it). Settled as at start-up
    /// (see [`Store::recover_interrupted`]), without touching held messages.
    pub fn recover_stuck(&mut self, config: &Config, now: DateTime<Utc>) -> Result<Recovered> {
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
    pub fn resend(&mut self, row: i64, now: DateTime<Utc>) -> Result<bool> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE enrollments SET state = 'active', send_at = NULL, stopped_at = NULL, updated_at = ?2
             WHERE state = 'completed'
               AND (id, cycle, next_step) = (SELECT enrollment_id, cycle, step FROM messages WHERE id = ?1 AND state = 'failed')",
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

    /// The earliest moment anything may need doing: a waiting enrollment, a retry or a
    /// held message.
    pub fn next_wake(&self) -> Result<Option<DateTime<Utc>>> {
        let waiting: Option<i64> = self.conn.query_row(
            "SELECT MIN(send_at) FROM enrollments WHERE state = 'active' AND send_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        let retry: Option<String> = self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM messages WHERE state IN ('retry', 'held')",
            [],
            |r| r.get(0),
        )?;
        let waiting = waiting.map(from_moment).transpose()?;
        let retry = retry.as_deref().map(parse_time).transpose()?;
        Ok(waiting.into_iter().chain(retry).min())
    }

    /// Messages claimed since `since` (for the daily and per-minute limits). Held ones
    /// never reached the server: they do not use up the limits.
    pub fn claimed_since(&self, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE claimed_at >= ?1 AND state NOT IN ('cancelled', 'held')",
            params![fmt_time(since)],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

/// An enrollment whose moment has come: id, campaign, cycle, step, due.
type WaitingRow = (i64, String, i64, u32, String);
/// A client's id and columns, as [`client_from_row_at`] reads them.
type ClientColumns = (i64, [Option<String>; 9]);
/// A retry whose moment has come: id, enrollment, campaign, cycle, step, due, next attempt.
type RetryRow = (i64, i64, String, i64, u32, String, String);

/// A message's enrollment, as the claim needs it.
struct Sequence {
    client_id: i64,
    state: String,
    cycle: i64,
}

/// See [`Store::retry_held`].
fn retry_held_in(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE messages SET next_attempt_at = ?1 WHERE state = 'held'",
        params![fmt_time(now)],
    )
}

fn enrollment_client(conn: &Connection, enrollment_id: i64) -> Result<Option<Sequence>> {
    let row: Option<(i64, String, i64)> = conn
        .prepare_cached("SELECT client_id, state, cycle FROM enrollments WHERE id = ?1")?
        .query_row(params![enrollment_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(row.map(|(client_id, state, cycle)| Sequence {
        client_id,
        state,
        cycle,
    }))
}

/// Why a message of sequence `cycle` must not go out even though its person's standing
/// allows it: the enrollment moved on to a new sequence (they came back and left again),
/// its sequence was stopped, or the campaign no longer admits the client (say, the CRM
/// now says we ended the relationship).
fn superseded(
    sequence: &Sequence,
    cycle: i64,
    campaign: &Campaign,
    churn_reason: Option<&str>,
) -> Option<&'static str> {
    let stopped = [
        EnrollmentState::OptedOut,
        EnrollmentState::Bounced,
        EnrollmentState::Returned,
    ];
    if sequence.cycle != cycle {
        Some("dropped: it belongs to an earlier sequence")
    } else if stopped.iter().any(|s| s.as_str() == sequence.state) {
        Some("dropped: its sequence was stopped")
    } else if !campaign.admits(churn_reason) {
        Some("dropped: the campaign's audience no longer includes this client")
    } else {
        None
    }
}

/// An enrollment came due at a step that already has a message row (not a dropped one):
/// never a second copy. A step that went out (or may have) moves the enrollment on; one
/// still out (sending, retry) moves it on with its result; otherwise it waits for an
/// operator.
fn settle_existing(
    tx: &Connection,
    campaign: &Campaign,
    enrollment_id: i64,
    client_id: i64,
    (cycle, step): (i64, u32),
    (row, state, sent_at): (i64, &str, Option<&str>),
    now: DateTime<Utc>,
) -> Result<()> {
    match (state, sent_at) {
        ("sent" | "uncertain", Some(sent_at)) => {
            let at = parse_time(sent_at)?;
            advance(
                tx,
                Some(campaign),
                enrollment_id,
                client_id,
                cycle,
                step,
                at,
            )?;
        }
        _ => {
            tx.execute(
                "UPDATE enrollments SET send_at = NULL, updated_at = ?2 WHERE id = ?1",
                params![enrollment_id, fmt_time(now)],
            )?;
        }
    }
    log_event(
        tx,
        now,
        Some(client_id),
        "duplicate_refused",
        &format!(
            "campaign {} step {step}: message {row} ({state}) already exists; not sent again",
            campaign.name
        ),
    )
}

fn backoff(config: &Config, attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16);
    let delay = config.smtp.retry_first * 2i32.pow(exponent);
    delay.min(Duration::hours(MAX_BACKOFF_HOURS))
}

fn record_one(tx: &Connection, config: &Config, row: i64, outcome: &Outcome) -> Result<()> {
    if let Outcome::Sent { reply, at } = outcome {
        // The common case, in one statement: what `set_state` below does for `Sent`.
        let sent = tx
            .prepare_cached(
                "UPDATE messages SET state = 'sent', sent_at = ?2, smtp_reply = ?3, next_attempt_at = NULL, updated_at = ?2
                 WHERE id = ?1 AND state = 'sending'
                 RETURNING enrollment_id, client_id, campaign, cycle, step",
            )?
            .query_row(params![row, fmt_time(*at), reply], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, r.get::<_, u32>(4)?))
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
        .prepare_cached("SELECT enrollment_id, client_id, campaign, cycle, step, attempts, first_claimed_at FROM messages WHERE id = ?1 AND state = 'sending'")?
        .query_row(params![row], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, r.get::<_, u32>(4)?, r.get::<_, u32>(5)?, r.get::<_, String>(6)?)))
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
            "UPDATE messages SET state = ?2, sent_at = CASE WHEN ?2 IN ('sent', 'uncertain') THEN ?3 ELSE sent_at END,
                    smtp_reply = COALESCE(?4, smtp_reply), last_error = COALESCE(?5, last_error), next_attempt_at = ?6, updated_at = ?3
             WHERE id = ?1",
        )?
        .execute(params![row, state.as_str(), fmt_time(at), reply, error, next.map(fmt_time)])?;
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
                error: format!("blocked by the recipient's server: {error}"),
                at: *at,
            };
            return record_one(tx, config, row, &retry);
        }
        Outcome::Retry { error, at } => {
            let gave_up = *at - parse_time(&first_claimed_at)? >= config.smtp.retry_give_up;
            if gave_up {
                let error = format!("gave up after {attempts} attempts: {error}");
                set_state(MessageState::Failed, *at, None, Some(&error), None)?;
                bounce(tx, client_id, &error, *at)?;
            } else {
                set_state(
                    MessageState::Retry,
                    *at,
                    None,
                    Some(error),
                    Some(*at + backoff(config, attempts)),
                )?;
            }
        }
        Outcome::Deferred { error, at } => {
            set_state(
                MessageState::Retry,
                *at,
                None,
                Some(error),
                Some(*at + config.smtp.retry_first),
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
                Some(*at + Duration::hours(HELD_RETRY_HOURS)),
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
    super::people::suppress(tx, &email, &bounced, at)?;
    super::enroll::stop_client(tx, client_id, EnrollmentState::Bounced, at)?;
    log_event(tx, at, Some(client_id), "bounce", error)?;
    Ok(())
}

/// Moves an enrollment past a step that went out (or may have) at `at`.
fn advance(
    tx: &Connection,
    campaign: Option<&Campaign>,
    enrollment_id: i64,
    client_id: i64,
    cycle: i64,
    step: u32,
    at: DateTime<Utc>,
) -> Result<()> {
    // The sequence's position, and the person's own time zone (`Some(None)`: none of
    // their own; `None`: the person is gone).
    type Position = ((String, i64, u32), Option<Option<String>>);
    let current: Option<Position> = tx
        .prepare_cached(
            "SELECT e.state, e.cycle, e.next_step, c.id, c.timezone FROM enrollments e
             LEFT JOIN clients c ON c.id = ?2 WHERE e.id = ?1",
        )?
        .query_row(params![enrollment_id, client_id], |r| {
            let person: Option<i64> = r.get(3)?;
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                person.map(|_| r.get(4)).transpose()?,
            ))
        })
        .optional()?;
    let (sequence, client) = match current {
        Some((sequence, client)) => (Some(sequence), client),
        None => (None, None),
    };
    // Only the sequence this message belongs to, and only if nothing stopped it meanwhile.
    if sequence != Some((EnrollmentState::Active.as_str().to_string(), cycle, step)) {
        tx.prepare_cached("UPDATE enrollments SET last_sent_at = ?2 WHERE id = ?1 AND cycle = ?3")?
            .execute(params![enrollment_id, fmt_time(at), cycle])?;
        return Ok(());
    }
    let Some(campaign) = campaign else {
        tx.execute("UPDATE enrollments SET last_sent_at = ?2, next_step = ?3, send_at = NULL WHERE id = ?1", params![enrollment_id, fmt_time(at), step + 1])?;
        return Ok(());
    };
    let Some(timezone) = client else {
        return Ok(());
    };
    let tz = schedule::zone(campaign, decode_timezone(timezone.as_deref())?);
    match schedule::after_send(campaign, step, at, tz) {
        Next::Step { number, due } => {
            let send_at = schedule::earliest_send(campaign, tz, due, due, due).map(moment);
            tx.prepare_cached(
                "UPDATE enrollments SET next_step = ?2, due_at = ?3, send_at = ?4, last_sent_at = ?5, updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![enrollment_id, number, fmt_time(due), send_at, fmt_time(at)])?;
        }
        Next::Completed => {
            tx.prepare_cached(
                "UPDATE enrollments SET state = 'completed', next_step = ?2, due_at = NULL, send_at = NULL, last_sent_at = ?3, stopped_at = ?3, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![enrollment_id, step + 1, fmt_time(at)])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::domain::model::{ChurnedAt, ClientRecord};

    const CAMPAIGN: &str = r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign.step]]
kind = "newsletter"
after_days = 30
template = "newsletter"
subject = "News"
"#;

    const OTHER_CAMPAIGN: &str = r#"
[[campaign]]
name = "other"
send_at = "* * * * *"
timezone = "UTC"
exclude_reasons = ["we_ended", "competitor"]

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"
"#;

    struct Fixture {
        dir: tempfile::TempDir,
        config: Config,
        store: Store,
    }

    fn config(dir: &std::path::Path, campaigns: &str) -> Config {
        crate::test_support::config(dir, "retry_give_up_hours = 72", campaigns)
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), CAMPAIGN);
        let store = Store::open(&dir.path().join("winback.db")).unwrap();
        Fixture { dir, config, store }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> ChurnedAt {
        ChurnedAt::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    fn record(email: &str, churned_at: ChurnedAt, reason: &str) -> ClientRecord {
        ClientRecord {
            email: email.to_string(),
            name: Some("Pat Smith".to_string()),
            first_name: None,
            company: Some("Globex".to_string()),
            churned_at,
            churn_reason: Some(reason.to_string()),
            timezone: None,
            fields: BTreeMap::new(),
        }
    }

    fn retry(at: DateTime<Utc>) -> Outcome {
        Outcome::Retry {
            error: "451 4.7.1 try later".to_string(),
            at,
        }
    }

    fn sent(at: DateTime<Utc>) -> Outcome {
        Outcome::Sent {
            reply: "250 ok".to_string(),
            at,
        }
    }

    impl Fixture {
        fn import(&mut self, record: ClientRecord, at: DateTime<Utc>) {
            let rows = vec![Ok((2, record))];
            let outcome = self
                .store
                .import(rows.into_iter(), &self.config, at, false, &mut |_| {})
                .unwrap();
            assert!(outcome.applied);
        }

        /// `name@client.example` for each name, all alike (churned 2025-06-01 for a
        /// competitor), imported now.
        fn import_people(&mut self, names: &[&str]) {
            for name in names {
                self.import(
                    record(
                        &format!("{name}@client.example"),
                        date(2025, 6, 1),
                        "competitor",
                    ),
                    now(),
                );
            }
        }

        fn claim(&mut self, at: DateTime<Utc>) -> Vec<Claimed> {
            self.store.claim_due(&self.config, at, 10).unwrap()
        }

        fn record(&mut self, row: i64, outcome: Outcome) {
            self.store
                .record_results(&self.config, &[(row, outcome)])
                .unwrap();
        }

        /// (campaign, cycle, step, state) of every message, in order.
        fn messages(&self) -> Vec<(String, i64, u32, String)> {
            let mut stmt = self
                .store
                .conn
                .prepare("SELECT campaign, cycle, step, state FROM messages ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap()
        }

        /// (state, cycle, next_step, send_at) of the person's enrollment in `campaign`.
        fn enrollment(&self, campaign: &str) -> (String, i64, u32, Option<i64>) {
            self.store
                .conn
                .query_row(
                    "SELECT state, cycle, next_step, send_at FROM enrollments WHERE campaign = ?1",
                    params![campaign],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap()
        }

        fn suppression(&self, email: &str) -> Option<String> {
            self.store
                .conn
                .query_row(
                    "SELECT reason FROM suppressions WHERE email_hash = ?1",
                    params![email_hash(email)],
                    |r| r.get(0),
                )
                .optional()
                .unwrap()
        }
    }

    fn held(at: DateTime<Utc>) -> Outcome {
        Outcome::Held {
            reason: "the HTML part still contains the placeholder \"[EDIT: x]\"".to_string(),
            at,
        }
    }

    #[test]
    fn a_held_step_keeps_the_sequence_waiting_and_goes_once_it_renders() {
        let mut f = fixture();
        f.import_people(&["pat"]);
        let first = f.claim(now());
        assert_eq!(first.len(), 1);
        f.record(first[0].message_row, held(now()));
        assert_eq!(
            f.messages(),
            vec![("former-clients".to_string(), 1, 1, "held".to_string())]
        );
        // Not completed: the sequence waits at its step, with nothing else planned.
        assert_eq!(
            f.enrollment("former-clients"),
            ("active".to_string(), 1, 1, None)
        );
        let status = f.store.status().unwrap();
        assert_eq!(status.attention.len(), 1);
        assert_eq!(status.attention[0].state, "held");
        assert!(
            status.attention[0]
                .error
                .as_deref()
                .unwrap()
                .contains("[EDIT: x]")
        );
        assert_eq!(f.store.held().unwrap().len(), 1);
        assert_eq!(f.store.claimed_since(now() - Duration::days(1)).unwrap(), 0);
        // No storm: not tried again within the day...
        assert!(f.claim(now() + Duration::hours(1)).is_empty());
        let retry_at = now() + Duration::hours(HELD_RETRY_HOURS);
        assert_eq!(f.store.next_wake().unwrap(), Some(retry_at));
        // ...but at every start, and the same row is claimed again (never a second copy).
        let start = now() + Duration::hours(2);
        f.store.recover_interrupted(&f.config, start).unwrap();
        let again = f.claim(start);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message_row, first[0].message_row);
        assert_eq!(
            again[0].attempt, 1,
            "a held message was never handed to a server"
        );
        f.record(again[0].message_row, sent(start));
        assert_eq!(
            f.messages(),
            vec![("former-clients".to_string(), 1, 1, "sent".to_string())]
        );
        let (state, _, next_step, send_at) = f.enrollment("former-clients");
        assert_eq!((state.as_str(), next_step), ("active", 2));
        assert!(send_at.is_some(), "the next step is scheduled");
    }

    #[test]
    fn a_held_step_waits_a_day_then_goes_and_an_opt_out_drops_it() {
        let mut f = fixture();
        f.import_people(&["pat", "sam"]);
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 2);
        for message in &claimed {
            f.record(message.message_row, held(now()));
        }
        f.store
            .record_opt_out("sam@client.example", "cli", now())
            .unwrap();
        let later = now() + Duration::hours(HELD_RETRY_HOURS);
        let again = f.claim(later);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].client.email, "pat@client.example");
        let states: Vec<String> = f.messages().into_iter().map(|m| m.3).collect();
        assert_eq!(states, vec!["sending", "cancelled"]);
        assert_eq!(f.store.held().unwrap().len(), 0);
    }

    #[test]
    fn resending_a_message_that_ended_its_sequence_lets_the_sequence_continue() {
        let mut f = fixture();
        f.import_people(&["pat"]);
        let first = f.claim(now());
        // What a template error did before such messages were held.
        let abandoned = Outcome::Abandoned {
            error: "survey.html.hbs: no such variable".to_string(),
            at: now(),
        };
        f.record(first[0].message_row, abandoned);
        assert_eq!(f.enrollment("former-clients").0, "completed");
        assert!(f.store.resend(first[0].message_row, now()).unwrap());
        assert_eq!(
            f.enrollment("former-clients"),
            ("active".to_string(), 1, 1, None)
        );
        let again = f.claim(now());
        assert_eq!(again.len(), 1);
        f.record(again[0].message_row, sent(now()));
        let (state, _, next_step, send_at) = f.enrollment("former-clients");
        assert_eq!((state.as_str(), next_step), ("active", 2));
        assert!(send_at.is_some(), "the next step is scheduled");

        // Only a sequence completed at that very step comes back: a bounce stays.
        let mut f = fixture();
        f.import_people(&["sam"]);
        let survey = f.claim(now());
        f.record(survey[0].message_row, sent(now()));
        let news = f.claim(now() + Duration::days(31));
        assert_eq!(news.len(), 1);
        f.record(
            news[0].message_row,
            Outcome::Failed {
                error: "550 no".to_string(),
                at: now() + Duration::days(31),
            },
        );
        f.store
            .resend(news[0].message_row, now() + Duration::days(32))
            .unwrap();
        assert_eq!(f.enrollment("former-clients").0, "bounced");
    }

    #[test]
    fn a_stop_leaves_uncertain_only_what_had_started_and_requeues_the_rest() {
        let mut f = fixture();
        f.import_people(&["ann", "bob", "cy"]);
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 3);
        let started = claimed[0].message_row;
        assert_eq!(
            f.store.start(&f.config, &[], started, now()).unwrap(),
            (true, None)
        );
        // The process dies here: one started, two only claimed.
        let restart = now() + Duration::minutes(1);
        let recovered = f.store.recover_interrupted(&f.config, restart).unwrap();
        assert_eq!(
            recovered,
            Recovered {
                uncertain: 1,
                returned: 2
            }
        );
        let again = f.claim(restart);
        let mut rows: Vec<i64> = again.iter().map(|c| c.message_row).collect();
        rows.sort_unstable();
        let mut expected: Vec<i64> = claimed[1..].iter().map(|c| c.message_row).collect();
        expected.sort_unstable();
        assert_eq!(rows, expected, "the unstarted ones, the same rows, at once");
        assert!(
            again.iter().all(|c| c.attempt == 1),
            "a claim that never started is not an attempt"
        );
        let states: Vec<String> = f.messages().into_iter().map(|m| m.3).collect();
        assert_eq!(states, vec!["uncertain", "sending", "sending"]);
        // The daemon stopping returns a claimed message the same way.
        f.record(
            again[0].message_row,
            Outcome::Returned {
                reason: "stopping".to_string(),
                at: restart,
            },
        );
        assert_eq!(f.claim(restart).len(), 1);
    }

    #[test]
    fn a_policy_refusal_is_retried_counted_and_given_up_from_the_first_attempt() {
        let mut f = fixture();
        f.import_people(&["ann"]);
        let blocked = |at| Outcome::Blocked {
            error: "554 5.7.1 Message refused by policy".to_string(),
            at,
        };
        let mut at = now();
        let row = f.claim(at)[0].message_row;
        f.record(row, blocked(at));
        assert_eq!(f.store.metrics(at).unwrap().blocked, 1);
        assert_eq!(f.messages()[0].3, "retry");
        // Retried while the give-up time (72 h from the first attempt) runs, then given up;
        // a refusal of one recipient never restarts that clock.
        let mut attempts = 1;
        while f.messages()[0].3 == "retry" {
            at += Duration::hours(6);
            let again = f.claim(at);
            if let Some(message) = again.first() {
                attempts += 1;
                f.record(message.message_row, blocked(at));
            }
            assert!(at - now() <= Duration::hours(80), "still retrying at {at}");
        }
        assert_eq!(f.messages()[0].3, "failed");
        assert!(at - now() >= Duration::hours(72), "gave up at {at}");
        assert!(attempts > 2);
        assert_eq!(
            f.suppression("ann@client.example").as_deref(),
            Some("bounce")
        );
        assert_eq!(f.store.metrics(at).unwrap().blocked, 0);
    }

    #[test]
    fn a_claim_takes_at_most_its_limit_and_the_next_claim_the_rest() {
        let mut f = fixture();
        for n in 1..=5 {
            f.import(
                record(
                    &format!("p{n}@client.example"),
                    date(2025, 6, 1),
                    "competitor",
                ),
                now(),
            );
        }
        let mut rows = Vec::new();
        for expected in [2, 2, 1, 0] {
            let claimed = f.store.claim_due(&f.config, now(), 2).unwrap();
            assert_eq!(claimed.len(), expected);
            rows.extend(claimed.iter().map(|c| c.message_row));
        }
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), 5, "each waiting person claimed once");
        // Retries too: the limit holds, and nothing is claimed twice.
        for &row in &rows {
            f.record(row, retry(now()));
        }
        let later = now() + Duration::days(1);
        let first = f.store.claim_due(&f.config, later, 3).unwrap();
        let second = f.store.claim_due(&f.config, later, 3).unwrap();
        assert_eq!((first.len(), second.len()), (3, 2));
        let mut again: Vec<i64> = first.iter().chain(&second).map(|c| c.message_row).collect();
        again.sort_unstable();
        assert_eq!(again, rows);
    }

    #[test]
    fn a_pass_at_the_imports_own_now_finds_what_the_import_made_due() {
        // `import --now T` reads its clock a little after T (and stamps that as "due
        // now"); `run --once --now T` may claim a little sooner.
        let mut f = fixture();
        f.import(
            record("ann@client.example", date(2025, 6, 1), "competitor"),
            now() + Duration::milliseconds(400),
        );
        assert_eq!(f.claim(now()).len(), 1);
    }

    #[test]
    fn a_claim_that_fails_undoes_only_itself_and_keeps_the_results() {
        let mut f = fixture();
        f.import_people(&["ann", "bob"]);
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 2);
        f.import(
            record("cat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        // A row the claim cannot read.
        f.store
            .conn
            .execute(
                "UPDATE clients SET timezone = 'Not/AZone' WHERE email = 'cat@client.example'",
                [],
            )
            .unwrap();
        let results: Vec<(i64, Outcome)> = claimed
            .iter()
            .map(|c| (c.message_row, sent(now())))
            .collect();
        let outcome = f
            .store
            .record_and_claim(&f.config, &results, Some((now(), 10)))
            .unwrap();
        assert!(
            matches!(outcome, Err(crate::store::StoreError::Corrupt(_))),
            "{outcome:?}"
        );
        let states: Vec<String> = f.messages().into_iter().map(|m| m.3).collect();
        assert_eq!(
            states,
            ["sent", "sent"],
            "the results stand, the claim left nothing"
        );
    }

    #[test]
    fn a_queued_retry_never_reaches_a_client_reimported_as_we_ended() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 1);
        f.record(claimed[0].message_row, retry(now()));
        // The CRM is corrected: we ended this relationship.
        let later = now() + Duration::minutes(1);
        f.import(
            record("pat@client.example", date(2025, 6, 1), "we_ended"),
            later,
        );
        assert!(f.claim(later + Duration::hours(1)).is_empty());
        assert_eq!(f.messages()[0].3, "cancelled");
        assert_eq!(f.enrollment("former-clients").0, "completed");
    }

    #[test]
    fn a_retry_from_before_a_return_never_goes_out_in_the_new_sequence() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        // They come back while the survey is with the SMTP server, which answers 451.
        f.store.record_return("pat@client.example", now()).unwrap();
        f.record(claimed[0].message_row, retry(now()));
        // And leave again the next day: a new sequence, with a new quiet period.
        let next_day = now() + Duration::days(1);
        f.import(
            record("pat@client.example", date(2026, 1, 16), "price"),
            next_day,
        );
        assert_eq!(f.enrollment("former-clients").1, 2);
        for hours in [1, 24, 24 * 30] {
            assert!(
                f.claim(next_day + Duration::hours(hours)).is_empty(),
                "sent {hours} hours after leaving again"
            );
        }
        assert_eq!(f.messages()[0].3, "cancelled");
        // The new survey goes out after the new quiet period, once.
        let due = Utc.with_ymd_and_hms(2026, 4, 16, 0, 0, 0).unwrap();
        let claimed = f.claim(due);
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            f.messages()[1],
            ("former-clients".to_string(), 2, 1, "sending".to_string())
        );
    }

    #[test]
    fn a_queued_retry_respects_a_corrected_churn_date() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        f.record(claimed[0].message_row, retry(now()));
        // The churn date was wrong: they left ten days ago.
        let later = now() + Duration::minutes(1);
        f.import(
            record("pat@client.example", date(2026, 1, 5), "competitor"),
            later,
        );
        assert!(f.claim(later + Duration::hours(1)).is_empty());
        assert!(
            f.claim(Utc.with_ymd_and_hms(2026, 4, 4, 12, 0, 0).unwrap())
                .is_empty()
        );
        let due = Utc.with_ymd_and_hms(2026, 4, 5, 0, 0, 0).unwrap();
        let claimed = f.claim(due);
        assert_eq!(claimed.len(), 1);
        assert_eq!(f.messages().len(), 1, "the retry, not a second copy");
        // Its first real attempt is greylisted: a retry, not a give-up.
        f.record(claimed[0].message_row, retry(due));
        assert_eq!(f.messages()[0].3, "retry");
        assert_eq!(f.suppression("pat@client.example"), None);
    }

    #[test]
    fn a_campaign_removed_and_put_back_resumes_without_a_second_copy() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        f.import(
            record("sam@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 2);
        let pat = claimed
            .iter()
            .find(|c| c.client.email.starts_with("pat"))
            .unwrap();
        let sam = claimed
            .iter()
            .find(|c| c.client.email.starts_with("sam"))
            .unwrap();
        let (pat_row, sam_row) = (pat.message_row, sam.message_row);
        f.record(pat_row, retry(now()));
        f.record(sam_row, sent(now()));

        // The operator comments the campaign out for a while...
        let without = config(f.dir.path(), OTHER_CAMPAIGN);
        let later = now() + Duration::hours(1);
        f.store.sync_campaigns(&without, later).unwrap();
        assert!(f.store.claim_due(&without, later, 10).unwrap().is_empty());
        // ...and puts it back.
        let back = now() + Duration::days(2);
        f.store.sync_campaigns(&f.config, back).unwrap();
        let claimed = f.claim(back);
        assert_eq!(claimed.len(), 1, "pat's survey resumes");
        assert_eq!(claimed[0].message_row, pat_row);
        // Sam's next step comes 30 days after the survey.
        assert!(f.claim(now() + Duration::days(29)).is_empty());
        let claimed = f.claim(now() + Duration::days(30));
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].client.email, "sam@client.example");
        assert_eq!(claimed[0].step, 2);
    }

    #[test]
    fn a_message_row_already_there_never_makes_the_claim_fail() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        f.import(
            record("sam@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 2);
        for c in &claimed {
            f.record(c.message_row, sent(now()));
        }
        // Whatever put it there, an enrollment is due again at a step that has a row.
        f.store
            .conn
            .execute(
                "UPDATE enrollments SET next_step = 1, due_at = ?1, send_at = ?2 WHERE client_id = (SELECT id FROM clients WHERE email = 'pat@client.example')",
                params![fmt_time(now()), moment(now())],
            )
            .unwrap();
        let later = now() + Duration::days(1);
        assert!(f.claim(later).is_empty());
        assert!(f.claim(later + Duration::minutes(1)).is_empty());
        assert_eq!(f.messages().len(), 2);
    }

    #[test]
    fn an_excluded_reason_never_erases_the_history_of_an_earlier_sequence() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        f.record(claimed[0].message_row, sent(now()));
        f.store.record_return("pat@client.example", now()).unwrap();
        // They leave again, and this time we ended it.
        let later = now() + Duration::days(2);
        f.import(
            record("pat@client.example", date(2026, 1, 16), "we_ended"),
            later,
        );
        assert_eq!(
            f.messages(),
            vec![("former-clients".to_string(), 1, 1, "sent".to_string())]
        );
        assert!(f.claim(later + Duration::days(200)).is_empty());
    }

    #[test]
    fn a_resent_message_gets_a_fresh_retry_window() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let claimed = f.claim(now());
        let row = claimed[0].message_row;
        f.record(
            row,
            Outcome::Uncertain {
                error: "no final reply".to_string(),
                at: now(),
            },
        );
        // A week later the operator asks for it again; the server greylists the first try.
        let later = now() + Duration::days(7);
        assert!(f.store.resend(row, later).unwrap());
        let claimed = f.claim(later);
        assert_eq!(claimed.len(), 1);
        f.record(row, retry(later));
        assert_eq!(f.suppression("pat@client.example"), None);
        assert_eq!(f.messages()[0].3, "retry");
    }

    #[test]
    fn days_of_our_server_refusing_us_do_not_count_towards_giving_up() {
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let mut at = now();
        let row = f.claim(at)[0].message_row;
        // A bad password over a long weekend.
        let deferred = |at| Outcome::Deferred {
            error: "535 5.7.8 authentication failed".to_string(),
            at,
        };
        f.record(row, deferred(at));
        while at < now() + Duration::days(4) {
            at += Duration::hours(6);
            let claimed = f.claim(at);
            assert_eq!(claimed.len(), 1);
            f.record(row, deferred(at));
        }
        // Fixed; the recipient's server greylists the first real attempt.
        at += Duration::hours(6);
        assert_eq!(f.claim(at).len(), 1);
        f.record(row, retry(at));
        assert_eq!(f.suppression("pat@client.example"), None);
        assert_eq!(f.messages()[0].3, "retry");
    }

    #[test]
    fn writers_on_two_connections_never_fail_each_other() {
        // The daemon's delivery connection commits all the time; the HTTP server writes
        // opt-outs on its own connection, and the CLI on a third. None of them may fail
        // because another committed between its first read and its first write.
        let mut f = fixture();
        f.import(
            record("pat@client.example", date(2025, 6, 1), "competitor"),
            now(),
        );
        let enrollment: i64 = f
            .store
            .conn
            .query_row("SELECT id FROM enrollments", [], |r| r.get(0))
            .unwrap();
        let id = crate::token::Target::Enrollment(enrollment);
        let path = f.dir.path().join("winback.db");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cli = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut other = Store::open(&path).unwrap();
                let mut failures = Vec::new();
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let email = format!("someone{n}@else.example");
                    if let Err(e) = other.record_opt_out(&email, "cli", now()) {
                        failures.push(e.to_string());
                    }
                }
                failures
            })
        };
        let mut failures = Vec::new();
        let answer = crate::store::SurveyAnswer::default();
        for _ in 0..200 {
            let results = [
                f.store.opt_out_enrollment(&id, "link", now()).map(drop),
                f.store.undo_opt_out(&id, now(), &f.config).map(drop),
                f.store
                    .save_survey_answer(&id, &answer, false, now())
                    .map(drop),
            ];
            failures.extend(
                results
                    .into_iter()
                    .filter_map(|r| r.err().map(|e| e.to_string())),
            );
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let cli_failures = cli.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} link actions failed: {:?}",
            failures.len(),
            failures.first()
        );
        assert!(
            cli_failures.is_empty(),
            "{} CLI opt-outs failed: {:?}",
            cli_failures.len(),
            cli_failures.first()
        );
    }

    #[test]
    fn the_check_before_each_send_sees_every_reason_to_withdraw() {
        let mut f = fixture();
        let people = ["ann", "bob", "cat", "dan", "eve", "fay", "gus"];
        f.import_people(&people);
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), people.len());
        let row = |name: &str| {
            claimed
                .iter()
                .find(|c| c.client.email == format!("{name}@client.example"))
                .unwrap()
                .message_row
        };
        // Changed since the claim, each in its own way (one of them not at all).
        let later = now() + Duration::seconds(1);
        f.store
            .record_opt_out("bob@client.example", "link", later)
            .unwrap();
        f.store.record_return("cat@client.example", later).unwrap();
        f.store.forget_person("dan@client.example", later).unwrap();
        f.store
            .conn
            .execute(
                "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, 'eve@client.example', 'bounce', 'smtp', ?2)",
                params![email_hash("eve@client.example"), fmt_time(later)],
            )
            .unwrap();
        f.store
            .conn
            .execute(
                "UPDATE messages SET state = 'uncertain' WHERE id = ?1",
                params![row("fay")],
            )
            .unwrap();
        f.import(
            record("gus@client.example", date(2025, 6, 1), "we_ended"),
            later,
        );
        let check = |name: &str| f.store.withdrawal(&f.config, row(name)).unwrap();
        assert_eq!(check("ann"), None);
        assert_eq!(check("bob").as_deref(), Some("the person is opted_out now"));
        assert_eq!(check("cat").as_deref(), Some("the person is returned now"));
        assert_eq!(
            check("dan").as_deref(),
            Some("its record is gone (the person was forgotten)")
        );
        assert_eq!(check("eve").as_deref(), Some("the person is bounced now"));
        assert_eq!(check("fay").as_deref(), Some("it is uncertain now"));
        assert_eq!(
            check("gus").as_deref(),
            Some("dropped: the campaign's audience no longer includes this client")
        );
    }
}
