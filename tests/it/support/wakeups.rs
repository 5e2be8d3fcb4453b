//! Moving the daemon's clock from one of its own wake-ups to the next: one pass at each
//! instant `status` names as `next_wake`, each with `--now`, never a sleep.

use chrono::{DateTime, Duration, Utc};

use super::Project;

/// An instant as `--now` takes it, to the second.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 instant of a test.
pub fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

/// The daemon's next wake-up, as `status` tells it at `now`.
pub fn next_wake(project: &Project, now: &str) -> Option<DateTime<Utc>> {
    let out = project.winback(&["--now", now, "status", "--format", "json"]);
    out.assert_success();
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("status is JSON");
    status["next_wake"].as_str().map(instant)
}

/// Calls `pass` (which runs the daemon once at the instant it is given) at `start` and
/// `lag` after each wake-up the daemon asks for after it (a real pass starts a moment
/// after its wake-up, or later when the machine was busy), up to `end`; panics after
/// `max` passes.
pub fn run_until_with(
    project: &Project,
    (start, end): (&str, &str),
    lag: Duration,
    max: usize,
    mut pass: impl FnMut(&str),
) {
    let end = instant(end);
    let mut now = instant(start);
    for _ in 0..max {
        let text = rfc3339(now);
        pass(&text);
        match next_wake(project, &text) {
            Some(wake) if wake <= end => now = (wake + lag).max(now + Duration::seconds(1)),
            _ => return,
        }
    }
    panic!("more than {max} wake-ups before {end}");
}
