//! `winback check`: the setup stage `run` starts from, and the list of what is wrong, or
//! "ok" with a line per campaign.
//!
//! Nothing is checked here that `Setup::load` does not check: this file prints, and adds
//! warnings only (an `exclude_reasons` or `include_reasons` slug no imported client has,
//! and the accounts of more than 50 contacts, read from the database opened read-only)
//! and counts (the clients in sequence already past a campaign's consent horizon, read
//! the same way). A
//! placeholder left in a template (`[EDIT: ...]`) fails the check when mail goes to a
//! real server, and is a warning while it only goes to files; either way the daemon
//! holds such a message rather than send it. A CRM file `[clients]` names that cannot
//! be read fails the check; the daemon runs without it (and logs it at each look).

use std::process::ExitCode;

use crate::config::Problem;
use crate::mail::ProblemList;
use crate::setup::{Refusal, Setup, SetupError};

pub(super) fn run(loaded: Result<Setup, SetupError>) -> anyhow::Result<ExitCode> {
    let setup = match loaded {
        Ok(setup) => setup,
        Err(SetupError::Config(errors)) => {
            print!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
        Err(SetupError::Refused { warnings, refusal }) => {
            print_warnings(&warnings);
            print_refusal(&refusal);
            return Ok(ExitCode::FAILURE);
        }
    };
    print_warnings(&setup.warnings);
    let config = &setup.config;
    let renderer = &setup.renderer;
    for warning in renderer.warnings() {
        println!("warning: {warning}");
    }
    let placeholders = renderer.placeholders();
    if to_real_server(config) && !placeholders.is_empty() {
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
    // Read-only, like the look for renamed campaigns: a reason the CRM words otherwise
    // excludes (or includes) nobody, and only the clients' data can show it.
    match crate::store::Store::churn_reasons_at(&config.database_path) {
        Ok(Some(reasons)) => {
            for warning in unmatched_reasons(&config.campaigns, &reasons) {
                println!("warning: {warning}");
            }
        }
        Ok(None) => {}
        Err(e) => println!(
            "warning: cannot read {} to compare exclude_reasons and include_reasons with the clients' churn reasons ({e})",
            config.database_path.display()
        ),
    }
    // Read-only too: accounts too large to be one company.
    if config.clients.account.is_some() {
        match crate::store::Store::large_accounts_at(
            &config.database_path,
            super::import::MAX_LARGE_ACCOUNTS,
        ) {
            Ok(Some((large, total))) => {
                for warning in super::import::large_account_lines(&large, total, config) {
                    println!("warning: {warning}");
                }
            }
            Ok(None) => {}
            Err(e) => println!(
                "warning: cannot read {} to count the contacts of each account ({e})",
                config.database_path.display()
            ),
        }
    }
    if !setup.client_files.is_empty() {
        let n = setup.client_files.len();
        println!(
            "{n} problem{} with the client files:",
            if n == 1 { "" } else { "s" }
        );
        for problem in &setup.client_files {
            println!("  {}: {problem}", config.file.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    // Read-only too: how many sequences the consent horizon already ends.
    let past_horizon =
        crate::store::Store::past_horizon_at(&config.database_path, config, setup.clock.now())
            .unwrap_or_else(|e| {
                println!(
                    "warning: cannot read {} to count the clients past max_days_since_churn ({e})",
                    config.database_path.display()
                );
                None
            });
    println!("ok");
    for c in &config.campaigns {
        let kinds: Vec<&str> = c.steps.iter().map(|s| s.kind.as_str()).collect();
        println!(
            "  {}{}: {} step{} ({}), quiet {} days, send_at \"{}\" ({} unless the client has a zone), audience: {}, never contacts: {}",
            c.name,
            if c.paused {
                " (PAUSED: nothing of it is sent; enrollment goes on)"
            } else {
                ""
            },
            c.steps.len(),
            if c.steps.len() == 1 { "" } else { "s" },
            kinds.join(" → "),
            c.quiet_days,
            c.send_at.source(),
            c.timezone,
            c.audience(),
            c.exclude_reasons.join(", ")
        );
        if let Some(days) = c.enroll_within_days {
            println!(
                "    enrolls a client only if their survey is due at most {days} days before they are first seen"
            );
        }
        if !c.holidays.is_empty() {
            let mut kept: Vec<String> = c
                .holidays
                .calendars
                .iter()
                .map(|cal| {
                    let whom = match &cal.country {
                        Some(country) => format!("clients in {country}"),
                        None => "everyone".to_string(),
                    };
                    format!(
                        "{} ({} holiday{}, for {whom})",
                        cal.name,
                        cal.events.len(),
                        if cal.events.len() == 1 { "" } else { "s" }
                    )
                })
                .collect();
            kept.extend(
                c.holidays
                    .quiet
                    .iter()
                    .map(|q| format!("{q} (for everyone)")),
            );
            println!("    kept free of mail: {}", kept.join("; "));
        }
        if let Some(days) = c.max_days_since_churn {
            let past = past_horizon
                .as_ref()
                .and_then(|p| p.get(&c.name))
                .copied()
                .unwrap_or(0);
            println!(
                "    consent horizon: nothing starts more than {days} days after the churn; {past} client{} in sequence already past it",
                if past == 1 { "" } else { "s" }
            );
        }
    }
    if config.inbound != crate::config::Inbound::default() {
        println!("  inbound: {}", inbound_summary(&config.inbound));
    }
    Ok(ExitCode::SUCCESS)
}

/// The churn reasons campaigns name (each campaign's `exclude_reasons` and
/// `include_reasons`, and `we_ended`) that no imported client has, each as a warning,
/// when the clients have churn reasons at all (without any, there is nothing to match).
fn unmatched_reasons(
    campaigns: &[crate::config::Campaign],
    reasons: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    use crate::domain::campaign::ALWAYS_EXCLUDED;
    const MAX_LISTED: usize = 12;
    if reasons.is_empty() {
        return Vec::new();
    }
    let mut seen: Vec<&str> = reasons
        .iter()
        .take(MAX_LISTED)
        .map(String::as_str)
        .collect();
    if reasons.len() > MAX_LISTED {
        seen.push("…");
    }
    let mut excluded: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    excluded.insert(ALWAYS_EXCLUDED, Vec::new());
    let mut included: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for campaign in campaigns {
        for slug in &campaign.exclude_reasons {
            excluded.entry(slug).or_default().push(&campaign.name);
        }
        for slug in campaign.include_reasons.iter().flatten() {
            included.entry(slug).or_default().push(&campaign.name);
        }
    }
    let quoted = |names: &[&str]| -> String {
        let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        names.join(", ")
    };
    let excluded = excluded.into_iter().map(|(slug, names)| {
        let why = if names.is_empty() {
            "never contacted".to_string()
        } else {
            format!("excluded by {}", quoted(&names))
        };
        (slug, why)
    });
    let included = included
        .into_iter()
        .map(|(slug, names)| (slug, format!("the audience of {}", quoted(&names))));
    excluded
        .chain(included)
        .filter(|(slug, _)| !reasons.contains(*slug))
        .map(|(slug, why)| {
            format!(
                "\"{slug}\" ({why}) is a churn reason no imported client has (theirs: {}); if your CRM words it otherwise, map its label in [clients] reasons = {{ \"Label in the CRM\" = \"{slug}\" }} and import again",
                seen.join(", ")
            )
        })
        .collect()
}

/// `[inbound]` in one line: what the outgoing mail carries, what is read, who hears.
fn inbound_summary(inbound: &crate::config::Inbound) -> String {
    use crate::config::ImapSecurity;
    let mut parts = Vec::new();
    match &inbound.return_path {
        Some(path) => parts.push(format!(
            "envelope sender {}+REF@{} (REF names each message)",
            path.user(),
            path.domain()
        )),
        None => parts.push("envelope sender [smtp] from".to_string()),
    }
    if let Some(id) = &inbound.feedback_id {
        parts.push(format!("Feedback-ID CAMPAIGN:step-N:{id}"));
    }
    for m in &inbound.mailboxes {
        let security = match m.security {
            ImapSecurity::Tls => "TLS",
            ImapSecurity::StartTls => "STARTTLS required",
            ImapSecurity::StartTlsIfOffered => "STARTTLS when offered, this machine",
        };
        parts.push(format!(
            "reads {} at {}:{} as {} ({security})",
            m.folder, m.host, m.port, m.user
        ));
    }
    if let Some(folder) = &inbound.processed_folder {
        parts.push(format!("moves processed mail to \"{folder}\""));
    }
    if let Some(notify) = &inbound.notify {
        parts.push(format!("tells {} of replies", notify.email));
    }
    parts.push(format!(
        "{} soft bounces at least {} days apart make a bounce",
        inbound.soft_bounce_limit, inbound.soft_bounce_days
    ));
    parts.join(", ")
}

fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        println!("warning: {warning}");
    }
}

fn print_refusal(refusal: &Refusal) {
    match refusal {
        Refusal::Environment(problem) => println!("1 problem in the environment:\n  {problem}"),
        Refusal::Renames { file, renames } => {
            let n = renames.len();
            println!(
                "{n} problem{} between the configuration and the database:",
                if n == 1 { "" } else { "s" }
            );
            for rename in renames {
                println!("  {}: campaign: {}", file.display(), rename.explain());
            }
        }
        Refusal::Pages(problems) => print_problems("the page templates", problems),
        Refusal::Templates(problems) => print_problems("the templates", problems),
    }
}

fn print_problems(what: &str, problems: &[Problem]) {
    let n = problems.len();
    println!("{n} problem{} in {what}:", if n == 1 { "" } else { "s" });
    println!("{}", ProblemList(problems));
}

/// Whether `[smtp] url` sends to a mail server (`smtp://`, `smtps://`) rather than to
/// files.
fn to_real_server(config: &crate::config::Config) -> bool {
    matches!(config.smtp.endpoint, crate::config::Endpoint::Smtp(_))
}
