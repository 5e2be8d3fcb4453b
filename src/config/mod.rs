//! Configuration: the TOML a marketing-ops person writes, turned into a validated
//! [`Config`] with parsed schedules and time zones.
//!
//! Stage one ([`raw`]) is plain serde; stage two (here) checks every rule and reports all
//! problems at once, each naming file, line and key with the fix in plain words. Every
//! config error is born in this module. Templates are checked by `render`.

mod raw;
mod renames;
mod toml_errors;

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use toml::Spanned;

pub use crate::domain::campaign::{
    ALWAYS_EXCLUDED, Campaign, MIN_QUIET_DAYS, SLOW_TOUCH_DAYS, Step,
};
use crate::domain::model::StepKind;
pub use crate::domain::send_at::SendAt;
pub use renames::{StoredCampaign, SuspectedRename, unconfirmed_renames};

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from; relative paths in it are relative to its directory.
    pub file: PathBuf,
    pub database_path: PathBuf,
    pub smtp: Smtp,
    pub http: Http,
    pub sender: Sender,
    pub templates_dir: PathBuf,
    pub sync_file: Option<PathBuf>,
    pub survey_external_url: Option<String>,
    pub dkim: Option<Dkim>,
    pub campaigns: Vec<Campaign>,
    /// Not errors, but worth a look (printed by `check`).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    /// `smtp://`, `smtps://`, or `file://` with the directory made absolute.
    pub url: String,
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
pub struct Http {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub public_url: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Sender {
    pub company: String,
    pub postal_address: String,
    /// The privacy notice every footer and page links when set (`sender.privacy_url`;
    /// `null` in templates when not).
    pub privacy_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dkim {
    pub selector: String,
    pub domain: String,
    pub key_file: PathBuf,
    /// A second key signing every message again (`second_selector`, `second_key_file`):
    /// Ed25519 next to RSA, as some receivers verify only RSA.
    pub second: Option<DkimKey>,
}

#[derive(Debug, Clone)]
pub struct DkimKey {
    pub selector: String,
    pub key_file: PathBuf,
}

/// One thing wrong (or worth a warning) in a configuration or template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
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
pub struct ConfigErrors(pub Vec<Problem>);

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
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
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
        Config::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        // Absolute, so that paths resolved against it stay right whatever the working directory.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut v = Validator {
            file: path.to_path_buf(),
            text,
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let raw: raw::RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let line = e.span().map(|s| v.line_of(&s));
                let (key, message) = toml_errors::explain(text, line, e.message().trim());
                return Err(ConfigErrors(vec![Problem {
                    file: path.to_path_buf(),
                    line,
                    key,
                    message,
                }]));
            }
        };
        let config = v.validate(raw);
        match config {
            Some(config) if v.problems.is_empty() => Ok(Config {
                warnings: v.warnings,
                ..config
            }),
            _ => {
                v.problems.sort_by_key(|p| p.line);
                Err(ConfigErrors(v.problems))
            }
        }
    }

    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    pub fn campaign(&self, name: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.name == name)
    }
}

/// `a/config/../outbox` → `a/outbox`, without touching the file system (the path may not
/// exist yet), so logs and errors show the place an operator would type.
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Why links under `public_url` would not open for a recipient, in plain words: not
/// HTTPS (RFC 8058 one-click unsubscribe, and Gmail's and Yahoo's sender rules, need it),
/// or a host only this machine or this network can reach. Empty when nothing is wrong.
/// Pure: no DNS lookup, so a public name that resolves privately is not caught.
fn unreachable_link_reasons(url: &str) -> Vec<String> {
    use std::net::IpAddr;
    let mut reasons = Vec::new();
    let Some((scheme, rest)) = url.split_once("://") else {
        return reasons;
    };
    if !scheme.eq_ignore_ascii_case("https") {
        reasons.push(format!(
            "starts with {scheme}://, and mail programs only offer one-click unsubscribe (RFC 8058) over https://"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        reasons.push("names no host".to_string());
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        let what = match ip {
            IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified() => {
                "this machine's own address"
            }
            IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => {
                "this machine's own address"
            }
            IpAddr::V4(v4)
                if v4.is_private()
                    || v4.is_link_local()
                    || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) =>
            {
                "a private network address, reachable only inside your network"
            }
            IpAddr::V6(v6)
                if (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80 =>
            {
                "a private network address, reachable only inside your network"
            }
            _ => "a bare IP address, which no HTTPS certificate names for mail programs to trust",
        };
        reasons.push(format!("points at {host}, {what}"));
    } else if host == "localhost" || host.ends_with(".localhost") {
        reasons.push(format!("points at {host}, this machine itself"));
    } else if !host.contains('.')
        || [
            ".local",
            ".internal",
            ".lan",
            ".home.arpa",
            ".intranet",
            ".corp",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix))
    {
        reasons.push(format!(
            "points at {host}, a name only your own network knows"
        ));
    }
    reasons
}

/// The churn reasons the README lists; a campaign may name others.
const KNOWN_REASONS: [&str; 7] = [
    "competitor",
    "acquisition",
    "contact_left",
    "price",
    "needs_changed",
    "we_ended",
    "other",
];

/// The known reason `reason` is likely a misspelling of (`we-ended`, `we ended`,
/// `competiter`), or None when it is known or not close to any.
fn likely_reason(reason: &str) -> Option<&'static str> {
    let reason = reason.trim().to_lowercase();
    if KNOWN_REASONS.contains(&reason.as_str()) {
        return None;
    }
    let normal: String = reason
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .collect();
    KNOWN_REASONS
        .iter()
        .copied()
        .find(|known| *known == normal)
        .or_else(|| {
            KNOWN_REASONS
                .iter()
                .copied()
                .find(|known| edit_distance(known, &normal) <= 2)
        })
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// For a zone name that is a fixed offset from UTC (no daylight saving), the zone names
/// to suggest instead, quoted.
fn fixed_offset_zone(name: &str) -> Option<&'static str> {
    match name {
        "EST" => Some("\"America/New_York\""),
        "MST" => {
            Some("\"America/Denver\" (or \"America/Phoenix\", which keeps no daylight saving)")
        }
        _ if name.starts_with("Etc/GMT")
            && name
                .trim_start_matches("Etc/GMT")
                .trim_start_matches(['+', '-'])
                .parse::<u8>()
                .is_ok_and(|h| h > 0) =>
        {
            Some("\"America/New_York\" or \"Europe/Paris\"")
        }
        _ => None,
    }
}

/// The zone meant by a common abbreviation that is not itself a zone name.
fn zone_for_abbreviation(name: &str) -> Option<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "EDT" | "ET" => Some("America/New_York"),
        "CST" | "CDT" | "CT" => Some("America/Chicago"),
        "MDT" | "MT" => Some("America/Denver"),
        "PST" | "PDT" | "PT" => Some("America/Los_Angeles"),
        "BST" => Some("Europe/London"),
        "CEST" => Some("Europe/Paris"),
        "IST" => Some("Asia/Kolkata"),
        "JST" => Some("Asia/Tokyo"),
        "AEST" | "AEDT" => Some("Australia/Sydney"),
        _ => None,
    }
}

struct Validator<'a> {
    file: PathBuf,
    text: &'a str,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn problem(&mut self, span: Option<&Range<usize>>, key: &str, message: impl Into<String>) {
        let line = span.map(|s| self.line_of(s));
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn warning(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let line = self.line_of(span);
        self.warnings.push(Problem {
            file: self.file.clone(),
            line: Some(line),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn resolve(&self, relative: &str) -> PathBuf {
        let base = self.file.parent().unwrap_or(Path::new("."));
        lexically_normal(&base.join(relative))
    }

    /// A required string, or a problem naming the key.
    fn required(
        &mut self,
        value: Option<Spanned<String>>,
        table: Option<&Range<usize>>,
        key: &str,
        what: &str,
    ) -> Option<Spanned<String>> {
        match value {
            Some(v) if !v.get_ref().trim().is_empty() => Some(v),
            Some(v) => {
                self.problem(Some(&v.span()), key, format!("is empty; {what}"));
                None
            }
            None => {
                self.problem(table, key, format!("is missing; {what}"));
                None
            }
        }
    }

    fn count(
        &mut self,
        value: Option<Spanned<i64>>,
        key: &str,
        default: i64,
        range: Range<i64>,
        rule: &str,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.problem(Some(&v.span()), key, format!("is {}; {rule}", v.get_ref()));
                default
            }
        }
    }

    fn mailbox(&mut self, value: &Spanned<String>, key: &str) -> Option<lettre::message::Mailbox> {
        match value.get_ref().parse::<lettre::message::Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                self.problem(
                    Some(&value.span()),
                    key,
                    format!(
                        "\"{}\" is not an email address ({e}); write e.g. \"Acme Customer Success <success@acme.example>\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn validate(&mut self, raw: raw::RawConfig) -> Option<Config> {
        let database_path = raw
            .database
            .and_then(|d| d.into_inner().path)
            .map(|p| self.resolve(p.get_ref()))
            .unwrap_or_else(|| self.resolve("winback.db"));

        // Mail that leaves through a server reaches people, so its links must open for them.
        let real_server = raw
            .smtp
            .as_ref()
            .and_then(|s| s.get_ref().url.as_ref())
            .is_some_and(|u| {
                let text = u.get_ref().trim();
                text.starts_with("smtp://") || text.starts_with("smtps://")
            });
        let smtp = self.smtp(raw.smtp);
        let http = self.http(raw.http, real_server);
        let sender = self.sender(raw.sender);
        let templates_dir = raw
            .templates
            .and_then(|t| t.into_inner().dir)
            .map(|d| self.resolve(d.get_ref()))
            .unwrap_or_else(|| self.resolve("templates"));
        if !templates_dir.is_dir() {
            self.problem(
                None,
                "templates.dir",
                format!("the directory {} does not exist; point [templates] dir at the folder holding NAME.html.hbs and NAME.txt.hbs", templates_dir.display()),
            );
        }
        let sync_file = raw
            .clients
            .and_then(|c| c.sync_file)
            .map(|f| self.resolve(f.get_ref()));
        let survey_external_url = raw.survey.and_then(|s| s.external_url).and_then(|u| {
            if u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://") {
                Some(u.into_inner())
            } else {
                self.problem(
                    Some(&u.span()),
                    "survey.external_url",
                    "must start with https:// (the survey token is appended to it)",
                );
                None
            }
        });
        let from_domain = smtp.as_ref().map(|s| s.from.email.domain().to_string());
        let dkim = raw.dkim.and_then(|d| self.dkim(d, from_domain.as_deref()));

        let mut campaigns: Vec<Campaign> = Vec::new();
        if raw.campaign.is_empty() {
            self.problem(
                None,
                "campaign",
                "no [[campaign]] is defined; add one (see the shipped config/winback.toml)",
            );
        }
        let mut campaign_lines = Vec::new();
        for (index, raw_campaign) in raw.campaign.into_iter().enumerate() {
            let span = raw_campaign.span();
            if let Some(c) = self.campaign(index, raw_campaign.into_inner(), &span) {
                campaign_lines.push(span.clone());
                if campaigns.iter().any(|other| other.name == c.name) {
                    self.problem(
                        Some(&span),
                        "campaign.name",
                        format!(
                            "\"{}\" is used by two campaigns; names must be unique",
                            c.name
                        ),
                    );
                }
                campaigns.push(c);
            }
        }

        for (index, c) in campaigns.iter().enumerate() {
            let Some(old) = &c.renamed_from else { continue };
            let line = campaign_lines.get(index).cloned();
            let key = format!("campaign[{}].renamed_from", index + 1);
            if campaigns.iter().any(|other| &other.name == old) {
                self.problem(line.as_ref(), &key, format!("\"{old}\" is still a campaign here; a campaign renamed from it replaces it: remove the [[campaign]] named \"{old}\", or remove renamed_from"));
            } else if campaigns[..index]
                .iter()
                .any(|other| other.renamed_from.as_ref() == Some(old))
            {
                self.problem(line.as_ref(), &key, format!("two campaigns say renamed_from = \"{old}\"; its people can move to one of them only"));
            }
        }

        Some(Config {
            file: self.file.clone(),
            database_path,
            smtp: smtp?,
            http: http?,
            sender: sender?,
            templates_dir,
            sync_file,
            survey_external_url,
            dkim,
            campaigns,
            warnings: Vec::new(),
        })
    }

    fn smtp(&mut self, raw: Option<Spanned<raw::RawSmtp>>) -> Option<Smtp> {
        let Some(raw) = raw else {
            self.problem(None, "smtp", "the [smtp] section is missing; it needs at least `from` (and `url`, default file://outbox)");
            return None;
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let url = match raw.url {
            None => self.file_url("outbox"),
            Some(u) => {
                let text = u.get_ref().trim();
                if let Some(dir) = text.strip_prefix("file://") {
                    self.file_url(dir)
                } else if text.starts_with("smtp://") || text.starts_with("smtps://") {
                    // The mailer's own reading of the url, so `run` never refuses what
                    // `check` let through.
                    if let Err(e) = crate::mailer::check_smtp_url(text) {
                        let reason = match e {
                            crate::mailer::MailerError::InvalidUrl { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        self.problem(
                            Some(&u.span()),
                            "smtp.url",
                            format!("{reason}; write e.g. url = \"smtp://smtp.example.net:587\" (smtp://USER@HOST:PORT to log in, with the password in WINBACK_SMTP_PASSWORD)"),
                        );
                    }
                    text.to_string()
                } else {
                    self.problem(
                        Some(&u.span()),
                        "smtp.url",
                        format!("\"{}\" is not supported; use smtp://HOST:PORT (STARTTLS when offered), smtps://HOST:PORT, or file://DIR", crate::mailer::redact_password(text)),
                    );
                    String::new()
                }
            }
        };
        let from = self
            .required(
                raw.from,
                Some(&span),
                "smtp.from",
                "write the sender, e.g. from = \"Acme Customer Success <success@acme.example>\"",
            )
            .and_then(|f| self.mailbox(&f, "smtp.from"));
        let reply_to = raw.reply_to.and_then(|r| self.mailbox(&r, "smtp.reply_to"));
        let connections = self.count(
            raw.connections,
            "smtp.connections",
            4,
            1..65,
            "use between 1 and 64 parallel connections",
        );
        let per_minute = raw.max_per_minute.map(|v| {
            self.count(
                Some(v),
                "smtp.max_per_minute",
                60,
                1..1_000_001,
                "must be at least 1 (remove the key for no limit)",
            )
        });
        let per_day = raw.max_per_day.map(|v| {
            self.count(
                Some(v),
                "smtp.max_per_day",
                2000,
                1..100_000_001,
                "must be at least 1 (remove the key for no limit)",
            )
        });
        let timeout = self.count(
            raw.timeout_seconds,
            "smtp.timeout_seconds",
            60,
            1..3601,
            "use between 1 and 3600 seconds",
        );
        let retry_first = self.count(
            raw.retry_first_minutes,
            "smtp.retry_first_minutes",
            5,
            1..1441,
            "use between 1 and 1440 minutes",
        );
        let give_up = self.count(
            raw.retry_give_up_hours,
            "smtp.retry_give_up_hours",
            72,
            1..721,
            "use between 1 and 720 hours",
        );
        Some(Smtp {
            url,
            from: from?,
            reply_to,
            connections: connections as usize,
            max_per_minute: per_minute.map(|v| v as u32),
            max_per_day: per_day.map(|v| v as u32),
            timeout: std::time::Duration::from_secs(timeout as u64),
            retry_first: chrono::Duration::minutes(retry_first),
            retry_give_up: chrono::Duration::hours(give_up),
        })
    }

    fn file_url(&self, dir: &str) -> String {
        format!("file://{}", self.resolve(dir).display())
    }

    fn http(&mut self, raw: Option<Spanned<raw::RawHttp>>, real_server: bool) -> Option<Http> {
        let Some(raw) = raw else {
            self.problem(None, "http", "the [http] section is missing; it needs `public_url`, the base of every link in an email");
            return None;
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let listen = match raw.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(l) => match l.get_ref().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    self.problem(
                        Some(&l.span()),
                        "http.listen",
                        format!(
                            "\"{}\" is not an address and port; write e.g. \"127.0.0.1:8080\"",
                            l.get_ref()
                        ),
                    );
                    return None;
                }
            },
        };
        let public_url = self.required(raw.public_url, Some(&span), "http.public_url", "write the address recipients reach this server at, e.g. \"https://winback.acme.example\"")?;
        let text = public_url.get_ref().trim().trim_end_matches('/');
        if !(text.starts_with("https://") || text.starts_with("http://"))
            || text.contains(char::is_whitespace)
        {
            self.problem(
                Some(&public_url.span()),
                "http.public_url",
                format!("\"{text}\" must be a URL starting with https://"),
            );
            return None;
        }
        let unreachable = unreachable_link_reasons(text);
        if !unreachable.is_empty() {
            let message = format!(
                "\"{text}\" cannot be opened by the people you mail: it {}. Every unsubscribe and survey link starts with it; set it to the https:// address of the reverse proxy in front of winback, e.g. \"https://winback.acme.example\"",
                unreachable.join(", and it ")
            );
            if real_server {
                self.problem(Some(&public_url.span()), "http.public_url", message);
            } else {
                self.warning(
                    &public_url.span(),
                    "http.public_url",
                    format!("{message} (fine while [smtp] url writes files; an error once mail goes to a server)"),
                );
            }
        }
        Some(Http {
            listen,
            public_url: text.to_string(),
        })
    }

    fn sender(&mut self, raw: Option<Spanned<raw::RawSender>>) -> Option<Sender> {
        let Some(raw) = raw else {
            self.problem(None, "sender", "the [sender] section is missing; it needs `company` and `postal_address` (required by anti-spam law)");
            return None;
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let company = self.required(
            raw.company,
            Some(&span),
            "sender.company",
            "write the company name shown in every email",
        );
        let postal_address = self.required(
            raw.postal_address,
            Some(&span),
            "sender.postal_address",
            "anti-spam law requires a postal address in every email",
        );
        let privacy_url = raw.privacy_url.and_then(|url| {
            let text = url.get_ref().trim();
            let host = text.strip_prefix("https://").unwrap_or_default();
            if host.is_empty()
                || host.starts_with('/')
                || text.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>'))
            {
                self.problem(
                    Some(&url.span()),
                    "sender.privacy_url",
                    format!(
                        "\"{}\" is not a web address recipients can open; write the full https:// address of your privacy notice, e.g. \"https://acme.example/privacy\"",
                        url.get_ref()
                    ),
                );
                return None;
            }
            Some(text.to_string())
        });
        Some(Sender {
            company: company?.into_inner(),
            postal_address: postal_address?.into_inner(),
            privacy_url,
        })
    }

    fn dkim(&mut self, raw: Spanned<raw::RawDkim>, from_domain: Option<&str>) -> Option<Dkim> {
        let span = raw.span();
        let raw = raw.into_inner();
        if let (Some(domain), Some(from)) = (&raw.domain, from_domain) {
            let d = domain
                .get_ref()
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let from = from.to_ascii_lowercase();
            // Relaxed DMARC alignment: the From domain, or a domain it is under.
            if !d.is_empty() && from != d && !from.ends_with(&format!(".{d}")) {
                self.warning(
                    &domain.span(),
                    "dkim.domain",
                    format!(
                        "\"{d}\" does not match the From address's domain \"{from}\": DMARC needs them to align, so receivers may treat the signature as no signature; sign with domain = \"{from}\" (or a domain it is under)"
                    ),
                );
            }
        }
        let second = match (raw.second_selector, raw.second_key_file) {
            (None, None) => None,
            (Some(selector), Some(key_file)) => {
                let path = self.resolve(key_file.get_ref());
                if raw
                    .selector
                    .as_ref()
                    .is_some_and(|first| first.get_ref() == selector.get_ref())
                {
                    self.problem(
                        Some(&selector.span()),
                        "dkim.second_selector",
                        "is the same as `selector`; each key needs its own selector (its own DNS record), e.g. \"winback-ed\"",
                    );
                    None
                } else if path.is_file() {
                    Some(DkimKey {
                        selector: selector.into_inner(),
                        key_file: path,
                    })
                } else {
                    self.problem(
                        Some(&key_file.span()),
                        "dkim.second_key_file",
                        format!("{} does not exist", path.display()),
                    );
                    None
                }
            }
            (Some(only), None) | (None, Some(only)) => {
                self.problem(
                    Some(&only.span()),
                    "dkim.second_selector",
                    "a second signature needs both `second_selector` and `second_key_file`; set both, or remove both",
                );
                None
            }
        };
        let selector = self.required(
            raw.selector,
            Some(&span),
            "dkim.selector",
            "write the DNS selector, e.g. \"winback\"",
        );
        let domain = self.required(
            raw.domain,
            Some(&span),
            "dkim.domain",
            "write the signing domain, e.g. \"acme.example\"",
        );
        let key_file = self.required(
            raw.key_file,
            Some(&span),
            "dkim.key_file",
            "write the path of the PEM private key",
        );
        let key_file = key_file.and_then(|k| {
            let path = self.resolve(k.get_ref());
            if path.is_file() {
                Some(path)
            } else {
                self.problem(
                    Some(&k.span()),
                    "dkim.key_file",
                    format!("{} does not exist", path.display()),
                );
                None
            }
        });
        Some(Dkim {
            selector: selector?.into_inner(),
            domain: domain?.into_inner(),
            key_file: key_file?,
            second,
        })
    }

    fn campaign(
        &mut self,
        index: usize,
        raw: raw::RawCampaign,
        span: &Range<usize>,
    ) -> Option<Campaign> {
        let name = self.required(
            raw.name,
            Some(span),
            "campaign.name",
            "give the campaign a name, e.g. \"former-clients\"",
        );
        let name = name.and_then(|n| {
            let text = n.get_ref().trim();
            if text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                Some(text.to_string())
            } else {
                self.problem(
                    Some(&n.span()),
                    "campaign.name",
                    format!("\"{text}\" may only use letters, digits, - and _"),
                );
                None
            }
        });
        let key = |k: &str| format!("campaign[{}].{k}", index + 1);

        let quiet_days = match raw.quiet_days {
            None => MIN_QUIET_DAYS,
            Some(q) if *q.get_ref() < MIN_QUIET_DAYS => {
                self.problem(
                    Some(&q.span()),
                    &key("quiet_days"),
                    format!("is {}; the quiet period must be at least {MIN_QUIET_DAYS} days (a former client contacted sooner is lost for good)", q.get_ref()),
                );
                MIN_QUIET_DAYS
            }
            Some(q) if *q.get_ref() > 3650 => {
                self.problem(
                    Some(&q.span()),
                    &key("quiet_days"),
                    "is more than ten years; use at most 3650",
                );
                MIN_QUIET_DAYS
            }
            Some(q) => *q.get_ref(),
        };

        let send_at = match raw.send_at {
            None => {
                self.problem(Some(span), &key("send_at"), "is missing; write when messages go out in the recipient's time zone, e.g. \"0 10 * * Tue-Thu\" (10:00, Tuesday to Thursday)");
                None
            }
            Some(s) => match SendAt::parse(s.get_ref()) {
                Ok(send_at) => {
                    if let Some((days, weekdays)) = send_at.either_day() {
                        self.warning(&s.span(), &key("send_at"), format!("\"{}\" sends on every day that is either day {days} of the month or a {weekdays} day (crontab's rule when both day fields are set), so also on other weekdays and at weekends; crontab cannot say \"both\": to send only on {weekdays}, write \"{}\"; only on days {days}, write \"{}\"", s.get_ref(), send_at.without_day_of_month(), send_at.without_day_of_week()));
                    }
                    Some(send_at)
                }
                Err(e) => {
                    self.problem(
                        Some(&s.span()),
                        &key("send_at"),
                        format!("\"{}\" {e}", s.get_ref()),
                    );
                    None
                }
            },
        };

        let timezone = match raw.timezone {
            None => Some(Tz::UTC),
            Some(t) => {
                let written = t.get_ref();
                match written.parse::<Tz>() {
                    Ok(tz) => {
                        if let Some(instead) = fixed_offset_zone(written) {
                            self.warning(&t.span(), &key("timezone"), format!("\"{written}\" is a fixed offset from UTC with no daylight saving time: while daylight saving is in force, messages go out an hour off the local clock; use the place's name, e.g. {instead}"));
                        }
                        Some(tz)
                    }
                    Err(_) => {
                        let trimmed = written.trim();
                        let message = if trimmed != written && trimmed.parse::<Tz>().is_ok() {
                            format!(
                                "\"{written}\" has a space before or after the name; remove it: timezone = \"{trimmed}\""
                            )
                        } else if let Some(instead) = zone_for_abbreviation(trimmed) {
                            format!(
                                "\"{written}\" is an abbreviation, not a time zone name; use \"{instead}\" (it follows daylight saving time)"
                            )
                        } else {
                            format!(
                                "\"{written}\" is not a time zone; use an IANA name such as \"America/New_York\" or \"Europe/Paris\""
                            )
                        };
                        self.problem(Some(&t.span()), &key("timezone"), message);
                        None
                    }
                }
            }
        };

        let exclude_reasons = match raw.exclude_reasons {
            None => vec![ALWAYS_EXCLUDED.to_string()],
            Some(list) => {
                let mut typo_of_always = false;
                for reason in list.get_ref() {
                    if let Some(meant) = likely_reason(reason) {
                        typo_of_always |= meant == ALWAYS_EXCLUDED;
                        self.warning(&list.span(), &key("exclude_reasons"), format!("\"{reason}\" is not a churn reason winback knows; did you mean \"{meant}\"? Reasons are matched exactly as the CSV's churn_reason column writes them"));
                    }
                }
                if !typo_of_always && !list.get_ref().iter().any(|r| r == ALWAYS_EXCLUDED) {
                    self.warning(&list.span(), &key("exclude_reasons"), format!("does not list \"{ALWAYS_EXCLUDED}\"; those clients are never contacted anyway"));
                }
                list.into_inner()
                    .into_iter()
                    .map(|r| r.trim().to_lowercase())
                    .collect()
            }
        };

        let catch_up_hours = self.count(
            raw.catch_up_hours,
            &key("catch_up_hours"),
            4,
            1..169,
            "use between 1 and 168 hours",
        );

        let mut steps = Vec::new();
        if raw.step.is_empty() {
            self.problem(
                Some(span),
                &key("step"),
                "the campaign has no [[campaign.step]]; the first one must be kind = \"survey\"",
            );
        }
        for (i, raw_step) in raw.step.into_iter().enumerate() {
            let step_span = raw_step.span();
            let step_key = |k: &str| format!("campaign[{}].step[{}].{k}", index + 1, i + 1);
            let raw_step = raw_step.into_inner();
            let allowed = StepKind::ALL.map(|k| k.as_str()).join(", ");
            let kind = match raw_step.kind {
                None => {
                    self.problem(
                        Some(&step_span),
                        &step_key("kind"),
                        format!("is missing; use one of: {allowed}"),
                    );
                    None
                }
                Some(k) => match StepKind::parse(k.get_ref().trim()) {
                    Some(kind) => {
                        if i == 0 && kind != StepKind::Survey {
                            self.problem(Some(&k.span()), &step_key("kind"), format!("is \"{}\"; the first step must be kind = \"survey\" (the playbook asks why they left before anything else)", k.get_ref()));
                        }
                        Some(kind)
                    }
                    None => {
                        self.problem(
                            Some(&k.span()),
                            &step_key("kind"),
                            format!(
                                "\"{}\" is not a step kind; use one of: {allowed}",
                                k.get_ref()
                            ),
                        );
                        None
                    }
                },
            };
            let after_days = match (i, raw_step.after_days) {
                (0, None) => Some(0),
                (0, Some(a)) => {
                    self.problem(Some(&a.span()), &step_key("after_days"), "the survey is timed by the campaign's quiet_days; remove after_days from the first step");
                    None
                }
                (_, None) => {
                    self.problem(Some(&step_span), &step_key("after_days"), "is missing; write how many days after the previous message this one goes out, e.g. after_days = 30");
                    None
                }
                (_, Some(a)) if *a.get_ref() < 1 => {
                    self.problem(
                        Some(&a.span()),
                        &step_key("after_days"),
                        format!("is {}; it must be at least 1", a.get_ref()),
                    );
                    None
                }
                (_, Some(a)) if *a.get_ref() > 3650 => {
                    self.problem(
                        Some(&a.span()),
                        &step_key("after_days"),
                        "is more than ten years; use at most 3650",
                    );
                    None
                }
                (_, Some(a)) => {
                    if *a.get_ref() < SLOW_TOUCH_DAYS {
                        self.warning(&a.span(), &step_key("after_days"), format!("is {}; soft touches work best at least {SLOW_TOUCH_DAYS} days apart", a.get_ref()));
                    }
                    Some(*a.get_ref() as u32)
                }
            };
            let template = self.required(raw_step.template, Some(&step_span), &step_key("template"), "name the template, e.g. template = \"survey\" for templates/survey.html.hbs and .txt.hbs");
            let template = template.and_then(|t| {
                let text = t.get_ref().trim();
                if text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    Some(text.to_string())
                } else {
                    self.problem(Some(&t.span()), &step_key("template"), format!("\"{text}\" must be a bare name (letters, digits, - and _), without a folder or extension"));
                    None
                }
            });
            let subject = self.required(raw_step.subject, Some(&step_span), &step_key("subject"), "write the subject line (a template, e.g. \"{{first_name}}, may we ask why you left?\")");
            if let (Some(kind), Some(after_days), Some(template), Some(subject)) =
                (kind, after_days, template, subject)
            {
                steps.push(Step {
                    kind,
                    after_days,
                    template,
                    subject: subject.into_inner(),
                    line: self.line_of(&step_span),
                });
            }
        }

        let renamed_from = raw.renamed_from.and_then(|r| {
            let text = r.get_ref().trim();
            let valid = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if valid {
                Some((text.to_string(), r.span()))
            } else {
                self.problem(Some(&r.span()), &key("renamed_from"), format!("\"{text}\" is not a campaign name; write the name this campaign had before, e.g. renamed_from = \"former-clients\""));
                None
            }
        });
        if let (Some((old, span)), Some(name)) = (&renamed_from, &name)
            && old == name
        {
            self.problem(
                Some(span),
                &key("renamed_from"),
                format!("is the campaign's own name \"{name}\"; write the name it had before, or remove renamed_from"),
            );
        }

        Some(Campaign {
            name: name?,
            quiet_days: quiet_days as u32,
            send_at: send_at?,
            timezone: timezone?,
            exclude_reasons,
            catch_up_hours: catch_up_hours as u32,
            renamed_from: renamed_from.map(|(old, _)| old),
            steps,
        })
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
