//! Claiming due messages: retries and held messages whose moment has come, then
//! enrollments whose next step's moment has come, each committed `sending` with its
//! person's standing checked in the same transaction.
//!
//! Must not decide when a step may go (that is `domain::schedule`) nor record results
//! (that is `record.rs`).

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::record::{advance, record_one, start_in};
use super::{Claimed, Step, Stepped, enrollment_client, message_state, standing_of, takes_the_day};
use crate::config::{Campaign, Config};
use crate::domain::accounts::stop_at_send;
use crate::domain::holidays::country_of;
use crate::domain::model::{ClientRecord, EnrollmentState, MessageState, StepKind};
use crate::domain::plan;
use crate::domain::retry::{AtStep, at_step, superseded};
use crate::domain::schedule::{self, Busy, Decision, Moved, Rules, Standing};
use crate::store::accounts::{account_busy, hold, hold_of};
use crate::store::clients::{
    JOINED_CLIENT_COLUMNS, StoredClient, client_from_row_at, decode_client, load_facts,
};
use crate::store::enroll::stop;
use crate::store::{Result, Store, email_hash, fmt_time, log_event, moment, parse_time};

fn standing(conn: &Connection, client: &StoredClient) -> Result<Standing> {
    let reason: Option<String> = conn
        .prepare_cached("SELECT reason FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![email_hash(&client.record.email)], |r| r.get(0))
        .optional()?;
    Ok(standing_of(reason.as_deref(), client.returned_at.is_some()))
}

/// When this person's recent messages went (or may have gone) out, and which were a
/// recurring step's (by `config`).
fn busy(
    conn: &Connection,
    config: &Config,
    client_id: i64,
    since: DateTime<Utc>,
    except_row: Option<i64>,
) -> Result<Vec<Busy>> {
    let since = fmt_time(since);
    let rows: Vec<(String, String, u32)> = conn
        .prepare_cached(concat!(
            "SELECT COALESCE(sent_at, claimed_at), campaign, step FROM messages
             WHERE client_id = ?1 AND claimed_at >= ?2 AND state IN ",
            takes_the_day!(),
            " AND id IS NOT ?3"
        ))?
        .query_map(params![client_id, since, except_row], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    rows.iter()
        .map(|(at, campaign, step)| {
            Ok(Busy {
                at: parse_time(at)?,
                recurring: schedule::recurs(config.campaign(campaign), *step),
            })
        })
        .collect()
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

/// The claim itself, inside the caller's transaction (see [`Store::claim_due`]): queued
/// messages first (they were due earlier), then waiting enrollments, `limit` in all.
fn claim_in(
    tx: &Connection,
    config: &Config,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Claimed>> {
    let mut claim = Claim {
        tx,
        config,
        now,
        now_text: fmt_time(now),
        claimed: Vec::new(),
    };
    for queued in claim.queued(limit)? {
        claim.queued_one(queued)?;
    }
    let remaining = limit.saturating_sub(claim.claimed.len());
    for waiting in claim.waiting(remaining)? {
        claim.waiting_one(waiting)?;
    }
    Ok(claim.claimed)
}

/// One claim in progress: its transaction, its moment, what it has claimed so far.
struct Claim<'a> {
    tx: &'a Connection,
    config: &'a Config,
    now: DateTime<Utc>,
    now_text: String,
    claimed: Vec<Claimed>,
}

impl Claim<'_> {
    /// Retries and held messages whose moment has come, oldest first. Each half reads
    /// its own index (retries: `messages_retry`; the few held ones: `messages_by_state`).
    fn queued(&self, limit: usize) -> Result<Vec<QueuedRow>> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT id, enrollment_id, campaign, cycle, step, due_at, next_attempt_at FROM messages
                 WHERE state = 'retry' AND next_attempt_at <= ?1
                 UNION ALL
                 SELECT id, enrollment_id, campaign, cycle, step, due_at, next_attempt_at FROM messages
                 WHERE state = 'held' AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at LIMIT {MAX_CLAIM}",
            ))?
            .query_map(params![self.now_text], |r| {
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
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Enrollments whose next step's moment has come, each with its person, their
    /// suppression and their account, if any: one statement for the lot. At one moment,
    /// the first enrolled goes first (as `plan` has it): of two contacts of an account due
    /// then, that one gets the message and the other waits out the account gap.
    fn waiting(&self, limit: usize) -> Result<Vec<WaitingPerson>> {
        // A second ahead: an import at the same --now stamps a step due "now" with its own
        // clock reading, which can be a few milliseconds later than a pass that started
        // faster. `decide` still says when each one may really go.
        let horizon = moment(self.now + Duration::seconds(LOOK_AHEAD_SECONDS));
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT e.id, e.campaign, e.cycle, e.next_step, e.due_at, e.next_occurrence, s.reason, {JOINED_CLIENT_COLUMNS}, c.account_key, e.moved_reason
                 FROM enrollments e
                 JOIN clients c ON c.id = e.client_id
                 LEFT JOIN suppressions s ON s.email_hash = email_hash(c.email)
                 WHERE e.state = 'active' AND e.send_at IS NOT NULL AND e.send_at <= ?1
                 ORDER BY e.send_at, e.id LIMIT {MAX_CLAIM}"
            ))?
            .query_map(params![horizon], |r| {
                Ok((
                    (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        (r.get(3)?, r.get(5)?),
                        r.get(4)?,
                    ),
                    r.get(6)?,
                    client_from_row_at(r, 7)?,
                    (r.get(18)?, r.get(19)?),
                ))
            })?
            .take(limit)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// What the schedule says of a message of step `step` to `client`, due at `due` and
    /// not before `not_before`: their other recent messages (all but `except`), their
    /// account's, the dates kept free for their country and the consent horizon count
    /// against it. A wait comes with the rules that moved it.
    fn decide(
        &self,
        campaign: &Campaign,
        (client_id, client): (i64, &ClientRecord),
        (step, standing): (u32, Standing),
        (due, not_before): (DateTime<Utc>, DateTime<Utc>),
        except: Option<i64>,
    ) -> Result<(Decision, Vec<Moved>)> {
        let tz = schedule::zone(campaign, client.timezone);
        let busy = busy(
            self.tx,
            self.config,
            client_id,
            self.now - schedule::lookback(campaign),
            except,
        )?;
        let account_busy = if campaign.account_gap_days > 0 {
            let since = self.now - Duration::days(i64::from(campaign.account_gap_days) + 2);
            account_busy(self.tx, client_id, since, except)?
        } else {
            Vec::new()
        };
        let country = country_of(client.country.as_deref(), client.timezone);
        let rules = Rules {
            busy: &busy,
            recurring: schedule::recurs(Some(campaign), step),
            account_busy: &account_busy,
            account_gap_days: campaign.account_gap_days,
            country: country.as_deref(),
            horizon: schedule::horizon(campaign, client.churned_at, tz),
        };
        Ok(schedule::decide(
            campaign, tz, due, not_before, self.now, standing, &rules,
        ))
    }

    /// Hands a message committed `sending` to the caller.
    fn take(&mut self, row: i64, message_id: String, step: u32, attempt: u32, due: Due) {
        self.claimed.push(Claimed {
            message_row: row,
            message_id,
            campaign: due.campaign.name.clone(),
            step,
            attempt,
            client: due.client,
            enrollment_id: due.enrollment_id,
        });
    }

    /// A retry or held message whose moment has come: claimed, moved to its next
    /// moment, or dropped.
    fn queued_one(&mut self, queued: QueuedRow) -> Result<()> {
        let (tx, now, now_text) = (self.tx, self.now, self.now_text.as_str());
        let (row, enrollment_id, campaign_name, cycle, step, due_at, next_attempt_at) = queued;
        let Some((client_id, sequence)) = enrollment_client(tx, enrollment_id)? else {
            return Ok(());
        };
        let Some(client) = load_facts(tx, client_id)? else {
            return Ok(());
        };
        let Some(campaign) = self.config.campaign(&campaign_name) else {
            // The campaign left the configuration: keep the row, but park it.
            tx.execute("UPDATE messages SET next_attempt_at = NULL, state = 'cancelled', last_error = 'campaign removed from the configuration' WHERE id = ?1", params![row])?;
            return Ok(());
        };
        if let Some(reason) = superseded(
            sequence,
            cycle,
            campaign,
            client.record.churn_reason.as_deref(),
        ) {
            // Not for this person any more, whatever their standing: drop it.
            tx.execute(
                "UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, last_error = ?2, updated_at = ?3 WHERE id = ?1",
                params![row, reason, now_text],
            )?;
            if sequence.cycle == cycle && sequence.state == EnrollmentState::Active {
                stop(tx, enrollment_id, EnrollmentState::Completed, now)?;
            }
            return Ok(());
        }
        if campaign.paused {
            // Nothing of a paused campaign goes; looked at again in an hour.
            tx.execute(
                "UPDATE messages SET next_attempt_at = ?2 WHERE id = ?1",
                params![
                    row,
                    fmt_time(now + Duration::hours(schedule::PAUSED_RECHECK_HOURS))
                ],
            )?;
            return Ok(());
        }
        // The account's return or standing reply holds it too, however its sequence
        // became active.
        let own = standing(tx, &client)?;
        let account = match own.stop() {
            Some(_) => Default::default(),
            None => hold_of(tx, client_id)?,
        };
        // A retry's wait keeps no reason: `plan` reads it at its `next_attempt_at`.
        let decision = match stop_at_send(own, account) {
            Some(state) => Decision::Stop(state),
            None => {
                self.decide(
                    campaign,
                    (client_id, &client.record),
                    (step, own),
                    (parse_time(&due_at)?, parse_time(&next_attempt_at)?),
                    Some(row),
                )?
                .0
            }
        };
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
                let due = Due {
                    campaign,
                    enrollment_id,
                    client: client.record,
                };
                self.take(row, message_id, step, attempts, due);
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
        Ok(())
    }

    /// An enrollment whose next step's moment has come: its message claimed (a new row,
    /// or its dropped one taken up again), the enrollment moved to its next moment, or
    /// stopped.
    fn waiting_one(
        &mut self,
        (waiting, suppression, columns, (key, moved)): WaitingPerson,
    ) -> Result<()> {
        let (tx, now) = (self.tx, self.now);
        let (enrollment_id, campaign_name, cycle, (step_number, occurrence), due_at) = waiting;
        let client = decode_client(columns.0, columns.1)?;
        let client_id = client.id;
        let standing = standing_of(suppression.as_deref(), client.returned_at.is_some());
        let Some(campaign) = self.config.campaign(&campaign_name) else {
            tx.execute(
                "UPDATE enrollments SET send_at = NULL, moved_reason = NULL WHERE id = ?1",
                params![enrollment_id],
            )?;
            return Ok(());
        };
        if campaign.paused {
            // Its enrollments wait, each looked at again at a `send_at` moment at least an
            // hour on: whichever configuration stored the campaign last, the first claim
            // after unpausing takes them up, by the catch-up rule from their due time.
            let tz = schedule::zone(campaign, client.record.timezone);
            tx.prepare_cached(
                "UPDATE enrollments SET send_at = ?2, moved_reason = NULL WHERE id = ?1",
            )?
            .execute(params![
                enrollment_id,
                schedule::paused_until(campaign, tz, now).map(moment)
            ])?;
            return Ok(());
        }
        let Some(step) = campaign.step(step_number) else {
            return stop(tx, enrollment_id, EnrollmentState::Completed, now);
        };
        if campaign.excludes(client.record.churn_reason.as_deref()) {
            return stop(tx, enrollment_id, EnrollmentState::Completed, now);
        }
        let tz = schedule::zone(campaign, client.record.timezone);
        let elsewhere = match step.kind {
            StepKind::Survey => survey_elsewhere(
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
                (step_number, occurrence),
                at,
            )?;
            return log_event(
                tx,
                now,
                Some(client_id),
                "survey_skipped",
                &format!(
                    "campaign {}: already surveyed by another campaign",
                    campaign.name
                ),
            );
        }
        let due = parse_time(&due_at)?;
        // The account's return or standing reply holds it too (one query, only for a
        // contact with an account).
        let account = match (standing.stop(), key.as_deref()) {
            (None, Some(key)) => hold(tx, key, client_id)?,
            _ => Default::default(),
        };
        let (decision, moves) = match stop_at_send(standing, account) {
            Some(state) => (Decision::Stop(state), Vec::new()),
            None => self.decide(
                campaign,
                (client_id, &client.record),
                (step_number, standing),
                (due, due),
                None,
            )?,
        };
        match decision {
            Decision::SendNow => {
                let due = Due {
                    campaign,
                    enrollment_id,
                    client: client.record,
                };
                self.send_step(
                    due,
                    client_id,
                    (cycle, (step_number, occurrence), step.kind),
                    &due_at,
                )?;
            }
            Decision::Wait(t) => {
                // Why it waits, in the plan's words (after why it waited before, if it
                // did), in the same statement as its next moment: `plan` starts it there
                // and would not find the move itself.
                let note = plan::moved_note(moved.as_deref(), &moves, campaign, key.as_deref(), tz);
                tx.prepare_cached(
                    "UPDATE enrollments SET send_at = ?2, moved_reason = ?3 WHERE id = ?1",
                )?
                .execute(params![enrollment_id, moment(t), note])?;
            }
            Decision::Stop(state) => stop(tx, enrollment_id, state, now)?,
            Decision::Never => {
                tx.execute(
                    "UPDATE enrollments SET send_at = NULL, moved_reason = NULL WHERE id = ?1",
                    params![enrollment_id],
                )?;
            }
        }
        Ok(())
    }

    /// An enrollment's step may go now: its message row committed `sending` (a new one,
    /// or its dropped one again), unless the step already has a live one.
    fn send_step(
        &mut self,
        due: Due,
        client_id: i64,
        (cycle, (step, occurrence), kind): (i64, (u32, u32), StepKind),
        due_at: &str,
    ) -> Result<()> {
        let (tx, now, now_text) = (self.tx, self.now, self.now_text.as_str());
        let enrollment_id = due.enrollment_id;
        // The schema refuses a second row for a step's occurrence; never let that fail the
        // whole claim (and with it every pass after it).
        let existing: Option<(i64, String, Option<String>)> = tx
            .prepare_cached("SELECT id, state, sent_at FROM messages WHERE enrollment_id = ?1 AND cycle = ?2 AND step = ?3 AND occurrence = ?4")?
            .query_row(params![enrollment_id, cycle, step, occurrence], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let existing = match existing {
            Some((row, state, sent_at)) => {
                let state = message_state(&state)?;
                Some((row, state, at_step(state, sent_at.is_some()), sent_at))
            }
            None => None,
        };
        let (row, message_id, attempt) = match existing {
            Some((row, state, AtStep::MoveOn | AtStep::Wait, sent_at)) => {
                return settle_existing(
                    tx,
                    due.campaign,
                    enrollment_id,
                    client_id,
                    (cycle, (step, occurrence)),
                    (row, state, sent_at.as_deref()),
                    now,
                );
            }
            // Dropped before it was ever sent: this claim takes it up again.
            Some((row, _, AtStep::TakeUp, _)) => {
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
                let message_id = crate::mail::new_message_id(self.config, now);
                tx.prepare_cached(
                    "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, attempts,
                                           first_claimed_at, claimed_at, updated_at, occurrence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'sending', ?7, ?8, 1, ?9, ?9, ?9, ?10)",
                )?
                .execute(params![enrollment_id, client_id, due.campaign.name, cycle, step, kind.as_str(), message_id, due_at, now_text, occurrence])?;
                (tx.last_insert_rowid(), message_id, 1)
            }
        };
        tx.prepare_cached("UPDATE enrollments SET send_at = NULL, moved_reason = NULL, updated_at = ?2 WHERE id = ?1")?
            .execute(params![enrollment_id, now_text])?;
        self.take(row, message_id, step, attempt, due);
        Ok(())
    }
}

/// Whose message a claim takes: the campaign, the enrollment (which the links point at)
/// and the person.
struct Due<'c> {
    campaign: &'c Campaign,
    enrollment_id: i64,
    client: ClientRecord,
}

impl Store {
    #[cfg(test)]
    /// Claims up to `limit` messages that may go out at `now`, committing each as
    /// `sending` before returning it. Enrollments that are not sendable now get their next
    /// moment; those whose person opted out, bounced or returned are stopped.
    pub(crate) fn claim_due(
        &mut self,
        config: &Config,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        self.record_and_claim(config, &[], Some((now, limit)))?
    }

    #[cfg(test)]
    /// Records the fate of claimed messages, all in one transaction (batching the commits
    /// is what makes a durable outbox fast).
    pub(crate) fn record_results(
        &mut self,
        config: &Config,
        results: &[(i64, super::Outcome)],
    ) -> Result<()> {
        self.record_and_claim(config, results, None)??;
        Ok(())
    }

    #[cfg(test)]
    /// [`Store::record_results`], then [`Store::claim_due`] at `now` for up to `limit`
    /// messages when `claim` says so, in one transaction: a [`Store::deliver_step`]
    /// that starts nothing.
    pub(crate) fn record_and_claim(
        &mut self,
        config: &Config,
        results: &[(i64, super::Outcome)],
        claim: Option<(DateTime<Utc>, usize)>,
    ) -> Result<Result<Vec<Claimed>>> {
        let step = Step {
            results: results.to_vec(),
            starts: Vec::new(),
            claim,
            // Nothing starts: unused.
            at: DateTime::UNIX_EPOCH,
        };
        Ok(self.deliver_step(config, &step)?.claimed)
    }

    /// One transaction of a delivery pass, one commit (one sync to disk) for all of it:
    /// records `results`, starts `starts` (each checked by [`Store::withdrawal`] first, so
    /// that its `started_at` is on record before its SMTP transaction begins), then claims
    /// up to `claim`'s limit, each claimed message committed `sending`. The outer error
    /// means nothing of it happened; the inner one that only the claim failed (it is
    /// undone on its own, so a bad row never costs the results or the starts).
    pub(crate) fn deliver_step(&mut self, config: &Config, step: &Step) -> Result<Stepped> {
        let mut tx = self.write_tx()?;
        for (row, outcome) in &step.results {
            record_one(&tx, config, *row, outcome)?;
        }
        let withdrawn = start_in(&tx, config, &step.starts, step.at)?;
        let claimed = if let Some((now, limit)) = step.claim.filter(|&(_, limit)| limit > 0) {
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
        Ok(Stepped { withdrawn, claimed })
    }
}

/// An enrollment whose moment has come: id, campaign, cycle, (step, occurrence), due.
type WaitingRow = (i64, String, i64, (u32, u32), String);
/// A client's id and columns, as [`client_from_row_at`] reads them.
type ClientColumns = (i64, [Option<String>; 10]);
/// A waiting enrollment, its person's suppression reason and columns, and (their account
/// key, why a claim moved it before if one did).
type WaitingPerson = (
    WaitingRow,
    Option<String>,
    ClientColumns,
    (Option<String>, Option<String>),
);
/// A retry or held message whose moment has come: id, enrollment, campaign, cycle, step, due, next attempt.
type QueuedRow = (i64, i64, String, i64, u32, String, String);

/// An enrollment came due at a step that already has a live message row (see
/// [`AtStep`]): never a second copy. A step that went out (or may have) moves the
/// enrollment on; one still out (sending, retry) moves it on with its result; otherwise it
/// waits for an operator.
fn settle_existing(
    tx: &Connection,
    campaign: &Campaign,
    enrollment_id: i64,
    client_id: i64,
    (cycle, (step, occurrence)): (i64, (u32, u32)),
    (row, state, sent_at): (i64, MessageState, Option<&str>),
    now: DateTime<Utc>,
) -> Result<()> {
    match (at_step(state, sent_at.is_some()), sent_at) {
        (AtStep::MoveOn, Some(sent_at)) => {
            let at = parse_time(sent_at)?;
            advance(
                tx,
                Some(campaign),
                enrollment_id,
                client_id,
                cycle,
                (step, occurrence),
                at,
            )?;
        }
        _ => {
            tx.execute(
                "UPDATE enrollments SET send_at = NULL, moved_reason = NULL, updated_at = ?2 WHERE id = ?1",
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
            "campaign {} step {step}: message {row} ({}) already exists; not sent again",
            campaign.name,
            state.as_str()
        ),
    )
}
