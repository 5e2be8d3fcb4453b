//! Read-only views for the operator: status counts, recent failures, and the facts
//! `plan` simulates from (read through the `send_at` index, so its cost follows the
//! messages due in the window, not the number of clients).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rusqlite::params;
use serde::Serialize;

use super::outbox::takes_the_day;
use super::{Result, Store, StoreError, fmt_time, moment, parse_time};
use crate::domain::model::ChurnedAt;
use crate::domain::schedule::Sent;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct MessageRow {
    pub id: i64,
    pub email: String,
    pub campaign: String,
    pub step: u32,
    pub state: String,
    pub attempts: u32,
    pub updated_at: String,
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Status {
    pub clients: u64,
    /// Accounts (`[clients] account`) of more than one contact, and the clients in them.
    pub accounts: u64,
    pub clients_in_accounts: u64,
    /// campaign → enrollment state → count
    pub enrollments: BTreeMap<String, BTreeMap<String, u64>>,
    /// campaign → message state → count
    pub messages: BTreeMap<String, BTreeMap<String, u64>>,
    /// reason → count (opt_out, bounce, forgotten)
    pub suppressions: BTreeMap<String, u64>,
    pub survey_answers: u64,
    /// Returned mail read, by outcome (`bounce`, `reply`...), those undone left out.
    pub inbound: BTreeMap<String, u64>,
    /// Notices to the team (`[inbound] notify`), by state.
    pub notices: super::NoticeCounts,
    /// Messages an operator should look at: uncertain, failed, retrying, held, and those
    /// still `sending`; newest first.
    pub attention: Vec<MessageRow>,
    pub next_wake: Option<DateTime<Utc>>,
    /// The daemon's latest look at a CRM file it syncs, if it ever looked.
    pub last_sync: Option<crate::domain::model::SyncRun>,
    /// The latest look at each file it syncs, by file.
    pub syncs: Vec<crate::domain::model::SyncRun>,
    /// Failed looks at those files, ever.
    pub sync_failures_total: u64,
}

/// One waiting enrollment or retry, as `schedule::plan` needs it.
#[derive(Debug, Clone)]
pub(crate) struct PlanRow {
    pub client_id: i64,
    pub email: String,
    pub timezone: Option<Tz>,
    pub churned_at: ChurnedAt,
    pub campaign: String,
    pub next_step: u32,
    /// Which message of `next_step` (1 for its first).
    pub occurrence: u32,
    pub due: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    /// What went out in this sequence so far.
    pub history: Vec<Sent>,
    /// `clients.account_key`, for the account gap.
    pub account: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct PlanData {
    pub rows: Vec<PlanRow>,
    /// client id → recent sends (one message per person per day, `min_gap_days`): when,
    /// and the campaign and step of each.
    pub busy: HashMap<i64, Vec<(DateTime<Utc>, String, u32)>>,
    /// account key → (client id, send time) of recent messages to its contacts.
    pub accounts: HashMap<String, Vec<(i64, DateTime<Utc>)>>,
}

const ATTENTION_LIMIT: i64 = 20;
/// The message states an operator should look at. `sending` is in flight, or stuck: its
/// result could not be written yet (a full disk), and the daemon keeps trying.
pub(crate) const ATTENTION: &[&str] = &["uncertain", "failed", "retry", "held", "sending"];

/// A held message: its step waits until it renders fit to go.
#[derive(Debug, Clone)]
pub(crate) struct HeldRow {
    pub id: i64,
    pub email: String,
    pub timezone: Option<Tz>,
    pub campaign: String,
    pub step: u32,
    /// When it is tried again (at the next `send_at` moment from then).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

fn grouped(store: &Store, sql: &str) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut stmt = store.conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (campaign, state, n) = row?;
        out.entry(campaign).or_default().insert(state, n as u64);
    }
    Ok(out)
}

impl Store {
    pub(crate) fn status(&self) -> Result<Status> {
        let count = |sql: &str| -> Result<u64> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        let mut suppressions = BTreeMap::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT reason, COUNT(*) FROM suppressions GROUP BY reason")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (reason, n) = row?;
                suppressions.insert(reason, n as u64);
            }
        }
        Ok(Status {
            clients: count("SELECT COUNT(*) FROM clients")?,
            accounts: count(
                "SELECT COUNT(*) FROM (SELECT 1 FROM clients WHERE account_key IS NOT NULL
                 GROUP BY account_key HAVING COUNT(*) > 1)",
            )?,
            clients_in_accounts: count(
                "SELECT coalesce(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM clients
                 WHERE account_key IS NOT NULL GROUP BY account_key HAVING COUNT(*) > 1)",
            )?,
            enrollments: grouped(
                self,
                "SELECT campaign, state, COUNT(*) FROM enrollments GROUP BY campaign, state",
            )?,
            messages: grouped(
                self,
                "SELECT campaign, state, COUNT(*) FROM messages GROUP BY campaign, state",
            )?,
            suppressions,
            survey_answers: count("SELECT COUNT(*) FROM survey_answers")?,
            inbound: self.inbound_by_outcome()?,
            notices: self.notice_counts()?,
            attention: self.messages_in(ATTENTION, ATTENTION_LIMIT)?,
            next_wake: self.next_wake()?,
            last_sync: self.last_sync()?,
            syncs: self.latest_syncs()?,
            sync_failures_total: self.sync_failures_total()?,
        })
    }

    /// The newest messages in any of `states`.
    pub(crate) fn messages_in(&self, states: &[&str], limit: i64) -> Result<Vec<MessageRow>> {
        let mut rows = Vec::new();
        self.for_each_message_in(states, limit, |row| {
            rows.push(row);
            Ok::<_, StoreError>(())
        })?;
        Ok(rows)
    }

    /// The newest `limit` messages in any of `states`, handed to `f` one at a time.
    pub(crate) fn for_each_message_in<E: From<StoreError>>(
        &self,
        states: &[&str],
        limit: i64,
        mut f: impl FnMut(MessageRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let list = states
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(",");
        let run = || -> Result<rusqlite::Statement<'_>> {
            Ok(self.conn.prepare(&format!(
                "SELECT m.id, c.email, m.campaign, m.step, m.state, m.attempts, m.updated_at, m.last_error
                 FROM messages m JOIN clients c ON c.id = m.client_id
                 WHERE m.state IN ({list}) ORDER BY m.updated_at DESC LIMIT ?1"
            ))?)
        };
        let mut stmt = run().map_err(E::from)?;
        let mut rows = stmt.query(params![limit]).map_err(|e| E::from(e.into()))?;
        while let Some(r) = rows.next().map_err(|e| E::from(e.into()))? {
            let read = || -> rusqlite::Result<MessageRow> {
                Ok(MessageRow {
                    id: r.get(0)?,
                    email: r.get(1)?,
                    campaign: r.get(2)?,
                    step: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    updated_at: r.get(6)?,
                    error: r.get(7)?,
                })
            };
            f(read().map_err(|e| E::from(e.into()))?)?;
        }
        Ok(())
    }

    /// Held messages of people still reachable (not opted out, bounced or returned),
    /// oldest first.
    pub(crate) fn held(&self) -> Result<Vec<HeldRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT m.id, c.email, c.timezone, m.campaign, m.step, m.next_attempt_at, m.last_error
             FROM messages m JOIN clients c ON c.id = m.client_id
             WHERE m.state = 'held' AND c.returned_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
             ORDER BY m.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut held = Vec::new();
        for row in rows {
            let (id, email, timezone, campaign, step, next, reason) = row?;
            held.push(HeldRow {
                id,
                email,
                timezone: parse_zone(timezone)?,
                campaign,
                step,
                next_attempt_at: next.as_deref().map(parse_time).transpose()?,
                reason,
            });
        }
        Ok(held)
    }

    /// When messages were claimed since `since`, oldest first (what the rate limits count).
    pub(crate) fn claim_times_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>> {
        let mut stmt = self.conn.prepare(
            "SELECT claimed_at FROM messages WHERE claimed_at >= ?1 AND state NOT IN ('cancelled', 'held') ORDER BY claimed_at",
        )?;
        let times = stmt.query_map(params![fmt_time(since)], |r| r.get::<_, String>(0))?;
        times.map(|t| parse_time(&t?)).collect()
    }

    #[cfg(test)]
    /// [`Store::plan_data_within`] with the one-message-per-day lookback only.
    pub(crate) fn plan_data(&self, until: DateTime<Utc>, now: DateTime<Utc>) -> Result<PlanData> {
        self.plan_data_within(
            until,
            now,
            Duration::hours(crate::domain::schedule::BUSY_LOOKBACK_HOURS),
        )
    }

    /// Everything that may send before `until` (people opted out, bounced or returned are
    /// left out: the claim would stop them), each with its sequence's history, and the
    /// sends of those people in the `lookback` before `now` (the gaps count them). Rows
    /// come in enrollment order, the order in which the claim takes those due at one
    /// moment, so that `plan` gives a tie (two contacts of an account) as the daemon does.
    pub(crate) fn plan_data_within(
        &self,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        lookback: Duration,
    ) -> Result<PlanData> {
        let until_text = fmt_time(until);
        let mut data = PlanData::default();
        let mut stmt = self.conn.prepare(
            "SELECT e.client_id, c.email, c.timezone, c.churned_at, e.campaign, e.next_step, e.due_at, e.due_at,
                    e.next_occurrence, e.id, e.cycle, c.account_key, c.country,
                    e.next_step = 1 AND e.next_occurrence = 1 AND e.last_sent_at IS NULL
             FROM enrollments e JOIN clients c ON c.id = e.client_id
             WHERE e.state = 'active' AND e.send_at IS NOT NULL AND e.send_at <= ?2
               AND c.returned_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
             UNION ALL
             SELECT m.client_id, c.email, c.timezone, c.churned_at, m.campaign, m.step, m.due_at, m.next_attempt_at,
                    m.occurrence, m.enrollment_id, m.cycle, c.account_key, c.country, 0
             FROM messages m JOIN clients c ON c.id = m.client_id
             WHERE m.state = 'retry' AND m.next_attempt_at <= ?1
               AND c.returned_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
             ORDER BY 10",
        )?;
        let rows = stmt.query_map(params![until_text, moment(until)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                (
                    r.get::<_, u32>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, bool>(13)?,
                ),
            ))
        })?;
        for row in rows {
            let (
                client_id,
                email,
                timezone,
                churned_at,
                campaign,
                next_step,
                due,
                not_before,
                more,
            ) = row?;
            let (occurrence, enrollment_id, cycle, account, country, nothing_sent) = more;
            let timezone = parse_zone(timezone)?;
            let churned_at = ChurnedAt::parse(&churned_at)
                .ok_or_else(|| StoreError::Corrupt(format!("churned_at {churned_at:?}")))?;
            data.rows.push(PlanRow {
                client_id,
                email,
                timezone,
                churned_at,
                campaign,
                next_step,
                occurrence,
                due: parse_time(&due)?,
                not_before: parse_time(&not_before)?,
                // A sequence still at its first step that never sent has no history: no
                // query for it (most of a large plan, whose people await their survey).
                history: if nothing_sent {
                    Vec::new()
                } else {
                    super::outbox::history(&self.conn, enrollment_id, cycle)?
                },
                account,
                country,
            });
        }
        let since = fmt_time(now - lookback);
        let mut recent = self.conn.prepare(concat!(
            "SELECT m.client_id, COALESCE(m.sent_at, m.claimed_at), c.account_key, m.campaign, m.step FROM messages m
             JOIN clients c ON c.id = m.client_id
             WHERE m.claimed_at >= ?1 AND m.state IN ",
            takes_the_day!()
        ))?;
        for row in recent.query_map(params![since], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
            ))
        })? {
            let (client_id, at, account, campaign, step) = row?;
            let at = parse_time(&at)?;
            data.busy
                .entry(client_id)
                .or_default()
                .push((at, campaign, step));
            if let Some(account) = account {
                data.accounts
                    .entry(account)
                    .or_default()
                    .push((client_id, at));
            }
        }
        Ok(data)
    }
}

fn parse_zone(timezone: Option<String>) -> Result<Option<Tz>> {
    timezone
        .map(|t| {
            t.parse::<Tz>()
                .map_err(|_| StoreError::Corrupt(format!("timezone {t:?}")))
        })
        .transpose()
}
