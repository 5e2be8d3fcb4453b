//! What recipients do through their links, and what people may ask of their data.
//!
//! Link actions are keyed by what a link token points at, an enrollment (the HTTP layer
//! has already checked the token's signature): opting out, undoing that opt-out,
//! answering the survey. Data rights are keyed by address: `export_person` and `forget_person`.
//! Each method runs in one transaction; none knows anything about HTTP or tokens.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::clients::{load_facts, opt_out};
use super::enroll::reconcile;
use super::{Result, Store, email_hash, fmt_time, from_moment, log_event, moment};
use crate::config::Config;
use crate::domain::model::{EnrollmentState, normalize_email};
use crate::domain::suppression::Suppression;
use crate::token::Target;

/// One enrollment, as the recipient pages need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentView {
    pub enrollment_id: i64,
    pub client_id: i64,
    pub email: String,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub company: Option<String>,
    pub campaign: String,
    pub state: EnrollmentState,
    /// No more mail goes to the address: it is suppressed (opted out, bounced or
    /// forgotten).
    pub opted_out: bool,
}

impl EnrollmentView {
    /// The `first_name` column, else the first word of `name`.
    pub fn greeting_name(&self) -> Option<String> {
        self.first_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                self.name
                    .as_deref()
                    .and_then(|n| n.split_whitespace().next())
                    .map(str::to_string)
            })
    }
}

/// What a link did to a person's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutOutcome {
    /// The link points at no enrollment (never issued, or the person was forgotten).
    Unknown,
    OptedOut,
    AlreadyOptedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoOutcome {
    Unknown,
    /// The opt-out was removed; `reactivated` sequences were picked up where they stopped.
    Resubscribed {
        reactivated: usize,
    },
    /// There was no opt-out to undo.
    NotOptedOut,
    /// The address is suppressed for a reason a link may not undo (an operator's
    /// opt-out, a bounce, a forgotten person).
    NotUndoable,
}

/// A validated survey answer. Free text is already trimmed and bounded by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SurveyAnswer {
    pub reason: Option<String>,
    pub better: Option<String>,
    pub would_return: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyOutcome {
    Unknown,
    Saved {
        /// False when this replaced an earlier answer.
        first: bool,
        /// The "please don't contact me again" box was ticked (whether or not the person
        /// was already opted out).
        opted_out: bool,
    },
}

/// One stored survey answer, for `winback survey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyAnswerRow {
    pub email: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub campaign: String,
    pub reason: Option<String>,
    pub better: Option<String>,
    pub would_return: Option<String>,
    pub answered_at: String,
    pub updated_at: String,
}

/// What `forget_person` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    /// A former-client row existed and was deleted.
    pub client: bool,
    pub enrollments: u64,
    pub messages: u64,
    pub survey_answers: u64,
    pub events: u64,
    /// The address was already suppressed (opt-out, bounce or forgotten) before.
    pub was_suppressed: bool,
}

impl ForgetReport {
    /// Whether anything at all was stored about the person.
    pub fn knew_person(&self) -> bool {
        self.client || self.was_suppressed
    }
}

/// The enrollment id a link points at, if it exists: an enrollment merged into another
/// (two spellings of one person) points at that one, unless its id was given again.
fn enrollment_id(conn: &Connection, target: &Target) -> Result<Option<i64>> {
    Ok(match target {
        Target::Enrollment(id) => Some(
            conn.prepare_cached(
                "SELECT coalesce((SELECT id FROM enrollments WHERE id = ?1),
                                 (SELECT enrollment_id FROM merged_enrollments WHERE id = ?1), ?1)",
            )?
            .query_row(params![id], |r| r.get(0))?,
        ),
        Target::Legacy(public_id) => conn
            .prepare_cached("SELECT enrollment_id FROM legacy_links WHERE public_id = ?1")?
            .query_row(params![public_id.to_vec()], |r| r.get(0))
            .optional()?,
    })
}

fn view_by_link(conn: &Connection, target: &Target) -> Result<Option<EnrollmentView>> {
    let Some(id) = enrollment_id(conn, target)? else {
        return Ok(None);
    };
    let row = conn
        .prepare_cached(
            "SELECT e.id, e.client_id, c.email, c.name, c.first_name, c.company, e.campaign, e.state,
                    EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = email_hash(c.email))
             FROM enrollments e JOIN clients c ON c.id = e.client_id
             WHERE e.id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok((
                EnrollmentView {
                    enrollment_id: r.get(0)?,
                    client_id: r.get(1)?,
                    email: r.get(2)?,
                    name: r.get(3)?,
                    first_name: r.get(4)?,
                    company: r.get(5)?,
                    campaign: r.get(6)?,
                    state: EnrollmentState::Active,
                    opted_out: r.get(8)?,
                },
                r.get::<_, String>(7)?,
            ))
        })
        .optional()?;
    row.map(|(view, state)| {
        let state = EnrollmentState::parse(&state)
            .ok_or_else(|| super::StoreError::Corrupt(format!("enrollment state {state:?}")))?;
        Ok(EnrollmentView { state, ..view })
    })
    .transpose()
}

/// The suppression of an address: (reason, source).
fn suppression(conn: &Connection, email: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT reason, source FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![email_hash(email)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

impl Store {
    /// The enrollment a link token points at, if it still exists.
    pub fn enrollment_by_link(&self, target: &Target) -> Result<Option<EnrollmentView>> {
        view_by_link(&self.conn, target)
    }

    /// One-click unsubscribe: opts the enrollment's person out of everything (every
    /// campaign, queued retries included). Idempotent.
    pub fn opt_out_enrollment(
        &mut self,
        target: &Target,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<OptOutOutcome> {
        let tx = self.write_tx()?;
        let Some(view) = view_by_link(&tx, target)? else {
            return Ok(OptOutOutcome::Unknown);
        };
        let newly = opt_out(&tx, &view.email, source, now)?;
        tx.commit()?;
        Ok(if newly {
            OptOutOutcome::OptedOut
        } else {
            OptOutOutcome::AlreadyOptedOut
        })
    }

    /// The person clicked "undo" after unsubscribing through a link: removes their
    /// opt-out and picks up the sequences it stopped, with their next send recomputed.
    /// Sequences stopped for any other reason (bounced, returned, completed) stay stopped.
    pub fn undo_opt_out(
        &mut self,
        target: &Target,
        now: DateTime<Utc>,
        config: &Config,
    ) -> Result<UndoOutcome> {
        let tx = self.write_tx()?;
        let Some(view) = view_by_link(&tx, target)? else {
            return Ok(UndoOutcome::Unknown);
        };
        // Only the person's own opt-out: one an operator recorded (a reply asking to stop,
        // a complaint), a bounce or a forget is never undone from a link.
        match suppression(&tx, &view.email)? {
            None => return Ok(UndoOutcome::NotOptedOut),
            Some((reason, source))
                if Suppression::parse(&reason, &source).is_some_and(|s| s.undoable_by_link()) => {}
            Some(_) => return Ok(UndoOutcome::NotUndoable),
        }
        // An address that bounced stays suppressed, even if its person opted out since.
        let bounced: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM enrollments WHERE client_id = ?1 AND state = 'bounced')",
            params![view.client_id],
            |r| r.get(0),
        )?;
        if bounced {
            return Ok(UndoOutcome::NotUndoable);
        }
        tx.execute(
            "DELETE FROM suppressions WHERE email_hash = ?1",
            params![email_hash(&view.email)],
        )?;
        let reactivated = reactivate(&tx, view.client_id, now, config)?;
        log_event(
            &tx,
            now,
            Some(view.client_id),
            "opt_out_undone",
            &format!("link; {reactivated} sequence(s) resumed"),
        )?;
        tx.commit()?;
        Ok(UndoOutcome::Resubscribed { reactivated })
    }

    /// The survey answer stored for an enrollment, if any.
    pub fn survey_answer(&self, target: &Target) -> Result<Option<SurveyAnswer>> {
        let Some(id) = enrollment_id(&self.conn, target)? else {
            return Ok(None);
        };
        Ok(self
            .conn
            .prepare_cached(
                "SELECT reason, better, would_return FROM survey_answers WHERE enrollment_id = ?1",
            )?
            .query_row(params![id], |r| {
                Ok(SurveyAnswer {
                    reason: r.get(0)?,
                    better: r.get(1)?,
                    would_return: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Stores (or replaces) the survey answer of an enrollment; with `stop_contact`, also
    /// opts the person out of everything, as the unsubscribe link would.
    pub fn save_survey_answer(
        &mut self,
        target: &Target,
        answer: &SurveyAnswer,
        stop_contact: bool,
        now: DateTime<Utc>,
    ) -> Result<SurveyOutcome> {
        let tx = self.write_tx()?;
        let Some(view) = view_by_link(&tx, target)? else {
            return Ok(SurveyOutcome::Unknown);
        };
        let existed: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM survey_answers WHERE enrollment_id = ?1)",
            params![view.enrollment_id],
            |r| r.get(0),
        )?;
        tx.prepare_cached(
            "INSERT INTO survey_answers (enrollment_id, client_id, campaign, reason, better, would_return, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (enrollment_id) DO UPDATE SET reason = ?4, better = ?5, would_return = ?6, updated_at = ?7",
        )?
        .execute(params![
            view.enrollment_id,
            view.client_id,
            view.campaign,
            answer.reason,
            answer.better,
            answer.would_return,
            fmt_time(now)
        ])?;
        // The free text stays out of the event log: it is the person's own words.
        let detail = format!(
            "campaign {}; reason {}; would return {}{}",
            view.campaign,
            answer.reason.as_deref().unwrap_or("-"),
            answer.would_return.as_deref().unwrap_or("-"),
            if existed { "; updated" } else { "" }
        );
        log_event(&tx, now, Some(view.client_id), "survey_answer", &detail)?;
        if stop_contact {
            opt_out(&tx, &view.email, "survey", now)?;
        }
        tx.commit()?;
        Ok(SurveyOutcome::Saved {
            first: !existed,
            opted_out: stop_contact,
        })
    }

    /// Every survey answer, newest first.
    pub fn survey_answers(&self) -> Result<Vec<SurveyAnswerRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT c.email, c.name, c.company, a.campaign, a.reason, a.better, a.would_return, a.created_at, a.updated_at
             FROM survey_answers a JOIN clients c ON c.id = a.client_id
             ORDER BY a.updated_at DESC, a.enrollment_id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SurveyAnswerRow {
                email: r.get(0)?,
                name: r.get(1)?,
                company: r.get(2)?,
                campaign: r.get(3)?,
                reason: r.get(4)?,
                better: r.get(5)?,
                would_return: r.get(6)?,
                answered_at: r.get(7)?,
                updated_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Everything stored about the person with this address, as one JSON document, or
    /// `None` if nothing is. A forgotten person shows only their hashed suppression.
    pub fn export_person(&self, email: &str) -> Result<Option<Value>> {
        let email = normalize_email(email);
        let conn = &self.conn;
        let client = rows_as_json(conn, "SELECT * FROM clients WHERE email = ?1", &email)?
            .into_iter()
            .next();
        let suppression = rows_as_json(
            conn,
            "SELECT * FROM suppressions WHERE email_hash = ?1",
            &email_hash(&email),
        )?
        .into_iter()
        .next();
        if client.is_none() && suppression.is_none() {
            return Ok(None);
        }
        let by_client = |sql: &str| -> Result<Vec<Value>> {
            match client
                .as_ref()
                .and_then(|c| c.get("id"))
                .and_then(Value::as_i64)
            {
                Some(id) => rows_as_json(conn, sql, &id),
                None => Ok(Vec::new()),
            }
        };
        Ok(Some(json!({
            "email": email,
            "client": client,
            "enrollments": by_client("SELECT * FROM enrollments WHERE client_id = ?1 ORDER BY id")?,
            "messages": by_client("SELECT * FROM messages WHERE client_id = ?1 ORDER BY id")?,
            "survey_answers": by_client("SELECT * FROM survey_answers WHERE client_id = ?1 ORDER BY enrollment_id")?,
            "suppression": suppression,
            "events": by_client("SELECT * FROM events WHERE client_id = ?1 ORDER BY id")?,
        })))
    }

    /// Erases a person: their client row (and with it their enrollments, messages and
    /// survey answers) and their events. What remains is a suppression keyed by the hash
    /// of the address, with no address, so that a later import of it is never mailed.
    pub fn forget_person(&mut self, email: &str, now: DateTime<Utc>) -> Result<ForgetReport> {
        let email = normalize_email(email);
        let hash = email_hash(&email);
        // Deleted content is overwritten in the file, not merely unlinked.
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let result = forget(&mut self.conn, &email, &hash, now);
        self.conn.pragma_update(None, "secure_delete", "OFF")?;
        let report = result?;
        // Copy the WAL (which still holds the old pages) into the main file and empty it.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(report)
    }
}

fn forget(
    conn: &mut Connection,
    email: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<ForgetReport> {
    let tx = super::write_tx(conn)?;
    let mut report = ForgetReport::default();
    let client_id: Option<i64> = tx
        .query_row(
            "SELECT id FROM clients WHERE email = ?1",
            params![email],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = client_id {
        let count = |table: &str| -> Result<u64> {
            let n: i64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE client_id = ?1"),
                params![id],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        };
        report.enrollments = count("enrollments")?;
        report.messages = count("messages")?;
        report.survey_answers = count("survey_answers")?;
        report.events = tx.execute("DELETE FROM events WHERE client_id = ?1", params![id])? as u64;
        tx.execute("DELETE FROM clients WHERE id = ?1", params![id])?;
        report.client = true;
    }
    // Events not tied to the client row that still name the address.
    report.events += tx.execute(
        "DELETE FROM events WHERE instr(lower(detail), ?1) > 0",
        params![email],
    )? as u64;
    report.was_suppressed = forget_suppression(&tx, hash, now)?;
    log_event(
        &tx,
        now,
        None,
        "forget",
        "a person's data was erased on request",
    )?;
    tx.commit()?;
    Ok(report)
}

/// Turns the address's suppression (or none) into a hashed-only `forgotten` entry.
fn forget_suppression(tx: &Transaction<'_>, hash: &str, now: DateTime<Utc>) -> Result<bool> {
    let existed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ?1)",
        params![hash],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, NULL, 'forgotten', 'forget', ?2)
         ON CONFLICT (email_hash) DO UPDATE SET email = NULL, reason = 'forgotten', source = 'forget', created_at = ?2",
        params![hash, fmt_time(now)],
    )?;
    Ok(existed)
}

/// Resumes the client's sequences that an opt-out stopped, each where it stood: a step
/// that went out (or may have) while the opt-out was recorded counts as sent; a retry the
/// opt-out cancelled is queued again; otherwise the next step is rescheduled.
fn reactivate(
    tx: &Transaction<'_>,
    client_id: i64,
    now: DateTime<Utc>,
    config: &Config,
) -> Result<usize> {
    let Some(client) = load_facts(tx, client_id)? else {
        return Ok(0);
    };
    if client.returned_at.is_some() {
        return Ok(0); // they came back as a client: nothing to resume
    }
    let now_text = fmt_time(now);
    let stopped: Vec<(i64, String, i64, u32)> = tx
        .prepare_cached(
            "SELECT id, campaign, cycle, next_step FROM enrollments WHERE client_id = ?1 AND state = 'opted_out' ORDER BY id",
        )?
        .query_map(params![client_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let mut resumed = 0;
    for (enrollment_id, campaign_name, cycle, next_step) in stopped {
        let Some(campaign) = config.campaign(&campaign_name) else {
            continue; // no longer configured: nothing to schedule it by
        };
        if !campaign.admits(client.record.churn_reason.as_deref()) {
            continue;
        }
        let message: Option<(String, String, Option<String>)> = tx
            .prepare_cached("SELECT state, due_at, sent_at FROM messages WHERE enrollment_id = ?1 AND cycle = ?2 AND step = ?3")?
            .query_row(params![enrollment_id, cycle, next_step], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match message {
            None => {
                reschedule(tx, enrollment_id, next_step, None, now)?;
                reconcile(tx, campaign, &client.facts(), now)?;
            }
            Some((state, _, sent_at)) if state == "sent" || state == "uncertain" => {
                reschedule(tx, enrollment_id, next_step + 1, sent_at.as_deref(), now)?;
                reconcile(tx, campaign, &client.facts(), now)?;
            }
            Some((state, due_at, _)) if state == "cancelled" => {
                tx.prepare_cached(
                    "UPDATE messages SET state = 'retry', next_attempt_at = ?2, first_claimed_at = ?2, updated_at = ?2,
                            last_error = 'queued again: the recipient undid their opt-out'
                     WHERE enrollment_id = ?1 AND cycle = ?3 AND step = ?4",
                )?
                .execute(params![enrollment_id, now_text, cycle, next_step])?;
                tx.prepare_cached(
                    "UPDATE enrollments SET state = 'active', due_at = ?2, send_at = NULL, stopped_at = NULL, updated_at = ?3
                     WHERE id = ?1",
                )?
                .execute(params![enrollment_id, due_at, now_text])?;
            }
            Some((state, _, _)) if state == "sending" || state == "retry" => {
                // In flight: its result moves the enrollment on, as for any active one.
                tx.prepare_cached(
                    "UPDATE enrollments SET state = 'active', send_at = NULL, stopped_at = NULL, updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![enrollment_id, now_text])?;
            }
            Some(_) => continue, // failed: the address is likely dead; leave it stopped
        }
        resumed += 1;
    }
    Ok(resumed)
}

/// Makes an enrollment active again at `next_step` with a placeholder `send_at`, for
/// `reconcile` to replace with the real due time (or to complete it past the last step).
fn reschedule(
    tx: &Transaction<'_>,
    enrollment_id: i64,
    next_step: u32,
    sent_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE enrollments SET state = 'active', next_step = ?2, last_sent_at = COALESCE(?3, last_sent_at),
                send_at = ?4, stopped_at = NULL, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![enrollment_id, next_step, sent_at, moment(now), fmt_time(now)])?;
    Ok(())
}

/// Every row `sql` returns (with `param` as ?1), as JSON objects by column name. Blobs are
/// hex; a `fields` column (JSON text) is inlined as an object.
fn rows_as_json(conn: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut rows = stmt.query([param])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut object = Map::new();
        for (index, name) in names.iter().enumerate() {
            let value = match row.get_ref(index)? {
                ValueRef::Null => Value::Null,
                // The one time stored as a number (see store::moment) reads as the others do.
                ValueRef::Integer(i) if name == "send_at" => {
                    Value::String(fmt_time(from_moment(i)?))
                }
                ValueRef::Integer(i) => json!(i),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(bytes) => {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    match name.as_str() {
                        "fields" => serde_json::from_str::<BTreeMap<String, String>>(&text)
                            .map(|m| json!(m))
                            .unwrap_or(Value::String(text)),
                        _ => Value::String(text),
                    }
                }
                ValueRef::Blob(bytes) => {
                    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
                }
            };
            object.insert(name.clone(), value);
        }
        out.push(Value::Object(object));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::{Duration, NaiveDate, TimeZone};

    use crate::domain::model::{ChurnedAt, ClientRecord};
    use crate::store::Outcome;

    struct Fixture {
        dir: tempfile::TempDir,
        config: Config,
        store: Store,
    }

    const TWO_STEPS: &str = r#"
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

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let campaign = format!(
            r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"
{TWO_STEPS}"#
        );
        let config = crate::test_support::config(dir.path(), "retry_give_up_hours = 72", &campaign);
        let store = Store::open(&dir.path().join("winback.db")).unwrap();
        Fixture { dir, config, store }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
    }

    fn record(email: &str) -> ClientRecord {
        ClientRecord {
            email: email.to_string(),
            name: Some("Pat Smith".to_string()),
            first_name: None,
            company: Some("Globex".to_string()),
            churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap()),
            churn_reason: Some("competitor".to_string()),
            timezone: None,
            fields: BTreeMap::from([("plan".to_string(), "gold".to_string())]),
        }
    }

    impl Fixture {
        fn import(&mut self, email: &str) -> Target {
            let rows = vec![Ok((2, record(email)))];
            let outcome = self
                .store
                .import(rows.into_iter(), &self.config, now(), false, &mut |_| {})
                .unwrap();
            assert!(outcome.applied);
            self.link(email)
        }

        fn link(&self, email: &str) -> Target {
            let id: i64 = self
                .store
                .conn
                .query_row(
                    "SELECT e.id FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                    params![email],
                    |r| r.get(0),
                )
                .unwrap();
            Target::Enrollment(id)
        }

        /// (state, next_step, send_at) of the person's enrollment.
        fn enrollment(&self, email: &str) -> (String, u32, Option<i64>) {
            self.store
                .conn
                .query_row(
                    "SELECT e.state, e.next_step, e.send_at FROM enrollments e JOIN clients c ON c.id = e.client_id WHERE c.email = ?1",
                    params![email],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap()
        }

        fn suppression(&self, email: &str) -> Option<(Option<String>, String, String)> {
            self.store
                .conn
                .query_row(
                    "SELECT email, reason, source FROM suppressions WHERE email_hash = ?1",
                    params![email_hash(email)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .unwrap()
        }

        fn events(&self, kind: &str) -> Vec<(Option<i64>, String)> {
            let mut stmt = self
                .store
                .conn
                .prepare("SELECT client_id, detail FROM events WHERE kind = ?1 ORDER BY id")
                .unwrap();
            stmt.query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap()
        }

        fn messages(&self) -> Vec<(i64, u32, String)> {
            let mut stmt = self
                .store
                .conn
                .prepare("SELECT id, step, state FROM messages ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap()
        }

        fn claim(&mut self, at: DateTime<Utc>) -> Vec<crate::store::Claimed> {
            self.store.claim_due(&self.config, at, 10).unwrap()
        }
    }

    #[test]
    fn opting_out_by_link_is_global_and_idempotent() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        let view = f.store.enrollment_by_link(&id).unwrap().unwrap();
        assert_eq!(view.email, "pat@client.example");
        assert_eq!(view.state, EnrollmentState::Active);
        assert!(!view.opted_out);
        assert_eq!(view.greeting_name().as_deref(), Some("Pat"));

        assert_eq!(
            f.store.opt_out_enrollment(&id, "link", now()).unwrap(),
            OptOutOutcome::OptedOut
        );
        assert_eq!(
            f.store.opt_out_enrollment(&id, "link", now()).unwrap(),
            OptOutOutcome::AlreadyOptedOut
        );
        assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
        assert_eq!(
            f.suppression("pat@client.example"),
            Some((
                Some("pat@client.example".to_string()),
                "opt_out".to_string(),
                "link".to_string()
            ))
        );
        assert_eq!(f.events("opt_out").len(), 1);
        assert!(f.store.enrollment_by_link(&id).unwrap().unwrap().opted_out);
        assert_eq!(
            f.store
                .opt_out_enrollment(&Target::Legacy([9; 16]), "link", now())
                .unwrap(),
            OptOutOutcome::Unknown
        );
        let unknown = [Target::Legacy([9; 16]), Target::Enrollment(999)];
        for target in unknown {
            assert!(f.store.enrollment_by_link(&target).unwrap().is_none());
        }
    }

    #[test]
    fn undo_resumes_the_sequence_with_a_fresh_send_time() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        let before = f.enrollment("pat@client.example");
        f.store.opt_out_enrollment(&id, "link", now()).unwrap();
        let later = now() + Duration::minutes(5);
        assert_eq!(
            f.store.undo_opt_out(&id, later, &f.config).unwrap(),
            UndoOutcome::Resubscribed { reactivated: 1 }
        );
        // Same step, still active, due again from the moment of the undo (the send window
        // is open: it may go at once).
        let after = f.enrollment("pat@client.example");
        assert_eq!((after.0.as_str(), after.1), (before.0.as_str(), before.1));
        assert_eq!(after.2, Some(moment(later)));
        assert_eq!(f.suppression("pat@client.example"), None);
        assert_eq!(f.events("opt_out_undone").len(), 1);
        assert_eq!(
            f.store.undo_opt_out(&id, later, &f.config).unwrap(),
            UndoOutcome::NotOptedOut
        );
        assert_eq!(
            f.store
                .undo_opt_out(&Target::Legacy([9; 16]), later, &f.config)
                .unwrap(),
            UndoOutcome::Unknown
        );
        // And the survey goes out again.
        assert_eq!(f.claim(later).len(), 1);
    }

    #[test]
    fn undo_never_lifts_an_operator_opt_out_or_a_bounce() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        f.store
            .record_opt_out("pat@client.example", "cli", now())
            .unwrap();
        assert_eq!(
            f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
            UndoOutcome::NotUndoable
        );
        assert_eq!(f.suppression("pat@client.example").unwrap().1, "opt_out");
        assert_eq!(f.enrollment("pat@client.example").0, "opted_out");

        let id = f.import("sam@client.example");
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 1);
        let failed = Outcome::Failed {
            error: "550 no such user".to_string(),
            at: now(),
        };
        f.store
            .record_results(&f.config, &[(claimed[0].message_row, failed)])
            .unwrap();
        assert_eq!(f.enrollment("sam@client.example").0, "bounced");
        // Unsubscribing a bounced address, then undoing, leaves it suppressed and stopped.
        f.store.opt_out_enrollment(&id, "link", now()).unwrap();
        assert_eq!(
            f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
            UndoOutcome::NotUndoable
        );
        assert!(f.suppression("sam@client.example").is_some());
        assert_eq!(f.enrollment("sam@client.example").0, "bounced");
    }

    #[test]
    fn an_opt_out_keeps_its_strongest_source_whatever_the_order() {
        let mut f = fixture();
        // The person's link, then the operator: the operator's stands, Undo cannot lift it.
        let pat = f.import("pat@client.example");
        f.store.opt_out_enrollment(&pat, "link", now()).unwrap();
        let newly = f
            .store
            .record_opt_out("pat@client.example", "cli", now())
            .unwrap();
        assert!(!newly, "was already opted out");
        assert_eq!(f.suppression("pat@client.example").unwrap().2, "cli");
        assert_eq!(
            f.store.undo_opt_out(&pat, now(), &f.config).unwrap(),
            UndoOutcome::NotUndoable
        );
        assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
        assert_eq!(f.events("opt_out").len(), 1);

        // The operator, then the person's link: the operator's stays.
        let kim = f.import("kim@client.example");
        f.store
            .record_opt_out("kim@client.example", "cli", now())
            .unwrap();
        assert_eq!(
            f.store.opt_out_enrollment(&kim, "link", now()).unwrap(),
            OptOutOutcome::AlreadyOptedOut
        );
        assert_eq!(f.suppression("kim@client.example").unwrap().2, "cli");

        // The person's link while their survey is with the server, which then bounces:
        // the bounce stands, Undo cannot lift it.
        let sam = f.import("sam@client.example");
        let claimed = f.claim(now());
        let row = claimed
            .iter()
            .find(|c| c.client.email == "sam@client.example")
            .unwrap()
            .message_row;
        f.store.opt_out_enrollment(&sam, "link", now()).unwrap();
        let failed = Outcome::Failed {
            error: "550 no such user".to_string(),
            at: now(),
        };
        f.store.record_results(&f.config, &[(row, failed)]).unwrap();
        let bounced = f.suppression("sam@client.example").unwrap();
        assert_eq!((bounced.1.as_str(), bounced.2.as_str()), ("bounce", "smtp"));
        assert_eq!(
            f.store.undo_opt_out(&sam, now(), &f.config).unwrap(),
            UndoOutcome::NotUndoable
        );
        // And a link after the bounce leaves the bounce, and shows the person as
        // unsubscribed.
        f.store.opt_out_enrollment(&sam, "link", now()).unwrap();
        assert_eq!(f.suppression("sam@client.example").unwrap().1, "bounce");
        assert!(f.store.enrollment_by_link(&sam).unwrap().unwrap().opted_out);
        assert!(f.claim(now() + Duration::days(60)).is_empty());
    }

    #[test]
    fn undo_does_not_resurrect_a_returned_client() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        f.store.record_return("pat@client.example", now()).unwrap();
        f.store.opt_out_enrollment(&id, "link", now()).unwrap();
        assert_eq!(
            f.store.undo_opt_out(&id, now(), &f.config).unwrap(),
            UndoOutcome::Resubscribed { reactivated: 0 }
        );
        assert_eq!(f.enrollment("pat@client.example").0, "returned");
    }

    #[test]
    fn undo_queues_a_cancelled_retry_again_instead_of_a_second_copy() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        let claimed = f.claim(now());
        let row = claimed[0].message_row;
        let retry = Outcome::Retry {
            error: "451 try later".to_string(),
            at: now(),
        };
        f.store.record_results(&f.config, &[(row, retry)]).unwrap();
        f.store.opt_out_enrollment(&id, "link", now()).unwrap();
        assert_eq!(f.messages(), vec![(row, 1, "cancelled".to_string())]);

        let later = now() + Duration::hours(1);
        f.store.undo_opt_out(&id, later, &f.config).unwrap();
        assert_eq!(f.messages(), vec![(row, 1, "retry".to_string())]);
        assert_eq!(
            f.enrollment("pat@client.example"),
            ("active".to_string(), 1, None)
        );
        let again = f.claim(later + Duration::minutes(1));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message_row, row);
        assert_eq!(f.messages().len(), 1);
    }

    #[test]
    fn undo_counts_a_step_that_went_out_during_the_opt_out_as_sent() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        let claimed = f.claim(now());
        // The opt-out arrives while the message is with the SMTP server; it goes out.
        f.store.opt_out_enrollment(&id, "link", now()).unwrap();
        let sent = Outcome::Sent {
            reply: "250 ok".to_string(),
            at: now(),
        };
        f.store
            .record_results(&f.config, &[(claimed[0].message_row, sent)])
            .unwrap();
        assert_eq!(f.enrollment("pat@client.example").0, "opted_out");

        let later = now() + Duration::hours(1);
        f.store.undo_opt_out(&id, later, &f.config).unwrap();
        let (state, next_step, send_at) = f.enrollment("pat@client.example");
        assert_eq!((state.as_str(), next_step), ("active", 2));
        let send_at = from_moment(send_at.unwrap()).unwrap();
        assert_eq!(send_at, now() + Duration::days(30));
        // Nothing goes out now, and certainly not the survey again.
        assert!(f.claim(later).is_empty());
        assert_eq!(f.claim(send_at).len(), 1);
    }

    #[test]
    fn a_survey_answer_is_stored_once_and_updated() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        let first = SurveyAnswer {
            reason: Some("price".to_string()),
            better: Some("Cheaper plans.".to_string()),
            would_return: Some("maybe".to_string()),
        };
        assert_eq!(
            f.store
                .save_survey_answer(&id, &first, false, now())
                .unwrap(),
            SurveyOutcome::Saved {
                first: true,
                opted_out: false
            }
        );
        assert_eq!(f.store.survey_answer(&id).unwrap(), Some(first));
        let second = SurveyAnswer {
            reason: Some("competitor".to_string()),
            better: None,
            would_return: Some("no".to_string()),
        };
        let later = now() + Duration::hours(1);
        assert_eq!(
            f.store
                .save_survey_answer(&id, &second, true, later)
                .unwrap(),
            SurveyOutcome::Saved {
                first: false,
                opted_out: true
            }
        );
        let rows = f.store.survey_answers().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].reason.as_deref(), Some("competitor"));
        assert_eq!(rows[0].better, None);
        assert_eq!(rows[0].answered_at, fmt_time(now()));
        assert_eq!(rows[0].updated_at, fmt_time(later));
        assert_eq!(f.suppression("pat@client.example").unwrap().2, "survey");
        assert_eq!(f.enrollment("pat@client.example").0, "opted_out");
        // The person's words are not copied into the event log.
        assert!(
            f.events("survey_answer")
                .iter()
                .all(|(_, d)| !d.contains("Cheaper"))
        );
        assert_eq!(
            f.store
                .save_survey_answer(&Target::Legacy([9; 16]), &second, true, later)
                .unwrap(),
            SurveyOutcome::Unknown
        );
    }

    #[test]
    fn export_gathers_everything_about_a_person() {
        let mut f = fixture();
        let id = f.import("pat@client.example");
        f.import("other@client.example");
        let claimed = f.claim(now());
        let results: Vec<_> = claimed
            .iter()
            .map(|c| {
                (
                    c.message_row,
                    Outcome::Sent {
                        reply: "250 ok".to_string(),
                        at: now(),
                    },
                )
            })
            .collect();
        f.store.record_results(&f.config, &results).unwrap();
        let answer = SurveyAnswer {
            reason: Some("price".to_string()),
            ..SurveyAnswer::default()
        };
        f.store
            .save_survey_answer(&id, &answer, true, now())
            .unwrap();

        let export = f
            .store
            .export_person(" PAT@client.example ")
            .unwrap()
            .unwrap();
        assert_eq!(export["email"], "pat@client.example");
        assert_eq!(export["client"]["company"], "Globex");
        assert_eq!(export["client"]["fields"]["plan"], "gold");
        assert_eq!(export["enrollments"].as_array().unwrap().len(), 1);
        assert_eq!(export["enrollments"][0]["campaign"], "former-clients");
        assert_eq!(export["messages"].as_array().unwrap().len(), 1);
        assert_eq!(export["survey_answers"][0]["reason"], "price");
        assert_eq!(export["suppression"]["reason"], "opt_out");
        let kinds: Vec<&str> = export["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"survey_answer") && kinds.contains(&"opt_out"),
            "{kinds:?}"
        );
        assert!(!export.to_string().contains("other@client.example"));
        assert_eq!(
            f.store.export_person("nobody@client.example").unwrap(),
            None
        );
        // An address only ever opted out is known by its suppression.
        f.store
            .record_opt_out("stranger@else.example", "cli", now())
            .unwrap();
        let export = f
            .store
            .export_person("stranger@else.example")
            .unwrap()
            .unwrap();
        assert_eq!(export["client"], Value::Null);
        assert_eq!(export["suppression"]["source"], "cli");
    }

    #[test]
    fn forgetting_erases_the_person_and_keeps_them_unmailed_after_a_new_import() {
        let mut f = fixture();
        let email = "pat@client.example";
        let id = f.import(email);
        f.import("other@client.example");
        let claimed = f.claim(now());
        assert_eq!(claimed.len(), 2);
        let results: Vec<_> = claimed
            .iter()
            .map(|c| {
                (
                    c.message_row,
                    Outcome::Failed {
                        error: format!("550 <{}> unknown", c.client.email),
                        at: now(),
                    },
                )
            })
            .collect();
        f.store.record_results(&f.config, &results).unwrap();
        let answer = SurveyAnswer {
            better: Some("Pat's own words".to_string()),
            ..SurveyAnswer::default()
        };
        f.store
            .save_survey_answer(&id, &answer, false, now())
            .unwrap();

        let report = f.store.forget_person("Pat@Client.example", now()).unwrap();
        assert_eq!(
            report,
            ForgetReport {
                client: true,
                enrollments: 1,
                messages: 1,
                survey_answers: 1,
                events: 2,
                was_suppressed: true
            }
        );
        assert!(report.knew_person());
        assert_eq!(
            f.suppression(email),
            Some((None, "forgotten".to_string(), "forget".to_string()))
        );
        // Nothing in the database names the person any more; the other client is intact.
        let dump: String = {
            let mut stmt = f
                .store
                .conn
                .prepare(
                    "SELECT group_concat(x, ' ') FROM (
                       SELECT email || coalesce(name, '') AS x FROM clients
                       UNION ALL SELECT coalesce(email, '') || reason || source FROM suppressions
                       UNION ALL SELECT kind || detail || coalesce(client_id, '') FROM events
                       UNION ALL SELECT coalesce(better, '') FROM survey_answers)",
                )
                .unwrap();
            stmt.query_row([], |r| r.get(0)).unwrap()
        };
        assert!(
            !dump.contains(email) && !dump.contains("own words"),
            "{dump}"
        );
        assert!(dump.contains("other@client.example"));
        assert!(
            f.events("forget")
                .iter()
                .all(|(client, _)| client.is_none())
        );
        assert_eq!(
            f.store.export_person(email).unwrap().unwrap()["client"],
            Value::Null
        );
        // Not even in the file's free pages or the WAL.
        for suffix in ["", "-wal"] {
            let path = f.dir.path().join(format!("winback.db{suffix}"));
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !bytes.windows(email.len()).any(|w| w == email.as_bytes()),
                "{} still holds the address",
                path.display()
            );
        }

        // A later import of the same address is enrolled, but never mailed.
        f.import(email);
        let later = now() + Duration::days(1);
        assert!(f.claim(later).is_empty());
        assert_eq!(f.enrollment(email).0, "opted_out");
        assert_eq!(
            f.store
                .opt_out_enrollment(&f.link(email), "link", later)
                .unwrap(),
            OptOutOutcome::AlreadyOptedOut
        );
        assert_eq!(f.suppression(email).unwrap().1, "forgotten");

        // Forgetting someone never seen still blocks the address.
        let report = f.store.forget_person("new@else.example", now()).unwrap();
        assert!(!report.knew_person());
        assert_eq!(f.suppression("new@else.example").unwrap().1, "forgotten");
    }
}
