//! `winback check`: the configuration and every template, or the list of what is wrong.

use std::process::ExitCode;

use super::Cli;
use crate::config::Config;
use crate::render::Renderer;

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
        for p in page_problems {
            println!("  {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    match Renderer::load(&config) {
        Ok(renderer) => {
            for warning in renderer.warnings() {
                println!("warning: {warning}");
            }
        }
        Err(problems) => {
            let n = problems.len();
            println!(
                "{n} problem{} in the templates:",
                if n == 1 { "" } else { "s" }
            );
            for p in problems {
                println!("  {p}");
            }
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
