//! Mail that came back, in the store: matching an inbound message to the message of ours
//! it answers, applying what `domain::inbound` decided (once per inbound message, in one
//! transaction), listing what came in, and undoing a wrong suppression or stop.
//!
//! Holds no rules: the outcome, its effect and the soft-bounce rule are the domain's; this
//! gathers the facts and writes the answer down. Knows nothing about MIME or mailboxes.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::accounts::{colleagues, stop_account};
use super::enroll::stop_client;
use super::notices::{self, About};
use super::people::{opt_out, reactivate, suppress};
use super::{Result, Store, StoreError, email_hash, fmt_time, log_event, parse_opt_time};
use crate::config::Config;
use crate::domain::accounts::AccountStop;
use crate::domain::inbound::{
    self, Effect, InboundRules, Outcome, opt_out_source, soft_bounces_become_bounce,
};
use crate::domain::model::{EnrollmentState, normalize_email};
use crate::domain::suppression::{Reason, Suppression};

/// The source of a bounce recorded from a returned message.
const BOUNCE_SOURCE: &str = "inbound";

/// One inbound message, as classified, with what matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbound {
    /// What it is applied once by: `id:` and its Message-ID, else `sha256:` and its hash.
    pub key: String,
    pub outcome: Outcome,
    /// The address the outcome is about, when the message names one.
    pub recipient: Option<String>,
    /// The sender.
    pub from: Option<String>,
    /// The outbox row a VERP return address named, if any.
    pub verp_row: Option<i64>,
    /// Message-IDs it refers to, without angle brackets, most exact first.
    pub referenced_ids: Vec<String>,
    pub status: Option<String>,
    pub why: String,
    /// The start of a reply's text, kept for the team.
    pub excerpt: Option<String>,
    /// When it says it was written (`Date`).
    pub written_at: Option<DateTime<Utc>>,
}

/// An inbound message as recorded, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InboundRecord {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub email: Option<String>,
    pub campaign: Option<String>,
    pub step: Option<u32>,
    pub status: Option<String>,
    pub why: String,
    pub effect: Effect,
    /// It changed something (a suppression, a stop, a count).
    pub applied: bool,
    pub undone_at: Option<DateTime<Utc>>,
    pub excerpt: Option<String>,
}

/// What recording an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub record: InboundRecord,
    /// It had been read before: nothing was applied this time.
    pub already_seen: bool,
}

/// What `winback inbox undo` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InboxUndo {
    Unknown,
    /// It changed nothing, so there is nothing to undo.
    NothingToUndo,
    AlreadyUndone,
    /// Undone; `resumed` sequences were picked up where they stopped.
    Undone {
        resumed: usize,
    },
}

/// The message of ours an inbound message answers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matched {
    message_row: i64,
    client_id: i64,
    email: String,
    campaign: String,
    step: u32,
    /// How it was found, for the operator.
    by: &'static str,
}

const MATCH_COLUMNS: &str = "m.id, m.client_id, c.email, m.campaign, m.step";

fn matched_from_row(r: &rusqlite::Row<'_>, by: &'static str) -> rusqlite::Result<Matched> {
    Ok(Matched {
        message_row: r.get(0)?,
        client_id: r.get(1)?,
        email: r.get(2)?,
        campaign: r.get(3)?,
        step: r.get(4)?,
        by,
    })
}

/// The message of ours `inbound` answers, most exact first: the outbox row its VERP
/// address names, one of our Message-IDs it refers to, then the latest message we sent to
/// the address it names or comes from. Only messages that went out count: a report about
/// a message we never sent matches nothing.
fn find_message(conn: &Connection, inbound: &Inbound) -> Result<Option<Matched>> {
    if let Some(row) = inbound.verp_row {
        let found = conn
            .prepare_cached(&format!(
                "SELECT {MATCH_COLUMNS} FROM messages m JOIN clients c ON c.id = m.client_id
                 WHERE m.id = ?1 AND m.state IN ('sent', 'uncertain')"
            ))?
            .query_row(params![row], |r| matched_from_row(r, "return address"))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    for id in &inbound.referenced_ids {
        let found = conn
            .prepare_cached(&format!(
                "SELECT {MATCH_COLUMNS} FROM messages m JOIN clients c ON c.id = m.client_id
                 WHERE m.message_id = ?1 AND m.state IN ('sent', 'uncertain')"
            ))?
            .query_row(params![format!("<{id}>")], |r| {
                matched_from_row(r, "Message-ID")
            })
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    for address in [&inbound.recipient, &inbound.from].into_iter().flatten() {
        let found = conn
            .prepare_cached(&format!(
                "SELECT {MATCH_COLUMNS}, m.sent_at FROM messages m JOIN clients c ON c.id = m.client_id
                 WHERE c.email = ?1 AND m.state IN ('sent', 'uncertain')
                 ORDER BY m.sent_at DESC, m.id DESC LIMIT 1"
            ))?
            .query_row(params![normalize_email(address)], |r| {
                Ok((matched_from_row(r, "address")?, r.get::<_, Option<String>>(5)?))
            })
            .optional()?;
        if let Some((found, sent_at)) = found {
            // Only the address ties it to us: mail written before we first wrote to them
            // (an old thread in an inbox read for the first time) is not about our mail.
            let sent_at = sent_at.as_deref().map(super::parse_time).transpose()?;
            let first = first_sent_to(conn, found.client_id)?.or(sent_at);
            if let (Some(written), Some(first)) = (inbound.written_at, first)
                && written + chrono::Duration::minutes(ADDRESS_MATCH_SKEW_MINUTES) < first
            {
                return Ok(None);
            }
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// How far a sender's clock may run behind ours for mail matched by address alone.
const ADDRESS_MATCH_SKEW_MINUTES: i64 = 60;

/// When we first sent anything to the client, if we did.
fn first_sent_to(conn: &Connection, client_id: i64) -> Result<Option<DateTime<Utc>>> {
    let first: Option<String> = conn
        .prepare_cached(
            "SELECT MIN(sent_at) FROM messages WHERE client_id = ?1 AND state IN ('sent', 'uncertain')",
        )?
        .query_row(params![client_id], |r| r.get(0))?;
    first.as_deref().map(super::parse_time).transpose()
}

fn stored_suppression(conn: &Connection, email: &str) -> Result<Option<Suppression>> {
    let stored: Option<(String, String)> = conn
        .prepare_cached("SELECT reason, source FROM suppressions WHERE email_hash = ?1")?
        .query_row(params![email_hash(email)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(stored.map(|(reason, source)| Suppression::decode(&reason, &source)))
}

const RECORD_COLUMNS: &str = "id, received_at, outcome, email, campaign, step, status, why, effect, applied, undone_at, excerpt";

type RecordRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<u32>,
    Option<String>,
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
);

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ))
}

fn decode_record(row: RecordRow) -> Result<InboundRecord> {
    let (
        id,
        received,
        outcome,
        email,
        campaign,
        step,
        status,
        why,
        effect,
        applied,
        undone,
        excerpt,
    ) = row;
    Ok(InboundRecord {
        id,
        received_at: super::parse_time(&received)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("inbound outcome {outcome:?}")))?,
        email,
        campaign,
        step,
        status,
        why,
        effect: Effect::parse(&effect)
            .ok_or_else(|| StoreError::Corrupt(format!("inbound effect {effect:?}")))?,
        applied,
        undone_at: parse_opt_time(undone)?,
        excerpt,
    })
}

fn load_record(conn: &Connection, key_or_id: KeyOrId<'_>) -> Result<Option<InboundRecord>> {
    let row = match key_or_id {
        KeyOrId::Key(key) => conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM inbound_messages WHERE key = ?1"
            ))?
            .query_row(params![key], record_row)
            .optional()?,
        KeyOrId::Id(id) => conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM inbound_messages WHERE id = ?1"
            ))?
            .query_row(params![id], record_row)
            .optional()?,
    };
    row.map(decode_record).transpose()
}

enum KeyOrId<'a> {
    Key(&'a str),
    Id(i64),
}

/// Suppresses `email` as `new` and stops the client's sequences as `stop`; returns the
/// suppression stored before, for undo.
fn suppress_and_stop(
    tx: &Transaction<'_>,
    client_id: i64,
    email: &str,
    effect: Effect,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<Option<Suppression>> {
    let before = stored_suppression(tx, email)?;
    match effect {
        Effect::Bounce => {
            suppress(
                tx,
                email,
                &Suppression::new(Reason::Bounce, BOUNCE_SOURCE),
                now,
            )?;
            stop_client(tx, client_id, EnrollmentState::Bounced, now)?;
        }
        _ => {
            opt_out(tx, email, opt_out_source(outcome), now)?;
        }
    }
    Ok(before)
}

impl Store {
    /// Records one inbound message and applies its outcome to the person of the message
    /// it answers, in one transaction. The same key is applied once: read again, it
    /// returns what was recorded the first time and changes nothing.
    pub(crate) fn apply_inbound(
        &mut self,
        inbound: &Inbound,
        rules: InboundRules,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        let tx = self.write_tx()?;
        if let Some(record) = load_record(&tx, KeyOrId::Key(&inbound.key))? {
            return Ok(Applied {
                record,
                already_seen: true,
            });
        }
        let matched = match inbound.outcome {
            Outcome::Unrelated => None,
            _ => find_message(&tx, inbound)?,
        };
        let mut why = inbound.why.clone();
        let mut effect = Effect::None;
        if let Some(m) = &matched {
            why = format!("{why} (matched by {})", m.by);
            let failed = inbound.recipient.as_deref().map(normalize_email);
            let bounce_like = matches!(inbound.outcome, Outcome::Bounce | Outcome::SoftBounce);
            if bounce_like && failed.as_ref().is_some_and(|f| *f != m.email) {
                // A bounce suppresses only the failed recipient, and that is not the
                // address we mailed (a forward, an alias): shown, not applied.
                why = format!(
                    "{why}; not applied: the failed address is not {}, the one we mailed",
                    m.email
                );
            } else {
                let limit_reached = inbound.outcome == Outcome::SoftBounce && {
                    let mut times: Vec<DateTime<Utc>> = tx
                        .prepare_cached(
                            "SELECT received_at FROM inbound_messages
                             WHERE client_id = ?1 AND outcome = 'soft_bounce' AND applied = 1
                               AND undone_at IS NULL",
                        )?
                        .query_map(params![m.client_id], |r| r.get::<_, String>(0))?
                        .map(|t| super::parse_time(&t?))
                        .collect::<Result<_>>()?;
                    times.push(now);
                    soft_bounces_become_bounce(&times, rules.soft_bounce)
                };
                effect = inbound::effect(inbound.outcome, limit_reached);
            }
        }
        let mut before = None;
        if let Some(m) = &matched {
            match effect {
                Effect::Bounce | Effect::OptOut => {
                    before = suppress_and_stop(
                        &tx,
                        m.client_id,
                        &m.email,
                        effect,
                        inbound.outcome,
                        now,
                    )?;
                }
                Effect::Left => {
                    stop_client(&tx, m.client_id, EnrollmentState::Left, now)?;
                }
                Effect::Replied => {
                    stop_client(&tx, m.client_id, EnrollmentState::Replied, now)?;
                    // A person answered for the account: its other contacts wait too.
                    stop_account(&tx, m.client_id, AccountStop::Replied, now)?;
                }
                Effect::Counted | Effect::None => {}
            }
            if effect != Effect::None {
                log_event(
                    &tx,
                    now,
                    Some(m.client_id),
                    &format!("inbound_{}", inbound.outcome),
                    &why,
                )?;
            }
        }
        let email = matched
            .as_ref()
            .map(|m| m.email.clone())
            .or_else(|| inbound.recipient.as_deref().map(normalize_email))
            .or_else(|| inbound.from.as_deref().map(normalize_email));
        tx.prepare_cached(
            "INSERT INTO inbound_messages (key, received_at, outcome, email, client_id, message_row,
                    campaign, step, status, why, applied, effect, before_reason, before_source, excerpt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            inbound.key,
            fmt_time(now),
            inbound.outcome.as_str(),
            email,
            matched.as_ref().map(|m| m.client_id),
            matched.as_ref().map(|m| m.message_row),
            matched.as_ref().map(|m| m.campaign.clone()),
            matched.as_ref().map(|m| m.step),
            inbound.status,
            why,
            effect != Effect::None,
            effect.as_str(),
            before.as_ref().map(|s| s.reason.as_str()),
            before.as_ref().map(|s| s.source.clone()),
            inbound.excerpt,
        ])?;
        let id = tx.last_insert_rowid();
        if let Some(m) = &matched
            && rules.notify
            && let Some(kind) = crate::domain::notice::for_inbound(effect)
        {
            notices::queue(&tx, kind, m.client_id, About::Inbound(id), now)?;
        }
        let record = load_record(&tx, KeyOrId::Id(id))?
            .ok_or_else(|| StoreError::Corrupt(format!("inbound message {id} vanished")))?;
        tx.commit()?;
        Ok(Applied {
            record,
            already_seen: false,
        })
    }

    /// The latest `limit` inbound messages, newest first.
    pub(crate) fn inbox(&self, limit: u32) -> Result<Vec<InboundRecord>> {
        let rows: Vec<RecordRow> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM inbound_messages ORDER BY id DESC LIMIT ?1"
            ))?
            .query_map(params![limit], record_row)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(decode_record).collect()
    }

    /// Reverses what inbound message `id` did: the suppression it recorded goes (the one
    /// it replaced, if any, comes back), and the sequences it stopped resume where they
    /// stood, unless the address is still suppressed for another reason.
    pub(crate) fn undo_inbound(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
        config: &Config,
    ) -> Result<InboxUndo> {
        let tx = self.write_tx()?;
        let Some(record) = load_record(&tx, KeyOrId::Id(id))? else {
            return Ok(InboxUndo::Unknown);
        };
        if record.undone_at.is_some() {
            return Ok(InboxUndo::AlreadyUndone);
        }
        if !record.applied {
            return Ok(InboxUndo::NothingToUndo);
        }
        let (client_id, before): (Option<i64>, Option<(String, String)>) = tx.query_row(
            "SELECT client_id, before_reason, before_source FROM inbound_messages WHERE id = ?1",
            params![id],
            |r| {
                let reason: Option<String> = r.get(1)?;
                let source: Option<String> = r.get(2)?;
                Ok((r.get(0)?, reason.zip(source)))
            },
        )?;
        let mut resumed = 0;
        if let (Some(client_id), Some(email)) = (client_id, record.email.as_deref()) {
            let ours = match record.effect {
                Effect::Bounce => Some(Suppression::new(Reason::Bounce, BOUNCE_SOURCE)),
                Effect::OptOut => Some(Suppression::new(
                    Reason::OptOut,
                    opt_out_source(record.outcome),
                )),
                _ => None,
            };
            if let Some(ours) = ours
                && stored_suppression(&tx, email)?.as_ref() == Some(&ours)
            {
                tx.execute(
                    "DELETE FROM suppressions WHERE email_hash = ?1",
                    params![email_hash(email)],
                )?;
                if let Some((reason, source)) = &before {
                    suppress(&tx, email, &Suppression::decode(reason, source), now)?;
                }
            }
            let stopped = match record.effect {
                Effect::Bounce => Some(EnrollmentState::Bounced),
                Effect::OptOut => Some(EnrollmentState::OptedOut),
                Effect::Left => Some(EnrollmentState::Left),
                Effect::Replied => Some(EnrollmentState::Replied),
                Effect::Counted | Effect::None => None,
            };
            if let Some(state) = stopped
                && stored_suppression(&tx, email)?.is_none()
            {
                resumed = reactivate(&tx, client_id, state, Some(id), now, config)?;
            }
            if record.effect == Effect::Replied {
                // The other contacts of the account this reply stopped, unless something
                // else stops them (their own suppression, another reply, a return).
                for (other, address) in colleagues(&tx, client_id)? {
                    if stored_suppression(&tx, &address)?.is_none() {
                        resumed += reactivate(
                            &tx,
                            other,
                            EnrollmentState::Replied,
                            Some(id),
                            now,
                            config,
                        )?;
                    }
                }
            }
            log_event(
                &tx,
                now,
                Some(client_id),
                "inbound_undone",
                &format!(
                    "inbound message {id} ({}); {resumed} sequence(s) resumed",
                    record.outcome
                ),
            )?;
        }
        tx.execute(
            "UPDATE inbound_messages SET undone_at = ?2 WHERE id = ?1",
            params![id, fmt_time(now)],
        )?;
        notices::cancel_for_inbound(&tx, id)?;
        if record.outcome == Outcome::SoftBounce && record.effect == Effect::Bounce {
            // The count that made the bounce goes with it: the next soft bounce starts a
            // new count rather than bouncing the address again at once.
            tx.execute(
                "UPDATE inbound_messages SET undone_at = ?2
                 WHERE client_id = ?1 AND outcome = 'soft_bounce' AND effect = 'counted' AND undone_at IS NULL",
                params![client_id, fmt_time(now)],
            )?;
        }
        tx.commit()?;
        Ok(InboxUndo::Undone { resumed })
    }
}

#[cfg(test)]
pub(super) mod tests;
