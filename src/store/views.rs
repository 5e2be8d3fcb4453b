//! Read-only views for the operator: status counts, recent failures, and the facts
//! `plan` simulates from (read through the `send_at` index, so its cost follows the
//! messages due in the window, not the number of clients).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rusqlite::params;
use serde::Serialize;

use super::outbox::takes_the_day;
use super::{Result, Store, StoreError, fmt_time, from_moment, moment, parse_time};
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

/// How far apart two enrollments' orders are: room for the retries of one enrollment
/// (`outbox resend` of several of its messages) to each have an order of their own.
pub(crate) const ORDER_SPAN: i64 = 1 << 10;

/// One waiting enrollment or retry, as `plan` needs it, with the person's and the
/// account's messages already out.
#[derive(Debug, Clone)]
pub(crate) struct PlanRow {
    /// Its place in the claim's order among those due at one moment, unique: the
    /// enrollment id times [`ORDER_SPAN`] (even), and odd ones after it for that
    /// enrollment's retries, by message id. An enrollment's row is read again by it
    /// ([`Store::plan_row`]); a retry, odd, is kept whole.
    pub order: i64,
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
    /// The person's messages in the lookback (one message per person per day,
    /// `min_gap_days`): when, and the campaign and step of each.
    pub recent: Vec<(DateTime<Utc>, String, u32)>,
    /// (client id, send time) of the messages in the lookback to the contacts of the
    /// person's account (the person included); read only when [`PlanQuery::accounts`].
    pub account_recent: Vec<(i64, DateTime<Utc>)>,
    /// The person has another active enrollment, or a retry: another row may be theirs.
    pub shared: bool,
    /// Why a claim moved the enrollment's `send_at` (`enrollments.moved_reason`): its
    /// simulation starts there and would not say it. None for a retry.
    pub moved: Option<String>,
}

/// What `plan` reads: what may send by `until`, seen from `now`, with the messages of the
/// `lookback` before `now`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanQuery {
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub lookback: Duration,
    /// Read each account's recent messages (some campaign keeps an account gap).
    pub accounts: bool,
}

#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct PlanData {
    pub rows: Vec<PlanRow>,
}

/// The columns of a waiting enrollment's row ([`Store::plan_row_from`]), before `FROM
/// enrollments e` and [`waiting_filter`], which leaves out people opted out, bounced or
/// returned (the claim would stop them). Its not-before time is `send_at`: the daemon
/// claims an enrollment no sooner (a claim that had to wait moved it on). `?1` is
/// `until`'s moment, `?3` the start of the
/// lookback (the column after `shared` says whether the person had a message since: most
/// of a large plan's people had none, and their recent messages are then not looked up).
/// The last is why a claim moved `send_at`, if it did.
macro_rules! waiting_enrollments {
    () => {
        concat!(
            "SELECT e.client_id, c.email, c.timezone, c.churned_at, e.campaign, e.next_step, e.due_at, e.send_at,
                e.next_occurrence, e.id * 1024, e.id, e.cycle, c.account_key, c.country,
                e.next_step = 1 AND e.next_occurrence = 1 AND e.last_sent_at IS NULL,
                EXISTS (SELECT 1 FROM enrollments o WHERE o.client_id = e.client_id AND o.id <> e.id AND o.state = 'active')
                OR EXISTS (SELECT 1 FROM messages r WHERE r.client_id = e.client_id AND r.state = 'retry'),
                EXISTS (SELECT 1 FROM messages h WHERE h.client_id = e.client_id AND h.claimed_at >= ?3
                        AND h.state IN ",
            takes_the_day!(),
            "), e.moved_reason"
        )
    };
}

/// The rest of [`waiting_enrollments`] after `FROM enrollments e` (and how to read it).
macro_rules! waiting_filter {
    () => {
        " JOIN clients c ON c.id = e.client_id
         WHERE e.state = 'active' AND e.send_at IS NOT NULL AND e.send_at <= ?1
           AND c.returned_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))"
    };
}

const ATTENTION_LIMIT: i64 = 20;
/// Up to this many enrollments already due, `plan` sorts them rather than scan the table.
const OVERDUE_SORTED: i64 = 20_000;
/// [`Store::small_cache`], in KiB as `PRAGMA cache_size` takes it (negative).
const PLAN_CACHE_KIB: i64 = -8192;
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
    /// Every row [`Store::plan_scan`] reads (with the one-message-per-day lookback), in
    /// enrollment order.
    pub(crate) fn plan_data(&self, until: DateTime<Utc>, now: DateTime<Utc>) -> Result<PlanData> {
        let query = PlanQuery {
            now,
            until,
            lookback: Duration::hours(crate::domain::schedule::BUSY_LOOKBACK_HOURS),
            accounts: true,
        };
        let mut rows = Vec::new();
        self.plan_scan::<StoreError>(&query, |row| {
            rows.push(row);
            Ok(())
        })?;
        rows.sort_by_key(|r| r.order);
        Ok(PlanData { rows })
    }

    /// A small page cache for the rest of this connection's life, for a command that
    /// reads most rows once (`plan`): the cache sized for imports would only grow its
    /// memory with the file, from the first full scan (a campaign's re-derivation) on.
    pub(crate) fn small_cache(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", PLAN_CACHE_KIB)?;
        Ok(())
    }

    /// Runs `read` inside one read transaction: every row it reads, and every row read
    /// again, comes from the same state of the file, whatever a running daemon writes
    /// (`plan` reads rows again by id; `survey` counts, then lists).
    pub(crate) fn read_snapshot<T, E: From<StoreError>>(
        &self,
        read: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn.execute_batch("BEGIN").map_err(StoreError::from)?;
        let out = read();
        // Nothing was written: ending the transaction either way keeps the file as it was.
        let end = self
            .conn
            .execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out?;
        end.map_err(StoreError::from)?;
        Ok(out)
    }

    /// Everything that may send before `until`, in the order of a lower bound of its
    /// first moment (`max(due, not before, now)`, see `plan::lower_bound`), then of
    /// [`PlanRow::order`]: the rows `plan` simulates, one at a time, so that memory does
    /// not grow with their number. Waiting enrollments the claim would take now come
    /// first, in id order (all bound by `now`), then the later ones in `send_at` order
    /// (the claim's own index, `enrollments_waiting`; `send_at` is their not-before
    /// time); the retries (few: messages that failed for a while) are merged in.
    pub(crate) fn plan_scan<E: From<StoreError>>(
        &self,
        query: &PlanQuery,
        mut each: impl FnMut(PlanRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut retries = self.plan_retries(query)?;
        retries.sort_by_key(|r| (r.due.max(r.not_before).max(query.now), r.order));
        let mut retries = retries.into_iter().peekable();
        let until = moment(query.until);
        // Those already due: few are read through the index and sorted by id; many, in id
        // order straight from the table (sorting them all would delay the first); none,
        // not at all (a scan of the table for nothing would).
        let overdue: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM (SELECT 1 FROM enrollments INDEXED BY enrollments_waiting
                 WHERE state = 'active' AND send_at IS NOT NULL AND send_at <= ?1 LIMIT ?2)",
                params![moment(query.now), OVERDUE_SORTED],
                |r| r.get(0),
            )
            .map_err(StoreError::from)?;
        let due = match overdue {
            0 => None,
            1..OVERDUE_SORTED => Some(concat!(
                waiting_enrollments!(),
                " FROM enrollments e INDEXED BY enrollments_waiting",
                waiting_filter!(),
                " AND e.send_at <= ?2 ORDER BY e.id"
            )),
            _ => Some(concat!(
                waiting_enrollments!(),
                " FROM enrollments e NOT INDEXED",
                waiting_filter!(),
                " AND e.send_at <= ?2 ORDER BY e.id"
            )),
        };
        for sql in due.into_iter().chain([concat!(
            waiting_enrollments!(),
            " FROM enrollments e INDEXED BY enrollments_waiting",
            waiting_filter!(),
            " AND e.send_at > ?2 ORDER BY e.send_at, e.id"
        )]) {
            let mut stmt = self.conn.prepare(sql).map_err(StoreError::from)?;
            let mut rows = stmt
                .query(params![
                    until,
                    moment(query.now),
                    fmt_time(query.now - query.lookback)
                ])
                .map_err(StoreError::from)?;
            while let Some(r) = rows.next().map_err(StoreError::from)? {
                let row = self.plan_row_from(r, query)?;
                let bound = (row.due.max(row.not_before).max(query.now), row.order);
                while let Some(retry) =
                    retries.next_if(|r| (r.due.max(r.not_before).max(query.now), r.order) < bound)
                {
                    each(retry)?;
                }
                each(row)?;
            }
        }
        for retry in retries {
            each(retry)?;
        }
        Ok(())
    }

    /// The waiting enrollment of this [`PlanRow::order`] as [`Store::plan_scan`] read it
    /// (within one [`Store::read_snapshot`]: the row of an order it gave); None if there
    /// is no such waiting enrollment.
    pub(crate) fn plan_row(&self, query: &PlanQuery, order: i64) -> Result<Option<PlanRow>> {
        // In the same snapshot it passes the filter as it did when first read: by id
        // only (no address hashed again for the suppression list).
        let mut stmt = self.conn.prepare_cached(concat!(
            waiting_enrollments!(),
            " FROM enrollments e JOIN clients c ON c.id = e.client_id
             WHERE e.id = ?2 AND e.state = 'active' AND e.send_at IS NOT NULL AND e.send_at <= ?1"
        ))?;
        let mut rows = stmt.query(params![
            moment(query.until),
            order / ORDER_SPAN,
            fmt_time(query.now - query.lookback)
        ])?;
        match rows.next()? {
            Some(r) => Ok(Some(self.plan_row_from(r, query)?)),
            None => Ok(None),
        }
    }

    /// The retries that may send before `until`.
    fn plan_retries(&self, query: &PlanQuery) -> Result<Vec<PlanRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT m.client_id, c.email, c.timezone, c.churned_at, m.campaign, m.step, m.due_at, m.next_attempt_at,
                    m.occurrence, m.enrollment_id * 1024 + 1, m.enrollment_id, m.cycle, c.account_key, c.country, 0, 1, 1, NULL
             FROM messages m JOIN clients c ON c.id = m.client_id
             WHERE m.state = 'retry' AND m.next_attempt_at <= ?1
               AND c.returned_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
             ORDER BY m.enrollment_id, m.id",
        )?;
        let mut rows = stmt.query(params![fmt_time(query.until)])?;
        let mut out: Vec<PlanRow> = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = self.plan_row_from(r, query)?;
            // A second retry of one enrollment comes after the first, with an order of
            // its own, odd like every retry's (kept whole, never read again by order).
            if let Some(last) = out.last()
                && last.order / ORDER_SPAN == row.order / ORDER_SPAN
            {
                row.order = (last.order + 2).min(row.order + ORDER_SPAN - 2);
            }
            out.push(row);
        }
        Ok(out)
    }

    /// A row of [`waiting_enrollments`] or [`Store::plan_retries`], with its sequence's
    /// history and the recent messages of the person (and of their account).
    fn plan_row_from(&self, r: &rusqlite::Row<'_>, query: &PlanQuery) -> Result<PlanRow> {
        let churned_at: String = r.get(3)?;
        let churned_at = ChurnedAt::parse(&churned_at)
            .ok_or_else(|| StoreError::Corrupt(format!("churned_at {churned_at:?}")))?;
        let (client_id, enrollment_id, cycle): (i64, i64, i64) =
            (r.get(0)?, r.get(10)?, r.get(11)?);
        let nothing_sent: bool = r.get(14)?;
        let account: Option<String> = r.get(12)?;
        let since = fmt_time(query.now - query.lookback);
        let mut recent = Vec::new();
        if r.get::<_, bool>(16)? {
            let mut stmt = self.conn.prepare_cached(concat!(
                "SELECT COALESCE(sent_at, claimed_at), campaign, step FROM messages
                 WHERE client_id = ?1 AND claimed_at >= ?2 AND state IN ",
                takes_the_day!()
            ))?;
            let mut rows = stmt.query(params![client_id, since])?;
            while let Some(m) = rows.next()? {
                recent.push((parse_time(&m.get::<_, String>(0)?)?, m.get(1)?, m.get(2)?));
            }
        }
        let mut account_recent = Vec::new();
        if let (true, Some(account)) = (query.accounts, &account) {
            let mut stmt = self.conn.prepare_cached(concat!(
                "SELECT m.client_id, COALESCE(m.sent_at, m.claimed_at) FROM clients a
                 JOIN messages m ON m.client_id = a.id
                 WHERE a.account_key = ?1 AND m.claimed_at >= ?2 AND m.state IN ",
                takes_the_day!()
            ))?;
            let mut rows = stmt.query(params![account, since])?;
            while let Some(m) = rows.next()? {
                account_recent.push((m.get(0)?, parse_time(&m.get::<_, String>(1)?)?));
            }
        }
        Ok(PlanRow {
            order: r.get(9)?,
            client_id,
            email: r.get(1)?,
            timezone: parse_zone(r.get(2)?)?,
            churned_at,
            campaign: r.get(4)?,
            next_step: r.get(5)?,
            occurrence: r.get(8)?,
            due: parse_time(&r.get::<_, String>(6)?)?,
            // An enrollment's `send_at` (a moment), a retry's `next_attempt_at` (text).
            not_before: match r.get_ref(7)? {
                rusqlite::types::ValueRef::Integer(at) => from_moment(at)?,
                _ => parse_time(&r.get::<_, String>(7)?)?,
            },
            // A sequence still at its first step that never sent has no history: no
            // query for it (most of a large plan, whose people await their survey).
            history: if nothing_sent {
                Vec::new()
            } else {
                super::outbox::history(&self.conn, enrollment_id, cycle)?
            },
            account,
            country: r.get(13)?,
            recent,
            account_recent,
            shared: r.get(15)?,
            moved: r.get(17)?,
        })
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

#[cfg(test)]
mod plan_tests;
