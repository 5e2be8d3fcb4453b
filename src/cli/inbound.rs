//! `winback inbound` (returned mail from files, folders or standard input, applied once)
//! and `winback inbox` (what came back, and undoing what it did).
//!
//! Reads and prints; what a message means and does is `inbound::apply`'s and the
//! store's.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::csv_out::CsvOut;
use super::{Cli, Format, load_config, open_store};
use crate::domain::model::printable;
use crate::inbound::apply::{ApplyError, apply};
use crate::inbound::source;
use crate::store::{Applied, InboundRecord, InboxUndo};

/// How many inbound messages `winback inbox` lists.
const INBOX_LIMIT: u32 = 100;

pub(super) fn inbound(cli: &Cli, paths: &[PathBuf], format: Format) -> anyhow::Result<ExitCode> {
    super::csv_out::refuse(format, "inbound")?;
    if paths.is_empty() && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!(
            "no message given: name message files or a Maildir (winback inbound ~/Maildir), or pipe one message in (winback inbound < bounce.eml)"
        );
    }
    let setup = load_config(cli)?;
    // Every path is checked before anything is applied: a typo changes nothing.
    let files = source::message_files(paths)?;
    let mut store = open_store(&setup.config)?;
    let secret = crate::setup::load_secret(&mut store, &setup.secrets)?;
    let rules = setup.config.inbound.rules();
    let inputs: Vec<Option<PathBuf>> = if paths.is_empty() {
        vec![None]
    } else {
        files.into_iter().map(Some).collect()
    };
    let mut unreadable = 0;
    for input in inputs {
        let name = input
            .as_ref()
            .map_or_else(|| "standard input".to_string(), |p| p.display().to_string());
        let raw = match &input {
            Some(path) => source::read_file(path),
            None => source::read_stdin(),
        };
        let applied = raw.map_err(anyhow::Error::from).and_then(|raw| {
            match apply(&mut store, &raw, &secret, rules, setup.clock.now()) {
                Err(ApplyError::Store(e)) => Err(anyhow::Error::from(e)),
                other => Ok(other),
            }
        })?;
        match applied {
            Ok(applied) => print_applied(&name, &applied, format),
            Err(e) => {
                unreadable += 1;
                eprintln!("error: {name}: {e}; nothing was applied for it");
            }
        }
    }
    Ok(if unreadable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_applied(name: &str, applied: &Applied, format: Format) {
    let r = &applied.record;
    if format == Format::Json {
        let mut object = record_json(r);
        object["source"] = json!(name);
        object["already_seen"] = json!(applied.already_seen);
        println!("{object}");
        return;
    }
    let about = match (&r.email, &r.campaign, r.step) {
        (Some(email), Some(campaign), Some(step)) => {
            format!("{} ({campaign} step {step})", printable(email))
        }
        (Some(email), _, _) => format!("{} (no message of ours)", printable(email)),
        _ => "no message of ours".to_string(),
    };
    let done = if applied.already_seen {
        "already read; nothing changed".to_string()
    } else {
        effect_words(r)
    };
    println!(
        "{}: {} #{} {about}: {done}; {}",
        printable(name),
        r.outcome,
        r.id,
        printable(&r.why)
    );
}

fn effect_words(r: &InboundRecord) -> String {
    use crate::domain::inbound::Effect;
    match (r.applied, r.effect) {
        (false, _) | (_, Effect::None) => "nothing changed".to_string(),
        (_, Effect::Counted) => "soft bounce counted".to_string(),
        (_, Effect::Bounce) => "address suppressed (bounce), sequences stopped".to_string(),
        (_, Effect::OptOut) => "opted out, sequences stopped".to_string(),
        (_, Effect::Left) => "sequences stopped (left)".to_string(),
        (_, Effect::Replied) => "sequences stopped (replied): over to you".to_string(),
    }
}

fn record_json(r: &InboundRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "received_at": crate::store::fmt_time(r.received_at),
        "outcome": r.outcome.as_str(),
        "email": r.email,
        "campaign": r.campaign,
        "step": r.step,
        "status": r.status,
        "effect": r.effect.as_str(),
        "applied": r.applied,
        "undone_at": r.undone_at.map(crate::store::fmt_time),
        "why": r.why,
        "excerpt": r.excerpt,
    })
}

pub(super) fn inbox(cli: &Cli, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let store = open_store(&setup.config)?;
    let records = store.inbox(INBOX_LIMIT)?;
    if format == Format::Json {
        let list: Vec<_> = records.iter().map(record_json).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Csv {
        let mut table = CsvOut::stdout(&[
            "id",
            "received_at",
            "outcome",
            "email",
            "campaign",
            "step",
            "status",
            "effect",
            "applied",
            "undone_at",
            "why",
            "excerpt",
        ])?;
        for r in &records {
            table.row([
                r.id.to_string().as_str(),
                &crate::store::fmt_time(r.received_at),
                r.outcome.as_str(),
                r.email.as_deref().unwrap_or(""),
                r.campaign.as_deref().unwrap_or(""),
                &r.step.map(|s| s.to_string()).unwrap_or_default(),
                r.status.as_deref().unwrap_or(""),
                r.effect.as_str(),
                if r.applied { "yes" } else { "no" },
                &r.undone_at.map(crate::store::fmt_time).unwrap_or_default(),
                &r.why,
                r.excerpt.as_deref().unwrap_or(""),
            ])?;
        }
        table.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        println!("nothing has come back yet (feed returned mail with `winback inbound`).");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<20}  {:<12}  {:<32}  {:<20}  WHAT IT DID",
        "ID", "RECEIVED", "OUTCOME", "EMAIL", "CAMPAIGN/STEP"
    );
    for r in &records {
        let step = match (&r.campaign, r.step) {
            (Some(c), Some(s)) => format!("{c}/{s}"),
            _ => "-".to_string(),
        };
        let mut did = effect_words(r);
        if r.undone_at.is_some() {
            did = format!("undone (was: {did})");
        }
        println!(
            "{:>5}  {:<20}  {:<12}  {:<32}  {:<20}  {did}",
            r.id,
            r.received_at.format("%Y-%m-%d %H:%M"),
            r.outcome.as_str(),
            printable(r.email.as_deref().unwrap_or("-")),
            printable(&step),
        );
        if let Some(text) = &r.excerpt {
            let line: String = text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            println!("       \u{201c}{}\u{201d}", printable(&line));
        }
    }
    println!("To reverse what one did: winback inbox undo ID");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn undo(cli: &Cli, id: i64) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    match store.undo_inbound(id, setup.clock.now(), &setup.config)? {
        InboxUndo::Undone { resumed } => {
            println!(
                "inbound message {id} undone: {resumed} sequence{} resumed where {} stopped.",
                if resumed == 1 { "" } else { "s" },
                if resumed == 1 { "it" } else { "they" }
            );
            Ok(ExitCode::SUCCESS)
        }
        InboxUndo::AlreadyUndone => {
            println!("inbound message {id} was already undone; nothing changed.");
            Ok(ExitCode::SUCCESS)
        }
        InboxUndo::NothingToUndo => {
            println!("inbound message {id} changed nothing, so there is nothing to undo.");
            Ok(ExitCode::SUCCESS)
        }
        InboxUndo::Unknown => {
            println!("there is no inbound message {id}; see `winback inbox` for the ids.");
            Ok(ExitCode::FAILURE)
        }
    }
}
