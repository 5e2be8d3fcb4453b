//! Enrollments: which client is in which campaign, at which step, due when.
//!
//! Kept in step with the clients (on import) and with the configuration (on start-up,
//! when a campaign is new or its timing or audience changed, and for sequences left
//! without a moment while another process's configuration differed), and stopped when their
//! person opts out, bounces or comes back. A client is enrolled in one campaign only: the
//! first whose audience admits them, when they have no enrollment yet (or a new sequence
//! starts after a return); an enrollment made stays in its campaign. Decides nothing
//! itself: who a campaign admits is `domain::audience`'s to say, when a step is due, and
//! what a message already at it means, `domain::lifecycle`'s and `domain::schedule`'s.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension, Statement, params};

use super::clients::{ClientFacts, load_facts};
use super::{Result, Store, StoreError, fmt_time, log_event, moment, parse_opt_time};
use crate::config::{Campaign, Config};
use crate::domain::audience;
use crate::domain::lifecycle::{self, Exclusion, Reschedule};
use crate::domain::model::{EnrollmentState, MessageState};
use crate::domain::schedule::{self, Sent};

struct Existing {
    id: i64,
    state: EnrollmentState,
    cycle: i64,
    next_step: u32,
    next_occurrence: u32,
    send_at: Option<i64>,
    last_sent_at: Option<DateTime<Utc>>,
}

/// A stable summary of what decides enrollment and timing in a campaign.
fn fingerprint(campaign: &Campaign) -> String {
    let gaps: Vec<String> = campaign
        .steps
        .iter()
        .map(|s| s.after_days.to_string())
        .collect();
    let mut print = format!(
        "quiet={};send_at={};tz={};exclude={};catch_up={};gaps={}",
        campaign.quiet_days,
        campaign.send_at.source(),
        campaign.timezone,
        campaign.exclude_reasons.join(","),
        campaign.catch_up_hours,
        gaps.join(",")
    );
    // Only when set: a campaign without them keeps the fingerprint it had before.
    if let Some(include) = &campaign.include_reasons {
        print.push_str(&format!(";include={}", include.join(",")));
    }
    if !campaign.matches.is_empty() {
        let matches: Vec<String> = campaign
            .matches
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        print.push_str(&format!(";match={}", matches.join(",")));
    }
    if let Some(days) = campaign.enroll_within_days {
        print.push_str(&format!(";enroll_within={days}"));
    }
    print.push_str(&timing_print(campaign));
    print
}

/// What else decides due times: seasonal and recurring steps, the consent horizon, a
/// pause (unpausing reschedules what waited). Empty for a campaign that uses none, so
/// that its stored fingerprint stays as it was.
fn timing_print(campaign: &Campaign) -> String {
    let mut print = String::new();
    for (i, step) in campaign.steps.iter().enumerate() {
        if let Some(on) = step.on {
            print.push_str(&format!(";on{}={:02}-{:02}", i + 1, on.month, on.day));
        }
        if let Some(every) = step.every_days {
            print.push_str(&format!(";every{}={every}", i + 1));
        }
    }
    if let Some(days) = campaign.max_days_since_churn {
        print.push_str(&format!(";horizon={days}"));
    }
    if campaign.paused {
        print.push_str(";paused");
    }
    print
}

/// When a message due at `due` may first go out, seen from `now`: a long-overdue one
/// (an old churn date) waits for the next moment, so `send_at` is right from the start
/// and `plan` reads only what is due in its window.
fn next_moment(campaign: &Campaign, tz: Tz, due: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    schedule::earliest_send(campaign, tz, due, due, now).map(moment)
}

/// Brings one client's enrollment in one campaign in line with the configuration: a
/// client without any enrollment is placed (see [`place`]); an active one whose churn
/// reason the campaign now excludes stops. One whose data moved them to another
/// campaign's audience stays where it is.
pub(crate) fn reconcile(
    conn: &Connection,
    campaigns: &[Campaign],
    campaign: &Campaign,
    client: &ClientFacts<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let tz = schedule::zone(campaign, client.timezone);
    let admitted = !campaign.excludes(client.churn_reason);
    let existing = conn
        .prepare_cached(
            "SELECT id, state, cycle, next_step, send_at, last_sent_at, next_occurrence FROM enrollments WHERE client_id = ?1 AND campaign = ?2",
        )?
        .query_row(params![client.id, campaign.name], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, (r.get::<_, u32>(3)?, r.get::<_, u32>(6)?), r.get::<_, Option<i64>>(4)?, r.get::<_, Option<String>>(5)?))
        })
        .optional()?;
    let existing = match existing {
        Some((id, state, cycle, (next_step, next_occurrence), send_at, last_sent_at)) => {
            Some(Existing {
                id,
                state: enrollment_state(&state)?,
                cycle,
                next_step,
                next_occurrence,
                send_at,
                last_sent_at: parse_opt_time(last_sent_at)?,
            })
        }
        None => None,
    };
    match existing {
        None => {
            place(conn, campaigns, client, now)?;
        }
        Some(e) if e.state != EnrollmentState::Active => {}
        Some(e) if !admitted => {
            // Deleting also deletes its messages and survey answer (an earlier sequence's
            // history): only an enrollment that never had any goes.
            let history: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM messages WHERE enrollment_id = ?1)
                         OR EXISTS (SELECT 1 FROM survey_answers WHERE enrollment_id = ?1)",
                )?
                .query_row(params![e.id], |r| r.get(0))?;
            if lifecycle::excluded(e.next_step, e.send_at.is_some(), history) == Exclusion::Drop {
                // Its dependents by hand: an import runs with foreign keys off.
                conn.execute(
                    "DELETE FROM legacy_links WHERE enrollment_id = ?1",
                    params![e.id],
                )?;
                conn.execute("DELETE FROM enrollments WHERE id = ?1", params![e.id])?;
                // As if never made: the client may belong to another campaign's audience.
                place(conn, campaigns, client, now)?;
            } else {
                cancel_queued(conn, e.id, now)?;
                stop(conn, e.id, EnrollmentState::Completed, now)?;
            }
            log_event(
                conn,
                now,
                Some(client.id),
                "excluded",
                &format!(
                    "campaign {}: churn reason not in its audience",
                    campaign.name
                ),
            )?;
        }
        Some(e) => {
            // The message of the current step, if there is one. A NULL `send_at` alone
            // does not say that a message is out: it is also what a campaign left out of
            // the configuration, or a schedule that never fires again, leaves behind.
            let message: Option<(i64, String)> = conn
                .prepare_cached(
                    "SELECT id, state FROM messages WHERE enrollment_id = ?1 AND cycle = ?2 AND step = ?3 AND occurrence = ?4",
                )?
                .query_row(params![e.id, e.cycle, e.next_step, e.next_occurrence], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let state = match &message {
                Some((_, state)) => Some(message_state(state)?),
                None => None,
            };
            let mut history = super::outbox::history(conn, e.id, e.cycle)?;
            if let (true, Some(at)) = (history.is_empty() && e.next_step > 1, e.last_sent_at) {
                // A step that left no row of its own (a survey another campaign sent):
                // the sequence counts on from its send.
                history.push(Sent {
                    step: e.next_step - 1,
                    occurrence: 1,
                    at,
                });
            }
            let next = lifecycle::reschedule(
                campaign,
                tz,
                client.churned_at,
                (e.next_step, e.next_occurrence),
                &history,
                state,
            );
            match (next, message) {
                (Reschedule::Leave, _) => {}
                (Reschedule::Requeue(due), Some((row, _))) => {
                    // The time until giving up on the address counts from the step's due
                    // time at the earliest.
                    conn.prepare_cached(
                        "UPDATE messages SET due_at = ?2, updated_at = ?3,
                                first_claimed_at = max(CASE state WHEN 'cancelled' THEN ?3 ELSE first_claimed_at END, ?2),
                                next_attempt_at = CASE state WHEN 'cancelled' THEN ?3 ELSE next_attempt_at END,
                                state = 'retry'
                         WHERE id = ?1",
                    )?
                    .execute(params![row, fmt_time(due), fmt_time(now)])?;
                    conn.prepare_cached("UPDATE enrollments SET due_at = ?2, send_at = NULL, moved_reason = NULL, updated_at = ?3 WHERE id = ?1")?
                        .execute(params![e.id, fmt_time(due), fmt_time(now)])?;
                }
                (Reschedule::Due(due) | Reschedule::Requeue(due), _) => {
                    conn.prepare_cached("UPDATE enrollments SET due_at = ?2, send_at = ?3, moved_reason = NULL, updated_at = ?4 WHERE id = ?1")?
                        .execute(params![e.id, fmt_time(due), next_moment(campaign, tz, due, now), fmt_time(now)])?;
                }
                (Reschedule::Move(next), _) => {
                    cancel_queued(conn, e.id, now)?;
                    conn.prepare_cached("UPDATE enrollments SET next_step = ?2, next_occurrence = ?3, due_at = ?4, send_at = ?5, moved_reason = NULL, updated_at = ?6 WHERE id = ?1")?
                        .execute(params![e.id, next.step, next.occurrence, fmt_time(next.due), next_moment(campaign, tz, next.due, now), fmt_time(now)])?;
                }
                (Reschedule::Complete, _) => {
                    cancel_queued(conn, e.id, now)?;
                    stop(conn, e.id, EnrollmentState::Completed, now)?;
                }
                (Reschedule::Expired, _) => {
                    cancel_queued(conn, e.id, now)?;
                    stop(conn, e.id, EnrollmentState::Expired, now)?;
                }
            }
        }
    }
    Ok(())
}

/// An enrollment's stored state; one this build does not know is a damaged database.
pub(crate) fn enrollment_state(text: &str) -> Result<EnrollmentState> {
    EnrollmentState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("enrollment state {text:?}")))
}

/// A message's stored state; one this build does not know is a damaged database.
pub(crate) fn message_state(text: &str) -> Result<MessageState> {
    MessageState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("message state {text:?}")))
}

/// The first step of a new enrollment: when it is due, and the first moment it may go.
pub(crate) struct FirstStep {
    due_at: String,
    send_at: Option<i64>,
}

/// Where a client without a sequence goes: the first campaign whose audience admits
/// them, unless it would have surveyed them too long ago (`enroll_within_days`).
pub(crate) enum Placement {
    /// Enrolled in campaign `index` (in configuration order), the survey due then.
    In(usize, FirstStep),
    /// Campaign `index` admits them, but their survey was due more than its
    /// `enroll_within_days` before now: not enrolled anywhere.
    TooLate(usize),
    /// No campaign admits them.
    Nowhere,
}

/// Where a client without a sequence is enrolled at `now`, and when their survey is due.
/// Pure: an import computes this for the next rows while the previous ones are being
/// written.
pub(crate) fn placement(
    campaigns: &[Campaign],
    client: &ClientFacts<'_>,
    now: DateTime<Utc>,
) -> Placement {
    let Some(index) = audience::first_admitting(campaigns, &client.person) else {
        return Placement::Nowhere;
    };
    let campaign = &campaigns[index];
    let tz = schedule::zone(campaign, client.timezone);
    let due = schedule::survey_due(campaign, client.churned_at, tz);
    if !audience::enrolls_in_time(campaign, due, tz, now) {
        return Placement::TooLate(index);
    }
    Placement::In(index, survey_step(campaign, client, now))
}

/// Whether the client has an enrollment in any campaign, configured or not (a campaign
/// taken out of the configuration may come back).
fn enrolled_anywhere(conn: &Connection, client_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM enrollments WHERE client_id = ?1)")?
        .query_row(params![client_id], |r| r.get(0))?)
}

/// Enrolls a client who has no enrollment in any campaign where [`placement`] says; a
/// contact their account stops is enrolled and stopped (so `export` shows why).
fn place(
    conn: &Connection,
    campaigns: &[Campaign],
    client: &ClientFacts<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if enrolled_anywhere(conn, client.id)? {
        return Ok(());
    }
    if let Placement::In(index, step) = placement(campaigns, client, now) {
        insert(
            conn,
            &campaigns[index].name,
            client.id,
            &step,
            &fmt_time(now),
        )?;
        // As an import does for a new contact: stopped at once when their account came
        // back, or while a reply of it stands.
        super::accounts::stop_if_account_stops(conn, client.id, now)?;
    }
    Ok(())
}

/// When a sequence that starts (or starts again) at `now` has its survey due, and may
/// send it.
fn survey_step(campaign: &Campaign, client: &ClientFacts<'_>, now: DateTime<Utc>) -> FirstStep {
    let tz = schedule::zone(campaign, client.timezone);
    let due = schedule::survey_due(campaign, client.churned_at, tz);
    FirstStep {
        due_at: fmt_time(due),
        send_at: next_moment(campaign, tz, due, now),
    }
}

/// An insert of `rows` new enrollments at their first step: ?1 is the campaign and ?2 the
/// time, shared by every row; row `k` (from 0) binds its client, due time and first
/// moment at ?(3+3k), ?(4+3k) and ?(5+3k) (see [`bind_row`]).
///
/// Several rows are inserted `OR IGNORE`, and the caller checks that all were written: a
/// plain multi-row insert must be able to undo its first rows if a later one fails, so
/// SQLite keeps a statement journal of every page it touches, in a temporary file (that
/// doubled the import's system time).
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(if rows > 1 {
        "INSERT OR IGNORE INTO enrollments (client_id, campaign, state, next_step, due_at, send_at, created_at, updated_at) VALUES "
    } else {
        "INSERT INTO enrollments (client_id, campaign, state, next_step, due_at, send_at, created_at, updated_at) VALUES "
    });
    for k in 0..rows {
        let first = 3 + 3 * k;
        if k > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(?{first}, ?1, 'active', 1, ?{}, ?{}, ?2, ?2)",
            first + 1,
            first + 2
        ));
    }
    sql
}

fn bind_row(
    insert: &mut Statement<'_>,
    k: usize,
    client_id: i64,
    due_at: &str,
    send_at: Option<i64>,
) -> Result<()> {
    let first = 3 + 3 * k;
    insert.raw_bind_parameter(first, client_id)?;
    insert.raw_bind_parameter(first + 1, due_at)?;
    insert.raw_bind_parameter(first + 2, send_at)?;
    Ok(())
}

/// Rows per statement in [`NewEnrollments`].
const ROWS_PER_INSERT: usize = 32;

/// An import's new enrollments in one campaign, written [`ROWS_PER_INSERT`] to a
/// statement. Each run of a statement opens a cursor on the table and on each of its
/// indexes and closes them again, which costs about as much as writing the row itself;
/// a multi-row insert pays that once for all its rows (import writer: 11% fewer
/// instructions). Rows wait here until a statement's worth is ready or until
/// [`NewEnrollments::flush`]: anything that reads enrollments in between flushes first.
pub(crate) struct NewEnrollments<'c> {
    one: Statement<'c>,
    many: Statement<'c>,
    /// (client, due time, first moment); the first `len` are waiting. Slots are reused,
    /// so the due-time texts are not allocated again for every statement.
    pending: Vec<(i64, String, Option<i64>)>,
    len: usize,
}

impl<'c> NewEnrollments<'c> {
    pub(crate) fn prepare(conn: &'c Connection, campaign: &str, now: &str) -> Result<Self> {
        let mut one = conn.prepare(&insert_sql(1))?;
        let mut many = conn.prepare(&insert_sql(ROWS_PER_INSERT))?;
        for insert in [&mut one, &mut many] {
            insert.raw_bind_parameter(1, campaign)?;
            insert.raw_bind_parameter(2, now)?;
        }
        Ok(NewEnrollments {
            one,
            many,
            pending: Vec::with_capacity(ROWS_PER_INSERT),
            len: 0,
        })
    }

    /// Adds the enrollment of a client just created (no enrollment can exist yet).
    pub(crate) fn add(&mut self, client_id: i64, step: &FirstStep) -> Result<()> {
        match self.pending.get_mut(self.len) {
            Some(slot) => {
                slot.0 = client_id;
                slot.1.clear();
                slot.1.push_str(&step.due_at);
                slot.2 = step.send_at;
            }
            None => self
                .pending
                .push((client_id, step.due_at.clone(), step.send_at)),
        }
        self.len += 1;
        if self.len == ROWS_PER_INSERT {
            for (k, (client_id, due_at, send_at)) in self.pending.iter().enumerate() {
                bind_row(&mut self.many, k, *client_id, due_at, *send_at)?;
            }
            let written = self.many.raw_execute()?;
            if written != ROWS_PER_INSERT {
                return Err(StoreError::Corrupt(format!(
                    "{} of {ROWS_PER_INSERT} new enrollments already existed",
                    ROWS_PER_INSERT - written
                )));
            }
            self.len = 0;
        }
        Ok(())
    }

    /// Writes the rows still waiting.
    pub(crate) fn flush(&mut self) -> Result<()> {
        for (client_id, due_at, send_at) in &self.pending[..self.len] {
            bind_row(&mut self.one, 0, *client_id, due_at, *send_at)?;
            self.one.raw_execute()?;
        }
        self.len = 0;
        Ok(())
    }
}

/// Writes a new enrollment at its first step.
pub(crate) fn insert(
    conn: &Connection,
    campaign: &str,
    client_id: i64,
    step: &FirstStep,
    now: &str,
) -> Result<()> {
    let mut insert = conn.prepare_cached(&insert_sql(1))?;
    insert.raw_bind_parameter(1, campaign)?;
    insert.raw_bind_parameter(2, now)?;
    bind_row(&mut insert, 0, client_id, &step.due_at, step.send_at)?;
    insert.raw_execute()?;
    Ok(())
}

/// Starts a new sequence for a client who came back and then left again, in the first
/// campaign whose audience admits them now (as for a client seen for the first time):
/// the next cycle of their enrollment there, or a new enrollment. Their other
/// enrollments stay stopped. Returns where the new sequence went.
pub(crate) fn restart(
    conn: &Connection,
    campaigns: &[Campaign],
    client: &ClientFacts<'_>,
    now: DateTime<Utc>,
) -> Result<Placement> {
    let placed = placement(campaigns, client, now);
    let Placement::In(index, step) = &placed else {
        return Ok(placed);
    };
    let campaign = &campaigns[*index];
    let updated = conn
        .prepare_cached(
            "UPDATE enrollments SET cycle = cycle + 1, state = 'active', next_step = 1, next_occurrence = 1, due_at = ?3, send_at = ?4,
                    moved_reason = NULL, stopped_at = NULL, last_sent_at = NULL, updated_at = ?5
             WHERE client_id = ?1 AND campaign = ?2",
        )?
        .execute(params![client.id, campaign.name, step.due_at, step.send_at, fmt_time(now)])?;
    if updated == 0 {
        insert(conn, &campaign.name, client.id, step, &fmt_time(now))?;
    }
    reconcile(conn, campaigns, campaign, client, now)?;
    Ok(placed)
}

/// Drops the queued retries of one enrollment.
fn cancel_queued(conn: &Connection, enrollment_id: i64, now: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = ?2 WHERE enrollment_id = ?1 AND state IN ('retry', 'held')",
    )?
    .execute(params![enrollment_id, fmt_time(now)])?;
    Ok(())
}

/// Stops every active enrollment of a client, and cancels their queued retries.
pub(crate) fn stop_client(
    conn: &Connection,
    client_id: i64,
    state: EnrollmentState,
    now: DateTime<Utc>,
) -> Result<usize> {
    let stopped = conn
        .prepare_cached(
            "UPDATE enrollments SET state = ?2, send_at = NULL, moved_reason = NULL, due_at = NULL, stopped_at = ?3, updated_at = ?3
             WHERE client_id = ?1 AND state = 'active'",
        )?
        .execute(params![client_id, state.as_str(), fmt_time(now)])?;
    conn.prepare_cached(
        "UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = ?2 WHERE client_id = ?1 AND state IN ('retry', 'held')",
    )?
    .execute(params![client_id, fmt_time(now)])?;
    Ok(stopped)
}

pub(crate) fn stop(
    conn: &Connection,
    enrollment_id: i64,
    state: EnrollmentState,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE enrollments SET state = ?2, send_at = NULL, moved_reason = NULL, due_at = NULL, stopped_at = ?3, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![enrollment_id, state.as_str(), fmt_time(now)])?;
    Ok(())
}

/// Derives again the active sequences of `campaign` that wait without a moment and
/// without a message at their step. Another process (`plan`, `preview`, an import) may
/// have stored the campaign as this configuration has it while a daemon that did not
/// know it yet left its people without a moment: the stored fingerprint alone would
/// leave them so. One read of the enrollments; a schedule that never fires again stays
/// without a moment.
fn rederive_unscheduled(
    tx: &Connection,
    config: &Config,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> Result<()> {
    let clients: Vec<i64> = tx
        .prepare_cached(
            "SELECT e.client_id FROM enrollments e
             WHERE e.campaign = ?1 AND e.state = 'active' AND e.send_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.enrollment_id = e.id
                                 AND m.cycle = e.cycle AND m.step = e.next_step AND m.occurrence = e.next_occurrence)",
        )?
        .query_map(params![campaign.name], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for id in clients {
        if let Some(row) = load_facts(tx, id)? {
            reconcile(tx, &config.campaigns, campaign, &row.facts(), now)?;
        }
    }
    Ok(())
}

impl Store {
    /// Enrolls clients in campaigns that are new or whose timing or audience changed, and
    /// parks the enrollments of campaigns no longer configured. Returns how many
    /// campaigns were (re)computed.
    pub(crate) fn sync_campaigns(&mut self, config: &Config, now: DateTime<Utc>) -> Result<usize> {
        let tx = self.write_tx()?;
        super::renames::carry_over(&tx, config, now)?;
        super::accounts::sync_accounts(&tx, config, now)?;
        let mut recomputed = 0;
        for campaign in &config.campaigns {
            let print = fingerprint(campaign);
            let stored: Option<String> = tx
                .query_row(
                    "SELECT fingerprint FROM campaigns WHERE name = ?1",
                    params![campaign.name],
                    |r| r.get(0),
                )
                .optional()?;
            if stored.as_deref() == Some(print.as_str()) {
                rederive_unscheduled(&tx, config, campaign, now)?;
                continue;
            }
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM clients")?
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            for id in ids {
                let row = load_facts(&tx, id)?;
                if let Some(row) = row {
                    reconcile(&tx, &config.campaigns, campaign, &row.facts(), now)?;
                }
            }
            tx.execute(
                "INSERT INTO campaigns (name, fingerprint, synced_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET fingerprint = ?2, synced_at = ?3",
                params![campaign.name, print, fmt_time(now)],
            )?;
            recomputed += 1;
        }
        let known: Vec<String> = tx
            .prepare("SELECT name FROM campaigns")?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        for name in known.iter().filter(|n| config.campaign(n).is_none()) {
            tx.execute(
                "UPDATE enrollments SET send_at = NULL, moved_reason = NULL WHERE campaign = ?1 AND state = 'active'",
                params![name],
            )?;
            tx.execute("DELETE FROM campaigns WHERE name = ?1", params![name])?;
        }
        tx.commit()?;
        Ok(recomputed)
    }
}

impl Store {
    /// For each configured campaign with a `max_days_since_churn`, how many of its active
    /// sequences belong to clients already past it at `now`, read from the database at
    /// `path` without changing or creating anything; None when there is no database.
    pub(crate) fn past_horizon_at(
        path: &std::path::Path,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<Option<std::collections::BTreeMap<String, u64>>> {
        if !path.exists()
            || config
                .campaigns
                .iter()
                .all(|c| c.max_days_since_churn.is_none())
        {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let has_tables = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'enrollments'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !has_tables {
            return Ok(None);
        }
        let mut past = std::collections::BTreeMap::new();
        let mut rows = conn.prepare(
            "SELECT e.campaign, c.churned_at, c.timezone FROM enrollments e JOIN clients c ON c.id = e.client_id
             WHERE e.state = 'active'",
        )?;
        let rows = rows.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (name, churned_at, timezone) = row?;
            let Some(campaign) = config.campaign(&name) else {
                continue;
            };
            if campaign.max_days_since_churn.is_none() {
                continue;
            }
            let churned = crate::domain::model::ChurnedAt::parse(&churned_at)
                .ok_or_else(|| StoreError::Corrupt(format!("churned_at {churned_at:?}")))?;
            let tz = schedule::zone(
                campaign,
                super::clients::decode_timezone(timezone.as_deref())?,
            );
            let count = past.entry(name).or_insert(0u64);
            *count += u64::from(audience::past_horizon(campaign, churned, tz, now));
        }
        Ok(Some(past))
    }
}
