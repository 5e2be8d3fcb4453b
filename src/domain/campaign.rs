//! A validated campaign: its audience, its quiet period, when it may send, and its steps.
//!
//! Built only by `config` (which checks every rule on the way in); read by the schedule,
//! the plan and delivery. Holds no parsing and no I/O.

use chrono_tz::Tz;

use crate::domain::holidays::Holidays;
use crate::domain::model::StepKind;
use crate::domain::send_at::SendAt;

/// The smallest quiet period the playbook allows.
pub(crate) const MIN_QUIET_DAYS: i64 = 90;
/// Gaps below this between soft touches earn a warning.
pub(crate) const SLOW_TOUCH_DAYS: i64 = 14;
/// Churn reasons that are never contacted, whatever the campaign says.
pub(crate) const ALWAYS_EXCLUDED: &str = "we_ended";

#[derive(Debug, Clone)]
pub(crate) struct Campaign {
    pub name: String,
    pub quiet_days: u32,
    pub send_at: SendAt,
    pub timezone: Tz,
    pub exclude_reasons: Vec<String>,
    pub catch_up_hours: u32,
    /// The name this campaign had before (`renamed_from`): its enrollments carry over.
    pub renamed_from: Option<String>,
    pub steps: Vec<Step>,
    /// `include_reasons`: only these churn reasons; `None` takes every reason not excluded.
    pub include_reasons: Option<Vec<String>>,
    /// `match`: (key as written, e.g. `fields.region` or `country`; value), each an exact,
    /// case-insensitive match on the client.
    pub matches: Vec<(String, String)>,
    /// Fewest days between two messages to one person when a recurring step is involved.
    pub min_gap_days: u32,
    /// Fewest days between two messages to one account, across campaigns.
    pub account_gap_days: u32,
    /// `holidays` and `quiet_dates`.
    pub holidays: Holidays,
    /// The consent horizon: no message starts more than this many days after the churn.
    pub max_days_since_churn: Option<u32>,
    /// A client whose survey was due more than this many days before they were first seen
    /// is not enrolled.
    pub enroll_within_days: Option<u32>,
    /// `paused = true`: nothing is sent; enrollment goes on.
    pub paused: bool,
}

impl Campaign {
    /// The step with 1-based number `number`.
    pub(crate) fn step(&self, number: u32) -> Option<&Step> {
        (number as usize)
            .checked_sub(1)
            .and_then(|i| self.steps.get(i))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub kind: StepKind,
    /// Days after the previous step's send; 0 for the survey (timed by `quiet_days`).
    pub after_days: u32,
    pub template: String,
    pub subject: String,
    /// Where the step is declared, for template errors.
    pub line: usize,
    /// `on = "12-10"`: a seasonal step, sent on that date (and every year once reached).
    pub on: Option<MonthDay>,
    /// `every_days`: once reached, the step recurs every this many days.
    pub every_days: Option<u32>,
}

/// A day of the year, `"MM-DD"`; 29 February means 28 February in other years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MonthDay {
    pub month: u32,
    pub day: u32,
}
