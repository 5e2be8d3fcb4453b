//! People and what they ask for: opting out (through their link, the survey or the
//! operator) and undoing it through the link, coming back as a client, and the
//! suppressions that stop all mail to an address. Survey answers are in `survey.rs`, a
//! person's data (export, forget) in `data.rs`.
//!
//! Link actions are keyed by what a link token points at, an enrollment (the HTTP layer
//! has already checked the token's signature); the rest by address. Each method runs in
//! one transaction; none knows anything about HTTP or tokens' signatures. What a
//! suppression means, and where an undone opt-out resumes, is `domain::lifecycle`'s to
//! say: this gathers the facts and writes the answer.

pub(super) mod data;
pub(super) mod survey;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::accounts::{standing, stop_account};
use super::clients::{id_by_email, load_by_email, load_facts};
use super::enroll::{enrollment_state, message_state, reconcile, stop_client};
use super::{Result, Store, email_hash, fmt_time, log_event, moment, parse_time};
use crate::config::Config;
use crate::domain::accounts::{AccountStop, resumes};
use crate::domain::lifecycle::{self, Resume, Undo};
use crate::domain::model::{EnrollmentState, normalize_email};
use crate::domain::suppression::{self, Reason, Recording, Suppression};
use crate::token::Target;

/// One enrollment, as the recipient pages need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnrollmentView {
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
    pub(crate) fn greeting_name(&self) -> Option<String> {
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
pub(crate) enum OptOutOutcome {
    /// The link points at no enrollment (never issued, or the person was forgotten).
    Unknown,
    OptedOut,
    AlreadyOptedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UndoOutcome {
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

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReturnOutcome {
    Unknown,
    /// Sequences stopped (how many were active): theirs, and those of the other contacts
    /// of their account.
    Recorded {
        stopped: usize,
        account_stopped: usize,
    },
    AlreadyReturned,
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
        Ok(EnrollmentView {
            state: enrollment_state(&state)?,
            ..view
        })
    })
    .transpose()
}

/// The suppression of a (normalised) address, if it has one.
fn stored_suppression(conn: &Connection, email: &str) -> Result<Option<Suppression>> {
    let stored: Option<(String, String)> = conn
        .prepare_cached("SELECT reason, source FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![email_hash(email)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(stored.map(|(reason, source)| Suppression::decode(&reason, &source)))
}

impl Store {
    /// The enrollment a link token points at, if it still exists.
    pub(crate) fn enrollment_by_link(&self, target: &Target) -> Result<Option<EnrollmentView>> {
        view_by_link(&self.conn, target)
    }

    /// One-click unsubscribe: opts the enrollment's person out of everything (every
    /// campaign, queued retries included). Idempotent.
    pub(crate) fn opt_out_enrollment(
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
    pub(crate) fn undo_opt_out(
        &mut self,
        target: &Target,
        now: DateTime<Utc>,
        config: &Config,
    ) -> Result<UndoOutcome> {
        let tx = self.write_tx()?;
        let Some(view) = view_by_link(&tx, target)? else {
            return Ok(UndoOutcome::Unknown);
        };
        let stored = stored_suppression(&tx, &view.email)?;
        let bounced: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM enrollments WHERE client_id = ?1 AND state = 'bounced')",
            params![view.client_id],
            |r| r.get(0),
        )?;
        match lifecycle::undo(stored.as_ref(), bounced) {
            Undo::NotOptedOut => return Ok(UndoOutcome::NotOptedOut),
            Undo::NotUndoable => return Ok(UndoOutcome::NotUndoable),
            Undo::Lift => {}
        }
        tx.execute(
            "DELETE FROM suppressions WHERE email_hash = ?1",
            params![email_hash(&view.email)],
        )?;
        let reactivated = reactivate(
            &tx,
            view.client_id,
            EnrollmentState::OptedOut,
            None,
            now,
            config,
        )?;
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

    /// Opts an address out of everything, now and for good (also one never imported).
    /// Returns false if it was already opted out.
    pub(crate) fn record_opt_out(
        &mut self,
        email: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let tx = self.write_tx()?;
        let newly = opt_out(&tx, email, source, now)?;
        tx.commit()?;
        Ok(newly)
    }

    /// The client came back: stop their sequences and record the win.
    pub(crate) fn record_return(
        &mut self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<ReturnOutcome> {
        let tx = self.write_tx()?;
        let Some(client) = load_by_email(&tx, email)? else {
            return Ok(ReturnOutcome::Unknown);
        };
        if client.returned_at.is_some() {
            return Ok(ReturnOutcome::AlreadyReturned);
        }
        let (stopped, account_stopped) =
            mark_returned(&tx, client.id, now, now, "came back as a client")?;
        tx.commit()?;
        Ok(ReturnOutcome::Recorded {
            stopped,
            account_stopped,
        })
    }

    /// Opts every address of a list out, in one transaction (see [`opt_out`]): all of
    /// them or, on an error, none.
    pub(crate) fn record_opt_outs(
        &mut self,
        emails: &[String],
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<BulkOutcome> {
        let tx = self.write_tx()?;
        let mut outcome = BulkOutcome::default();
        for email in emails {
            let (newly, known) = opt_out_known(&tx, email, source, now)?;
            if newly {
                outcome.new += 1;
            } else {
                outcome.already += 1;
            }
            outcome.unknown += u64::from(!known);
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Records every known client of a list as returned at `now`, in one transaction:
    /// their sequences stop, as [`Store::record_return`] does for one. An address that is
    /// no former client changes nothing; one already returned keeps its first return.
    pub(crate) fn record_returns(
        &mut self,
        emails: &[String],
        now: DateTime<Utc>,
        detail: &str,
    ) -> Result<BulkOutcome> {
        let tx = self.write_tx()?;
        let outcome = record_returns(&tx, emails, now, detail)?;
        tx.commit()?;
        Ok(outcome)
    }
}

/// [`Store::record_returns`] in the caller's transaction.
fn record_returns(
    tx: &Connection,
    emails: &[String],
    now: DateTime<Utc>,
    detail: &str,
) -> Result<BulkOutcome> {
    let mut outcome = BulkOutcome::default();
    for email in emails {
        let found: Option<(i64, bool)> = tx
            .prepare_cached("SELECT id, returned_at IS NOT NULL FROM clients WHERE email = ?1")?
            .query_row(params![normalize_email(email)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match found {
            None => outcome.unknown += 1,
            Some((_, true)) => outcome.already += 1,
            Some((id, false)) => {
                mark_returned(tx, id, now, now, detail)?;
                outcome.new += 1;
            }
        }
    }
    Ok(outcome)
}

impl Store {
    /// Records the CRM's list of current customers: it replaces the list kept from the
    /// last sync (an import checks each row against it, see [`customer_since`]), and
    /// every known client on it is recorded as returned at `now`, as
    /// [`Store::record_returns`] does; in one transaction.
    pub(crate) fn sync_customers(
        &mut self,
        emails: &[String],
        now: DateTime<Utc>,
        detail: &str,
    ) -> Result<BulkOutcome> {
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM customers", [])?;
        let seen_at = fmt_time(now);
        for email in emails {
            tx.prepare_cached(
                "INSERT INTO customers (email_hash, seen_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![email_hash(email), seen_at])?;
        }
        let outcome = record_returns(&tx, emails, now, detail)?;
        tx.commit()?;
        Ok(outcome)
    }
}

/// When the latest customers list that has `email` on it was read, if it has.
pub(crate) fn customer_since(tx: &Connection, email: &str) -> Result<Option<DateTime<Utc>>> {
    let seen: Option<String> = tx
        .prepare_cached("SELECT seen_at FROM customers WHERE email_hash = email_hash(?1)")?
        .query_row(params![email], |r| r.get(0))
        .optional()?;
    seen.map(|at| parse_time(&at)).transpose()
}

/// Whether a customers list is kept at all (most setups have none: the import then
/// never looks).
pub(crate) fn has_customers(tx: &Connection) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM customers)")?
        .query_row([], |r| r.get(0))?)
}

/// What a list of addresses came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BulkOutcome {
    /// Recorded now (an opt-out of an address never imported included).
    pub new: u64,
    /// Already opted out, or already returned: nothing changed.
    pub already: u64,
    /// Not a known former client: an opt-out still stands for the address (and is
    /// counted in `new` or `already` too); a return changes nothing (and is counted only
    /// here).
    pub unknown: u64,
}

/// Records that client `client_id` came back at `at` (recorded `now`): their active
/// sequences stop as returned and their queued retries are cancelled; a later churn date
/// starts a new sequence (see [`lifecycle::churned_again`]). The other contacts of their
/// account stop too (see [`AccountStop::Returned`]). Returns how many sequences stopped,
/// theirs and their account's. The caller has checked that no return is recorded yet.
pub(crate) fn mark_returned(
    tx: &Connection,
    client_id: i64,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    detail: &str,
) -> Result<(usize, usize)> {
    tx.prepare_cached("UPDATE clients SET returned_at = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![client_id, fmt_time(at), fmt_time(now)])?;
    let stopped = stop_client(tx, client_id, EnrollmentState::Returned, now)?;
    log_event(tx, now, Some(client_id), "returned", detail)?;
    let account = stop_account(tx, client_id, AccountStop::Returned, now)?;
    Ok((stopped, account))
}

/// Moves the recorded return of client `client_id`, already returned, to the later
/// `at` (recorded `now`): they came back once more, and a churn is judged against this
/// return.
pub(crate) fn update_return(
    tx: &Connection,
    client_id: i64,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    detail: &str,
) -> Result<()> {
    tx.prepare_cached("UPDATE clients SET returned_at = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![client_id, fmt_time(at), fmt_time(now)])?;
    log_event(tx, now, Some(client_id), "returned", detail)?;
    Ok(())
}

/// Records an opt-out from `source` for an address (imported or not) and stops the
/// client's sequences. Returns whether the address was not opted out before (a bounce
/// alone is not an opt-out). A stronger suppression already there is kept (see
/// [`suppression::record`]); an operator's opt-out over the person's own replaces it, so
/// the person's link can no longer undo it.
pub(crate) fn opt_out(
    tx: &Transaction<'_>,
    email: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    opt_out_known(tx, email, source, now).map(|(newly, _)| newly)
}

/// [`opt_out`], and whether the address is a known former client.
fn opt_out_known(
    tx: &Transaction<'_>,
    email: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(bool, bool)> {
    let email = normalize_email(email);
    // A person forgotten under an older spelling is found (and no address is stored).
    super::addresses::heal_suppression(tx, &email)?;
    let before = suppress(tx, &email, &Suppression::new(Reason::OptOut, source), now)?;
    let newly = !before.is_some_and(|s| s.is_opt_out());
    let id = id_by_email(tx, &email)?;
    if let Some(id) = id {
        stop_client(tx, id, EnrollmentState::OptedOut, now)?;
        if newly {
            log_event(tx, now, Some(id), "opt_out", source)?;
        }
    }
    Ok((newly, id.is_some()))
}

/// Records `new` for a (normalised) address, keeping whichever of it and the stored one
/// is stronger (see [`suppression::record`]: a stored reason this build does not know is
/// kept as it is); returns the one stored before.
pub(crate) fn suppress(
    tx: &Connection,
    email: &str,
    new: &Suppression,
    now: DateTime<Utc>,
) -> Result<Option<Suppression>> {
    let hash = email_hash(email);
    let before = stored_suppression(tx, email)?;
    match suppression::record(before.as_ref(), new) {
        Recording::Insert => {
            tx.prepare_cached(
                "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![hash, email, new.reason.as_str(), new.source, fmt_time(now)])?;
        }
        Recording::Replace => {
            tx.prepare_cached(
                "UPDATE suppressions SET reason = ?2, source = ?3, created_at = ?4 WHERE email_hash = ?1",
            )?
            .execute(params![hash, new.reason.as_str(), new.source, fmt_time(now)])?;
        }
        Recording::Keep => {}
    }
    Ok(before)
}

/// Resumes the client's sequences stopped as `stopped` (an opt-out's, or a wrong bounce's
/// or reply's undone), each where it stood (see [`lifecycle::resume`]); none while their
/// account stops them (see [`resumes`]: another contact returned, or a reply of the
/// account other than `except_reply` stands).
pub(super) fn reactivate(
    tx: &Transaction<'_>,
    client_id: i64,
    stopped: EnrollmentState,
    except_reply: Option<i64>,
    now: DateTime<Utc>,
    config: &Config,
) -> Result<usize> {
    let Some(client) = load_facts(tx, client_id)? else {
        return Ok(0);
    };
    let returned = client.returned_at.is_some() || !resumes(standing(tx, client_id, except_reply)?);
    let now_text = fmt_time(now);
    let stopped: Vec<(i64, String, i64, u32)> = tx
        .prepare_cached(
            "SELECT id, campaign, cycle, next_step FROM enrollments WHERE client_id = ?1 AND state = ?2 ORDER BY id",
        )?
        .query_map(params![client_id, stopped.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let mut resumed = 0;
    for (enrollment_id, campaign_name, cycle, next_step) in stopped {
        let Some(campaign) = config.campaign(&campaign_name) else {
            continue; // no longer configured: nothing to schedule it by
        };
        let admitted = !campaign.excludes(client.record.churn_reason.as_deref());
        let message: Option<(String, String, Option<String>)> = tx
            .prepare_cached("SELECT state, due_at, sent_at FROM messages WHERE enrollment_id = ?1 AND cycle = ?2 AND step = ?3
                             AND occurrence = (SELECT next_occurrence FROM enrollments WHERE id = ?1)")?
            .query_row(params![enrollment_id, cycle, next_step], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let state = match &message {
            Some((state, _, _)) => Some(message_state(state)?),
            None => None,
        };
        let (due_at, sent_at) = message.map(|(_, due, sent)| (due, sent)).unzip();
        match lifecycle::resume(returned, admitted, state) {
            Resume::AtStep => {
                reschedule(tx, enrollment_id, next_step, None, now)?;
                reconcile(tx, &config.campaigns, campaign, &client.facts(), now)?;
            }
            Resume::AfterStep => {
                let sent_at = sent_at.flatten();
                reschedule(tx, enrollment_id, next_step + 1, sent_at.as_deref(), now)?;
                reconcile(tx, &config.campaigns, campaign, &client.facts(), now)?;
            }
            Resume::QueueAgain => {
                tx.prepare_cached(
                    "UPDATE messages SET state = 'retry', next_attempt_at = ?2, first_claimed_at = ?2, updated_at = ?2,
                            last_error = 'queued again: its stop was undone'
                     WHERE enrollment_id = ?1 AND cycle = ?3 AND step = ?4
                       AND occurrence = (SELECT next_occurrence FROM enrollments WHERE id = ?1)",
                )?
                .execute(params![enrollment_id, now_text, cycle, next_step])?;
                tx.prepare_cached(
                    "UPDATE enrollments SET state = 'active', due_at = ?2, send_at = NULL, moved_reason = NULL, stopped_at = NULL, updated_at = ?3
                     WHERE id = ?1",
                )?
                .execute(params![enrollment_id, due_at, now_text])?;
            }
            Resume::InFlight => {
                tx.prepare_cached(
                    "UPDATE enrollments SET state = 'active', send_at = NULL, moved_reason = NULL, stopped_at = NULL, updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![enrollment_id, now_text])?;
            }
            Resume::Stay => continue,
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
                send_at = ?4, moved_reason = NULL, stopped_at = NULL, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![enrollment_id, next_step, sent_at, moment(now), fmt_time(now)])?;
    Ok(())
}

#[cfg(test)]
mod tests;
