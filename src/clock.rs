//! The one place that reads the wall clock.
//!
//! `--now` starts the clock at a chosen instant and lets it run on in real time, so a
//! whole campaign can be exercised in seconds. Everything else takes `now` from here.

use chrono::{DateTime, Duration, Utc};

/// A clock that is the system clock shifted by a fixed offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    offset: Duration,
}

impl Clock {
    /// The real time.
    pub(crate) fn system() -> Self {
        Clock {
            offset: Duration::zero(),
        }
    }

    /// A clock that reads `start` now and runs on in real time.
    pub(crate) fn starting_at(start: DateTime<Utc>) -> Self {
        #[allow(clippy::disallowed_methods)]
        let real = Utc::now();
        Clock {
            offset: start - real,
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)]
        let real = Utc::now();
        // Whole microseconds: SQLite stores times as text, and a round trip must compare equal.
        let t = real + self.offset;
        t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 1000))
    }
}
