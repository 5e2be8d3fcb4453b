//! Calendar arithmetic on a recipient's wall clock: days are calendar days in their zone,
//! and local times map to instants (a time skipped by a DST change moves to the first
//! minute after the gap; a time that occurs twice means its first occurrence).
//!
//! Pure: no clock, no I/O.

use chrono::{DateTime, Days, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a local wall-clock time denotes in `tz`.
pub(crate) fn local_to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a DST gap: the first minute that exists after it (vixie cron's rule).
            for minutes in 1..=24 * 60 {
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    tz.from_local_datetime(&(local + Duration::minutes(minutes)))
                {
                    return t.with_timezone(&Utc);
                }
            }
            // No zone has a day-long gap; treat the wall time as UTC rather than fail.
            Utc.from_utc_datetime(&local)
        }
    }
}

/// `t` plus `days` calendar days on the wall clock of `tz`, keeping the time of day.
pub(crate) fn add_local_days(t: DateTime<Utc>, days: u32, tz: Tz) -> DateTime<Utc> {
    let local = t.with_timezone(&tz).naive_local();
    let later = local
        .checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(local);
    local_to_utc(later, tz)
}

/// The calendar day `t` falls on in `tz`.
pub(crate) fn local_day(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}
