//! Commands about one person or one message: `optout`, `returned`, `outbox resend`; and
//! `optout --file`, `returned --file` for a list of people at once.

use std::path::Path;
use std::process::ExitCode;

use super::{Cli, address, load_config, open_store};
use crate::import::list::{AddressList, read_list_file};
use crate::setup::Base;
use crate::store::{BulkOutcome, ReturnOutcome};

pub(super) fn optout(cli: &Cli, email: &str) -> anyhow::Result<ExitCode> {
    let email = &address(email)?;
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    let newly = store.record_opt_out(email, "cli", setup.clock.now())?;
    if newly {
        println!("{email} is opted out of everything; no further message will be started.");
    } else {
        println!("{email} was already opted out.");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn returned(cli: &Cli, email: &str) -> anyhow::Result<ExitCode> {
    let email = &address(email)?;
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    match store.record_return(email, setup.clock.now())? {
        ReturnOutcome::Recorded {
            stopped,
            account_stopped,
        } => {
            println!(
                "{email} came back: welcome them! {stopped} sequence{} stopped.",
                if stopped == 1 { "" } else { "s" }
            );
            if account_stopped > 0 {
                println!(
                    "{account_stopped} sequence{} of other contacts at their account stopped too.",
                    if account_stopped == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ReturnOutcome::AlreadyReturned => {
            println!("{email} was already recorded as returned.");
            Ok(ExitCode::SUCCESS)
        }
        ReturnOutcome::Unknown => {
            println!(
                "{email} is not a known former client; nothing changed (check the address, or import them first)."
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `optout --file`: everyone in the list is opted out, in one transaction.
pub(super) fn optout_list(cli: &Cli, file: &Path, skip_invalid: bool) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let Some(list) = checked_list(&setup, file, skip_invalid)? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut store = open_store(&setup.config)?;
    let done = store.record_opt_outs(&list.addresses, "cli", setup.clock.now())?;
    let BulkOutcome {
        new,
        already,
        unknown,
    } = done;
    println!("opted out now: {new}; already opted out: {already}.");
    if unknown > 0 {
        println!(
            "{unknown} of them {} never imported: {} opted out all the same, and will never be mailed.",
            were(unknown),
            if unknown == 1 { "it is" } else { "they are" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `returned --file`: every known former client in the list came back, in one
/// transaction.
pub(super) fn returned_list(
    cli: &Cli,
    file: &Path,
    skip_invalid: bool,
) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let Some(list) = checked_list(&setup, file, skip_invalid)? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut store = open_store(&setup.config)?;
    let detail = format!("came back as a client (listed in {})", file.display());
    let done = store.record_returns(&list.addresses, setup.clock.now(), &detail)?;
    println!(
        "recorded as returned: {} (their sequences stopped: welcome them!); already returned: {}.",
        done.new, done.already
    );
    if done.unknown > 0 {
        println!(
            "{} {}; nothing changed for {} (check the addresses, or import them first).",
            done.unknown,
            if done.unknown == 1 {
                "address is not a known former client"
            } else {
                "addresses are not known former clients"
            },
            if done.unknown == 1 { "it" } else { "them" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn were(n: u64) -> &'static str {
    if n == 1 { "was" } else { "were" }
}

/// Reads a list and says what it holds; `None` (its bad lines listed on standard error)
/// when nothing may be applied.
fn checked_list(
    setup: &Base,
    file: &Path,
    skip_invalid: bool,
) -> anyhow::Result<Option<AddressList>> {
    let list = read_list_file(file, &setup.config.clients.format)?;
    for bad in &list.invalid {
        eprintln!("{}: {bad}", file.display());
    }
    let valid = list.addresses.len();
    if !list.invalid.is_empty() && !skip_invalid {
        eprintln!(
            "{}: {} line{} not an address; nothing changed. Fix {}, or add --skip-invalid to apply the {valid} valid address{} alone.",
            file.display(),
            list.invalid.len(),
            if list.invalid.len() == 1 {
                " is"
            } else {
                "s are"
            },
            if list.invalid.len() == 1 {
                "it"
            } else {
                "them"
            },
            if valid == 1 { "" } else { "es" },
        );
        return Ok(None);
    }
    if valid == 0 {
        eprintln!(
            "{}: no address in the list; nothing changed.",
            file.display()
        );
        return Ok(None);
    }
    let mut read = format!(
        "{}: {valid} address{}",
        file.display(),
        if valid == 1 { "" } else { "es" }
    );
    if let Some(column) = &list.column {
        read.push_str(&format!(" from the column \"{column}\""));
    }
    if list.repeated > 0 {
        read.push_str(&format!(
            "; {} repeated line{} counted once",
            list.repeated,
            if list.repeated == 1 { "" } else { "s" }
        ));
    }
    if !list.invalid.is_empty() {
        read.push_str(&format!(
            "; {} bad line{} skipped",
            list.invalid.len(),
            if list.invalid.len() == 1 { "" } else { "s" }
        ));
    }
    println!("{read}.");
    Ok(Some(list))
}

pub(super) fn resend(cli: &Cli, id: i64) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    if store.resend(id, setup.clock.now())? {
        println!("message {id} will be sent again on the daemon's next pass.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "message {id} is not uncertain or failed; nothing changed (see `winback outbox list`)."
        );
        Ok(ExitCode::FAILURE)
    }
}
