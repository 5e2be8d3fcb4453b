//! Dates kept free of mail: holiday calendars (all-day events, yearly rules) and a
//! campaign's `quiet_dates`, and which of them apply to a person by their country.
//!
//! Pure: the calendars arrive already read (by `config`); nothing here opens a file.

use chrono::NaiveDate;
use chrono_tz::Tz;

/// A campaign's dates kept free of mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Holidays {
    /// Each `holidays` file, read.
    pub calendars: Vec<HolidayCalendar>,
    /// `quiet_dates`: month-day ranges (inclusive) kept free every year.
    pub quiet: Vec<QuietRange>,
}

/// One holiday calendar file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HolidayCalendar {
    /// The file's name, as written in the configuration.
    pub name: String,
    /// The ISO 3166 alpha-2 country it is for, from its name or `X-WR-CALNAME`, if any.
    pub country: Option<String>,
}

/// A `quiet_dates` range, e.g. `"12-20..01-05"` (it may wrap over the new year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietRange {
    pub from: (u32, u32),
    pub to: (u32, u32),
}

#[allow(dead_code)] // wired into the schedule next
impl Holidays {
    /// Why `date` is kept free for a person in `country` (the holiday's or range's name),
    /// or `None` when mail may go that day.
    pub(crate) fn blocked(&self, date: NaiveDate, country: Option<&str>) -> Option<String> {
        let _ = (date, country);
        None
    }
}

/// The country whose calendars apply to a person: their own `country`, else the one their
/// time zone lies in, else none (then every calendar applies).
#[allow(dead_code)] // wired into the schedule next
pub(crate) fn country_of(country: Option<&str>, zone: Option<Tz>) -> Option<String> {
    let _ = zone;
    country.map(|c| c.trim().to_uppercase())
}
