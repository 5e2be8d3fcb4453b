//! Commands about one person or one message: `optout`, `returned`, `outbox resend`.

use std::process::ExitCode;

use super::{Cli, address, load_config, open_store};
use crate::store::ReturnOutcome;

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
        ReturnOutcome::Recorded { stopped } => {
            println!(
                "{email} came back: welcome them! {stopped} sequence{} stopped.",
                if stopped == 1 { "" } else { "s" }
            );
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
