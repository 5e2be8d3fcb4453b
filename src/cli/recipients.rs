//! What recipients told us, and their data rights: `survey`, `export`, `forget`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;

use std::io::Write;

use super::csv_out::CsvOut;
use super::json_out::object_with_list;
use super::{Cli, Format, address, load_config, open_store};
use crate::domain::model::printable;
use crate::domain::survey::{SURVEY_REASONS, WOULD_RETURN};
use crate::store::{Store, SurveyAnswerRow};

/// The free-text answer's width in the table.
const TEXT_WIDTH: usize = 60;

/// The figures `winback survey` opens with; the answers follow, one at a time.
#[derive(Debug, Serialize)]
struct SurveyTotals {
    total: u64,
    /// Reason → answers (every offered reason, zeros included; `none` for no choice).
    by_reason: BTreeMap<String, u64>,
    /// yes / maybe / no / none → answers.
    by_would_return: BTreeMap<String, u64>,
}

fn tally<'a>(
    offered: &[&str],
    values: impl Iterator<Item = (Option<&'a str>, u64)>,
) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = offered.iter().map(|c| (c.to_string(), 0)).collect();
    for (value, n) in values {
        *counts
            .entry(value.unwrap_or("none").to_string())
            .or_default() += n;
    }
    counts
}

pub(super) fn survey(cli: &Cli, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let store = open_store(&setup.config)?;
    store.for_reading()?;
    // One snapshot: the totals match the list while the daemon writes.
    store.read_snapshot(|| write_survey(&store, format))
}

/// The survey's totals and answers, in `format`, from `store`.
fn write_survey(store: &Store, format: Format) -> anyhow::Result<ExitCode> {
    // Counted in SQL; the answers are then written as they are read, never all held.
    let tallies = store.survey_tallies()?;
    let totals = SurveyTotals {
        total: tallies.iter().map(|t| t.2).sum(),
        by_reason: tally(
            &SURVEY_REASONS,
            tallies.iter().map(|(r, _, n)| (r.as_deref(), *n)),
        ),
        by_would_return: tally(
            &WOULD_RETURN,
            tallies.iter().map(|(_, w, n)| (w.as_deref(), *n)),
        ),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if format == Format::Json {
        let mut out = object_with_list(out, &totals, "answers", |list| {
            store.for_each_survey_answer(|a| list.push(&a))
        })?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Csv {
        // One row per answer; the tallies are a spreadsheet's count of these.
        let mut table = CsvOut::new(
            out,
            &[
                "answered_at",
                "updated_at",
                "email",
                "name",
                "company",
                "campaign",
                "reason",
                "would_return",
                "better",
            ],
        )?;
        store.for_each_survey_answer(|a: SurveyAnswerRow| {
            table.row([
                a.answered_at.as_str(),
                &a.updated_at,
                &a.email,
                a.name.as_deref().unwrap_or(""),
                a.company.as_deref().unwrap_or(""),
                &a.campaign,
                a.reason.as_deref().unwrap_or(""),
                a.would_return.as_deref().unwrap_or(""),
                a.better.as_deref().unwrap_or(""),
            ])
        })?;
        table.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    if totals.total == 0 {
        writeln!(out, "no survey answers yet.")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{} answer{}.",
        totals.total,
        if totals.total == 1 { "" } else { "s" }
    )?;
    writeln!(out, "why they left:")?;
    // Offered reasons in the form's order, then anything else stored.
    let mut order: Vec<&str> = SURVEY_REASONS.to_vec();
    order.extend(
        totals
            .by_reason
            .keys()
            .map(String::as_str)
            .filter(|k| !SURVEY_REASONS.contains(k)),
    );
    for reason in order {
        writeln!(
            out,
            "  {:<14} {:>5}",
            reason,
            totals.by_reason.get(reason).copied().unwrap_or(0)
        )?;
    }
    let again: Vec<String> = WOULD_RETURN
        .iter()
        .chain(["none"].iter())
        .map(|k| {
            format!(
                "{k} {}",
                totals.by_would_return.get(*k).copied().unwrap_or(0)
            )
        })
        .collect();
    writeln!(out, "would work with us again: {}", again.join(", "))?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<10}  {:<30}  {:<16}  {:<13}  {:<5}  what we could have done better",
        "answered", "email", "campaign", "reason", "again"
    )?;
    store.for_each_survey_answer(|a: SurveyAnswerRow| {
        writeln!(
            out,
            "  {:<10}  {:<30}  {:<16}  {:<13}  {:<5}  {}",
            a.updated_at.get(..10).unwrap_or(&a.updated_at),
            a.email,
            a.campaign,
            a.reason.as_deref().unwrap_or("-"),
            a.would_return.as_deref().unwrap_or("-"),
            one_line(a.better.as_deref().unwrap_or(""), TEXT_WIDTH)
        )
        .map_err(anyhow::Error::from)
    })?;
    writeln!(out, "the full answers: winback survey --format json")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `text` on one line, cut to `width` characters with an ellipsis.
fn one_line(text: &str, width: usize) -> String {
    let flat = printable(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub(super) fn export(cli: &Cli, email: &str) -> anyhow::Result<ExitCode> {
    let email = &address(email)?;
    let setup = load_config(cli)?;
    let store = open_store(&setup.config)?;
    store.for_reading()?;
    match store.export_person(email)? {
        Some(document) => {
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "nothing is stored about {email}: no former-client row, no opt-out, no bounce."
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(super) fn forget(cli: &Cli, email: &str) -> anyhow::Result<ExitCode> {
    let email = &address(email)?;
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    let report = store.forget_person(email, setup.clock.now())?;
    if report.client {
        let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        println!(
            "{email} is forgotten: their former-client row, {}, {}, {} and {} were deleted.",
            plural(report.enrollments, "enrollment"),
            plural(report.messages, "message record"),
            plural(report.survey_answers, "survey answer"),
            plural(report.events, "event"),
        );
    } else if report.was_suppressed {
        println!(
            "{email} was not a former client; their opt-out or bounce record no longer shows the address."
        );
    } else {
        println!("nothing was stored about {email}.");
    }
    println!(
        "The address is kept only as a one-way hash, so that it is never mailed again, even if a later import lists it."
    );
    println!("Copies outside the database (sent .eml files, logs, backups) are not touched.");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_keep_every_offered_choice() {
        let counts = tally(
            &["yes", "no"],
            [
                (Some("yes"), 1),
                (None, 1),
                (Some("yes"), 1),
                (Some("odd"), 1),
            ]
            .into_iter(),
        );
        let expected: BTreeMap<String, u64> = [("yes", 2), ("no", 0), ("none", 1), ("odd", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(counts, expected);
    }

    #[test]
    fn free_text_is_flattened_and_cut() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdefghij", 5), "abcd…");
        assert_eq!(one_line("ééééé", 5), "ééééé");
    }
}
