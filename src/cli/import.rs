//! `winback import FILE`: validate every row, then upsert, all or nothing.

use std::path::Path;
use std::process::ExitCode;

use super::{Cli, load_config, open_store};
use crate::domain::model::printable;
use crate::import::csv::ReadSummary;
use crate::store::ImportOutcome;

pub(super) fn run(cli: &Cli, file: &Path, skip_invalid: bool) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    let outcome = import_file(
        &mut store,
        &setup.config,
        setup.clock.now(),
        file,
        skip_invalid,
        true,
    )?;
    let (outcome, summary) = outcome;
    for line in summary.lines() {
        println!("{line}");
    }
    print_outcome(file, &outcome, skip_invalid);
    Ok(if outcome.error_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

fn print_outcome(file: &Path, outcome: &ImportOutcome, skip_invalid: bool) {
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
    } else if skip_invalid {
        println!(
            "nothing imported: {} could not be read to its end (see the last line above), so even --skip-invalid would apply only part of it. Fix the file and import again.",
            file.display()
        );
    } else {
        println!(
            "nothing imported: {} bad row{} in {}. Fix them and import again, or pass --skip-invalid to import only the good rows.",
            outcome.error_count,
            if outcome.error_count == 1 { "" } else { "s" },
            file.display()
        );
    }
}
