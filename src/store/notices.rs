//! Notices to the team (`[inbound] notify`), in the store: queued in the transaction of the
//! event they tell of, claimed one at a time and committed `sending` before their SMTP
//! transaction (a crash leaves one `uncertain`, never sends it twice), their results, the
//! recovery of a stop mid-send, and their counts for `status`.
//!
//! Decides nothing: which events deserve a notice is `domain::notice`'s, the retry timing
//! `domain::retry`'s, the wording `mail`'s.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, fmt_time, parse_time};
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::retry::{AfterFailure, RetryPolicy};
use crate::domain::survey::SurveyAnswer;

/// What a notice is about: the inbound message or the survey answer (by enrollment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum About {
    Inbound(i64),
    Survey { enrollment_id: i64 },
}

/// Queues a notice of `kind` about `client_id`, inside the event's own transaction: the
/// event and its notice are written together or not at all. A survey answer with a
/// notice still waiting gets no second one (that one will show the latest answer).
pub(super) fn queue(
    tx: &Connection,
    kind: NoticeKind,
    client_id: i64,
    about: About,
    now: DateTime<Utc>,
) -> Result<()> {
    let (inbound_id, enrollment_id) = match about {
        About::Inbound(id) => (Some(id), None),
        About::Survey { enrollment_id } => (None, Some(enrollment_id)),
    };
    if let Some(enrollment_id) = enrollment_id {
        let waiting: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM notices WHERE enrollment_id = ?1 AND state = 'pending')",
            )?
            .query_row(params![enrollment_id], |r| r.get(0))?;
        if waiting {
            return Ok(());
        }
    }
    tx.prepare_cached(
        "INSERT INTO notices (kind, created_at, client_id, inbound_id, enrollment_id, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?2)",
    )?
    .execute(params![
        kind.as_str(),
        fmt_time(now),
        client_id,
        inbound_id,
        enrollment_id
    ])?;
    Ok(())
}

/// Pending notices about inbound message `id` are not sent: it was undone as wrongly
/// classified.
pub(super) fn cancel_for_inbound(tx: &Connection, id: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE notices SET state = 'cancelled' WHERE inbound_id = ?1 AND state = 'pending'",
    )?
    .execute(params![id])?;
    Ok(())
}

/// A notice claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimedNotice {
    pub id: i64,
    pub message_id: String,
    pub notice: Notice,
}

/// What became of a notice's send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoticeResult {
    Sent {
        reply: String,
    },
    /// A temporary failure: tried again later, until the retry policy gives up.
    Retry {
        error: String,
    },
    /// Refused for good, or it could not be built.
    Failed {
        error: String,
    },
    /// The connection broke after the message may have been accepted: not sent again.
    Uncertain {
        error: String,
    },
    /// Our own server refused us (down, a wrong password): tried again later, not
    /// counted towards giving up.
    Deferred {
        error: String,
    },
}

/// The notices in each state, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct NoticeCounts {
    pub sent: u64,
    pub waiting: u64,
    pub failed: u64,
    pub uncertain: u64,
}

const CLAIM_SQL: &str = "
    SELECT n.id, n.kind, n.message_id, n.created_at, c.email, c.name, c.company,
           COALESCE(i.campaign, a.campaign), i.step, i.excerpt, n.inbound_id,
           a.reason, a.better, a.would_return, a.updated_at
    FROM notices n
    JOIN clients c ON c.id = n.client_id
    LEFT JOIN inbound_messages i ON i.id = n.inbound_id
    LEFT JOIN survey_answers a ON a.enrollment_id = n.enrollment_id
    WHERE n.state = 'pending' AND n.next_attempt_at <= ?1
    ORDER BY n.next_attempt_at, n.id
    LIMIT 1";

type ClaimRow = (
    (i64, String, Option<String>, String),
    (String, Option<String>, Option<String>),
    (Option<String>, Option<u32>, Option<String>, Option<i64>),
    (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
);

fn claim_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimRow> {
    Ok((
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
        (r.get(4)?, r.get(5)?, r.get(6)?),
        (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
        (r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?),
    ))
}

impl Store {
    /// Claims the next notice due at `now`: committed `sending` (with `message_id`, unless
    /// an earlier attempt gave it one) before it is sent.
    pub(crate) fn claim_notice(
        &mut self,
        now: DateTime<Utc>,
        message_id: &str,
    ) -> Result<Option<ClaimedNotice>> {
        let tx = self.write_tx()?;
        let Some(row) = tx
            .prepare_cached(CLAIM_SQL)?
            .query_row(params![fmt_time(now)], claim_row)
            .optional()?
        else {
            return Ok(None);
        };
        let (
            (id, kind, stored_id, created),
            (email, name, company),
            (campaign, step, text, inbound_id),
            (reason, better, would_return, answered),
        ) = row;
        let kind = NoticeKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("notice kind {kind:?}")))?;
        let survey = answered.is_some().then_some(SurveyAnswer {
            reason,
            better,
            would_return,
        });
        let at = match (&survey, answered) {
            (Some(_), Some(answered)) => parse_time(&answered)?,
            _ => parse_time(&created)?,
        };
        let message_id = stored_id.unwrap_or_else(|| message_id.to_string());
        tx.prepare_cached(
            "UPDATE notices SET state = 'sending', attempts = attempts + 1, message_id = ?2,
                    first_attempt_at = COALESCE(first_attempt_at, ?3)
             WHERE id = ?1",
        )?
        .execute(params![id, message_id, fmt_time(now)])?;
        tx.commit()?;
        Ok(Some(ClaimedNotice {
            id,
            message_id,
            notice: Notice {
                kind,
                email,
                name,
                company,
                campaign,
                step,
                at,
                text,
                survey,
                inbound_id,
            },
        }))
    }

    /// Records what became of claimed notice `id`.
    pub(crate) fn record_notice(
        &mut self,
        id: i64,
        result: &NoticeResult,
        policy: RetryPolicy,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let (attempts, first): (u32, Option<String>) = tx
            .prepare_cached("SELECT attempts, first_attempt_at FROM notices WHERE id = ?1")?
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let now_text = fmt_time(now);
        let (state, next, error, sent_at) = match result {
            NoticeResult::Sent { .. } => ("sent", None, None, Some(now_text.clone())),
            NoticeResult::Failed { error } => ("failed", None, Some(error), None),
            NoticeResult::Uncertain { error } => ("uncertain", None, Some(error), None),
            NoticeResult::Deferred { error } => (
                "pending",
                Some(fmt_time(policy.after_deferral(now))),
                Some(error),
                None,
            ),
            NoticeResult::Retry { error } => {
                let first = first.as_deref().map(parse_time).transpose()?.unwrap_or(now);
                match policy.after_failure(attempts, first, now) {
                    AfterFailure::RetryAt(at) => ("pending", Some(fmt_time(at)), Some(error), None),
                    AfterFailure::GiveUp => ("failed", None, Some(error), None),
                }
            }
        };
        tx.prepare_cached(
            "UPDATE notices SET state = ?2, next_attempt_at = COALESCE(?3, next_attempt_at),
                    error = ?4, sent_at = ?5
             WHERE id = ?1",
        )?
        .execute(params![id, state, next, error, sent_at])?;
        tx.commit()?;
        Ok(())
    }

    /// Notices a stop caught mid-send are `uncertain`, never sent again. Returns how many.
    pub(crate) fn recover_notices(&mut self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE notices SET state = 'uncertain', error = 'winback stopped during its send'
             WHERE state = 'sending'",
            [],
        )?)
    }

    /// When the next waiting notice is due, if any.
    pub(crate) fn next_notice_at(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM notices WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        next.as_deref().map(parse_time).transpose()
    }

    /// How many notices are in each state (`sending` counts as waiting).
    pub(crate) fn notice_counts(&self) -> Result<NoticeCounts> {
        let mut counts = NoticeCounts::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM notices GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            let n = n as u64;
            match state.as_str() {
                "sent" => counts.sent += n,
                "pending" | "sending" => counts.waiting += n,
                "failed" => counts.failed += n,
                "uncertain" => counts.uncertain += n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests;
