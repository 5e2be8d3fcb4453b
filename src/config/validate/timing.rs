//! A campaign's timing beyond `send_at`: seasonal (`on`) and recurring (`every_days`)
//! steps, the gap between messages, the consent horizon.
//!
//! Part of the validator: records problems and warnings, builds nothing else.

use toml::Spanned;

use super::Validator;
use crate::domain::campaign::MonthDay;

impl Validator<'_> {
    /// A step's `on = "MM-DD"`.
    pub(super) fn step_on(&mut self, raw: Option<Spanned<String>>, _key: &str) -> Option<MonthDay> {
        let raw = raw?;
        let (m, d) = raw.get_ref().trim().split_once('-')?;
        Some(MonthDay {
            month: m.parse().ok()?,
            day: d.parse().ok()?,
        })
    }

    /// A step's `every_days`.
    pub(super) fn every_days(&mut self, raw: Option<Spanned<i64>>, _key: &str) -> Option<u32> {
        raw.map(|d| (*d.get_ref()).clamp(1, 3650) as u32)
    }

    /// `max_days_since_churn` or `enroll_within_days`: days, when set.
    pub(super) fn horizon_days(&mut self, raw: Option<Spanned<i64>>, _key: &str) -> Option<u32> {
        raw.map(|d| (*d.get_ref()).clamp(1, 36500) as u32)
    }
}
