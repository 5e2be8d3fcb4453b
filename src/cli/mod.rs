//! The operator's edge: argument parsing, and one function per command.
//!
//! Commands load the configuration, open the store, read the clock once from
//! `--now`-aware [`Clock`], and print for people (tables, sentences) or machines (`--format
//! json`). Errors become one clear sentence; nothing here makes scheduling decisions.

mod check;
mod import;
mod people;
mod plan;
mod recipients;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(name = "winback", version, about = "Wins former B2B clients back by email, slowly and politely.")]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "config/winback.toml", env = "WINBACK_CONFIG")]
    pub config: PathBuf,
    /// Start the clock at this instant (RFC 3339); it then runs on in real time.
    #[arg(long, global = true, value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// Log lines for people or for machines (level: WINBACK_LOG, e.g. "debug").
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and templates (renders every step for a sample client).
    #[command(after_help = "Example: winback check --config config/winback.toml")]
    Check,
    /// Add or update former clients from a CSV file (upsert by email).
    #[command(after_help = "Example: winback import config/clients.csv\n\nColumns: email, churned_at (required); name, first_name, company, churn_reason, timezone; any other column is a template field.")]
    Import {
        file: PathBuf,
        /// Import the good rows even if some are bad (the bad ones are still listed).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Run the daemon: schedule, deliver, serve the recipients' links.
    #[command(after_help = "Example: winback run\n         winback run --once --now 2026-06-01T10:00:00Z")]
    Run {
        /// One scheduling and delivery pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Who gets which step when, over the next days.
    #[command(after_help = "Example: winback plan --days 30")]
    Plan {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Counts per campaign and state, and messages that need attention.
    #[command(after_help = "Example: winback status --format json")]
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Opt a person out of everything, now and for good.
    #[command(after_help = "Example: winback optout jane@example.com")]
    Optout { email: String },
    /// The client came back: stop their sequences and record the win.
    #[command(after_help = "Example: winback returned jane@example.com")]
    Returned { email: String },
    /// Inspect and act on the outbox.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The feedback survey's answers, and how many gave each reason.
    #[command(
        after_help = "Example: winback survey\n         winback survey --format json > answers.json"
    )]
    Survey {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print everything stored about a person, as JSON (for a data-access request).
    #[command(after_help = "Example: winback export jane@example.com > jane.json")]
    Export { email: String },
    /// Erase a person's data; their address stays blocked, as a hash, so it is never mailed again.
    #[command(
        after_help = "Example: winback forget jane@example.com\n\nDeletes their former-client row, enrollments, message records, survey answers and events. Copies outside the database (sent .eml files, logs, backups) are not touched."
    )]
    Forget { email: String },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Messages that need a decision: uncertain (the process died mid-send), failed, retrying.
    List,
    /// Send an uncertain or failed message again (the recipient may get it twice).
    #[command(after_help = "Example: winback outbox resend 42")]
    Resend { id: i64 },
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; write an RFC 3339 instant such as 2026-06-01T10:00:00Z"))
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WINBACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// What every command starts from.
pub(crate) struct Setup {
    pub config: Config,
    pub clock: Clock,
}

pub(crate) fn load_config(cli: &Cli) -> anyhow::Result<Setup> {
    let config = Config::load(&cli.config).map_err(|e| anyhow!("{e}"))?;
    let clock = cli.now.map(Clock::starting_at).unwrap_or_else(Clock::system);
    Ok(Setup { config, clock })
}

pub(crate) fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database_path).with_context(|| format!("opening {}", config.database_path.display()))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Check => check::run(&cli),
        Command::Import { file, skip_invalid } => import::run(&cli, file, *skip_invalid),
        Command::Run { once } => {
            let ctx = load_config(&cli)?;
            crate::daemon::start(ctx.config, ctx.clock, *once)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { days, format } => plan::run(&cli, *days, *format),
        Command::Status { format } => status::run(&cli, *format),
        Command::Optout { email } => people::optout(&cli, email),
        Command::Returned { email } => people::returned(&cli, email),
        Command::Outbox(OutboxCommand::List) => status::outbox_list(&cli),
        Command::Outbox(OutboxCommand::Resend { id }) => people::resend(&cli, *id),
        Command::Survey { format } => recipients::survey(&cli, *format),
        Command::Export { email } => recipients::export(&cli, email),
        Command::Forget { email } => recipients::forget(&cli, email),
    }
}
