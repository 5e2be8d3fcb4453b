//! `winback status` and `winback outbox list`: what the database says, for a terminal.

use std::process::ExitCode;

use std::io::{BufWriter, Write};

use super::csv_out::CsvOut;
use super::json_out::JsonList;
use super::{Cli, Format, load_config, open_store};
use crate::domain::model::{SyncOutcome, SyncRun, printable};
use crate::store::{ATTENTION, MessageRow};

pub(super) fn run(cli: &Cli, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let store = open_store(&setup.config)?;
    store.for_reading()?;
    let status = store.status()?;
    if format == Format::Json {
        let mut json = serde_json::to_value(&status)?;
        if let Some(fields) = json.as_object_mut() {
            // The configured campaigns nothing is sent from, by name.
            let paused: Vec<&str> = setup
                .config
                .campaigns
                .iter()
                .filter(|c| c.paused)
                .map(|c| c.name.as_str())
                .collect();
            fields.insert("paused_campaigns".to_string(), paused.into());
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Csv {
        // One count a row; the messages that need attention are `outbox list --format csv`.
        let mut table = CsvOut::stdout(&["what", "campaign", "state", "count"])?;
        let mut count = |what: &str, campaign: &str, state: &str, n: u64| {
            table.row([what, campaign, state, n.to_string().as_str()])
        };
        count("clients", "", "", status.clients)?;
        count("accounts", "", "", status.accounts)?;
        count("clients_in_accounts", "", "", status.clients_in_accounts)?;
        for campaign in &setup.config.campaigns {
            if campaign.paused {
                count("paused", &campaign.name, "paused", 1)?;
            }
        }
        for (what, counts) in [
            ("enrollments", &status.enrollments),
            ("messages", &status.messages),
        ] {
            for (campaign, states) in counts {
                for (state, n) in states {
                    count(what, campaign, state, *n)?;
                }
            }
        }
        for (reason, n) in &status.suppressions {
            count("suppressed", "", reason, *n)?;
        }
        count("survey_answers", "", "", status.survey_answers)?;
        for (outcome, n) in &status.inbound {
            count("returned_mail", "", outcome, *n)?;
        }
        let notices = &status.notices;
        for (state, n) in [
            ("sent", notices.sent),
            ("waiting", notices.waiting),
            ("failed", notices.failed),
            ("uncertain", notices.uncertain),
        ] {
            count("notices", "", state, n)?;
        }
        count("needs_attention", "", "", status.attention.len() as u64)?;
        table.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("clients: {}", status.clients);
    if status.accounts > 0 {
        println!(
            "accounts: {} with several contacts ({} clients)",
            status.accounts, status.clients_in_accounts
        );
    }
    for campaign in &setup.config.campaigns {
        if campaign.paused {
            println!(
                "campaign {} (PAUSED: nothing of it is sent; enrollment goes on):",
                campaign.name
            );
        } else {
            println!("campaign {}:", campaign.name);
        }
        let states = status.enrollments.get(&campaign.name);
        let enrolled: Vec<String> = states
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        println!(
            "  enrollments: {}",
            if enrolled.is_empty() {
                "none".to_string()
            } else {
                enrolled.join(", ")
            }
        );
        let messages: Vec<String> = status
            .messages
            .get(&campaign.name)
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        println!(
            "  messages:    {}",
            if messages.is_empty() {
                "none".to_string()
            } else {
                messages.join(", ")
            }
        );
    }
    let suppressed: Vec<String> = status
        .suppressions
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "suppressed addresses: {}",
        if suppressed.is_empty() {
            "none".to_string()
        } else {
            suppressed.join(", ")
        }
    );
    println!("survey answers: {}", status.survey_answers);
    if !status.inbound.is_empty() {
        let outcomes: Vec<String> = status
            .inbound
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("returned mail: {} (winback inbox)", outcomes.join(", "));
    }
    let notices = &status.notices;
    if *notices != crate::store::NoticeCounts::default() {
        let mut line = format!(
            "notices to the team: sent {}, waiting {}",
            notices.sent, notices.waiting
        );
        if notices.failed + notices.uncertain > 0 {
            line.push_str(&format!(
                ", NOT SENT {} (refused or given up), uncertain {} (see the log)",
                notices.failed, notices.uncertain
            ));
        }
        if notices.waiting > 0 && setup.config.inbound.notify.is_none() {
            line.push_str("; [inbound] notify is not set, so they wait");
        }
        println!("{line}");
    }
    if let Some(t) = status.next_wake {
        println!(
            "next due: {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    for sync in &status.syncs {
        let customers = setup
            .config
            .clients
            .customers_file
            .as_ref()
            .is_some_and(|path| path.display().to_string() == sync.report.file);
        println!("{}", sync_line(sync, customers));
    }
    if status.sync_failures_total > 0 {
        println!(
            "client sync failures so far: {} (each look that imported nothing; the latest in `winback report`)",
            status.sync_failures_total
        );
    }
    if !status.attention.is_empty() {
        println!("needs attention (newest first):");
        print_messages(&status.attention)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon's latest look at a sync file, in one line: what it imported, or why it
/// imported nothing, since when, and when it last did. `customers`: the file is
/// `[clients] customers_file`, whose "updated" are the clients newly recorded as returned.
fn sync_line(run: &SyncRun, customers: bool) -> String {
    let sync = &run.report;
    let time =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let kind = if customers { "customers" } else { "client" };
    let head = format!("last {kind} sync: {}, {}", time(&sync.at), sync.file);
    if sync.outcome == SyncOutcome::Imported && customers {
        return format!(
            "{head}: read ({} newly returned, {} already returned or not former clients)",
            sync.updated, sync.unchanged
        );
    }
    if sync.outcome == SyncOutcome::Imported {
        return format!(
            "{head}: imported ({} added, {} updated, {} unchanged)",
            sync.added, sync.updated, sync.unchanged
        );
    }
    let why = match (sync.outcome, sync.bad_rows) {
        (SyncOutcome::Refused, n) if n > 0 => format!(
            "NOT IMPORTED, {n} bad row{} ({}); fix the file, the daemon reads it again when it changes",
            if n == 1 { "" } else { "s" },
            printable(sync.error.as_deref().unwrap_or("see the log"))
        ),
        (SyncOutcome::Missing, _) => "MISSING: the file does not exist".to_string(),
        (outcome, _) => format!(
            "NOT IMPORTED, {} ({})",
            outcome.as_str(),
            printable(sync.error.as_deref().unwrap_or("see the log"))
        ),
    };
    let why = if run.looks > 1 {
        format!(
            "{why} (the same at {} looks since {})",
            run.looks,
            time(&run.first_at)
        )
    } else {
        why
    };
    let last = sync
        .last_imported_at
        .as_ref()
        .map_or("never".to_string(), time);
    format!("{head}: {why}; last imported: {last}")
}

/// Messages `outbox list` shows, newest first.
const OUTBOX_LIST_LIMIT: i64 = 1000;

pub(super) fn outbox_list(cli: &Cli, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let store = open_store(&setup.config)?;
    store.for_reading()?;
    // Each row is written as it is read.
    let mut out = BufWriter::new(std::io::stdout().lock());
    if format == Format::Json {
        let mut list = JsonList::new(&mut out, 0)?;
        store.for_each_message_in(ATTENTION, OUTBOX_LIST_LIMIT, |m| list.push(&m))?;
        list.finish()?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Csv {
        let mut table = CsvOut::new(
            out,
            &[
                "id",
                "state",
                "updated_at",
                "email",
                "campaign",
                "step",
                "attempts",
                "error",
            ],
        )?;
        store.for_each_message_in(ATTENTION, OUTBOX_LIST_LIMIT, |m| {
            table.row([
                m.id.to_string().as_str(),
                &m.state,
                &m.updated_at,
                &m.email,
                &m.campaign,
                &m.step.to_string(),
                &m.attempts.to_string(),
                m.error.as_deref().unwrap_or(""),
            ])
        })?;
        table.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (mut shown, mut sending, mut held) = (0_u64, false, false);
    store.for_each_message_in(ATTENTION, OUTBOX_LIST_LIMIT, |m| {
        if shown == 0 {
            message_header(&mut out)?;
        }
        shown += 1;
        sending |= m.state == "sending";
        held |= m.state == "held";
        message_line(&mut out, &m)
    })?;
    if shown == 0 {
        writeln!(out, "nothing needs attention.")?;
    } else {
        writeln!(
            out,
            "`uncertain`: the process stopped mid-send; the recipient may or may not have it. `winback outbox resend ID` sends it again."
        )?;
        if sending {
            writeln!(
                out,
                "`sending`: in an SMTP transaction now, or its result could not be written yet (a full disk?): the daemon keeps trying, and settles it between passes or at its next start."
            )?;
        }
        if held {
            writeln!(
                out,
                "`held`: not fit to go (see the error), never sent as it is; fix the template or the client's data and restart winback: the step then goes, and the sequence continues."
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn message_header(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "  {:>6}  {:<9}  {:<20}  {:<28}  {:<16}  {:>4}  {:>3}  error",
        "id", "state", "updated", "email", "campaign", "step", "try"
    )?;
    Ok(())
}

fn message_line(out: &mut impl Write, m: &MessageRow) -> anyhow::Result<()> {
    writeln!(
        out,
        "  {:>6}  {:<9}  {:<20}  {:<28}  {:<16}  {:>4}  {:>3}  {}",
        m.id,
        m.state,
        &m.updated_at.get(..19).unwrap_or(&m.updated_at),
        m.email,
        m.campaign,
        m.step,
        m.attempts,
        printable(m.error.as_deref().unwrap_or(""))
    )?;
    Ok(())
}

fn print_messages(rows: &[MessageRow]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    message_header(&mut out)?;
    for m in rows {
        message_line(&mut out, m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::model::SyncReport;

    #[test]
    fn the_customers_file_is_named_for_what_it_does() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 6, 2, 15, 0, 0).unwrap();
        let run = SyncRun {
            report: SyncReport {
                at,
                file: "crm/customers.csv".to_string(),
                outcome: SyncOutcome::Imported,
                added: 0,
                updated: 2,
                unchanged: 40,
                bad_rows: 0,
                error: None,
                last_imported_at: Some(at),
            },
            first_at: at,
            looks: 1,
        };
        assert_eq!(
            sync_line(&run, true),
            "last customers sync: 2026-06-02T15:00:00Z, crm/customers.csv: read (2 newly returned, 40 already returned or not former clients)"
        );
        assert!(sync_line(&run, false).starts_with("last client sync: "));
    }
}
