//! `winback import FILE`: validate every row, then upsert, all or nothing; with
//! `--dry-run`, the same import into an in-memory copy of the database, and what it
//! changed listed. Writes nothing else.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::{Cli, Format, load_config, open_store};
use crate::domain::model::printable;
use crate::import::csv::ReadSummary;
use crate::store::{ImportChanges, ImportOutcome, Store};

pub(super) fn run(
    cli: &Cli,
    file: &Path,
    skip_invalid: bool,
    dry_run: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    super::csv_out::refuse(format, "import")?;
    let setup = load_config(cli)?;
    let mut store = if dry_run {
        // The real import, into a copy: what it shows is what the import would do.
        let path = &setup.config.database_path;
        Store::dry_run_copy(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        open_store(&setup.config)?
    };
    let outcome = import_file(
        &mut store,
        &setup.config,
        setup.clock.now(),
        file,
        skip_invalid,
        true,
    )?;
    let (outcome, summary) = outcome;
    let warnings = if outcome.applied {
        large_account_warnings(&store, &setup.config)?
    } else {
        Vec::new()
    };
    if format == Format::Json {
        let mut report = JsonReport::of(file, &outcome, &summary, dry_run);
        report.warnings = warnings;
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for line in summary.lines() {
            println!("{line}");
        }
        if dry_run {
            print_dry_run(file, &outcome, skip_invalid);
        } else {
            print_outcome(file, &outcome, skip_invalid);
        }
        for warning in &warnings {
            println!("warning: {warning}");
        }
    }
    Ok(if outcome.error_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Accounts listed by name in a warning; beyond this they are only counted.
pub(super) const MAX_LARGE_ACCOUNTS: usize = 10;

/// With `[clients] account`: a warning for each account of more than
/// [`crate::domain::accounts::LARGE_ACCOUNT`] contacts (most often a placeholder
/// company or a reseller, not one relationship), the largest first.
pub(super) fn large_account_warnings(
    store: &Store,
    config: &crate::config::Config,
) -> anyhow::Result<Vec<String>> {
    if config.clients.account.is_none() {
        return Ok(Vec::new());
    }
    let (large, total) = store.large_accounts(MAX_LARGE_ACCOUNTS)?;
    Ok(large_account_lines(&large, total, config))
}

/// The warnings for `large` (the largest accounts, `total` of them in all).
pub(super) fn large_account_lines(
    large: &[(String, u64)],
    total: usize,
    config: &crate::config::Config,
) -> Vec<String> {
    let gaps: Vec<u32> = config
        .campaigns
        .iter()
        .map(|c| c.account_gap_days)
        .collect();
    let mut lines: Vec<String> = large
        .iter()
        .map(|(key, n)| crate::domain::accounts::large_account_warning(key, *n, &gaps))
        .collect();
    if total > large.len() {
        lines.push(format!(
            "… and {} more accounts of more than {} contacts",
            total - large.len(),
            crate::domain::accounts::LARGE_ACCOUNT
        ));
    }
    lines
}

/// Imports with a progress line on a terminal for large files.
fn import_file(
    store: &mut crate::store::Store,
    config: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
    file: &Path,
    skip_invalid: bool,
    show_progress: bool,
) -> anyhow::Result<(ImportOutcome, ReadSummary)> {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = (show_progress && size > 4 << 20).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {human_pos} rows read ({per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut progress = |n: u64| {
        if let Some(bar) = &bar {
            bar.set_position(n);
        }
    };
    let outcome =
        crate::import::import_file(store, config, now, file, skip_invalid, &mut progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(outcome)
}

/// `--format json`: the outcome, the reading summary's lines, and a dry run's changes.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    file: String,
    dry_run: bool,
    /// Whether the file was written to the database: never in a dry run.
    applied: bool,
    /// False when bad rows keep the whole file out (in a dry run: would).
    would_apply: bool,
    counts: crate::store::ImportCounts,
    bad_rows: Vec<JsonBadRow<'a>>,
    /// All bad rows, including those beyond `bad_rows`.
    bad_row_count: u64,
    summary: Vec<String>,
    /// A dry run's lists: added, updated (field, before, after), returned.
    changes: Option<&'a ImportChanges>,
    /// What the import found worth a look (accounts of more than 50 contacts).
    warnings: Vec<String>,
}

#[derive(serde::Serialize)]
struct JsonBadRow<'a> {
    line: u64,
    reason: &'a str,
}

impl<'a> JsonReport<'a> {
    fn of(
        file: &Path,
        outcome: &'a ImportOutcome,
        summary: &ReadSummary,
        dry_run: bool,
    ) -> JsonReport<'a> {
        JsonReport {
            file: file.display().to_string(),
            dry_run,
            applied: outcome.applied && !dry_run,
            would_apply: outcome.applied,
            counts: outcome.counts,
            bad_rows: outcome
                .errors
                .iter()
                .map(|e| JsonBadRow {
                    line: e.line,
                    reason: &e.reason,
                })
                .collect(),
            bad_row_count: outcome.error_count,
            summary: summary.lines(),
            changes: outcome.changes.as_ref().filter(|_| outcome.applied),
            warnings: Vec::new(),
        }
    }
}

fn print_outcome(file: &Path, outcome: &ImportOutcome, skip_invalid: bool) {
    print_errors(file, outcome);
    let c = outcome.counts;
    if outcome.applied {
        println!(
            "imported {}: {} added, {} updated, {} unchanged, {} skipped",
            file.display(),
            c.added,
            c.updated,
            c.unchanged,
            c.skipped
        );
        if c.returned > 0 {
            println!(
                "{} recorded as returned (their returned_at): their sequences stopped.",
                c.returned
            );
        }
        print_repeated(c.repeated);
        print_account_stopped(c.account_stopped, "stopped");
        print_account_replied(c.account_replied, "stopped");
        print_enrollment_limits(&c, false);
    } else {
        println!("nothing imported: {}", refusal(file, outcome, skip_invalid));
    }
}

/// What a dry run found: who would be added, updated (each changed field, old and new),
/// marked returned, and the totals; the first few of each, then how many more.
fn print_dry_run(file: &Path, outcome: &ImportOutcome, skip_invalid: bool) {
    print_errors(file, outcome);
    let c = outcome.counts;
    let Some(changes) = outcome.changes.as_ref().filter(|_| outcome.applied) else {
        println!(
            "dry run, nothing written: the import would change nothing: {}",
            refusal(file, outcome, skip_invalid)
        );
        return;
    };
    for line in change_lines(changes, c.added, c.updated) {
        println!("{line}");
    }
    println!(
        "dry run, nothing written: importing {} would add {}, update {}, leave {} unchanged, mark {} returned and skip {}",
        file.display(),
        c.added,
        c.updated,
        c.unchanged,
        changes.returned_count,
        c.skipped
    );
    print_repeated(c.repeated);
    print_account_stopped(c.account_stopped, "would stop");
    print_account_replied(c.account_replied, "would stop");
    print_enrollment_limits(&c, true);
}

/// Contacts stopped with their account (`[clients] account`): someone of it came back.
fn print_account_stopped(sequences: u64, verb: &str) {
    if sequences > 0 {
        println!(
            "{sequences} sequence{} of other contacts at accounts that came back {verb} too.",
            if sequences == 1 { "" } else { "s" }
        );
    }
}

/// Contacts stopped with their account: another contact's reply stands.
fn print_account_replied(sequences: u64, verb: &str) {
    if sequences > 0 {
        println!(
            "{sequences} sequence{} of contacts at accounts whose reply stands (the team is talking to them) {verb} too, as replied; undoing that reply resumes them.",
            if sequences == 1 { "" } else { "s" }
        );
    }
}

/// The clients the campaigns' limits leave out: not enrolled because they left too long
/// ago (`enroll_within_days`), and past the consent horizon (`max_days_since_churn`).
fn print_enrollment_limits(c: &crate::store::ImportCounts, dry_run: bool) {
    let were = if dry_run { "would not be" } else { "not" };
    if c.too_late > 0 {
        println!(
            "{} {were} enrolled: their survey would have been due more than their campaign's enroll_within_days before today.",
            clients(c.too_late)
        );
    }
    if c.past_horizon > 0 {
        println!(
            "{} already past their campaign's max_days_since_churn: nothing more is sent to them.",
            clients(c.past_horizon)
        );
    }
}

fn clients(n: u64) -> String {
    format!("{n} client{}", if n == 1 { "" } else { "s" })
}

/// Deals exports list a client once per deal: say that their rows were merged.
fn print_repeated(repeated: u64) {
    if repeated > 0 {
        println!(
            "{repeated} {} on several rows: merged, the latest churn kept (and a reason that \
             keeps them out of a campaign, from any of the rows).",
            if repeated == 1 {
                "address appears"
            } else {
                "addresses appear"
            }
        );
    }
}

/// The lists of a dry run, each under a heading with its total and ended by "… and N
/// more" when it was cut short.
fn change_lines(changes: &ImportChanges, added: u64, updated: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut list = |heading: &str, total: u64, items: Vec<String>| {
        if total == 0 {
            return;
        }
        lines.push(format!("{heading} ({total}):"));
        let shown = items.len() as u64;
        lines.extend(items.into_iter().map(|item| format!("  {item}")));
        if total > shown {
            lines.push(format!("  … and {} more", total - shown));
        }
    };
    let emails = |emails: &[String]| emails.iter().map(|e| printable(e).into_owned()).collect();
    list("would add", added, emails(&changes.added));
    list(
        "would update",
        updated,
        changes
            .updated
            .iter()
            .map(|u| {
                let fields: Vec<String> = u.fields.iter().map(ToString::to_string).collect();
                format!("{}: {}", printable(&u.email), fields.join("; "))
            })
            .collect(),
    );
    list(
        "would mark returned",
        changes.returned_count,
        emails(&changes.returned),
    );
    lines
}

fn print_errors(file: &Path, outcome: &ImportOutcome) {
    for e in &outcome.errors {
        println!(
            "{}: line {}: {}",
            file.display(),
            e.line,
            printable(&e.reason)
        );
    }
    let hidden = outcome
        .error_count
        .saturating_sub(outcome.errors.len() as u64);
    if hidden > 0 {
        println!("… and {hidden} more bad rows");
    }
}

/// Why a file was not imported, and what to do.
fn refusal(file: &Path, outcome: &ImportOutcome, skip_invalid: bool) -> String {
    if skip_invalid {
        format!(
            "{} could not be read to its end (see the last line above), so even --skip-invalid would apply only part of it. Fix the file and import again.",
            file.display()
        )
    } else {
        format!(
            "{} bad row{} in {}. Fix them and import again, or pass --skip-invalid to import only the good rows.",
            outcome.error_count,
            if outcome.error_count == 1 { "" } else { "s" },
            file.display()
        )
    }
}
