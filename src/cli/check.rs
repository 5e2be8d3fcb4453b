//! `winback check`: the configuration and every template, or the list of what is wrong.
//!
//! A placeholder left in a template (`[EDIT: ...]`) fails the check when mail goes to a
//! real server, and is a warning while it only goes to files; either way the daemon
//! holds such a message rather than send it.

use std::process::ExitCode;

use super::Cli;
use crate::config::Config;
use crate::mail::{ProblemList, Renderer};

pub(super) fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(errors) => {
            print!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in &config.warnings {
        println!("warning: {warning}");
    }
    if let Some(sync_file) = &config.sync_file
        && !sync_file.exists()
    {
        println!(
            "warning: [clients] sync_file: {} does not exist; the daemon imports it once it appears and logs an error until then (check the path, and that the CRM export has run)",
            sync_file.display()
        );
    }
    if let Some(problem) = crate::daemon::smtp_login_problem(&config) {
        println!("1 problem in the environment:\n  {problem}");
        return Ok(ExitCode::FAILURE);
    }
    // Read-only: `check` never creates or changes the database.
    match crate::store::Store::stored_campaigns_at(&config.database_path) {
        Ok(Some(stored)) => {
            let renames = crate::config::unconfirmed_renames(&config, &stored);
            if !renames.is_empty() {
                let n = renames.len();
                println!(
                    "{n} problem{} between the configuration and the database:",
                    if n == 1 { "" } else { "s" }
                );
                for rename in renames {
                    println!(
                        "  {}: campaign: {}",
                        config.file.display(),
                        rename.explain()
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        Ok(None) => {}
        Err(e) => println!(
            "warning: cannot read {} to look for renamed campaigns ({e})",
            config.database_path.display()
        ),
    }
    let page_problems = crate::http::check_pages(&config);
    if !page_problems.is_empty() {
        println!(
            "{} problem{} in the page templates:",
            page_problems.len(),
            if page_problems.len() == 1 { "" } else { "s" }
        );
        println!("{}", ProblemList(&page_problems));
        return Ok(ExitCode::FAILURE);
    }
    match Renderer::load(&config) {
        Ok(renderer) => {
            for warning in renderer.warnings() {
                println!("warning: {warning}");
            }
            let placeholders = renderer.placeholders();
            if to_real_server(&config.smtp.url) && !placeholders.is_empty() {
                let n = placeholders.len();
                println!(
                    "{n} template{} still hold{} placeholders, and [smtp] url sends to a real mail server:",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" }
                );
                println!("{}", ProblemList(placeholders));
                return Ok(ExitCode::FAILURE);
            }
            for p in placeholders {
                println!("warning: {p}");
            }
        }
        Err(problems) => {
            let n = problems.len();
            println!(
                "{n} problem{} in the templates:",
                if n == 1 { "" } else { "s" }
            );
            println!("{}", ProblemList(&problems));
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("ok");
    for c in &config.campaigns {
        let kinds: Vec<&str> = c.steps.iter().map(|s| s.kind.as_str()).collect();
        println!(
            "  {}: {} step{} ({}), quiet {} days, send_at \"{}\" ({} unless the client has a zone), never contacts: {}",
            c.name,
            c.steps.len(),
            if c.steps.len() == 1 { "" } else { "s" },
            kinds.join(" → "),
            c.quiet_days,
            c.send_at.source(),
            c.timezone,
            c.exclude_reasons.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `[smtp] url` sends to a mail server (`smtp://`, `smtps://`) rather than to
/// files.
fn to_real_server(url: &str) -> bool {
    !url.starts_with("file://")
}
