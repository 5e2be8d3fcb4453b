//! The setup stage: the configuration, the clock, the secrets from the environment and,
//! for the commands that render or send, the compiled templates and pages, each read
//! and checked once, before anything is created.
//!
//! [`Base::load`] is what every command starts from. [`Setup::load`] adds everything else
//! `run` refuses a configuration for (the SMTP login, unconfirmed campaign renames, the
//! page and mail templates): `check` is exactly that call plus printing, `run` and each
//! SIGHUP reload start from it, so what `check` accepts, `run` runs. Reading only: no
//! database, lock file, folder or network connection is made here (the database, when
//! it exists, is opened read-only to look for renames).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::clock::Clock;
use crate::config::{Config, ConfigErrors, Endpoint, Problem, SuspectedRename};
use crate::mail::Renderer;
use crate::store::Store;
use crate::token::Secret;

/// What winback reads from its environment rather than the configuration file. No
/// `Debug`: nothing may print a password by accident.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    /// `WINBACK_SMTP_PASSWORD`: the password of the login `[smtp] url` names.
    pub smtp_password: Option<String>,
    /// `WINBACK_SECRET`: a link key to keep beside those in the database.
    pub link_secret: Option<String>,
    /// `WINBACK_IMAP_PASSWORD`: the password of the logins `[inbound] mailboxes` name.
    pub imap_password: Option<String>,
}

impl Secrets {
    fn from_environment() -> Secrets {
        Secrets {
            smtp_password: std::env::var("WINBACK_SMTP_PASSWORD").ok(),
            link_secret: std::env::var("WINBACK_SECRET")
                .ok()
                .filter(|text| !text.is_empty()),
            imap_password: std::env::var("WINBACK_IMAP_PASSWORD")
                .ok()
                .filter(|text| !text.is_empty()),
        }
    }
}

/// What every command starts from: the validated configuration, the clock and the
/// environment's secrets.
pub(crate) struct Base {
    pub config: Config,
    pub clock: Clock,
    pub secrets: Secrets,
}

impl Base {
    pub(crate) fn load(path: &Path, clock: Clock) -> Result<Base, ConfigErrors> {
        Ok(Base {
            config: Config::load(path)?,
            clock,
            secrets: Secrets::from_environment(),
        })
    }
}

/// Everything `run` needs before it creates a file: [`Base`], checked against the
/// environment and the database, with the templates and pages compiled.
pub(crate) struct Setup {
    pub config: Config,
    pub clock: Clock,
    pub secrets: Secrets,
    /// The mail templates, compiled and checked (a placeholder left in one is not an
    /// error here: its messages are held; see [`Renderer::placeholders`]).
    pub renderer: Renderer,
    /// Worth a look, not a refusal: the configuration's warnings, a database that could
    /// not be read for renames. `check` prints them.
    pub warnings: Vec<String>,
    /// The CRM files `[clients]` names that cannot be read now: errors for `check`, but
    /// not a refusal to `run`, whose sync imports a file once it appears (and logs an
    /// error at each look until then): sending must not wait for a late CRM export.
    pub client_files: Vec<String>,
}

/// Why [`Setup::load`] refused.
#[derive(Debug)]
pub(crate) enum SetupError {
    /// The configuration file: every problem, with file, line and key.
    Config(ConfigErrors),
    /// The file was valid; something after it refused it. `warnings` were found first.
    Refused {
        warnings: Vec<String>,
        refusal: Refusal,
    },
}

#[derive(Debug)]
pub(crate) enum Refusal {
    /// The environment does not match `[smtp] url` (a login without its password, or
    /// the reverse).
    Environment(String),
    /// Campaigns the database knows left the configuration (`file`) while new ones
    /// arrived.
    Renames {
        file: PathBuf,
        renames: Vec<SuspectedRename>,
    },
    /// The recipients' page templates.
    Pages(Vec<Problem>),
    /// The mail templates.
    Templates(Vec<Problem>),
}

impl Setup {
    /// Reads and checks everything, in the order `check` reports it.
    pub(crate) fn load(path: &Path, clock: Clock) -> Result<Setup, SetupError> {
        let Base {
            config,
            clock,
            secrets,
        } = Base::load(path, clock).map_err(SetupError::Config)?;
        let client_files = client_file_problems(&config, clock.now());
        // A refusal is printed with the warnings: the client files' problems go with them.
        let mut warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
        let refused = |mut warnings: Vec<String>, refusal| {
            warnings.extend(client_files.iter().cloned());
            SetupError::Refused { warnings, refusal }
        };
        if let Some(problem) =
            smtp_login_problem(&config, &secrets).or_else(|| imap_login_problem(&config, &secrets))
        {
            return Err(refused(warnings, Refusal::Environment(problem)));
        }
        // Read-only: the setup never creates or changes the database.
        match Store::stored_campaigns_at(&config.database_path) {
            Ok(Some(stored)) => {
                let renames = crate::config::unconfirmed_renames(&config, &stored);
                if !renames.is_empty() {
                    let file = config.file.clone();
                    return Err(refused(warnings, Refusal::Renames { file, renames }));
                }
            }
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "cannot read {} to look for renamed campaigns ({e})",
                config.database_path.display()
            )),
        }
        let pages = crate::mail::pages::check_pages(&config);
        if !pages.is_empty() {
            return Err(refused(warnings, Refusal::Pages(pages)));
        }
        let renderer = match Renderer::load(&config) {
            Ok(renderer) => renderer,
            Err(problems) => return Err(refused(warnings, Refusal::Templates(problems))),
        };
        Ok(Setup {
            config,
            clock,
            secrets,
            renderer,
            warnings,
            client_files,
        })
    }
}

/// The CRM files `[clients]` names (`sync_file`, `customers_file`) that cannot be read
/// now, each in a sentence with what to do.
fn client_file_problems(config: &Config, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let files = [
        ("sync_file", &config.clients.sync_file),
        ("customers_file", &config.clients.customers_file),
    ];
    files
        .into_iter()
        .filter_map(|(key, file)| {
            let file = file.as_ref()?;
            let shown = file.display();
            let problem = match std::fs::metadata(file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                    "[clients] {key}: {shown} does not exist; the daemon imports nothing from it, and logs an error at each look, until it does. Check the path (a relative one starts at the configuration file's folder) and that the CRM export has run"
                ),
                Err(e) => format!(
                    "[clients] {key}: {shown} cannot be examined ({e}); let the user winback runs as open the folder, or point {key} at the export"
                ),
                Ok(meta) if meta.is_dir() => format!(
                    "[clients] {key}: {shown} is a folder; point {key} at the CSV file the CRM exports into it"
                ),
                Ok(_) => match std::fs::File::open(file) {
                    // Read as the sync reads it: a header the sync would refuse (a mapped
                    // column the export lacks, no email column) fails `check` too.
                    Ok(opened) => match key {
                        "sync_file" => {
                            let reader = std::io::BufReader::new(opened);
                            match crate::import::csv::read_rows(reader, now, &config.clients.format) {
                                Ok(_) => return None,
                                Err(e) => format!("[clients] {key}: {shown}: {e}"),
                            }
                        }
                        _ => match crate::import::list::read_list_file(file, &config.clients.format) {
                            Ok(_) => return None,
                            Err(e) => format!("[clients] {key}: {e}"),
                        },
                    },
                    Err(e) => format!(
                        "[clients] {key}: {shown} cannot be read ({e}); let the user winback runs as read it, or point {key} at a copy it can read"
                    ),
                },
            };
            Some(problem)
        })
        .collect()
}

/// As `run` reports it: one sentence, or the list of what to fix.
impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (heading, problems) = match self {
            SetupError::Config(errors) => return write!(f, "{errors}"),
            SetupError::Refused { refusal, .. } => match refusal {
                Refusal::Environment(problem) => return write!(f, "{problem}"),
                Refusal::Renames { renames, .. } => {
                    return match renames.first() {
                        Some(rename) => write!(f, "{}", rename.explain()),
                        None => Ok(()),
                    };
                }
                Refusal::Pages(problems) => ("the page templates", problems),
                Refusal::Templates(problems) => ("the templates", problems),
            },
        };
        write!(
            f,
            "{heading} have problems (run `winback check`):\n{}",
            crate::mail::ProblemList(problems)
        )
    }
}

impl std::error::Error for SetupError {}

/// `[inbound] mailboxes` need `WINBACK_IMAP_PASSWORD`.
fn imap_login_problem(config: &Config, secrets: &Secrets) -> Option<String> {
    let mailbox = config.inbound.mailboxes.first()?;
    secrets.imap_password.is_none().then(|| format!(
        "inbound.mailboxes logs in as \"{}\" but WINBACK_IMAP_PASSWORD is not set; set it in the environment winback runs in (e.g. /etc/winback/env)",
        mailbox.user
    ))
}

/// What `run` needs from its environment beyond the configuration file: a login named in
/// `[smtp] url` needs `WINBACK_SMTP_PASSWORD`, and a password needs a login.
fn smtp_login_problem(config: &Config, secrets: &Secrets) -> Option<String> {
    let endpoint = &config.smtp.endpoint;
    match (endpoint.user(), &secrets.smtp_password) {
        (Some(user), None) => Some(format!(
            "smtp.url logs in as \"{user}\" but WINBACK_SMTP_PASSWORD is not set; set it in the environment winback runs in (e.g. /etc/winback/env), or remove \"{user}@\" from the url"
        )),
        (None, Some(_)) if matches!(endpoint, Endpoint::Smtp(_)) => Some(
            "WINBACK_SMTP_PASSWORD is set but smtp.url names no user to log in as; write url = \"smtp://USER@HOST:PORT\", or unset the variable".to_string(),
        ),
        _ => None,
    }
}

/// The link keys kept in the database. A `WINBACK_SECRET` they do not hold yet is added
/// beside them as the newest key (logged), never in place of one: links already sent
/// keep working, and new mail is signed with it.
pub(crate) fn load_secret(store: &mut Store, secrets: &Secrets) -> anyhow::Result<Secret> {
    if let Some(text) = &secrets.link_secret
        && let Some(id) = store.add_link_key(Secret::from_text(text).to_bytes())?
        && id > 1
    {
        tracing::warn!(
            key_id = id,
            "WINBACK_SECRET is not one of the link keys in the database: it is kept as key {id} and signs new links; links signed by the earlier keys keep working"
        );
    }
    Ok(store.secret()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test configuration, mailing to `url`.
    fn config(dir: &Path, url: &str) -> Config {
        let mut config = crate::test_support::config(dir, "", crate::test_support::SURVEY_ONLY);
        if !url.starts_with("file://") {
            let server = crate::config::SmtpServer::parse(url).unwrap_or_else(|e| panic!("{e}"));
            config.smtp.endpoint = Endpoint::Smtp(server);
        }
        config
    }

    #[test]
    fn a_login_and_its_password_come_together() {
        let cases: [(&str, Option<&str>, Option<&str>); 6] = [
            ("smtp://mail.acme.example:587", None, None),
            ("smtp://bot@mail.acme.example:587", Some("pw"), None),
            (
                "smtp://bot@mail.acme.example:587",
                None,
                Some("smtp.url logs in as \"bot\" but WINBACK_SMTP_PASSWORD is not set"),
            ),
            (
                "smtps://mail.acme.example",
                Some("pw"),
                Some("WINBACK_SMTP_PASSWORD is set but smtp.url names no user"),
            ),
            ("file://outbox", None, None),
            // A password for files is not used, and not an error.
            ("file://outbox", Some("pw"), None),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (url, password, expected) in cases {
            let secrets = Secrets {
                smtp_password: password.map(str::to_string),
                link_secret: None,
                imap_password: None,
            };
            let problem = smtp_login_problem(&config(dir.path(), url), &secrets);
            match (expected, &problem) {
                (None, None) => {}
                (Some(expected), Some(problem)) if problem.contains(expected) => {}
                _ => panic!("{url} with {password:?}: {problem:?}, expected {expected:?}"),
            }
        }
    }
}
