//! A validated campaign: its audience, its quiet period, when it may send, and its steps.
//!
//! Built only by `config` (which checks every rule on the way in); read by the schedule,
//! the plan and delivery. Holds no parsing and no I/O.

use chrono_tz::Tz;

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
}

impl Campaign {
    /// Whether a client who left for `reason` belongs to this campaign's audience.
    pub(crate) fn admits(&self, reason: Option<&str>) -> bool {
        match reason {
            Some(reason) => {
                reason != ALWAYS_EXCLUDED && !self.exclude_reasons.iter().any(|r| r == reason)
            }
            None => true,
        }
    }

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
}
