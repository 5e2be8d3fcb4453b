//! Survey answers: storing (or replacing) the one answer of an enrollment, reading it
//! back for the survey page, and listing them all for `winback survey`.
//!
//! Keyed by what a link points at; the person's free text never goes into the event log.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{enrollment_id, opt_out, view_by_link};
use crate::store::notices::{self, About};
use crate::store::{Result, Store, fmt_time, log_event};
use crate::token::Target;

pub(crate) use crate::domain::survey::SurveyAnswer;

/// (reason, would work with us again, answers): one count of `Store::survey_tallies`.
pub(crate) type SurveyTally = (Option<String>, Option<String>, u64);

/// Every answer with its person, newest first. The order is `survey_answers_by_update`'s
/// (schema17.sql) read backwards, so no sort holds the answers.
pub(super) const SURVEY_ANSWERS: &str = "SELECT c.email, c.name, c.company, a.campaign, a.reason, a.better, a.would_return, a.created_at, a.updated_at
     FROM survey_answers a INDEXED BY survey_answers_by_update JOIN clients c ON c.id = a.client_id
     ORDER BY a.updated_at DESC, a.enrollment_id DESC";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SurveyOutcome {
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
pub(crate) struct SurveyAnswerRow {
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

impl Store {
    /// The survey answer stored for an enrollment, if any.
    pub(crate) fn survey_answer(&self, target: &Target) -> Result<Option<SurveyAnswer>> {
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
    /// opts the person out of everything, as the unsubscribe link would. With `notify`
    /// (`[inbound] notify` is set), a new or changed answer is queued for the team.
    pub(crate) fn save_survey_answer(
        &mut self,
        target: &Target,
        answer: &SurveyAnswer,
        stop_contact: bool,
        notify: bool,
        now: DateTime<Utc>,
    ) -> Result<SurveyOutcome> {
        let tx = self.write_tx()?;
        let Some(view) = view_by_link(&tx, target)? else {
            return Ok(SurveyOutcome::Unknown);
        };
        let before: Option<SurveyAnswer> = tx
            .prepare_cached(
                "SELECT reason, better, would_return FROM survey_answers WHERE enrollment_id = ?1",
            )?
            .query_row(params![view.enrollment_id], |r| {
                Ok(SurveyAnswer {
                    reason: r.get(0)?,
                    better: r.get(1)?,
                    would_return: r.get(2)?,
                })
            })
            .optional()?;
        let existed = before.is_some();
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
        if notify
            && let Some(kind) = crate::domain::notice::for_survey(before.as_ref() != Some(answer))
        {
            let about = About::Survey {
                enrollment_id: view.enrollment_id,
            };
            notices::queue(&tx, kind, view.client_id, about, now)?;
        }
        tx.commit()?;
        Ok(SurveyOutcome::Saved {
            first: !existed,
            opted_out: stop_contact,
        })
    }

    /// Every survey answer, newest first, collected (for tests of what was stored).
    #[cfg(test)]
    pub(crate) fn survey_answers(&self) -> Result<Vec<SurveyAnswerRow>> {
        let mut rows = Vec::new();
        self.for_each_survey_answer(|row| {
            rows.push(row);
            Ok::<_, crate::store::StoreError>(())
        })?;
        Ok(rows)
    }

    /// Every survey answer, newest first, handed to `f` one at a time: read in the order
    /// of `survey_answers_by_update`, so a million answers cost one row's memory.
    pub(crate) fn for_each_survey_answer<E: From<crate::store::StoreError>>(
        &self,
        mut f: impl FnMut(SurveyAnswerRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let read = |r: &rusqlite::Row| -> rusqlite::Result<SurveyAnswerRow> {
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
        };
        let mut stmt = self
            .conn
            .prepare(SURVEY_ANSWERS)
            .map_err(|e| E::from(e.into()))?;
        let mut rows = stmt.query([]).map_err(|e| E::from(e.into()))?;
        while let Some(r) = rows.next().map_err(|e| E::from(e.into()))? {
            f(read(r).map_err(|e| E::from(e.into()))?)?;
        }
        Ok(())
    }

    /// (reason, would work with us again) → answers, over every answer.
    pub(crate) fn survey_tallies(&self) -> Result<Vec<SurveyTally>> {
        let mut stmt = self
            .conn
            .prepare("SELECT reason, would_return, COUNT(*) FROM survey_answers GROUP BY 1, 2")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
