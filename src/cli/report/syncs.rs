//! The report's "CRM sync" section: the daemon's latest looks at the files it syncs,
//! what each imported or why it imported nothing. Lays out; decides nothing.

use chrono::{DateTime, Utc};

use super::chart::esc;
use crate::domain::model::{SyncOutcome, SyncRun};

/// The section, or nothing when the daemon never looked at a sync file.
pub(super) fn syncs(runs: &[SyncRun], failures_total: u64) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let time = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let rows: Vec<String> = runs
        .iter()
        .map(|run| {
            let sync = &run.report;
            let what = match sync.outcome {
                SyncOutcome::Imported => format!(
                    "imported: {} added, {} updated, {} unchanged",
                    sync.added, sync.updated, sync.unchanged
                ),
                SyncOutcome::Refused if sync.bad_rows > 0 => format!(
                    "<strong>not imported</strong>: {} bad row{} ({})",
                    sync.bad_rows,
                    if sync.bad_rows == 1 { "" } else { "s" },
                    esc(sync.error.as_deref().unwrap_or("see the log"))
                ),
                outcome => format!(
                    "<strong>not imported</strong>, {} ({})",
                    outcome.as_str(),
                    esc(sync.error.as_deref().unwrap_or("see the log"))
                ),
            };
            let when = if run.looks > 1 {
                format!(
                    "{} to {} ({} looks)",
                    time(&run.first_at),
                    time(&sync.at),
                    run.looks
                )
            } else {
                time(&sync.at)
            };
            format!(
                r#"<tr data-outcome="{outcome}"><td>{when}</td><td><code>{file}</code></td><td>{what}</td></tr>"#,
                outcome = sync.outcome.as_str(),
                file = esc(&sync.file),
            )
        })
        .collect();
    format!(
        r#"<section id="syncs">
<h2>CRM sync</h2>
<p class="note">The daemon's latest looks at the client files it syncs, newest first; {failures} so far imported nothing. A file that is missing or refused changes nothing in the database.</p>
<table><thead><tr><th>When</th><th>File</th><th>What came of it</th></tr></thead><tbody>{rows}</tbody></table>
</section>"#,
        failures = if failures_total == 1 {
            "1 look".to_string()
        } else {
            format!("{failures_total} looks")
        },
        rows = rows.join("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::SyncReport;

    #[test]
    fn each_look_is_a_row_and_a_failure_says_why() {
        assert_eq!(syncs(&[], 0), "");
        let at = DateTime::parse_from_rfc3339("2026-06-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let run = |outcome, error: Option<&str>, looks| SyncRun {
            report: SyncReport {
                at,
                file: "crm/<clients>.csv".to_string(),
                outcome,
                added: 2,
                updated: 1,
                unchanged: 0,
                bad_rows: 0,
                error: error.map(str::to_string),
                last_imported_at: None,
            },
            first_at: at - chrono::Duration::hours(1),
            looks,
        };
        let html = syncs(
            &[
                run(SyncOutcome::Missing, Some("No such file"), 120),
                run(SyncOutcome::Imported, None, 1),
            ],
            121,
        );
        for part in [
            "121 looks so far imported nothing",
            "<td>2026-06-01 09:00 UTC to 2026-06-01 10:00 UTC (120 looks)</td>",
            "<strong>not imported</strong>, missing (No such file)",
            "imported: 2 added, 1 updated, 0 unchanged",
            "<code>crm/&lt;clients&gt;.csv</code>",
        ] {
            assert!(html.contains(part), "missing {part:?} in {html}");
        }
    }
}
