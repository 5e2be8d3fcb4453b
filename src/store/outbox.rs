//! The outbox: claiming due messages and recording what the SMTP server said.
//!
//! The never-send-twice rule lives here. A message row is committed in state `sending`
//! before its SMTP transaction starts, in the same transaction that re-checks opt-outs,
//! bounces and returns. A row still `sending` at start-up becomes `uncertain` and is not
//! sent again unless an operator says so.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::clients::{StoredClient, load_facts};
use super::enroll::stop;
use super::{Result, Store, email_hash, fmt_time, log_event, parse_time};
use crate::config::{Campaign, Config};
use crate::model::{EnrollmentState, MessageState};
use crate::schedule::{self, Decision, Next, Standing};

/// Retries back off from `retry_first`, doubling, but never wait longer than this.
const MAX_BACKOFF_HOURS: i64 = 6;
/// How far back sends count for the one-message-per-local-day rule.
const BUSY_LOOKBACK_HOURS: i64 = 48;

/// A message claimed for sending: its row is `sending` and committed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message_row: i64,
    pub message_id: String,
    pub campaign: String,
    pub step: u32,
    pub attempt: u32,
    pub client: crate::model::ClientRecord,
    /// The enrollment's random id, which the link tokens carry.
    pub public_id: [u8; 16],
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
    /// Not sent for a reason of ours (e.g. the template failed): stop this sequence.
    Abandoned {
        error: String,
        at: DateTime<Utc>,
    },
}

fn standing(conn: &Connection, client: &StoredClient) -> Result<Standing> {
    let reason: Option<String> = conn
        .prepare_cached("SELECT reason FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![email_hash(&client.record.email)], |r| r.get(0))
        .optional()?;
    Ok(Standing {
        opted_out: matches!(reason.as_deref(), Some("opt_out") | Some("forgotten")),
        bounced: reason.as_deref() == Some("bounce"),
        returned: client.returned_at.is_some(),
    })
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
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut claimed = Vec::new();
        let now_text = fmt_time(now);
        // Retries first: they were due earlier.
        let retries: Vec<(i64, i64, String, u32, String, String)> = tx
            .prepare_cached(
                "SELECT m.id, m.enrollment_id, m.campaign, m.step, m.due_at, m.next_attempt_at FROM messages m
                 WHERE m.state = 'retry' AND m.next_attempt_at <= ?1 ORDER BY m.next_attempt_at LIMIT ?2",
            )?
            .query_map(params![now_text, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
            .collect::<std::result::Result<_, _>>()?;
        for (row, enrollment_id, campaign_name, step, due_at, next_attempt_at) in retries {
            let Some((client_id, public_id)) = enrollment_client(&tx, enrollment_id)? else {
                continue;
            };
            let Some(client) = load_facts(&tx, client_id)? else {
                continue;
            };
            let Some(campaign) = config.campaign(&campaign_name) else {
                // The campaign left the configuration: keep the row, but park it.
                tx.execute("UPDATE messages SET next_attempt_at = NULL, state = 'cancelled', last_error = 'campaign removed from the configuration' WHERE id = ?1", params![row])?;
                continue;
            };
            let tz = schedule::zone(campaign, client.record.timezone);
            let busy = busy(&tx, client_id, now, Some(row))?;
            let decision = schedule::decide(
                campaign,
                tz,
                parse_time(&due_at)?,
                parse_time(&next_attempt_at)?,
                now,
                standing(&tx, &client)?,
                &busy,
            );
            match decision {
                Decision::SendNow => {
                    let (message_id, attempts): (String, u32) = tx.query_row(
                        "UPDATE messages SET state = 'sending', attempts = attempts + 1, claimed_at = ?2, next_attempt_at = NULL, updated_at = ?2
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
                        public_id,
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
                    stop(&tx, enrollment_id, state, now)?;
                }
                Decision::Never => {
                    tx.execute("UPDATE messages SET next_attempt_at = NULL, state = 'cancelled', last_error = 'send_at never fires again' WHERE id = ?1", params![row])?;
                }
            }
        }
        let remaining = limit.saturating_sub(claimed.len());
        let waiting: Vec<WaitingRow> = tx
            .prepare_cached(
                "SELECT id, client_id, campaign, cycle, next_step, due_at, public_id FROM enrollments
                 WHERE state = 'active' AND send_at IS NOT NULL AND send_at <= ?1 ORDER BY send_at LIMIT ?2",
            )?
            .query_map(params![now_text, remaining as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
            .collect::<std::result::Result<_, _>>()?;
        for (enrollment_id, client_id, campaign_name, cycle, step_number, due_at, public_id) in
            waiting
        {
            let Some(client) = load_facts(&tx, client_id)? else {
                continue;
            };
            let Some(campaign) = config.campaign(&campaign_name) else {
                tx.execute(
                    "UPDATE enrollments SET send_at = NULL WHERE id = ?1",
                    params![enrollment_id],
                )?;
                continue;
            };
            let Some(step) = campaign.step(step_number) else {
                stop(&tx, enrollment_id, EnrollmentState::Completed, now)?;
                continue;
            };
            let tz = schedule::zone(campaign, client.record.timezone);
            let due = parse_time(&due_at)?;
            let busy = busy(&tx, client_id, now, None)?;
            match schedule::decide(campaign, tz, due, due, now, standing(&tx, &client)?, &busy) {
                Decision::SendNow => {
                    let message_id = crate::render::new_message_id(config);
                    tx.prepare_cached(
                        "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, attempts,
                                               first_claimed_at, claimed_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'sending', ?7, ?8, 1, ?9, ?9, ?9)",
                    )?
                    .execute(params![enrollment_id, client_id, campaign.name, cycle, step_number, step.kind.as_str(), message_id, due_at, now_text])?;
                    let row = tx.last_insert_rowid();
                    tx.prepare_cached(
                        "UPDATE enrollments SET send_at = NULL, updated_at = ?2 WHERE id = ?1",
                    )?
                    .execute(params![enrollment_id, now_text])?;
                    claimed.push(Claimed {
                        message_row: row,
                        message_id,
                        campaign: campaign.name.clone(),
                        step: step_number,
                        attempt: 1,
                        client: client.record,
                        public_id: public_id_bytes(&public_id),
                    });
                }
                Decision::Wait(t) => {
                    tx.prepare_cached("UPDATE enrollments SET send_at = ?2 WHERE id = ?1")?
                        .execute(params![enrollment_id, fmt_time(t)])?;
                }
                Decision::Stop(state) => stop(&tx, enrollment_id, state, now)?,
                Decision::Never => {
                    tx.execute(
                        "UPDATE enrollments SET send_at = NULL WHERE id = ?1",
                        params![enrollment_id],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Records the fate of claimed messages, all in one transaction (batching the commits
    /// is what makes a durable outbox fast).
    pub fn record_results(&mut self, config: &Config, results: &[(i64, Outcome)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (row, outcome) in results {
            record_one(&tx, config, *row, outcome)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// At start-up: messages caught mid-send by a crash become `uncertain`. They count as
    /// sent for the timing of the next step, and are not resent. Returns how many.
    pub fn recover_interrupted(&mut self, config: &Config, now: DateTime<Utc>) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let rows: Vec<(i64, String)> = tx
            .prepare("SELECT id, claimed_at FROM messages WHERE state = 'sending'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        for (row, claimed_at) in &rows {
            let error = format!(
                "the process stopped during the SMTP transaction (found at start-up {})",
                fmt_time(now)
            );
            record_one(
                &tx,
                config,
                *row,
                &Outcome::Uncertain {
                    error,
                    at: parse_time(claimed_at)?,
                },
            )?;
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// An operator decided an `uncertain` (or `failed`) message should go out again.
    /// Returns false if there is no such message in a resendable state.
    pub fn resend(&mut self, row: i64, now: DateTime<Utc>) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE messages SET state = 'retry', next_attempt_at = ?2, updated_at = ?2, last_error = 'resend requested by an operator'
             WHERE id = ?1 AND state IN ('uncertain', 'failed')",
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

    /// The earliest moment anything may need doing: a waiting enrollment or a retry.
    pub fn next_wake(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self.conn.query_row(
            "SELECT MIN(t) FROM (
                 SELECT MIN(send_at) AS t FROM enrollments WHERE state = 'active' AND send_at IS NOT NULL
                 UNION ALL SELECT MIN(next_attempt_at) FROM messages WHERE state = 'retry')",
            [],
            |r| r.get(0),
        )?;
        next.as_deref().map(parse_time).transpose()
    }

    /// Messages claimed since `since` (for the daily and per-minute limits).
    pub fn claimed_since(&self, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE claimed_at >= ?1 AND state != 'cancelled'",
            params![fmt_time(since)],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

/// An enrollment whose moment has come: id, client, campaign, cycle, step, due, token id.
type WaitingRow = (i64, i64, String, i64, u32, String, Vec<u8>);

fn public_id_bytes(bytes: &[u8]) -> [u8; 16] {
    let mut id = [0u8; 16];
    let n = bytes.len().min(16);
    id[..n].copy_from_slice(&bytes[..n]);
    id
}

fn enrollment_client(conn: &Connection, enrollment_id: i64) -> Result<Option<(i64, [u8; 16])>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT client_id, public_id FROM enrollments WHERE id = ?1")?
        .query_row(params![enrollment_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.map(|(id, public)| (id, public_id_bytes(&public))))
}

fn backoff(config: &Config, attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16);
    let delay = config.smtp.retry_first * 2i32.pow(exponent);
    delay.min(Duration::hours(MAX_BACKOFF_HOURS))
}

fn record_one(tx: &Transaction<'_>, config: &Config, row: i64, outcome: &Outcome) -> Result<()> {
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
        }
        Outcome::Failed { error, at } => {
            set_state(MessageState::Failed, *at, None, Some(error), None)?;
            bounce(tx, client_id, error, *at)?;
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
fn bounce(tx: &Transaction<'_>, client_id: i64, error: &str, at: DateTime<Utc>) -> Result<()> {
    let email: String = tx.query_row(
        "SELECT email FROM clients WHERE id = ?1",
        params![client_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, ?2, 'bounce', 'smtp', ?3)
         ON CONFLICT (email_hash) DO NOTHING",
        params![email_hash(&email), email, fmt_time(at)],
    )?;
    super::clients::stop_client(tx, client_id, EnrollmentState::Bounced, at)?;
    log_event(tx, at, Some(client_id), "bounce", error)?;
    Ok(())
}

/// Moves an enrollment past a step that went out (or may have) at `at`.
fn advance(
    tx: &Transaction<'_>,
    campaign: Option<&Campaign>,
    enrollment_id: i64,
    client_id: i64,
    cycle: i64,
    step: u32,
    at: DateTime<Utc>,
) -> Result<()> {
    let current: Option<(String, i64, u32)> = tx
        .prepare_cached("SELECT state, cycle, next_step FROM enrollments WHERE id = ?1")?
        .query_row(params![enrollment_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    // Only the sequence this message belongs to, and only if nothing stopped it meanwhile.
    if current != Some((EnrollmentState::Active.as_str().to_string(), cycle, step)) {
        tx.prepare_cached("UPDATE enrollments SET last_sent_at = ?2 WHERE id = ?1 AND cycle = ?3")?
            .execute(params![enrollment_id, fmt_time(at), cycle])?;
        return Ok(());
    }
    let Some(campaign) = campaign else {
        tx.execute("UPDATE enrollments SET last_sent_at = ?2, next_step = ?3, send_at = NULL WHERE id = ?1", params![enrollment_id, fmt_time(at), step + 1])?;
        return Ok(());
    };
    let Some(client) = load_facts(tx, client_id)? else {
        return Ok(());
    };
    let tz = schedule::zone(campaign, client.record.timezone);
    match schedule::after_send(campaign, step, at, tz) {
        Next::Step { number, due } => {
            let send_at = schedule::earliest_send(campaign, tz, due, due, due).map(fmt_time);
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
