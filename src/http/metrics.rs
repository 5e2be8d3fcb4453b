//! `GET /metrics`: the outbox and the queue in Prometheus' text exposition format
//! (version 0.0.4), for dashboards and alerts ("nothing sent for a day", "the queue is
//! not draining").
//!
//! Cheap on purpose (a few indexed counts per scrape, see `store::report`), so it is not
//! rate-limited. It is for the operator's monitoring, not for recipients: a request that
//! came through a reverse proxy (it carries `Forwarded`, `X-Forwarded-For` or
//! `X-Real-IP`) gets the 404 page. Block `/metrics` at the proxy too.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::app::Shared;
use super::pages::Failure;
use crate::domain::inbound::Outcome;
use crate::domain::model::MessageState;
use crate::store::Metrics;

/// The content type of the text exposition format.
pub(super) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Suppression reasons always present in the output (zero when none).
const SUPPRESSION_REASONS: [&str; 3] = ["opt_out", "bounce", "forgotten"];

/// Headers a reverse proxy adds; their presence means the request came from outside.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

pub(super) async fn metrics(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if PROXY_HEADERS.iter().any(|name| headers.contains_key(*name)) {
        return app.failure(Failure::NotFound);
    }
    let now = app.state.clock.now();
    match app.store(move |store| store.metrics(now)).await {
        Ok(metrics) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            exposition(&metrics, now),
        )
            .into_response(),
        Err(failure) => app.failure(failure),
    }
}

/// The text of one scrape. Every message state and suppression reason is always
/// present, so a series never disappears when its count drops to zero.
pub(crate) fn exposition(metrics: &Metrics, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let count = |map: &std::collections::BTreeMap<String, u64>, key: &str| {
        map.get(key).copied().unwrap_or(0)
    };

    let mut states: Vec<String> = MessageState::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    states.extend(
        metrics
            .messages
            .keys()
            .filter(|k| !states.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let samples: Vec<(String, String)> = states
        .iter()
        .map(|s| {
            (
                format!("{{state=\"{}\"}}", label_value(s)),
                count(&metrics.messages, s).to_string(),
            )
        })
        .collect();
    family(
        "winback_messages",
        "gauge",
        "Messages in the outbox, by state.",
        &samples,
    );

    family(
        "winback_opt_outs_total",
        "gauge",
        "Addresses opted out (by link, survey or operator); an undo or a forget lowers it.",
        &[(
            String::new(),
            count(&metrics.suppressions, "opt_out").to_string(),
        )],
    );

    let mut reasons: Vec<String> = SUPPRESSION_REASONS.iter().map(|r| r.to_string()).collect();
    reasons.extend(
        metrics
            .suppressions
            .keys()
            .filter(|k| !reasons.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let samples: Vec<(String, String)> = reasons
        .iter()
        .map(|r| {
            (
                format!("{{reason=\"{}\"}}", label_value(r)),
                count(&metrics.suppressions, r).to_string(),
            )
        })
        .collect();
    family(
        "winback_suppressions",
        "gauge",
        "Addresses never mailed again, by reason.",
        &samples,
    );

    family(
        "winback_messages_blocked",
        "gauge",
        "Messages waiting to be retried because a recipient's server refused them by policy (5.7.x); given up after retry_give_up_hours.",
        &[(String::new(), metrics.blocked.to_string())],
    );

    let samples: Vec<(String, String)> = Outcome::ALL
        .iter()
        .map(|o| {
            (
                format!("{{outcome=\"{}\"}}", o.as_str()),
                count(&metrics.inbound, o.as_str()).to_string(),
            )
        })
        .collect();
    family(
        "winback_inbound_messages",
        "gauge",
        "Returned mail read (bounces, complaints, replies...), by outcome; an inbox undo lowers it.",
        &samples,
    );

    family(
        "winback_queue_depth",
        "gauge",
        "Messages whose moment has come: active enrollments due now, plus retries due now.",
        &[(String::new(), metrics.queue_depth.to_string())],
    );

    let waited = metrics
        .oldest_due
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    family(
        "winback_oldest_due_seconds",
        "gauge",
        "How long the oldest due message has waited past its moment; 0 when none is due.",
        &[(String::new(), format!("{waited}"))],
    );

    // Only once the daemon has looked at a sync file: a series for a sync that is not
    // configured would only raise false alarms. One series per file (`sync_file`,
    // `customers_file`), so one file's success never hides the other's failure.
    if !metrics.syncs.is_empty() {
        let seconds = |t: Option<DateTime<Utc>>| t.map_or(0, |t| t.timestamp()).to_string();
        let per_file = |value: &dyn Fn(&crate::domain::model::SyncReport) -> String| {
            metrics
                .syncs
                .iter()
                .map(|run| {
                    (
                        format!("{{file=\"{}\"}}", label_value(&run.report.file)),
                        value(&run.report),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            "winback_sync_last_run_timestamp_seconds",
            "gauge",
            "When the daemon last read (or missed) the client sync file, in Unix time.",
            &per_file(&|sync| seconds(Some(sync.at))),
        );
        family(
            "winback_sync_last_success_timestamp_seconds",
            "gauge",
            "When the client sync file was last imported, in Unix time; 0 if never.",
            &per_file(&|sync| seconds(sync.last_imported_at)),
        );
        family(
            "winback_sync_ok",
            "gauge",
            "1 if the last look at the client sync file imported it; 0 if it was refused, missing or unreadable.",
            &per_file(&|sync| {
                u8::from(sync.outcome == crate::domain::model::SyncOutcome::Imported).to_string()
            }),
        );
        family(
            "winback_sync_bad_rows",
            "gauge",
            "Bad rows in the client sync file when it was last read.",
            &per_file(&|sync| sync.bad_rows.to_string()),
        );
        family(
            "winback_sync_failures_total",
            "counter",
            "Looks at the client sync files that imported nothing (refused, missing or unreadable), ever; a missing file counts at each look.",
            &[(String::new(), metrics.sync_failures_total.to_string())],
        );
    }
    out
}

/// A label value with `\`, `"` and line breaks escaped, as the format requires.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    #[test]
    fn exposition_lists_every_state_and_reason_and_the_queue() {
        let now = DateTime::parse_from_rfc3339("2026-06-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let metrics = Metrics {
            messages: BTreeMap::from([("sent".to_string(), 7), ("retry".to_string(), 1)]),
            suppressions: BTreeMap::from([("opt_out".to_string(), 2)]),
            queue_depth: 3,
            oldest_due: Some(now - chrono::Duration::milliseconds(90_500)),
            syncs: Vec::new(),
            sync_failures_total: 0,
            blocked: 0,
            inbound: BTreeMap::from([("bounce".to_string(), 4)]),
        };
        let text = exposition(&metrics, now);
        for line in [
            "# TYPE winback_messages gauge",
            "winback_messages{state=\"sent\"} 7",
            "winback_messages{state=\"retry\"} 1",
            "winback_messages{state=\"uncertain\"} 0",
            "winback_opt_outs_total 2",
            "winback_suppressions{reason=\"opt_out\"} 2",
            "winback_suppressions{reason=\"bounce\"} 0",
            "winback_queue_depth 3",
            "winback_oldest_due_seconds 90.5",
            "winback_inbound_messages{outcome=\"bounce\"} 4",
            "winback_inbound_messages{outcome=\"reply\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        let empty = exposition(&Metrics::default(), now);
        assert!(
            empty.lines().any(|l| l == "winback_oldest_due_seconds 0"),
            "{empty}"
        );
    }

    #[test]
    fn the_last_sync_is_shown_once_there_is_one() {
        let now = DateTime::parse_from_rfc3339("2026-06-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let none = exposition(&Metrics::default(), now);
        assert!(!none.contains("winback_sync"), "{none}");
        let metrics = Metrics {
            syncs: vec![crate::domain::model::SyncRun {
                report: crate::domain::model::SyncReport {
                    at: now,
                    file: "crm.csv".to_string(),
                    outcome: crate::domain::model::SyncOutcome::Refused,
                    added: 0,
                    updated: 0,
                    unchanged: 0,
                    bad_rows: 2,
                    error: Some("line 3: missing email".to_string()),
                    last_imported_at: Some(now - chrono::Duration::days(1)),
                },
                first_at: now,
                looks: 1,
            }],
            sync_failures_total: 5,
            ..Metrics::default()
        };
        let text = exposition(&metrics, now);
        for line in [
            "winback_sync_last_run_timestamp_seconds{file=\"crm.csv\"} 1780308000",
            "winback_sync_last_success_timestamp_seconds{file=\"crm.csv\"} 1780221600",
            "winback_sync_ok{file=\"crm.csv\"} 0",
            "winback_sync_bad_rows{file=\"crm.csv\"} 2",
            "# TYPE winback_sync_failures_total counter",
            "winback_sync_failures_total 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
