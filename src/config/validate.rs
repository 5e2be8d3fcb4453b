//! The validator: stage two of the configuration, one function per section, each
//! recording every problem it finds (file, line, key, the fix in plain words) and going on.
//!
//! It reads the raw serde structs and the file's text (for line numbers) only; the
//! campaign sections are in `validate/campaign.rs`, the wording helpers in `hints.rs`.
//! No I/O beyond asking whether a named file or folder exists, and reading the holiday
//! calendars a campaign names (`validate/holidays.rs`).

mod audience;
mod campaign;
mod clients;
pub(crate) use clients::normalize_header;
mod dkim;
mod holidays;
mod inbound;
mod timing;

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::hints::{lexically_normal, unreachable_link_reasons};
use super::smtp_url::{Endpoint, SmtpServer, redact_password};
use super::{Campaign, Config, ConfigErrors, Http, Problem, Sender, Smtp, raw, toml_errors};

impl Config {
    /// Validates `text` as if read from `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
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
        let database_path = match raw.database.and_then(|d| d.into_inner().path) {
            Some(p) => {
                let path = self.resolve(p.get_ref());
                self.database_place(&path, Some(&p.span()));
                path
            }
            None => {
                let path = self.resolve("winback.db");
                self.database_place(&path, None);
                path
            }
        };

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
        let clients = self.clients(raw.clients);
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
        let inbound = raw
            .inbound
            .map(|i| self.inbound(i, smtp.as_ref()))
            .unwrap_or_default();

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

        self.unreachable_campaigns(&campaigns, &campaign_lines);

        Some(Config {
            file: self.file.clone(),
            database_path,
            smtp: smtp?,
            http: http?,
            sender: sender?,
            templates_dir,
            clients,
            survey_external_url,
            dkim,
            inbound,
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
        let (url, endpoint) = match raw.url {
            None => self.file_url("outbox", None),
            Some(u) => {
                let text = u.get_ref().trim();
                if let Some(dir) = text.strip_prefix("file://") {
                    self.file_url(dir, Some(&u.span()))
                } else if text.starts_with("smtp://") || text.starts_with("smtps://") {
                    // Read here, once, as the mailer will use it: `run` never refuses
                    // what `check` let through.
                    match SmtpServer::parse(text) {
                        Ok(server) => (text.to_string(), Some(Endpoint::Smtp(server))),
                        Err(e) => {
                            self.problem(
                                Some(&u.span()),
                                "smtp.url",
                                format!("{}; write e.g. url = \"smtp://smtp.example.net:587\" (smtp://USER@HOST:PORT to log in, with the password in WINBACK_SMTP_PASSWORD)", e.reason),
                            );
                            (text.to_string(), None)
                        }
                    }
                } else {
                    self.problem(
                        Some(&u.span()),
                        "smtp.url",
                        format!("\"{}\" is not supported; use smtp://HOST:PORT (STARTTLS when offered), smtps://HOST:PORT, or file://DIR", redact_password(text)),
                    );
                    (String::new(), None)
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
            endpoint: endpoint?,
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

    /// Whether `run` can create or open the database at `path`: not a folder, and no
    /// file where a folder above it must be.
    fn database_place(&mut self, path: &Path, span: Option<&Range<usize>>) {
        if path.is_dir() {
            self.problem(
                span,
                "database.path",
                format!(
                    "{} is a folder; name the database file in it, e.g. path = \"data/winback.db\"",
                    path.display()
                ),
            );
        } else if let Some(folder) = path.parent()
            && let Some(file) = file_in_the_way(folder)
        {
            self.problem(
                span,
                "database.path",
                format!(
                    "{} is a file, so the folder {} cannot be made for the database; name a file in a folder, e.g. path = \"data/winback.db\"",
                    file.display(),
                    folder.display()
                ),
            );
        }
    }

    /// `file://DIR` with DIR resolved against the configuration file's folder. The mailer
    /// creates DIR; a file where DIR or a folder above it should be would stop it.
    fn file_url(&mut self, dir: &str, span: Option<&Range<usize>>) -> (String, Option<Endpoint>) {
        let dir = self.resolve(dir);
        let url = format!("file://{}", dir.display());
        if let Some(file) = file_in_the_way(&dir) {
            self.problem(
                span,
                "smtp.url",
                format!(
                    "{} is a file, so the folder {} cannot be made to write messages in; point file:// at a folder (it is created if missing), e.g. url = \"file://outbox\"",
                    file.display(),
                    dir.display()
                ),
            );
            return (url, None);
        }
        (url, Some(Endpoint::File(dir)))
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
}

/// The nearest of `dir` and the folders above it that exists, when it is not a folder.
fn file_in_the_way(dir: &Path) -> Option<&Path> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    (!existing.is_dir()).then_some(existing)
}
