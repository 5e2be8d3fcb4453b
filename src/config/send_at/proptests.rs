//! Property tests for `send_at`: any text is parsed or refused without a panic, and an
//! accepted expression's moments are found without one; an expression written from sets
//! of minutes, hours, days of the month and weekdays (numbers 0-7 or names, lists, ranges)
//! fires exactly at the moments crontab's rules give, the next one and the last one.

use super::*;

/// A day-of-week field whose third byte falls inside a character: `check` and the
/// daemon's start panicked on it instead of saying it is not a day.
#[test]
fn a_day_name_cut_inside_a_character_is_refused() {
    for text in [
        "0 10 * * <ஐ",
        "0 10 * * Mö",
        "0 10 * * Moñday",
        "0 10 * * ஐஐ",
    ] {
        let error = SendAt::parse(text).expect_err(text);
        assert!(
            error.contains("is not a day of the week"),
            "{text}: {error}"
        );
    }
}
