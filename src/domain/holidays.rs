//! Dates kept free of mail: holiday calendars (all-day events, yearly rules) and a
//! campaign's `quiet_dates`, and which of them apply to a person by their country.
//!
//! Pure: the calendars arrive already read (by `config`); nothing here opens a file.
//! A yearly rule is kept as a rule and expanded for the year asked, so a calendar holds
//! for every year without a horizon.

use std::fmt;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use chrono_tz::Tz;

use super::country::{country_code, zone_country};

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
    /// A calendar without one applies to everyone.
    pub country: Option<String>,
    /// Its all-day events.
    pub events: Vec<Holiday>,
}

/// One all-day event: a single day or several, once or every year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holiday {
    /// `SUMMARY`, e.g. "Thanksgiving Day".
    pub name: String,
    /// `DTSTART`: the first day of the first occurrence.
    pub start: NaiveDate,
    /// How many days each occurrence lasts (`DTEND` is the day after the last); at least 1.
    pub days: u32,
    /// `RRULE`, when the event repeats every year.
    pub yearly: Option<YearlyRule>,
    /// `EXDATE`: occurrences left out, by their first day.
    pub except: Vec<NaiveDate>,
}

/// A `FREQ=YEARLY` rule, as RFC 5545 reads it for all-day events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YearlyRule {
    /// `INTERVAL`: every this many years (1 when unset).
    pub interval: u32,
    /// `BYMONTH`: 1 to 12.
    pub months: Vec<u32>,
    /// `BYMONTHDAY`: 1 to 31, or -1 (the last day) to -31.
    pub month_days: Vec<i32>,
    /// `BYDAY`: (0, day) for every such weekday, (n, day) the nth, (-n, day) the nth from
    /// last; counted in the month with `BYMONTH`, in the year without.
    pub weekdays: Vec<(i32, Weekday)>,
    /// `COUNT`: occurrences in all, when set.
    pub count: Option<u32>,
    /// `UNTIL`: the last day an occurrence may start, when set.
    pub until: Option<NaiveDate>,
}

/// A `quiet_dates` range, e.g. `"12-20..01-05"` (it may wrap over the new year); a single
/// day has `from == to`. (2, 29) stands for 28 February in other years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietRange {
    pub from: (u32, u32),
    pub to: (u32, u32),
}

impl Holidays {
    /// Why `date` is kept free for a person in `country` (an alpha-2 code, as
    /// [`country_of`] gives it), or `None` when mail may go that day: "Thanksgiving Day
    /// (holidays/us.ics)", or "quiet dates 12-20..01-05". A calendar for another country
    /// does not apply; one for no country in particular, or a person of no known
    /// country, does.
    pub(crate) fn blocked(&self, date: NaiveDate, country: Option<&str>) -> Option<String> {
        for calendar in self.calendars.iter().filter(|c| c.applies_to(country)) {
            if let Some(holiday) = calendar.events.iter().find(|h| h.covers(date)) {
                return Some(format!("{} ({})", holiday.name, calendar.name));
            }
        }
        self.quiet
            .iter()
            .find(|q| q.contains(date))
            .map(ToString::to_string)
    }

    /// The first day from `date` on that is not kept free for a person in `country`, if
    /// there is one within two years (`check` refuses quiet dates that leave a whole year
    /// blocked, so there always is for a configuration it accepted).
    pub(crate) fn first_free_day(
        &self,
        date: NaiveDate,
        country: Option<&str>,
    ) -> Option<NaiveDate> {
        date.iter_days()
            .take(2 * 366 + 1)
            .find(|d| self.blocked(*d, country).is_none())
    }

    /// Whether no date is ever kept free.
    pub(crate) fn is_empty(&self) -> bool {
        self.calendars.is_empty() && self.quiet.is_empty()
    }
}

impl HolidayCalendar {
    /// Whether the calendar applies to a person in `country`.
    pub(crate) fn applies_to(&self, country: Option<&str>) -> bool {
        match (country, &self.country) {
            (Some(person), Some(calendar)) => person.trim().eq_ignore_ascii_case(calendar),
            _ => true,
        }
    }
}

impl Holiday {
    /// Whether `date` falls on one of the event's days.
    pub(crate) fn covers(&self, date: NaiveDate) -> bool {
        let span = u64::from(self.days.max(1) - 1);
        let Some(earliest) = date.checked_sub_days(Days::new(span)) else {
            return false;
        };
        (earliest.year()..=date.year()).any(|year| {
            self.starts_in(year)
                .into_iter()
                .any(|start| earliest <= start && start <= date)
        })
    }

    /// The first days of the occurrences that start in `year`, in order.
    pub(crate) fn starts_in(&self, year: i32) -> Vec<NaiveDate> {
        let Some(rule) = &self.yearly else {
            return if self.start.year() == year {
                vec![self.start]
            } else {
                Vec::new()
            };
        };
        let first = self.start.year();
        let interval = rule.interval.max(1) as usize;
        if year < first || !((year - first) as usize).is_multiple_of(interval) {
            return Vec::new();
        }
        let mut days = rule.candidates(self.start, year);
        if let Some(count) = rule.count {
            let before: usize = (first..year)
                .step_by(interval)
                .map(|y| rule.candidates(self.start, y).len())
                .sum();
            days.truncate((count as usize).saturating_sub(before));
        }
        days.retain(|d| !self.except.contains(d));
        days
    }
}

impl YearlyRule {
    /// The days of `year` the rule names, from `start` on and up to `until`, before
    /// `COUNT` is applied. A day a month lacks (30 February, 29 February in other
    /// years) is no day, as RFC 5545 says.
    fn candidates(&self, start: NaiveDate, year: i32) -> Vec<NaiveDate> {
        let by_day = !self.month_days.is_empty() || !self.weekdays.is_empty();
        let months: Vec<u32> = if !self.months.is_empty() {
            self.months.clone()
        } else if by_day {
            (1..=12).collect()
        } else {
            vec![start.month()]
        };
        let year_len = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
            366
        } else {
            365
        };
        let mut out = Vec::new();
        for month in months {
            let month_len = days_in_month(year, month);
            for day in 1..=month_len {
                let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
                    continue;
                };
                let day_ok = if !self.month_days.is_empty() {
                    self.month_days.iter().any(|&md| {
                        md == day as i32 || (md < 0 && month_len as i32 + 1 + md == day as i32)
                    })
                } else {
                    by_day || day == start.day()
                };
                // Weekdays are counted in the month when BYMONTH is set, else in the year.
                let (position, period_len) = if self.months.is_empty() {
                    (date.ordinal(), year_len)
                } else {
                    (day, month_len)
                };
                let weekday_ok = self.weekdays.is_empty()
                    || self.weekdays.iter().any(|&(n, weekday)| {
                        date.weekday() == weekday
                            && match n {
                                0 => true,
                                n if n > 0 => ((position - 1) / 7 + 1) as i32 == n,
                                n => ((period_len - position) / 7 + 1) as i32 == -n,
                            }
                    });
                if day_ok && weekday_ok {
                    out.push(date);
                }
            }
        }
        out.sort();
        out.dedup();
        out.retain(|d| *d >= start && self.until.is_none_or(|until| *d <= until));
        out
    }
}

impl QuietRange {
    /// Whether `date` is inside the range, every year; (2, 29) is 28 February in years
    /// without one.
    pub(crate) fn contains(&self, date: NaiveDate) -> bool {
        let leap = NaiveDate::from_ymd_opt(date.year(), 2, 29).is_some();
        let this_year = |(m, d): (u32, u32)| {
            if (m, d) == (2, 29) && !leap {
                (2, 28)
            } else {
                (m, d)
            }
        };
        let (from, to) = (this_year(self.from), this_year(self.to));
        let day = (date.month(), date.day());
        if from <= to {
            from <= day && day <= to
        } else {
            day >= from || day <= to
        }
    }
}

impl fmt::Display for QuietRange {
    /// "quiet dates 12-20..01-05", or "quiet date 05-01" for a single day.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((fm, fd), (tm, td)) = (self.from, self.to);
        if self.from == self.to {
            write!(f, "quiet date {fm:02}-{fd:02}")
        } else {
            write!(f, "quiet dates {fm:02}-{fd:02}..{tm:02}-{td:02}")
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    (28..=31)
        .rev()
        .find(|&d| NaiveDate::from_ymd_opt(year, month, d).is_some())
        .unwrap_or(28)
}

/// The country whose calendars apply to a person: their own `country` (a code or a name a
/// CRM writes), else the one their own time zone lies in (`Europe/Berlin` → DE), else
/// none (then every calendar applies). Pass the person's zone, not the campaign's: a
/// campaign's zone says when to send, not where people live.
pub(crate) fn country_of(country: Option<&str>, zone: Option<Tz>) -> Option<String> {
    let own = country.map(str::trim).filter(|c| !c.is_empty()).map(|c| {
        country_code(c)
            .map(str::to_string)
            .unwrap_or_else(|| c.to_uppercase())
    });
    own.or_else(|| {
        zone.and_then(|z| zone_country(z.name()))
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests;
