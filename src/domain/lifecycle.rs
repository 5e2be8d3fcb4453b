//! The rules of a person's and a sequence's life outside a send: what a suppression and a
//! return mean for sending, what a later CRM file says about a known client, whether a
//! client who came back has left again, when the step a sequence stands at is due once
//! its campaign or its client changed, what a message already at that step means then,
//! and where a sequence resumes when its person undoes an opt-out.
//!
//! Plain functions over facts the store gathers; the store writes the answer. Must not
//! touch SQLite, SMTP, HTTP, templates, files or the clock.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::campaign::Campaign;
use crate::domain::model::{ChurnedAt, ClientRecord, MessageState};
use crate::domain::schedule::{self, Next, Sent, Standing, Upcoming};
use crate::domain::suppression::{Reason, Suppression};

/// A person's standing, from the reason of their address's suppression (if any) and
/// whether they came back. The one answer to "what counts as opted out?" is
/// [`Reason::is_opt_out`]: an opt-out, a forgotten person, or a reason this build does
/// not know; a bounce stops as bounced.
pub(crate) fn standing(suppression: Option<Reason>, returned: bool) -> Standing {
    Standing {
        opted_out: suppression.is_some_and(Reason::is_opt_out),
        bounced: suppression == Some(Reason::Bounce),
        returned,
    }
}

/// Whether a client who came back (at `returned_at`) has left again: the churn date a
/// new file gives is later than their return. Then a new sequence starts (an opt-out
/// still stops it). A bare date is read in the zone of the first campaign (the client's
/// own zone if they have one); with no campaign configured nothing starts.
pub(crate) fn churned_again(
    returned_at: Option<DateTime<Utc>>,
    churned_at: ChurnedAt,
    timezone: Option<Tz>,
    first_campaign: Option<&Campaign>,
) -> bool {
    match (returned_at, first_campaign) {
        (Some(returned), Some(campaign)) => {
            churned_at.instant(schedule::zone(campaign, timezone)) > returned
        }
        _ => false,
    }
}

/// What a row says about a known client, over what is stored: a value the row lacks (its
/// column is absent from the file, or its cell is empty) keeps the stored one. A partial
/// export must never erase what an earlier one said, least of all a churn reason that
/// keeps the client out of every campaign.
pub(crate) fn merged(stored: &ClientRecord, row: &ClientRecord) -> ClientRecord {
    let keep = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
    let mut fields = stored.fields.clone();
    for (name, value) in &row.fields {
        if !value.is_empty() || !fields.contains_key(name) {
            fields.insert(name.clone(), value.clone());
        }
    }
    ClientRecord {
        email: row.email.clone(),
        name: keep(&row.name, &stored.name),
        first_name: keep(&row.first_name, &stored.first_name),
        company: keep(&row.company, &stored.company),
        churned_at: row.churned_at,
        churn_reason: keep(&row.churn_reason, &stored.churn_reason),
        timezone: row.timezone.or(stored.timezone),
        fields,
        country: keep(&row.country, &stored.country),
        returned_at: None,
        opted_out: false,
    }
}

/// A row that repeats an address already met in the same file (a deals export has one
/// row per deal), merged with what the earlier rows made of it: as [`merged`], but the
/// latest churn date wins whatever the row order, and a churn reason that keeps them out
/// of any campaign wins over one that does not (no later row can let them be mailed).
pub(crate) fn merged_repeat(
    earlier: &ClientRecord,
    row: &ClientRecord,
    campaigns: &[Campaign],
) -> ClientRecord {
    let mut merged = merged(earlier, row);
    if earlier.churned_at.instant(chrono_tz::UTC) > row.churned_at.instant(chrono_tz::UTC) {
        merged.churned_at = earlier.churned_at;
    }
    let excludes =
        |reason: &Option<String>| campaigns.iter().any(|c| c.excludes(reason.as_deref()));
    if excludes(&earlier.churn_reason) && !excludes(&merged.churn_reason) {
        merged.churn_reason.clone_from(&earlier.churn_reason);
    }
    merged
}

/// What becomes of an active sequence whose campaign no longer takes its client in (their
/// churn reason left its audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusion {
    /// It never began: the enrollment goes, as if it had never been made.
    Drop,
    /// It began (or has a history: messages, a survey answer, an earlier sequence): it
    /// stops as completed, and its history stays.
    Complete,
}

/// What becomes of an active sequence its campaign excludes now: `next_step` is the step
/// it stands at, `scheduled` whether that step has a send time, `history` whether any
/// message or survey answer refers to the enrollment.
pub(crate) fn excluded(next_step: u32, scheduled: bool, history: bool) -> Exclusion {
    if next_step == 1 && scheduled && !history {
        Exclusion::Drop
    } else {
        Exclusion::Complete
    }
}

/// What an active sequence's step comes to when its campaign or its client changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reschedule {
    /// A message at the step is out or settled: its result moves the sequence on.
    Leave,
    /// No message yet: the step is due at this time.
    Due(DateTime<Utc>),
    /// A queued retry (or one cancelled while the campaign was away) keeps its row, and
    /// waits for the step's due time as it is now.
    Requeue(DateTime<Utc>),
    /// Another message comes first now (the campaign's steps changed): the sequence
    /// stands at it instead, and a message queued at the old one is dropped.
    Move(Upcoming),
    /// No message left to send (past the last step, no recurring or seasonal step
    /// reached, or no send to count the next from): the sequence is complete.
    Complete,
    /// The next message would be due past the consent horizon.
    Expired,
}

/// What comes of the message an active sequence stands at (`at`: its step, 1-based, and
/// occurrence), derived again from the client and the campaign as they are now and the
/// sequence's `history` (what went out in this cycle), by the rule a send follows
/// ([`schedule::next_message`]). `message` is the state of the message already at that
/// step and occurrence, if there is one; a missing `send_at` alone never says a message
/// is out.
pub(crate) fn reschedule(
    campaign: &Campaign,
    tz: Tz,
    churned_at: ChurnedAt,
    at: (u32, u32),
    history: &[Sent],
    message: Option<MessageState>,
) -> Reschedule {
    let queued = match message {
        None => false,
        Some(MessageState::Retry | MessageState::Cancelled) => true,
        Some(
            MessageState::Sending
            | MessageState::Sent
            | MessageState::Failed
            | MessageState::Uncertain
            | MessageState::Held,
        ) => return Reschedule::Leave,
    };
    if at.0 > 1 && history.is_empty() {
        return Reschedule::Complete;
    }
    let next = match schedule::next_message(campaign, churned_at, history, tz) {
        Next::Completed => return Reschedule::Complete,
        Next::Message(next) => next,
    };
    if schedule::horizon(campaign, churned_at, tz).is_some_and(|h| next.due >= h) {
        return Reschedule::Expired;
    }
    match ((next.step, next.occurrence) == at, queued) {
        (true, true) => Reschedule::Requeue(next.due),
        (true, false) => Reschedule::Due(next.due),
        (false, _) => Reschedule::Move(next),
    }
}

/// Where a sequence an opt-out stopped resumes when its person undoes the opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Nothing went out at its step: the step is scheduled again from now.
    AtStep,
    /// The step went out (or may have) while the opt-out stood: it counts as sent, and
    /// the next one is due from when it went.
    AfterStep,
    /// The opt-out cancelled a queued retry: that same row is queued again at once (no
    /// second copy).
    QueueAgain,
    /// In flight: its result moves the sequence on, as for any active one.
    InFlight,
    /// It stays stopped: the person came back as a client, the campaign no longer takes
    /// them in, or the step failed (the address is likely dead).
    Stay,
}

/// Where a stopped sequence resumes: `returned` says the person came back as a client,
/// `admitted` that the campaign still takes them in, `message` is the state of the
/// message at the step the sequence stopped at, if any.
pub(crate) fn resume(returned: bool, admitted: bool, message: Option<MessageState>) -> Resume {
    if returned || !admitted {
        return Resume::Stay;
    }
    match message {
        None => Resume::AtStep,
        Some(MessageState::Sent | MessageState::Uncertain) => Resume::AfterStep,
        Some(MessageState::Cancelled) => Resume::QueueAgain,
        Some(MessageState::Sending | MessageState::Retry) => Resume::InFlight,
        Some(MessageState::Failed | MessageState::Held) => Resume::Stay,
    }
}

/// What a link's Undo does to an address's suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    /// There is nothing to undo.
    NotOptedOut,
    /// It stays: it is not the person's own opt-out (see
    /// [`Suppression::undoable_by_link`]), or the address bounced (a sequence of theirs
    /// stopped as bounced), even if its person opted out since.
    NotUndoable,
    /// The suppression goes, and the sequences it stopped resume.
    Lift,
}

/// Whether a link's Undo lifts `suppression`; `bounced` says whether any of the person's
/// sequences stopped as bounced.
pub(crate) fn undo(suppression: Option<&Suppression>, bounced: bool) -> Undo {
    match suppression {
        None => Undo::NotOptedOut,
        Some(s) if s.undoable_by_link() && !bounced => Undo::Lift,
        Some(_) => Undo::NotUndoable,
    }
}

/// What a CRM row's `returned_at` says about a client: the instant of a return that still
/// stands, or `None` when the row has none or its churn date is later than it (they came
/// back, then left again: that earlier return is history, and the churn starts a new
/// sequence as [`churned_again`] says). A bare date is read in the zone
/// [`churned_again`] uses (UTC with no campaign configured); a date that is already today
/// somewhere on Earth counts as of `now`. A return in the future is an error, in words
/// for the row's report.
pub(crate) fn crm_return(
    returned_at: Option<ChurnedAt>,
    churned_at: ChurnedAt,
    timezone: Option<Tz>,
    first_campaign: Option<&Campaign>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let Some(returned_at) = returned_at else {
        return Ok(None);
    };
    let in_future = match returned_at {
        ChurnedAt::Date(date) => now
            .date_naive()
            .succ_opt()
            .is_some_and(|latest| date > latest),
        ChurnedAt::Instant(instant) => instant > now,
    };
    if in_future {
        return Err(format!(
            "returned_at {returned_at} is in the future (a return is recorded once it has \
             happened: leave the cell empty until then)"
        ));
    }
    let tz = match first_campaign {
        Some(campaign) => schedule::zone(campaign, timezone),
        None => timezone.unwrap_or(chrono_tz::UTC),
    };
    let returned = returned_at.instant(tz).min(now);
    Ok((returned >= churned_at.instant(tz)).then_some(returned))
}

#[cfg(test)]
mod tests;
