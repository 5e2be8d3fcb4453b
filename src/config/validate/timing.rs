//! A campaign's timing beyond `send_at`: seasonal (`on`) and recurring (`every_days`)
//! steps, the gap between messages, the consent horizon.
//!
//! Part of the validator: records problems and warnings, builds nothing else.

use toml::Spanned;

use super::Validator;
use crate::domain::campaign::MonthDay;

/// `after_days` of a seasonal step that does not set it: the date is at least two weeks
/// after the message before it.
pub(super) const SEASONAL_AFTER_DAYS: u32 = 14;
/// The fewest days `every_days` may say: a weekly message at most.
const MIN_EVERY_DAYS: i64 = 7;
/// The most: ten years.
const MAX_EVERY_DAYS: i64 = 3650;

/// What the step being read is, for the rules that depend on it.
pub(super) struct StepContext<'k> {
    /// The first step, the survey: timed by the quiet period, sent once.
    pub survey: bool,
    /// `campaign[N].step[M].` before each key.
    pub key: &'k dyn Fn(&str) -> String,
}

impl Validator<'_> {
    /// A step's `on = "MM-DD"`: a month and a day that exist in some year (02-29 means
    /// 28 February in other years); never on the survey.
    pub(super) fn step_on(
        &mut self,
        raw: Option<Spanned<String>>,
        step: &StepContext<'_>,
    ) -> Option<MonthDay> {
        let raw = raw?;
        let key = (step.key)("on");
        let written = raw.get_ref().trim();
        let Some(on) = parse_month_day(written) else {
            self.problem(
                Some(&raw.span()),
                &key,
                format!("\"{written}\" is not a month and day; write \"MM-DD\", e.g. on = \"12-10\" for 10 December (every year once reached)"),
            );
            return None;
        };
        if step.survey {
            self.problem(
                Some(&raw.span()),
                &key,
                "the survey is timed by the campaign's quiet_days and goes once; put the seasonal message in a later step",
            );
            return None;
        }
        Some(on)
    }

    /// A step's `every_days`: between a week and ten years; never on the survey nor
    /// beside `on` (a step is either yearly on its date or every N days). A value below
    /// the campaign's `min_gap_days` earns a warning: the gap wins.
    pub(super) fn every_days(
        &mut self,
        raw: Option<Spanned<i64>>,
        step: &StepContext<'_>,
        on: Option<MonthDay>,
        min_gap_days: i64,
    ) -> Option<u32> {
        let raw = raw?;
        let key = (step.key)("every_days");
        let days = *raw.get_ref();
        if step.survey {
            self.problem(
                Some(&raw.span()),
                &key,
                "the survey goes once per departure; put the recurring message in a later step",
            );
            return None;
        }
        if on.is_some() {
            self.problem(
                Some(&raw.span()),
                &key,
                "a step with on = \"MM-DD\" already recurs every year on that date; remove every_days, or remove on and keep every_days for a message every N days",
            );
            return None;
        }
        if !(MIN_EVERY_DAYS..=MAX_EVERY_DAYS).contains(&days) {
            self.problem(
                Some(&raw.span()),
                &key,
                format!("is {days}; use between {MIN_EVERY_DAYS} (weekly) and {MAX_EVERY_DAYS} days, e.g. every_days = 91 for a quarterly newsletter"),
            );
            return None;
        }
        if days < min_gap_days {
            self.warning(
                &raw.span(),
                &key,
                format!("is {days}, below the campaign's min_gap_days ({min_gap_days}): each message waits for the gap, so it goes every {min_gap_days} days at most"),
            );
        }
        Some(days as u32)
    }

    /// `max_days_since_churn`: the consent horizon, longer than the quiet period (or no
    /// message could ever go).
    pub(super) fn max_days_since_churn(
        &mut self,
        raw: Option<Spanned<i64>>,
        key: &str,
        quiet_days: i64,
    ) -> Option<u32> {
        let raw = raw?;
        let days = *raw.get_ref();
        if days <= quiet_days {
            self.problem(
                Some(&raw.span()),
                key,
                format!("is {days}, not more than the quiet period ({quiet_days} days): no message could ever go; implied consent usually lasts two years, e.g. max_days_since_churn = 730"),
            );
            return None;
        }
        self.horizon_days(Some(raw), key)
    }

    /// `max_days_since_churn` or `enroll_within_days`: days, when set, between 1 and
    /// 36500.
    pub(super) fn horizon_days(&mut self, raw: Option<Spanned<i64>>, key: &str) -> Option<u32> {
        let raw = raw?;
        let days = *raw.get_ref();
        if !(1..=36500).contains(&days) {
            self.problem(
                Some(&raw.span()),
                key,
                format!(
                    "is {days}; write a number of days between 1 and 36500, e.g. 730 for two years"
                ),
            );
            return None;
        }
        Some(days as u32)
    }
}

/// `"MM-DD"` (one- or two-digit month and day) as a day of the year; 02-29 is allowed.
pub(super) fn parse_month_day(text: &str) -> Option<MonthDay> {
    let (m, d) = text.split_once('-')?;
    let ok = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(m) || !ok(d) {
        return None;
    }
    let (month, day) = (m.parse().ok()?, d.parse().ok()?);
    // 2024 is a leap year: every month-day that exists in some year exists in it.
    chrono::NaiveDate::from_ymd_opt(2024, month, day)?;
    Some(MonthDay { month, day })
}

#[cfg(test)]
mod tests;
