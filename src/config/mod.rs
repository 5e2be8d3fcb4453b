//! Configuration: the TOML a marketing-ops person writes, turned into a validated
//! [`Config`] with parsed schedules and time zones.
//!
//! Stage one ([`raw`]) is plain serde; stage two (`validate`) checks every rule and
//! reports all problems at once, each naming file, line and key with the fix in plain
//! words. Here: the validated types and their loading. Every config error is born in this
//! module; templates are checked by `mail`. Nothing here builds a mailer or opens a
//! database.

pub(crate) mod clients;
pub(crate) mod hints;
mod imap_url;
mod raw;
mod renames;
mod smtp_url;
mod toml_errors;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub(crate) use crate::domain::campaign::Campaign;
#[allow(unused_imports)]
pub(crate) use clients::{AccountKey, Clients, CsvFormat, Field};
pub(crate) use imap_url::{ImapMailbox, ImapSecurity};
pub(crate) use renames::{StoredCampaign, SuspectedRename, unconfirmed_renames};
pub(crate) use smtp_url::{Endpoint, SmtpServer};
pub(crate) use validate::normalize_header;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file this was read from; relative paths in it are relative to its directory.
    pub file: PathBuf,
    pub database_path: PathBuf,
    pub smtp: Smtp,
    pub http: Http,
    pub sender: Sender,
    pub templates_dir: PathBuf,
    pub clients: Clients,
    pub survey_external_url: Option<String>,
    pub dkim: Option<Dkim>,
    /// `[inbound]`: all off (no keys) when the section is absent.
    pub inbound: Inbound,
    pub campaigns: Vec<Campaign>,
    /// Not errors, but worth a look (printed by `check`).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub(crate) struct Smtp {
    /// `smtp://`, `smtps://`, or `file://` with the directory made absolute.
    pub url: String,
    /// The url read: where the mailer sends.
    pub endpoint: Endpoint,
    pub from: lettre::message::Mailbox,
    pub reply_to: Option<lettre::message::Mailbox>,
    pub connections: usize,
    pub max_per_minute: Option<u32>,
    pub max_per_day: Option<u32>,
    pub timeout: std::time::Duration,
    pub retry_first: chrono::Duration,
    pub retry_give_up: chrono::Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_url: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Sender {
    pub company: String,
    pub postal_address: String,
    /// The privacy notice every footer and page links when set (`sender.privacy_url`;
    /// `null` in templates when not).
    pub privacy_url: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Dkim {
    pub selector: String,
    pub domain: String,
    pub key_file: PathBuf,
    /// A second key signing every message again (`second_selector`, `second_key_file`):
    /// Ed25519 next to RSA, as some receivers verify only RSA.
    pub second: Option<DkimKey>,
}

#[derive(Debug, Clone)]
pub(crate) struct DkimKey {
    pub selector: String,
    pub key_file: PathBuf,
}

/// `[inbound]`: where returned mail is read and what the outgoing mail carries for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbound {
    /// The envelope sender's base (`bounces@acme.example`): each message goes out from
    /// `bounces+REF@acme.example`, REF naming that message. `None`: from `smtp.from`.
    pub return_path: Option<lettre::Address>,
    /// Gmail's SenderId: each message carries `Feedback-ID: CAMPAIGN:step-N:ID`.
    pub feedback_id: Option<String>,
    /// The mailboxes the daemon reads, in the order written.
    pub mailboxes: Vec<ImapMailbox>,
    /// Where a processed message is moved in a mailbox only winback reads; `None`: left.
    pub processed_folder: Option<String>,
    /// Who hears of each human reply, contact who left, and survey answer.
    pub notify: Option<lettre::message::Mailbox>,
    /// Soft bounces of one address that together count as a bounce…
    pub soft_bounce_limit: u32,
    /// …when at least this many days lie between the first and the last.
    pub soft_bounce_days: u32,
}

impl Default for Inbound {
    fn default() -> Inbound {
        Inbound {
            return_path: None,
            feedback_id: None,
            mailboxes: Vec::new(),
            processed_folder: None,
            notify: None,
            soft_bounce_limit: 3,
            soft_bounce_days: 14,
        }
    }
}

impl Smtp {
    /// `retry_first_minutes` and `retry_give_up_hours`, as the outbox (and the notices to
    /// the team) apply them.
    pub(crate) fn retry_policy(&self) -> crate::domain::retry::RetryPolicy {
        crate::domain::retry::RetryPolicy {
            first: self.retry_first,
            give_up: self.retry_give_up,
        }
    }
}

impl Inbound {
    /// What applying an inbound message needs: when soft bounces of one address count as
    /// a bounce (`soft_bounce_limit`, `soft_bounce_days`) and whether the team is told.
    pub(crate) fn rules(&self) -> crate::domain::inbound::InboundRules {
        crate::domain::inbound::InboundRules {
            soft_bounce: crate::domain::inbound::SoftBounceRule {
                limit: self.soft_bounce_limit,
                days: self.soft_bounce_days,
            },
            notify: self.notify.is_some(),
        }
    }
}

/// One thing wrong (or worth a warning) in a configuration or template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    /// What is wrong and how to fix it, in plain words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a configuration, in file order.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![Problem {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!(
                    "cannot read the configuration file ({e}); pass the right one with --config PATH"
                ),
            }])
        })?;
        // `parse` is in validate.rs.
        Config::parse(path, &text)
    }

    #[cfg(test)]
    pub(crate) fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    pub(crate) fn campaign(&self, name: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
