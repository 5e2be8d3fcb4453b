//! Read-only numbers for the operator's report (`winback report`), the Prometheus
//! scrape (`GET /metrics`), and the one-client lookup `winback preview` renders for.
//!
//! Nothing here writes. The metrics queries run on every scrape, so each is an
//! index-only count or a `MIN` over a partial index (`messages_by_state`,
//! `enrollments_waiting`, `messages_retry`); only `suppressions` (one row per opted-out,
//! bounced or forgotten address) and `inbound_messages` (one row per returned message)
//! are scanned.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::clients::load_by_email;
use super::outbox::BLOCKED;
use super::{Result, Store, email_hash, fmt_time, from_moment, moment, parse_opt_time};
use crate::domain::model::ClientRecord;

/// People at each stage, across campaigns; each stage counts distinct former clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Funnel {
    /// Every former client imported.
    pub left: u64,
    /// In at least one campaign's audience (never those we let go).
    pub enrolled: u64,
    /// The survey was accepted by the mail server (`sent`).
    pub surveyed: u64,
    /// Answered the survey.
    pub answered: u64,
    /// Enrolled, and recorded as a client again (`winback returned`).
    pub came_back: u64,
}

/// How the sequences of one campaign ended at one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StepStops {
    pub campaign: String,
    /// The last step sent before the stop; 0 when no message had gone out yet.
    pub step: u32,
    /// Sequences stopped by an opt-out after this step.
    pub opt_outs: u64,
    /// Messages of this step refused for good (the address bounced).
    pub bounces: u64,
}

/// Everything `winback report` draws, except the figures over time and the upcoming sends.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ReportData {
    pub funnel: Funnel,
    /// CRM churn reason (`None`: not given) → former clients.
    pub churn_reasons: Vec<(Option<String>, u64)>,
    /// (reason given in the survey, would work with us again) → answers.
    pub answers: Vec<(Option<String>, Option<String>, u64)>,
    /// Sorted by campaign, then step.
    pub stops: Vec<StepStops>,
    /// Message state → messages, all campaigns.
    pub messages: BTreeMap<String, u64>,
    /// Returned mail by campaign, step and outcome, undone ones left out.
    pub returned: Vec<InboundCount>,
    /// The latest looks at the CRM files the daemon syncs, newest first.
    pub syncs: Vec<crate::domain::model::SyncRun>,
    /// Failed looks at those files, ever.
    pub sync_failures_total: u64,
}

/// People surveyed, counted from an index alone (schema17.sql): over a million sent
/// messages, no row of the table is read.
const SURVEYED: &str = "SELECT COUNT(DISTINCT client_id) FROM messages INDEXED BY messages_sent
     WHERE kind = 'survey' AND state = 'sent'";

/// Looks at the sync files the report lists.
const REPORTED_SYNCS: usize = 10;

/// Returned mail of one outcome that answered one step of one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct InboundCount {
    /// `None`: tied to no message we sent (unrelated mail, or a person never mailed).
    pub campaign: Option<String>,
    pub step: Option<u32>,
    /// `bounce`, `blocked`, `reply`... (`domain::inbound::Outcome::as_str`).
    pub outcome: String,
    pub messages: u64,
}

/// The numbers behind `GET /metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metrics {
    /// Message state → messages (only the states present).
    pub messages: BTreeMap<String, u64>,
    /// Suppression reason (opt_out, bounce, forgotten) → addresses.
    pub suppressions: BTreeMap<String, u64>,
    /// Active enrollments whose moment has come, plus retries whose time has come.
    pub queue_depth: u64,
    /// The earliest moment among those: how long the oldest due message has waited.
    pub oldest_due: Option<DateTime<Utc>>,
    /// The daemon's latest look at each CRM file it syncs, by file.
    pub syncs: Vec<crate::domain::model::SyncRun>,
    /// Failed looks at those files, ever.
    pub sync_failures_total: u64,
    /// Messages waiting to be retried after a recipient's server refused them by policy.
    pub blocked: u64,
    /// Returned mail read (`winback inbound`, mailboxes), by outcome; undone ones left out.
    pub inbound: BTreeMap<String, u64>,
}

/// A client as `preview` needs it: the record, and their enrollment in the campaign asked
/// about (what its links point at), if they are enrolled in it.
#[derive(Debug, Clone)]
pub(crate) struct PreviewClient {
    pub record: ClientRecord,
    pub enrollment_id: Option<i64>,
    pub returned_at: Option<DateTime<Utc>>,
    /// Why the address is never mailed (`opt_out`, `bounce`, `forgotten`), if it is not.
    pub suppressed: Option<String>,
}

/// The page cache of a command that only reads, in KiB. SQLite's sorter (a `GROUP BY`,
/// `DISTINCT` or `ORDER BY` without an index) holds up to the cache's size too, so the
/// writers' 64 MiB would let a count over a million rows cost twice that.
const READING_CACHE_KIB: i64 = 16 * 1024;

impl Store {
    /// Shrinks the page cache for a command that only reads and counts (`status`,
    /// `report`, `survey`, `outbox list`, `export`): a scan of a million rows then stays
    /// within tens of MiB beside the running daemon. Writers keep their larger cache.
    pub(crate) fn for_reading(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -READING_CACHE_KIB)?;
        Ok(())
    }

    /// `(campaign, step) → count` from a query selecting those three columns.
    fn counts_by_step(&self, sql: &str) -> Result<Vec<((String, u32), u64)>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, u32>(1)?),
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The funnel, reasons, answers and stops for `winback report`.
    pub(crate) fn report_data(&self) -> Result<ReportData> {
        let count = |sql: &str| -> Result<u64> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        let funnel = Funnel {
            left: count("SELECT COUNT(*) FROM clients")?,
            enrolled: count("SELECT COUNT(DISTINCT client_id) FROM enrollments")?,
            surveyed: count(SURVEYED)?,
            answered: count("SELECT COUNT(DISTINCT client_id) FROM survey_answers")?,
            came_back: count(
                "SELECT COUNT(*) FROM clients c WHERE c.returned_at IS NOT NULL
                 AND EXISTS (SELECT 1 FROM enrollments e WHERE e.client_id = c.id)",
            )?,
        };

        let churn_reasons = self.churn_reasons()?;

        let mut answers = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT reason, would_return, COUNT(*) FROM survey_answers GROUP BY reason, would_return",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?)))? {
            let (reason, would_return, n) = row?;
            answers.push((reason, would_return, n as u64));
        }

        // An opt-out is put at the last step sent in the sequence it stopped; a bounce at
        // the step whose message was refused.
        let opt_outs = self.counts_by_step(
            "SELECT e.campaign,
                    COALESCE((SELECT MAX(m.step) FROM messages m
                              WHERE m.enrollment_id = e.id AND m.cycle = e.cycle
                                AND m.state IN ('sent', 'uncertain')), 0),
                    COUNT(*)
             FROM enrollments e WHERE e.state = 'opted_out' GROUP BY 1, 2",
        )?;
        let bounces = self.counts_by_step(
            "SELECT m.campaign, m.step, COUNT(*) FROM messages m JOIN enrollments e ON e.id = m.enrollment_id
             WHERE m.state = 'failed' AND e.state = 'bounced' AND m.cycle = e.cycle GROUP BY 1, 2",
        )?;
        let mut stops: BTreeMap<(String, u32), (u64, u64)> = BTreeMap::new();
        for (key, n) in opt_outs {
            stops.entry(key).or_default().0 += n;
        }
        for (key, n) in bounces {
            stops.entry(key).or_default().1 += n;
        }
        let stops = stops
            .into_iter()
            .map(|((campaign, step), (opt_outs, bounces))| StepStops {
                campaign,
                step,
                opt_outs,
                bounces,
            })
            .collect();

        Ok(ReportData {
            funnel,
            churn_reasons,
            answers,
            stops,
            messages: self.messages_by_state()?,
            returned: self.inbound_counts()?,
            syncs: self.recent_syncs(REPORTED_SYNCS)?,
            sync_failures_total: self.sync_failures_total()?,
        })
    }

    /// CRM churn reason (`None`: not given) → former clients, most first. Counted as the
    /// table is read rather than by a GROUP BY, which would sort every client first; an
    /// index on the reason would cost every import more than it saves here.
    fn churn_reasons(&self) -> Result<Vec<(Option<String>, u64)>> {
        let mut given: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut not_given = 0;
        let mut stmt = self.conn.prepare("SELECT churn_reason FROM clients")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            if r.get_ref(0)? == rusqlite::types::ValueRef::Null {
                not_given += 1;
                continue;
            }
            let reason = text(r, 0)?;
            match given.get_mut(reason) {
                Some(n) => *n += 1,
                None => {
                    given.insert(reason.to_string(), 1);
                }
            }
        }
        let mut out: Vec<(Option<String>, u64)> =
            given.into_iter().map(|(k, n)| (Some(k), n)).collect();
        if not_given > 0 {
            out.push((None, not_given));
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Cheap counts for a Prometheus scrape at `now`.
    pub(crate) fn metrics(&self, now: DateTime<Utc>) -> Result<Metrics> {
        let now_text = fmt_time(now);
        let mut suppressions = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT reason, COUNT(*) FROM suppressions GROUP BY reason")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (reason, n) = row?;
            suppressions.insert(reason, n as u64);
        }
        let (waiting, oldest_waiting): (i64, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), MIN(send_at) FROM enrollments
                 WHERE state = 'active' AND send_at IS NOT NULL AND send_at <= ?1",
            )?
            .query_row(params![moment(now)], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let (retries, oldest_retry): (i64, Option<String>) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), MIN(next_attempt_at) FROM messages
                 WHERE state = 'retry' AND next_attempt_at <= ?1",
            )?
            .query_row(params![now_text], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let oldest_due = [
            oldest_waiting.map(from_moment).transpose()?,
            parse_opt_time(oldest_retry)?,
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(Metrics {
            messages: self.messages_by_state()?,
            suppressions,
            queue_depth: (waiting + retries) as u64,
            oldest_due,
            syncs: self.latest_syncs()?,
            sync_failures_total: self.sync_failures_total()?,
            blocked: self
                .conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM messages
                     WHERE state = 'retry' AND last_error LIKE ?1 || '%'",
                )?
                .query_row(params![BLOCKED], |r| r.get::<_, i64>(0))? as u64,
            inbound: self.inbound_by_outcome()?,
        })
    }

    /// Returned mail read, by campaign, step and outcome (sorted so, unmatched first);
    /// undone ones left out. One query for `status`, `/metrics` and the report.
    pub(super) fn inbound_counts(&self) -> Result<Vec<InboundCount>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT campaign, step, outcome, COUNT(*) FROM inbound_messages
             WHERE undone_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(InboundCount {
                campaign: r.get(0)?,
                step: r.get(1)?,
                outcome: r.get(2)?,
                messages: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Outcome → returned messages read, those undone left out.
    pub(super) fn inbound_by_outcome(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for count in self.inbound_counts()? {
            *out.entry(count.outcome).or_insert(0) += count.messages;
        }
        Ok(out)
    }

    /// Message state → messages (an index-only count over `messages_by_state`).
    fn messages_by_state(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM messages GROUP BY state")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (state, n) = row?;
            out.insert(state, n as u64);
        }
        Ok(out)
    }

    /// The former client with address `email`, and their enrollment in `campaign`.
    pub(crate) fn preview_client(
        &self,
        email: &str,
        campaign: &str,
    ) -> Result<Option<PreviewClient>> {
        let Some(client) = load_by_email(&self.conn, email)? else {
            return Ok(None);
        };
        let enrollment_id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM enrollments WHERE client_id = ?1 AND campaign = ?2",
                params![client.id, campaign],
                |r| r.get(0),
            )
            .optional()?;
        let suppressed: Option<String> = self
            .conn
            .query_row(
                "SELECT reason FROM suppressions WHERE email_hash = ?1",
                params![email_hash(&client.record.email)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(Some(PreviewClient {
            record: client.record,
            enrollment_id,
            returned_at: client.returned_at,
            suppressed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, day, hour, 0, 0)
            .single()
            .unwrap()
    }

    pub(super) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        (dir, store)
    }

    /// Rows written by hand: the report reads the tables, whatever wrote them.
    pub(super) fn seed(store: &Store) {
        let t = |d, h| fmt_time(at(d, h));
        let sql = format!(
            "INSERT INTO clients (id, email, churned_at, churn_reason, returned_at, created_at, updated_at) VALUES
               (1, 'a@x.example', '2025-01-01', 'price', NULL, '{t0}', '{t0}'),
               (2, 'b@x.example', '2025-01-01', 'price', '{t2}', '{t0}', '{t0}'),
               (3, 'c@x.example', '2025-01-01', 'competitor', NULL, '{t0}', '{t0}'),
               (4, 'd@x.example', '2025-01-01', 'we_ended', '{t2}', '{t0}', '{t0}'),
               (5, 'e@x.example', '2025-01-01', NULL, NULL, '{t0}', '{t0}');
             INSERT INTO enrollments (id, client_id, campaign, state, next_step, due_at, send_at, created_at, updated_at) VALUES
               (1, 1, 'c', 'opted_out', 2, NULL, NULL, '{t0}', '{t0}'),
               (2, 2, 'c', 'returned', 2, NULL, NULL, '{t0}', '{t0}'),
               (3, 3, 'c', 'bounced', 1, NULL, NULL, '{t0}', '{t0}'),
               (5, 5, 'c', 'active', 1, '{t1}', {m1}, '{t0}', '{t0}');
             INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, first_claimed_at, claimed_at, next_attempt_at, updated_at) VALUES
               (1, 1, 'c', 1, 1, 'survey', 'sent', '<1@x>', '{t0}', '{t0}', '{t0}', NULL, '{t0}'),
               (2, 2, 'c', 1, 1, 'survey', 'sent', '<2@x>', '{t0}', '{t0}', '{t0}', NULL, '{t0}'),
               (3, 3, 'c', 1, 1, 'survey', 'failed', '<3@x>', '{t0}', '{t0}', '{t0}', NULL, '{t0}'),
               (5, 5, 'c', 1, 1, 'survey', 'retry', '<5@x>', '{t0}', '{t0}', '{t0}', '{t3}', '{t0}');
             INSERT INTO survey_answers (enrollment_id, client_id, campaign, reason, would_return, created_at, updated_at) VALUES
               (2, 2, 'c', 'competitor', 'yes', '{t0}', '{t0}');
             INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES
               ('{ha}', 'a@x.example', 'opt_out', 'cli', '{t0}'),
               ('{hc}', 'c@x.example', 'bounce', 'smtp', '{t0}');",
            t0 = t(1, 8),
            t1 = t(2, 10),
            t2 = t(3, 9),
            t3 = t(2, 12),
            m1 = moment(at(2, 10)),
            ha = email_hash("a@x.example"),
            hc = email_hash("c@x.example"),
        );
        store.conn.execute_batch(&sql).unwrap();
    }

    #[test]
    fn report_counts_people_at_each_stage_and_stops_per_step() {
        let (_dir, store) = store();
        seed(&store);
        let data = store.report_data().unwrap();
        assert_eq!(
            data.funnel,
            Funnel {
                left: 5,
                enrolled: 4,
                surveyed: 2,
                answered: 1,
                // Client 4 came back but was never in a campaign: not a win of ours.
                came_back: 1,
            }
        );
        // Most first; a tie in the order SQL sorts: not given, then by name.
        let reason = |r: Option<&str>, n| (r.map(str::to_string), n);
        assert_eq!(
            data.churn_reasons,
            [
                reason(Some("price"), 2),
                reason(None, 1),
                reason(Some("competitor"), 1),
                reason(Some("we_ended"), 1),
            ]
        );
        assert_eq!(
            data.answers,
            vec![(Some("competitor".to_string()), Some("yes".to_string()), 1)]
        );
        assert_eq!(
            data.stops,
            vec![StepStops {
                campaign: "c".to_string(),
                step: 1,
                opt_outs: 1,
                bounces: 1,
            }]
        );
        assert_eq!(data.messages.get("sent"), Some(&2));
    }

    #[test]
    fn returned_mail_is_counted_per_campaign_step_and_outcome_without_undone_ones() {
        let (_dir, store) = store();
        let t0 = fmt_time(at(1, 8));
        let row = |key: &str, campaign: &str, step: &str, outcome: &str, undone: &str| {
            format!(
                "('{key}', '{t0}', '{outcome}', {campaign}, {step}, {undone})",
                undone = if undone.is_empty() {
                    "NULL".to_string()
                } else {
                    format!("'{undone}'")
                }
            )
        };
        let rows = [
            row("id:1", "'c'", "1", "bounce", ""),
            row("id:2", "'c'", "1", "bounce", ""),
            row("id:3", "'c'", "1", "bounce", &t0),
            row("id:4", "'c'", "1", "blocked", ""),
            row("id:5", "'c'", "2", "reply", ""),
            row("id:6", "'d'", "1", "reply", &t0),
            row("id:7", "NULL", "NULL", "unrelated", ""),
        ];
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO inbound_messages (key, received_at, outcome, campaign, step, undone_at) VALUES {};",
                rows.join(", ")
            ))
            .unwrap();
        let count =
            |campaign: Option<&str>, step: Option<u32>, outcome: &str, messages| InboundCount {
                campaign: campaign.map(str::to_string),
                step,
                outcome: outcome.to_string(),
                messages,
            };
        assert_eq!(
            store.report_data().unwrap().returned,
            vec![
                count(None, None, "unrelated", 1),
                count(Some("c"), Some(1), "blocked", 1),
                count(Some("c"), Some(1), "bounce", 2),
                count(Some("c"), Some(2), "reply", 1),
            ],
            "campaign d's only reply was undone"
        );
        let totals = |s: &Store| s.metrics(at(2, 9)).unwrap().inbound;
        assert_eq!(
            totals(&store),
            BTreeMap::from([
                ("blocked".to_string(), 1),
                ("bounce".to_string(), 2),
                ("reply".to_string(), 1),
                ("unrelated".to_string(), 1),
            ]),
            "status and /metrics add up the same rows"
        );
    }

    #[test]
    fn metrics_count_what_is_due_and_how_long_it_waited() {
        let (_dir, store) = store();
        seed(&store);
        let before = store.metrics(at(2, 9)).unwrap();
        assert_eq!(before.queue_depth, 0);
        assert_eq!(before.oldest_due, None);
        let later = store.metrics(at(2, 13)).unwrap();
        assert_eq!(later.queue_depth, 2, "the waiting enrollment and the retry");
        assert_eq!(later.oldest_due, Some(at(2, 10)));
        assert_eq!(later.suppressions.get("opt_out"), Some(&1));
        assert_eq!(later.suppressions.get("bounce"), Some(&1));
        assert_eq!(later.messages.get("retry"), Some(&1));
    }

    #[test]
    fn preview_client_finds_the_enrollment_of_the_campaign() {
        let (_dir, store) = store();
        seed(&store);
        let found = store.preview_client("A@X.example", "c").unwrap().unwrap();
        assert_eq!(found.record.email, "a@x.example");
        assert_eq!(found.enrollment_id, Some(1));
        assert_eq!(found.suppressed.as_deref(), Some("opt_out"));
        let other = store
            .preview_client("a@x.example", "other")
            .unwrap()
            .unwrap();
        assert_eq!(other.enrollment_id, None, "not enrolled in that campaign");
        assert!(
            store
                .preview_client("nobody@x.example", "c")
                .unwrap()
                .is_none()
        );
    }
}

/// What happened in a period, counted per UTC hour in SQL (a few rows per hour, however
/// many messages); `domain::report_period` puts the hours in the report zone's weeks or
/// months. The first field of each is the hour, `2026-06-02T15`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PeriodRows {
    /// (hour, campaign, step, kind) → messages accepted by the mail server.
    pub sent: Vec<(String, String, u32, String, u64)>,
    /// (hour, campaign) → survey answers first given that day.
    pub answers: Vec<(String, String, u64)>,
    /// (hour, reason, source) → addresses suppressed (`opt_out`, `bounce`).
    pub suppressions: Vec<(String, String, String, u64)>,
    /// (hour) → replies read from the inbound mailbox, undone ones left out.
    pub replies: Vec<(String, u64)>,
    /// (hour) → former clients in a campaign recorded as clients again (as the funnel
    /// counts them: not those who came back before any campaign took them in).
    pub returns: Vec<(String, u64)>,
    /// (reason given in the survey, would work with us again) → answers given in the period.
    pub reasons: Vec<(Option<String>, Option<String>, u64)>,
    /// People in the period: surveyed (a survey went), answered, came back.
    pub surveyed: u64,
    pub answered: u64,
    pub came_back: u64,
}

/// The highest client id the period's bitmap of people surveyed is made for (16 MiB).
const MAX_BITMAP_ID: usize = 128 << 20;

/// The period counts `Store::period_rows` makes, each over a range of an index.
// Named: without statistics SQLite would take `messages_by_state` and read every sent row.
// Not grouped in SQL: a GROUP BY on the hour would sort every row first; read in the
// index's order, the rows are counted an hour at a time (`Store::sent_by_hour`).
const SENT_BY_DAY: &str =
    "SELECT sent_at, campaign, step, kind, client_id FROM messages INDEXED BY messages_sent
     WHERE state = 'sent' AND sent_at >= ?1 AND sent_at < ?2";
const ANSWERS_BY_DAY: &str =
    "SELECT substr(created_at, 1, 13), campaign, COUNT(*) FROM survey_answers
     WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1, 2 ORDER BY 1, 2";
const SUPPRESSIONS_BY_DAY: &str =
    "SELECT substr(created_at, 1, 13), reason, source, COUNT(*) FROM suppressions
     WHERE reason IN ('opt_out', 'bounce') AND created_at >= ?1 AND created_at < ?2
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
const RETURNS_BY_DAY: &str = "SELECT substr(returned_at, 1, 13), COUNT(*) FROM clients
     WHERE returned_at >= ?1 AND returned_at < ?2
       AND EXISTS (SELECT 1 FROM enrollments e WHERE e.client_id = clients.id)
     GROUP BY 1 ORDER BY 1";

impl Store {
    /// The period figures for `from..to` (`to` excluded).
    pub(crate) fn period_rows(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<PeriodRows> {
        let (from, to) = (fmt_time(from), fmt_time(to));
        let conn = &self.conn;
        let mut out = PeriodRows::default();
        let (sent, surveyed) = self.sent_by_hour(&from, &to)?;
        out.sent = sent;
        let mut stmt = conn.prepare(ANSWERS_BY_DAY)?;
        for row in stmt.query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })? {
            out.answers.push(row?);
        }
        let mut stmt = conn.prepare(SUPPRESSIONS_BY_DAY)?;
        for row in stmt.query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
        })? {
            out.suppressions.push(row?);
        }
        let by_day = |sql: &str| -> Result<Vec<(String, u64)>> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(params![from, to], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        };
        out.replies = by_day(
            "SELECT substr(received_at, 1, 13), COUNT(*) FROM inbound_messages
             WHERE outcome = 'reply' AND undone_at IS NULL AND received_at >= ?1 AND received_at < ?2
             GROUP BY 1 ORDER BY 1",
        )?;
        out.returns = by_day(RETURNS_BY_DAY)?;
        let mut stmt = conn.prepare(
            "SELECT reason, would_return, COUNT(*) FROM survey_answers
             WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        )?;
        for row in stmt.query_map(params![from, to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })? {
            out.reasons.push(row?);
        }
        let count = |sql: &str| -> Result<u64> {
            Ok(conn.query_row(sql, params![from, to], |r| r.get::<_, i64>(0))? as u64)
        };
        out.surveyed = match surveyed {
            Some(people) => people,
            None => count(
                "SELECT COUNT(DISTINCT client_id) FROM messages INDEXED BY messages_sent
                 WHERE kind = 'survey' AND state = 'sent' AND sent_at >= ?1 AND sent_at < ?2",
            )?,
        };
        out.answered = count(
            "SELECT COUNT(DISTINCT client_id) FROM survey_answers WHERE created_at >= ?1 AND created_at < ?2",
        )?;
        out.came_back = count(
            "SELECT COUNT(*) FROM clients c WHERE returned_at >= ?1 AND returned_at < ?2
                   AND EXISTS (SELECT 1 FROM enrollments e WHERE e.client_id = c.id)",
        )?;
        Ok(out)
    }

    /// (hour, campaign, step, kind) → messages sent in `from..to`, sorted so. The rows come
    /// in `sent_at` order; each hour's few counts are put out when the next hour begins,
    /// so memory holds one hour's groups, however many messages.
    ///
    /// Also the people a survey went to in the period, marked in a bitmap of client ids as
    /// the rows pass (an eighth of a byte per client); `None` when the ids run too high
    /// for one, and the caller counts them in SQL.
    #[allow(clippy::type_complexity)]
    fn sent_by_hour(
        &self,
        from: &str,
        to: &str,
    ) -> Result<(Vec<(String, String, u32, String, u64)>, Option<u64>)> {
        let max_id: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(id), 0) FROM clients", [], |r| r.get(0))?;
        let mut surveyed = usize::try_from(max_id)
            .ok()
            .filter(|id| *id <= MAX_BITMAP_ID)
            .map(|id| vec![0_u64; id / 64 + 1]);
        let mut out = Vec::new();
        let mut hour = String::new();
        let mut groups: BTreeMap<(String, u32, String), u64> = BTreeMap::new();
        let mut flush = |hour: &str, groups: &mut BTreeMap<(String, u32, String), u64>| {
            for ((campaign, step, kind), n) in std::mem::take(groups) {
                out.push((hour.to_string(), campaign, step, kind, n));
            }
        };
        let mut stmt = self.conn.prepare(SENT_BY_DAY)?;
        let mut rows = stmt.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            let sent_at = text(r, 0)?;
            let this_hour = sent_at.get(..13).unwrap_or(sent_at);
            if this_hour != hour {
                flush(&hour, &mut groups);
                hour = this_hour.to_string();
            }
            let (campaign, step, kind) = (text(r, 1)?, r.get::<_, u32>(2)?, text(r, 3)?);
            if kind == "survey"
                && let Some(bits) = surveyed.as_mut()
            {
                let id = usize::try_from(r.get::<_, i64>(4)?).unwrap_or(usize::MAX);
                match bits.get_mut(id / 64) {
                    Some(word) => *word |= 1 << (id % 64),
                    // An id beyond the bitmap: written after it was sized.
                    None => surveyed = None,
                }
            }
            // The common case, a group already counted this hour, allocates nothing.
            match groups
                .iter_mut()
                .find(|((c, s, k), _)| c == campaign && *s == step && k == kind)
            {
                Some((_, n)) => *n += 1,
                None => {
                    groups.insert((campaign.to_string(), step, kind.to_string()), 1);
                }
            }
        }
        flush(&hour, &mut groups);
        let surveyed = surveyed.map(|bits| bits.iter().map(|w| u64::from(w.count_ones())).sum());
        Ok((out, surveyed))
    }

    /// Each return in `from..to` with the last message sent to that person before it,
    /// one row at a time (the latest message is found through `messages_by_client`).
    pub(crate) fn for_each_return(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut f: impl FnMut(crate::domain::report_period::Return),
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT c.returned_at, m.campaign, m.step, m.sent_at FROM clients c
             LEFT JOIN messages m ON m.id = (
                 SELECT id FROM messages WHERE client_id = c.id AND state = 'sent'
                   AND sent_at <= c.returned_at ORDER BY sent_at DESC, id DESC LIMIT 1)
             WHERE c.returned_at >= ?1 AND c.returned_at < ?2
               AND EXISTS (SELECT 1 FROM enrollments e WHERE e.client_id = c.id)",
        )?;
        let mut rows = stmt.query(params![fmt_time(from), fmt_time(to)])?;
        while let Some(r) = rows.next()? {
            let returned_at = super::codec::parse_time(&r.get::<_, String>(0)?)?;
            let campaign: Option<String> = r.get(1)?;
            let step: Option<u32> = r.get(2)?;
            let sent_at = parse_opt_time(r.get(3)?)?;
            let last_message = match (campaign, step, sent_at) {
                (Some(c), Some(s), Some(t)) => Some((c, s, t)),
                _ => None,
            };
            f(crate::domain::report_period::Return {
                returned_at,
                last_message,
            });
        }
        Ok(())
    }
}

/// The next messages due in the weeks ahead, counted in SQL (one row per campaign, step
/// and week, however many people): what the report's "Upcoming sends" charts. `winback
/// plan` lists every message, with the rate limits; this counts, per sequence, only the
/// next one, at the moment it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UpcomingCount {
    pub campaign: String,
    pub step: u32,
    /// The message's kind for a retry; `None` for a sequence's next step (the
    /// configuration says which kind that step is).
    pub kind: Option<String>,
    /// Weeks of seven days from `now`, 0 first; what is already due falls in week 0.
    pub week: u32,
    pub messages: u64,
}

#[cfg(test)]
impl UpcomingCount {
    /// One count, as the tests write them.
    pub(crate) fn of(
        campaign: &str,
        step: u32,
        kind: Option<&str>,
        week: u32,
        messages: u64,
    ) -> UpcomingCount {
        UpcomingCount {
            campaign: campaign.to_string(),
            step,
            kind: kind.map(str::to_string),
            week,
            messages,
        }
    }
}

const MICROS_PER_WEEK: i64 = 7 * 24 * 3600 * 1_000_000;

/// Active enrollments with their campaign and next step, in `send_at` order along the
/// partial index `enrollments_waiting`, counted in Rust a row at a time (a GROUP BY on the
/// week would sort every row first). The index is not widened to hold campaign and step:
/// the daemon updates it at every send, and a wider one halved the delivery rate.
/// People the claim would stop (opted out, bounced, forgotten, come back) are left out, as
/// `plan` leaves them out: an import enrolls a suppressed address, and only its claim
/// stops it.
const UPCOMING_STEPS: &str = "SELECT e.send_at, e.campaign, e.next_step
     FROM enrollments e INDEXED BY enrollments_waiting JOIN clients c ON c.id = e.client_id
     WHERE e.state = 'active' AND e.send_at IS NOT NULL AND e.send_at < ?1
       AND c.returned_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
     ORDER BY e.send_at";
/// Messages waiting to be tried again, by the week of their next attempt (`messages_retry`).
/// Those the claim would stop are left out, as above.
const UPCOMING_RETRIES: &str = "SELECT m.campaign, m.step, m.kind,
            MAX(0, CAST((julianday(m.next_attempt_at) - julianday(?1)) / 7 AS INTEGER)), COUNT(*)
     FROM messages m INDEXED BY messages_retry JOIN clients c ON c.id = m.client_id
     WHERE m.state = 'retry' AND m.next_attempt_at < ?2
       AND c.returned_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
     GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4";

impl Store {
    /// The next message of each running sequence and each retry, due before `weeks` weeks
    /// from `now`, counted per campaign, step and week.
    pub(crate) fn upcoming_counts(
        &self,
        now: DateTime<Utc>,
        weeks: u32,
    ) -> Result<Vec<UpcomingCount>> {
        let until = now + chrono::Duration::weeks(i64::from(weeks));
        let mut out = Vec::new();
        // (campaign, step, week) → enrollments: a few per campaign, however many people.
        let mut steps: Vec<((String, u32, u32), u64)> = Vec::new();
        let mut stmt = self.conn.prepare(UPCOMING_STEPS)?;
        let mut rows = stmt.query(params![moment(until)])?;
        let start = moment(now);
        while let Some(r) = rows.next()? {
            let send_at: i64 = r.get(0)?;
            let campaign = text(r, 1)?;
            let step: u32 = r.get(2)?;
            let week = u32::try_from(send_at.saturating_sub(start).max(0) / MICROS_PER_WEEK)
                .unwrap_or(u32::MAX);
            match steps
                .iter_mut()
                .find(|((c, s, w), _)| c == campaign && *s == step && *w == week)
            {
                Some((_, n)) => *n += 1,
                None => steps.push(((campaign.to_string(), step, week), 1)),
            }
        }
        steps.sort();
        out.extend(
            steps
                .into_iter()
                .map(|((campaign, step, week), messages)| UpcomingCount {
                    campaign,
                    step,
                    kind: None,
                    week,
                    messages,
                }),
        );
        let mut stmt = self.conn.prepare(UPCOMING_RETRIES)?;
        let rows = stmt.query_map(params![fmt_time(now), fmt_time(until)], |r| {
            Ok(UpcomingCount {
                campaign: r.get(0)?,
                step: r.get(1)?,
                kind: r.get(2)?,
                week: r.get(3)?,
                messages: r.get::<_, i64>(4)? as u64,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

/// Column `i` of `r` as text, borrowed from the row.
fn text<'a>(r: &'a rusqlite::Row, i: usize) -> Result<&'a str> {
    r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
            .into()
    })
}

#[cfg(test)]
mod period_tests {
    use super::*;

    /// Counted by hour; a return counts only for someone a campaign took in, as in the funnel.
    #[test]
    fn period_rows_count_by_hour_and_only_returns_of_people_in_a_campaign() {
        let (_dir, store) = super::tests::store();
        super::tests::seed(&store);
        let from = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let to = DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let rows = store.period_rows(from, to).unwrap();
        assert_eq!(rows.returns, [("2026-06-03T09".to_string(), 1)]);
        assert_eq!(rows.came_back, 1);
        assert_eq!(
            rows.answers,
            [("2026-06-01T08".to_string(), "c".to_string(), 1)]
        );
        assert_eq!(rows.suppressions.len(), 2);
        let mut returns = Vec::new();
        store
            .for_each_return(from, to, |r| returns.push(r))
            .unwrap();
        assert_eq!(returns.len(), 1);
        // Nothing counts outside the period.
        let later = store
            .period_rows(to, to + chrono::Duration::days(30))
            .unwrap();
        assert!(later.returns.is_empty() && later.answers.is_empty() && later.came_back == 0);
    }

    /// Sent messages are counted per hour, campaign, step and kind, in that order, however
    /// they interleave within the hour; a message not sent counts nowhere.
    #[test]
    fn sent_messages_are_counted_per_hour_and_step() {
        let (_dir, store) = super::tests::store();
        super::tests::seed(&store);
        let t0 = "2026-06-01T08:00:00.000000Z";
        let row = |enrollment: u32, step: u32, kind: &str, state: &str, sent_at: &str| {
            format!(
                "({enrollment}, {enrollment}, 'c', 1, {step}, '{kind}', '{state}', '<{enrollment}.{step}@x>', '{t0}', '{t0}', '{t0}', NULL, '{t0}', '2026-06-10T{sent_at}:00.000000Z')"
            )
        };
        let rows = [
            row(1, 2, "newsletter", "sent", "09:10"),
            row(3, 3, "article", "sent", "09:20"),
            row(1, 3, "article", "failed", "09:30"),
            row(2, 2, "newsletter", "sent", "09:50"),
            row(5, 2, "newsletter", "sent", "11:00"),
            row(1, 4, "survey", "sent", "10:00"),
            row(1, 5, "survey", "sent", "10:30"),
            row(2, 4, "survey", "sent", "10:40"),
        ];
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, first_claimed_at, claimed_at, next_attempt_at, updated_at, sent_at) VALUES {};",
                rows.join(", ")
            ))
            .unwrap();
        let from = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let rows = store
            .period_rows(from, from + chrono::Duration::days(30))
            .unwrap();
        assert_eq!(rows.surveyed, 2, "two people, one of them surveyed twice");
        let sent = rows.sent;
        let hour = |h: &str, step, kind: &str, n| {
            (
                format!("2026-06-10T{h}"),
                "c".to_string(),
                step,
                kind.to_string(),
                n,
            )
        };
        assert_eq!(
            sent,
            [
                hour("09", 2, "newsletter", 2),
                hour("09", 3, "article", 1),
                hour("10", 4, "survey", 2),
                hour("10", 5, "survey", 1),
                hour("11", 2, "newsletter", 1),
            ]
        );
    }

    /// The next step of each active sequence in the week its `send_at` falls in (what is
    /// overdue in the first), retries in the week of their next attempt; nothing at or
    /// after the horizon, nothing of a stopped sequence or one with no moment.
    #[test]
    fn upcoming_counts_put_each_next_message_in_its_week_and_leave_out_those_the_claim_stops() {
        let (_dir, store) = super::tests::store();
        super::tests::seed(&store);
        let at = |d, h| {
            DateTime::parse_from_rfc3339(&format!("2026-06-{d:02}T{h:02}:00:00Z"))
                .unwrap()
                .with_timezone(&Utc)
        };
        let now = at(2, 9);
        let horizon = now + chrono::Duration::weeks(12);
        let t0 = fmt_time(at(1, 8));
        store
            .conn
            .execute_batch(&format!(
                "INSERT INTO clients (id, email, churned_at, created_at, updated_at) VALUES
                   (6, 'f@x.example', '2025-01-01', '{t0}', '{t0}'),
                   (7, 'g@x.example', '2025-01-01', '{t0}', '{t0}'),
                   (8, 'h@x.example', '2025-01-01', '{t0}', '{t0}'),
                   (9, 'i@x.example', '2025-01-01', '{t0}', '{t0}');
                 INSERT INTO enrollments (id, client_id, campaign, state, next_step, due_at, send_at, created_at, updated_at) VALUES
                   (6, 6, 'd', 'active', 2, NULL, {overdue}, '{t0}', '{t0}'),
                   (7, 7, 'd', 'active', 2, NULL, {week_on}, '{t0}', '{t0}'),
                   (8, 8, 'd', 'active', 3, NULL, {week_end}, '{t0}', '{t0}'),
                   (9, 9, 'd', 'active', 1, NULL, NULL, '{t0}', '{t0}'),
                   (10, 5, 'd', 'active', 1, NULL, {horizon}, '{t0}', '{t0}'),
                   (11, 4, 'e', 'opted_out', 1, NULL, {week_on}, '{t0}', '{t0}'),
                   -- Active, but the claim would stop them: opted out (a), come back (b).
                   (12, 1, 'e', 'active', 1, NULL, {week_on}, '{t0}', '{t0}'),
                   (13, 2, 'e', 'active', 1, NULL, {week_on}, '{t0}', '{t0}');
                 INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id, due_at, first_claimed_at, claimed_at, next_attempt_at, updated_at) VALUES
                   (7, 7, 'd', 1, 1, 'survey', 'retry', '<7@x>', '{t0}', '{t0}', '{t0}', '{later}', '{t0}'),
                   (10, 5, 'd', 1, 1, 'survey', 'retry', '<10@x>', '{t0}', '{t0}', '{t0}', '{beyond}', '{t0}'),
                   (12, 1, 'e', 1, 1, 'survey', 'retry', '<12@x>', '{t0}', '{t0}', '{t0}', '{later}', '{t0}');",
                overdue = moment(at(1, 8)),
                week_on = moment(at(9, 9)),
                week_end = moment(at(9, 8)),
                horizon = moment(horizon),
                later = fmt_time(at(20, 9)),
                beyond = fmt_time(horizon),
            ))
            .unwrap();
        let count = UpcomingCount::of;
        assert_eq!(
            store.upcoming_counts(now, 12).unwrap(),
            [
                count("c", 1, None, 0, 1),
                count("d", 2, None, 0, 1),
                count("d", 2, None, 1, 1),
                count("d", 3, None, 0, 1),
                count("c", 1, Some("survey"), 0, 1),
                count("d", 1, Some("survey"), 2, 1),
            ]
        );
    }

    /// Each period count reads a range of an index (schema16.sql), never the whole table.
    #[test]
    fn period_counts_search_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        // How SQLite reads `sql`, its parameters bound to two dates.
        let query_plan = |sql: &str| {
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::params_from_iter(
                        ["2026-01-01", "2026-02-01"][..sql.matches('?').count()].iter(),
                    ),
                    |r| r.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            plan.join("; ")
        };
        // Whole-history counts read an index alone, never a table row.
        for (sql, index) in [(SURVEYED, "messages_sent"), (SENT_BY_DAY, "messages_sent")] {
            let plan = query_plan(sql);
            assert!(
                plan.contains(&format!("COVERING INDEX {index}"))
                    && (sql == SURVEYED || !plan.contains("B-TREE")),
                "{index}: {plan}"
            );
        }
        for (sql, index) in [
            (SENT_BY_DAY, "messages_sent"),
            (UPCOMING_STEPS, "enrollments_waiting"),
            (ANSWERS_BY_DAY, "survey_answers_by_time"),
            (SUPPRESSIONS_BY_DAY, "suppressions_by_time"),
            (RETURNS_BY_DAY, "clients_returned"),
        ] {
            let plan = query_plan(sql);
            assert!(
                plan.contains(&format!("INDEX {index}"))
                    && !plan.contains("SCAN")
                    // The two over every message or enrollment: read in order, not sorted.
                    && !([SENT_BY_DAY, UPCOMING_STEPS].contains(&sql) && plan.contains("B-TREE")),
                "{index}: {plan}"
            );
        }
    }
}
