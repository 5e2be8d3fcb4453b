//! The operator's edge: argument parsing, and one function per command.
//!
//! Commands start from the setup stage (`crate::setup`: the configuration, the
//! `--now`-aware [`Clock`], the environment's secrets; for `check` and `run` the
//! templates too), open the store, and print for people (tables, sentences) or machines
//! (`--format json`). Errors become one clear sentence; nothing here makes scheduling
//! decisions.

mod check;
mod csv_out;
mod import;
mod inbound;
mod json_out;
mod log_sink;
mod ops;
mod output;
mod people;
mod plan;
mod preview;
mod recipients;
mod report;
mod send_test;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::Clock;
use crate::config::Config;
use crate::setup::{Base, Setup};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "winback",
    version,
    about = "Wins former B2B clients back by email, slowly and politely."
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config/winback.toml",
        env = "WINBACK_CONFIG"
    )]
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
    /// RFC 4180 CSV with a header row, for a spreadsheet.
    Csv,
}

/// `winback report` without `--html`: the figures over time as text.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and templates (renders every step for a sample client of each churn reason).
    #[command(after_help = "Example: winback check --config config/winback.toml")]
    Check,
    /// Add or update former clients from a CSV file (upsert by email).
    #[command(
        after_help = "Example: winback import config/clients.csv\n         winback import --dry-run --format json config/clients.csv\n\nColumns: email, churned_at (required); name, first_name, company, churn_reason, timezone; any other column is a template field."
    )]
    Import {
        file: PathBuf,
        /// Import the good rows even if some are bad (the bad ones are still listed).
        #[arg(long)]
        skip_invalid: bool,
        /// Show what the import would change (who is added, updated and how, returned,
        /// skipped) and write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run the daemon: schedule, deliver, serve the recipients' links.
    #[command(
        after_help = "Example: winback run\n         winback run --once --now 2026-06-01T10:00:00Z"
    )]
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
    /// Opt a person out of everything, now and for good (or everyone in a list).
    #[command(
        after_help = "Example: winback optout jane@example.com\n         winback optout --file do-not-contact.csv\n\nA list is one address per line, or a CSV file with an email column. Every line is checked first: if any is not an address, they are listed and nothing changes (unless --skip-invalid)."
    )]
    Optout {
        #[arg(required_unless_present = "file")]
        email: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// The client came back: stop their sequences and record the win (or everyone in a list).
    #[command(
        after_help = "Example: winback returned jane@example.com\n         winback returned --file new-customers.csv\n\nA list is one address per line, or a CSV file with an email column. Every line is checked first: if any is not an address, they are listed and nothing changes (unless --skip-invalid)."
    )]
    Returned {
        #[arg(required_unless_present = "file")]
        email: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Inspect and act on the outbox.
    #[command(
        subcommand,
        after_help = "Example: winback outbox list\n         winback outbox resend 42"
    )]
    Outbox(OutboxCommand),
    /// Apply returned mail: bounces, complaints and replies (each FILE one message, each DIR a Maildir or a folder of .eml files; none: one message on standard input).
    #[command(
        after_help = "Example: winback inbound ~/Maildir\n         winback inbound bounce.eml --format json\n         (Postfix pipe, .forward or procmail: | winback inbound)\n\nEach message is applied once, however often it is read. Exit status 1 if an input is not a mail message; nothing is applied for it."
    )]
    Inbound {
        #[arg(value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Recent returned mail and what each did; `undo ID` reverses a wrong suppression or stop.
    #[command(after_help = "Example: winback inbox\n         winback inbox undo 12")]
    Inbox {
        #[command(subcommand)]
        action: Option<InboxCommand>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
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
    /// A step as its recipient will get it (headers and text), or every step side by side.
    #[command(
        after_help = "Example: winback preview --campaign former-clients --step 1 --email jane@example.com\n         winback preview --campaign former-clients --step 2 --html step2.html --open\n         winback preview --campaign former-clients --gallery review/ --open\n\nWithout --email the step is rendered for a sample client, with placeholder links. With --email, the links are that client's real ones: do not click unsubscribe in a preview."
    )]
    Preview {
        /// The campaign, by its `name` in the configuration.
        #[arg(long)]
        campaign: String,
        /// The step number (1 is the survey).
        #[arg(long, required_unless_present = "gallery")]
        step: Option<u32>,
        /// The former client to render for (default: a sample client).
        #[arg(long, conflicts_with = "gallery")]
        email: Option<String>,
        /// Also write the HTML part to FILE.
        #[arg(long, value_name = "FILE", conflicts_with = "gallery")]
        html: Option<PathBuf>,
        /// Open the HTML part (or the gallery) in a browser.
        #[arg(long)]
        open: bool,
        /// Write DIR/index.html: every step of the campaign for a sample client, with its timing.
        #[arg(long, value_name = "DIR", conflicts_with = "step")]
        gallery: Option<PathBuf>,
        /// Replace the --html file (or the gallery's index.html) if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Send one step to yourself, marked [TEST], through the configured mail server; records nothing.
    #[command(
        after_help = "Example: winback send-test --campaign former-clients --step 1 --to me@acme.example\n         winback send-test --campaign former-clients --step 2 --to me@acme.example --email jane@example.com\n\nThe step is rendered for a sample client (--reason sets why they left) or, with --email, for that former client, and sent to --to only, with [TEST] before its subject. Nothing is recorded: no message, event or link key is written, and the database is only read. The links in it carry no valid token: opening one shows the \"link not found\" page and changes nothing. A message the daemon would hold (a placeholder left, a footer missing) is listed and not sent, unless --anyway."
    )]
    SendTest {
        /// The campaign, by its `name` in the configuration.
        #[arg(long)]
        campaign: String,
        /// The step number (1 is the survey).
        #[arg(long)]
        step: u32,
        /// Where the test goes (only there).
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// The former client to render for (default: a sample client).
        #[arg(long)]
        email: Option<String>,
        /// The sample client's churn reason, to see a reason's own wording.
        #[arg(long, value_name = "SLUG", conflicts_with = "email")]
        reason: Option<String>,
        /// Send it even if the daemon would hold it, to see the problem in a mail program.
        #[arg(long)]
        anyway: bool,
    },
    /// Write a one-page HTML report: funnel, churn reasons, opt-outs per step, returned mail,
    /// upcoming sends.
    #[command(
        after_help = "Example: winback report --html report.html\n         winback report --since 2026-01-01 --until 2026-03-31 --format csv > q1.csv\n\nThe page is self-contained (no scripts, nothing loaded from elsewhere): mail it or archive it as it is. For a terminal summary, use `winback status`."
    )]
    Report {
        /// Where to write the page; without it, the figures over time are printed.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// How to print the figures over time when no --html is given.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table, conflicts_with = "html")]
        format: ReportFormat,
        /// The first day of the period (YYYY-MM-DD, in the campaigns' time zone); default: 12 weeks before --until.
        #[arg(long, value_name = "DATE")]
        since: Option<chrono::NaiveDate>,
        /// The last day of the period (YYYY-MM-DD, included); default: today.
        #[arg(long, value_name = "DATE")]
        until: Option<chrono::NaiveDate>,
        /// A return is credited to the last message the person got at most this many days before.
        #[arg(long, value_name = "DAYS", default_value_t = 90)]
        attribution_days: u32,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Copy the live database consistently (safe while the daemon runs).
    #[command(
        after_help = "Example: winback backup /var/backups/winback-$(date +%F).db\n\nTo restore: stop the daemon (systemctl stop winback); move the database file aside, and any winback.db-wal and winback.db-shm files beside it; copy the backup to the database path ([database] path in the config); start the daemon again. A backup holds names, addresses and the link-signing keys: keep it private."
    )]
    Backup {
        /// The backup file to create.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// The keys that sign the recipients' links.
    #[command(subcommand, after_help = "Example: winback secret rotate")]
    Secret(SecretCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example: winback completions bash > /etc/bash_completion.d/winback\n         winback completions zsh > \"${fpath[1]}/_winback\"\n         winback completions fish > ~/.config/fish/completions/winback.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A list of addresses instead of one, for `optout` and `returned`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Read the addresses from FILE: one per line, or a CSV file with an email column.
    #[arg(long, value_name = "FILE", conflicts_with = "email")]
    pub file: Option<PathBuf>,
    /// Apply the valid addresses even if some lines are not addresses (those are still listed).
    #[arg(long, requires = "file")]
    pub skip_invalid: bool,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Messages that need a decision: uncertain (the process died mid-send), failed, retrying.
    #[command(
        after_help = "Example: winback outbox list\n         winback outbox list --format csv > attention.csv"
    )]
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send an uncertain or failed message again (the recipient may get it twice).
    #[command(after_help = "Example: winback outbox resend 42")]
    Resend { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Reverse what one inbound message did: lift its suppression, resume the sequences it stopped.
    #[command(after_help = "Example: winback inbox undo 12")]
    Undo { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Make a new link key for new mail; links signed by the earlier keys keep working.
    #[command(
        after_help = "Example: winback secret rotate\n\nKeys are never removed: an unsubscribe link must work for years. The daemon signs with the new key from its next start (systemctl restart winback)."
    )]
    Rotate,
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; write an RFC 3339 instant such as 2026-06-01T10:00:00Z"))
}

/// Logs go to stderr through [`log_sink`]: a write that fails or would block drops the
/// line, never the process. Keep the guard until the end of `main`: dropping it gives
/// queued lines a moment to reach stderr.
pub fn init_logging(format: LogFormat) -> log_sink::FlushGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("WINBACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = colour_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let (sink, guard) = log_sink::LogSink::start(std::io::stderr());
    // The subscriber's own report of a failed write goes to stderr too, and panics when
    // that fails as well; the sink's writes never fail, and this stays off regardless.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .log_internal_errors(false)
        .with_ansi(colour);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
    guard
}

/// Colour escapes help a person at a terminal and garble a log file or a pipe; a
/// non-empty `NO_COLOR` turns them off everywhere (no-color.org).
fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The clock every command reads: `--now` if given, else the system's.
fn clock(cli: &Cli) -> Clock {
    cli.now
        .map(Clock::starting_at)
        .unwrap_or_else(Clock::system)
}

/// What every command but `check` and `run` starts from: the configuration, the clock
/// and the environment's secrets.
pub(crate) fn load_config(cli: &Cli) -> anyhow::Result<Base> {
    Base::load(&cli.config, clock(cli)).map_err(|e| anyhow!("{e}"))
}

/// An address given on the command line, read exactly as an imported one is (quotes, a
/// display name, spaces and case do not matter); anything else is refused before the
/// command does anything.
pub(crate) fn address(text: &str) -> anyhow::Result<String> {
    crate::domain::model::parse_address(text).map_err(|_| {
        anyhow!(
            "{text:?} is not one valid email address; give a single address, such as jane@example.com"
        )
    })
}

pub(crate) fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database_path)
        .with_context(|| format!("opening {}", config.database_path.display()))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Check => check::run(Setup::load(&cli.config, clock(&cli))),
        Command::Import {
            file,
            skip_invalid,
            dry_run,
            format,
        } => import::run(&cli, file, *skip_invalid, *dry_run, *format),
        Command::Run { once } => {
            let setup = Setup::load(&cli.config, clock(&cli)).map_err(|e| anyhow!("{e}"))?;
            crate::daemon::start(setup, *once, crate::daemon::shutdown_signal())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { days, format } => plan::run(&cli, *days, *format),
        Command::Status { format } => status::run(&cli, *format),
        Command::Optout { email, list } => match &list.file {
            Some(file) => people::optout_list(&cli, file, list.skip_invalid),
            None => people::optout(&cli, email.as_deref().unwrap_or_default()),
        },
        Command::Returned { email, list } => match &list.file {
            Some(file) => people::returned_list(&cli, file, list.skip_invalid),
            None => people::returned(&cli, email.as_deref().unwrap_or_default()),
        },
        Command::Outbox(OutboxCommand::List { format }) => status::outbox_list(&cli, *format),
        Command::Outbox(OutboxCommand::Resend { id }) => people::resend(&cli, *id),
        Command::Inbound { paths, format } => inbound::inbound(&cli, paths, *format),
        Command::Inbox {
            action: Some(InboxCommand::Undo { id }),
            ..
        } => inbound::undo(&cli, *id),
        Command::Inbox {
            action: None,
            format,
        } => inbound::inbox(&cli, *format),
        Command::Survey { format } => recipients::survey(&cli, *format),
        Command::Export { email } => recipients::export(&cli, email),
        Command::Forget { email } => recipients::forget(&cli, email),
        Command::Preview {
            campaign,
            step,
            email,
            html,
            open,
            gallery,
            force,
        } => preview::run(
            &cli,
            preview::PreviewArgs {
                campaign,
                step: *step,
                email: email.as_deref(),
                html: html.as_deref(),
                open: *open,
                gallery: gallery.as_deref(),
                force: *force,
            },
        ),
        Command::SendTest {
            campaign,
            step,
            to,
            email,
            reason,
            anyway,
        } => send_test::run(
            &cli,
            send_test::SendTestArgs {
                campaign,
                step: *step,
                to,
                email: email.as_deref(),
                reason: reason.as_deref(),
                anyway: *anyway,
            },
        ),
        Command::Report {
            html,
            format,
            since,
            until,
            attribution_days,
            force,
        } => report::run(
            &cli,
            report::ReportArgs {
                html: html.as_deref(),
                format: *format,
                since: *since,
                until: *until,
                attribution_days: *attribution_days,
                force: *force,
            },
        ),
        Command::Backup { file, force } => ops::backup(&cli, file, *force),
        Command::Completions { shell } => ops::completions(*shell),
        Command::Secret(SecretCommand::Rotate) => ops::rotate_secret(&cli),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
        assert!(!colour_wanted(false, Some(OsStr::new("1"))));
    }
}
