//! Templates and messages: compiles the handlebars files the campaigns name, renders one
//! step for one client, and builds the signed MIME message.
//!
//! Only the HTML part is HTML-escaped; the subject and the text part are not, and the
//! subject can never carry a line break into the headers. Reads only the template files
//! and the DKIM key; never reads the clock (`now` and `date` are arguments) and sends
//! nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use handlebars::{Handlebars, RenderErrorReason, html_escape, no_escape};
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use serde_json::{Value, json};

use crate::config::{Campaign, Config, Dkim, Problem};
use crate::model::{ChurnedAt, ClientRecord, StepKind};

/// Every name a template may use, for the message about a typo.
const VARIABLES: [&str; 15] = [
    "first_name",
    "name",
    "company",
    "email",
    "churned_at",
    "churn_reason",
    "months_since_churn",
    "fields.COLUMN",
    "unsubscribe_url",
    "survey_url",
    "campaign",
    "step",
    "step_kind",
    "sender.company",
    "sender.postal_address",
];

/// Text a shipped template marks for the operator to replace; `load` warns about it.
const EDIT_MARKER: &str = "[EDIT:";

const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");

/// Why a message could not be rendered or built. Every variant is permanent for that
/// message: retrying without a change to the templates, the data or the config gives the
/// same answer.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("campaign \"{campaign}\" has no step {step}, or it was not loaded by this renderer")]
    UnknownStep { campaign: String, step: u32 },
    /// A strict-mode failure for this client (typically a `fields.X` column the client
    /// lacks), or a helper failing. `template` is the file name or the subject's key.
    #[error("{template}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Template {
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error("the recipient address \"{email}\" is not valid: {reason}")]
    Recipient { email: String, reason: String },
    #[error("{what} \"{value}\" cannot go in a header: {reason}")]
    BadHeader {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the DKIM key {}: {message}", path.display())]
    DkimKey { path: PathBuf, message: String },
}

/// The values a step is rendered with, besides the campaign, step and sender.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub client: &'a ClientRecord,
    pub unsubscribe_url: String,
    pub survey_url: String,
    /// The daemon's clock, for `months_since_churn`.
    pub now: DateTime<Utc>,
}

/// One step rendered for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: runs of line breaks, tabs and other control characters became one space.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A built message, ready for a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub message_id: String,
    /// The envelope sender (`MAIL FROM`): the address of `smtp.from`.
    pub from: String,
    /// The envelope recipient (`RCPT TO`): the client's address.
    pub to: String,
    /// The whole message, CRLF line endings, DKIM-signed when configured.
    pub bytes: Vec<u8>,
}

/// The compiled templates of every step of every campaign of one configuration.
#[derive(Debug)]
pub struct Renderer {
    /// `NAME.html.hbs` files, registered under their file name; escapes HTML.
    html: Handlebars<'static>,
    /// `NAME.txt.hbs` files and subjects; no escaping.
    text: Handlebars<'static>,
    steps: HashMap<(String, u32), StepTemplates>,
    sender: crate::config::Sender,
    /// The DKIM signer, read once at load: a key file that becomes unreadable later must
    /// not make every message fail to render (which would end their sequences).
    dkim: Option<DkimConfig>,
    warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
struct StepTemplates {
    kind: StepKind,
    /// Registry name of the subject in `text`, also its key in messages.
    subject: String,
    html: String,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Html,
    Text,
}

impl Renderer {
    /// Compiles every step's subject, `NAME.html.hbs` and `NAME.txt.hbs` from
    /// `config.templates_dir`, renders each against [`sample_client`], and checks the DKIM
    /// key. Returns every problem found, each naming the file, line when known, the
    /// campaign/step key and the fix.
    ///
    /// The sample client cannot know the CSV's custom columns, so a `{{fields.X}}` it
    /// lacks is not an error here but a [warning](Renderer::warnings); rendering for a
    /// real client without that column fails with [`RenderError::Template`].
    pub fn load(config: &Config) -> Result<Renderer, Vec<Problem>> {
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(no_escape);

        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        // Template files by registry name: whether each compiled (a file shared by several
        // steps is read, and reported, once).
        let mut files: HashMap<String, bool> = HashMap::new();
        let mut steps = HashMap::new();

        for (ci, campaign) in config.campaigns.iter().enumerate() {
            for (si, step) in campaign.steps.iter().enumerate() {
                let number = si as u32 + 1;
                let key = format!("campaign[{}].step[{}]", ci + 1, number);
                let templates = StepTemplates {
                    kind: step.kind,
                    subject: format!("{key}.subject"),
                    html: format!("{}.html.hbs", step.template),
                    text: format!("{}.txt.hbs", step.template),
                };
                let mut ok = true;
                if let Err(e) = text.register_template_string(&templates.subject, &step.subject) {
                    ok = false;
                    problems.push(Problem {
                        file: config.file.clone(),
                        line: Some(step.line),
                        key: templates.subject.clone(),
                        message: crate::template_blocks::unclosed_block(&step.subject)
                            .map_or_else(|| syntax_message(&e), |(_, message)| message),
                    });
                }
                for (registry, name) in [(&mut html, &templates.html), (&mut text, &templates.text)]
                {
                    let compiled = *files.entry(name.clone()).or_insert_with(|| {
                        let path = config.templates_dir.join(name);
                        match compile_file(registry, name, &path) {
                            Ok(()) => true,
                            Err((line, message)) => {
                                problems.push(Problem {
                                    file: path,
                                    line,
                                    key: format!("{key}.template"),
                                    message,
                                });
                                false
                            }
                        }
                    });
                    ok &= compiled;
                }
                if ok {
                    steps.insert((campaign.name.clone(), number), templates);
                }
            }
        }

        let mut renderer = Renderer {
            html,
            text,
            steps,
            sender: config.sender.clone(),
            dkim: None,
            warnings: Vec::new(),
        };
        for (ci, campaign) in config.campaigns.iter().enumerate() {
            for number in 1..=campaign.steps.len() as u32 {
                if renderer
                    .steps
                    .contains_key(&(campaign.name.clone(), number))
                {
                    let key = format!("campaign[{}].step[{number}]", ci + 1);
                    renderer.check_step(
                        config,
                        campaign,
                        number,
                        &key,
                        &mut problems,
                        &mut warnings,
                    );
                }
            }
        }
        let dkim = match &config.dkim {
            Some(dkim) => match dkim_config(dkim, config.smtp.reply_to.is_some()) {
                Ok(signer) => Some(signer),
                Err(error) => {
                    let (file, message) = match error {
                        RenderError::DkimKey { path, message } => (path, message),
                        other => (dkim.key_file.clone(), other.to_string()),
                    };
                    problems.push(Problem {
                        file,
                        line: None,
                        key: "dkim.key_file".to_string(),
                        message,
                    });
                    None
                }
            },
            None => None,
        };

        if !problems.is_empty() {
            return Err(dedup(problems));
        }
        renderer.dkim = dkim;
        renderer.warnings = dedup(warnings);
        Ok(renderer)
    }

    /// The message for `to` (see `build`), signed with the DKIM key read at load.
    pub fn build_message(
        &self,
        config: &Config,
        rendered: &Rendered,
        to: &ClientRecord,
        message_id: &str,
        date: DateTime<Utc>,
        unsubscribe_url: &str,
    ) -> Result<Built, RenderError> {
        let signer = self.dkim.as_ref();
        build(
            config,
            signer,
            rendered,
            to,
            message_id,
            date,
            unsubscribe_url,
        )
    }

    /// Things worth a look that do not stop sending (printed by `check`): custom fields
    /// the templates need, placeholders left to edit, a survey without its link.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Renders step `step` (1-based) of `campaign` for `vars.client`.
    pub fn render(
        &self,
        campaign: &Campaign,
        step: u32,
        vars: &Vars,
    ) -> Result<Rendered, RenderError> {
        let templates = self
            .steps
            .get(&(campaign.name.clone(), step))
            .ok_or_else(|| RenderError::UnknownStep {
                campaign: campaign.name.clone(),
                step,
            })?;
        let data = handlebars::Context::from(self.context(campaign, step, templates.kind, vars));
        let render = |part: Part| {
            self.render_part(templates, part, &data)
                .map_err(|e| template_error(templates, part, &e))
        };
        Ok(Rendered {
            subject: one_line(&render(Part::Subject)?),
            text: render(Part::Text)?,
            html: render(Part::Html)?,
        })
    }

    /// `data` is a handlebars `Context` built once per message: rendering from a `Value`
    /// would copy it for each of the three parts.
    fn render_part(
        &self,
        templates: &StepTemplates,
        part: Part,
        data: &handlebars::Context,
    ) -> Result<String, handlebars::RenderError> {
        match part {
            Part::Subject => self.text.render_with_context(&templates.subject, data),
            Part::Html => self.html.render_with_context(&templates.html, data),
            Part::Text => self.text.render_with_context(&templates.text, data),
        }
    }

    fn context(&self, campaign: &Campaign, step: u32, kind: StepKind, vars: &Vars) -> Value {
        let client = vars.client;
        let tz = client.timezone.unwrap_or(campaign.timezone);
        json!({
            "first_name": first_name(client),
            "name": client.name.as_deref().unwrap_or_default(),
            "company": client.company.as_deref().unwrap_or_default(),
            "email": client.email,
            "churned_at": client.churned_at.to_string(),
            "churn_reason": client.churn_reason.as_deref().unwrap_or_default(),
            "months_since_churn": months_since(client.churned_at, vars.now, tz),
            "fields": client.fields,
            "unsubscribe_url": vars.unsubscribe_url,
            "survey_url": vars.survey_url,
            "campaign": campaign.name,
            "step": step,
            "step_kind": kind.as_str(),
            "sender": self.sender,
        })
    }

    /// Renders one step against the sample client and reports what `check` must catch.
    fn check_step(
        &self,
        config: &Config,
        campaign: &Campaign,
        number: u32,
        key: &str,
        problems: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
    ) {
        let templates = &self.steps[&(campaign.name.clone(), number)];
        let mut client = sample_client();
        let base = &config.http.public_url;
        let survey_url = match &config.survey_external_url {
            Some(external) => format!("{external}SAMPLE-SURVEY-TOKEN"),
            None => format!("{base}/s/SAMPLE-SURVEY-TOKEN"),
        };
        let unsubscribe_url = format!("{base}/u/SAMPLE-UNSUBSCRIBE-TOKEN");
        for part in [Part::Subject, Part::Html, Part::Text] {
            let (file, line_base) = match part {
                Part::Subject => (
                    config.file.clone(),
                    Some(config_step_line(campaign, number)),
                ),
                Part::Html => (config.templates_dir.join(&templates.html), None),
                Part::Text => (config.templates_dir.join(&templates.text), None),
            };
            let problem = |line: Option<usize>, message: String| Problem {
                file: file.clone(),
                line: line_base.or(line),
                key: match part {
                    Part::Subject => templates.subject.clone(),
                    _ => format!("{key}.template"),
                },
                message,
            };
            // Custom fields the sample lacks are added (and warned about) until it renders.
            let rendered = loop {
                let vars = Vars {
                    client: &client,
                    unsubscribe_url: unsubscribe_url.clone(),
                    survey_url: survey_url.clone(),
                    now: sample_now(),
                };
                let data = handlebars::Context::from(self.context(
                    campaign,
                    number,
                    templates.kind,
                    &vars,
                ));
                match self.render_part(templates, part, &data) {
                    Ok(rendered) => break Some(rendered),
                    Err(e) => {
                        if let RenderErrorReason::MissingVariable(Some(path)) = e.reason()
                            && let Some(column) = custom_field(path)
                            && !client.fields.contains_key(&column)
                        {
                            warnings.push(problem(
                                e.line_no,
                                format!(
                                    "uses {{{{fields.{column}}}}}: every client must have a \"{column}\" column in the CSV, or this step fails for them (wrap it in {{{{#if fields.{column}}}}}...{{{{/if}}}} to make it optional)"
                                ),
                            ));
                            client.fields.insert(column.clone(), format!("({column})"));
                            continue;
                        }
                        problems.push(problem(e.line_no, render_message(&e)));
                        break None;
                    }
                }
            };
            let Some(rendered) = rendered else { continue };
            let escape = |s: &str| {
                if part == Part::Html {
                    html_escape(s)
                } else {
                    s.to_string()
                }
            };
            match part {
                Part::Subject => {
                    if one_line(&rendered).is_empty() {
                        problems.push(problem(
                            None,
                            "the subject renders empty; write a subject line".to_string(),
                        ));
                    }
                }
                Part::Html | Part::Text => {
                    if !rendered.contains(&escape(&unsubscribe_url))
                        && !rendered.contains(&unsubscribe_url)
                    {
                        problems.push(problem(
                            None,
                            "the rendered message lacks the unsubscribe link; add {{unsubscribe_url}} (in the footer)".to_string(),
                        ));
                    }
                    let postal = &config.sender.postal_address;
                    if !rendered.contains(&escape(postal)) && !rendered.contains(postal.as_str()) {
                        problems.push(problem(
                            None,
                            "the rendered message lacks the sender's postal address (required by anti-spam law); add {{sender.postal_address}} (in the footer)".to_string(),
                        ));
                    }
                    if templates.kind == StepKind::Survey
                        && !rendered.contains(&escape(&survey_url))
                        && !rendered.contains(&survey_url)
                    {
                        warnings.push(problem(
                            None,
                            "is a survey step but does not link the survey; add {{survey_url}}"
                                .to_string(),
                        ));
                    }
                    if let Some(at) = rendered.find(EDIT_MARKER) {
                        let rest = &rendered[at..];
                        let placeholder: String = rest
                            [..rest.find(']').map_or(rest.len(), |end| end + 1)]
                            .chars()
                            .take(60)
                            .collect();
                        let count = rendered.matches(EDIT_MARKER).count();
                        // The line in the template file, where the operator will edit.
                        let line = std::fs::read_to_string(&file).ok().and_then(|source| {
                            let at = source.find(EDIT_MARKER)?;
                            Some(source[..at].matches('\n').count() + 1)
                        });
                        warnings.push(problem(
                            line,
                            format!(
                                "still contains {count} placeholder{} such as \"{}\"; replace {} with your own text before this step is sent",
                                if count == 1 { "" } else { "s" },
                                one_line(&placeholder),
                                if count == 1 { "it" } else { "them" },
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// The line of the `[[campaign.step]]` declaring step `number`.
fn config_step_line(campaign: &Campaign, number: u32) -> usize {
    campaign.step(number).map(|s| s.line).unwrap_or(0)
}

/// Reads and registers one template file, or the line and message of what went wrong.
fn compile_file(
    registry: &mut Handlebars<'static>,
    name: &str,
    path: &Path,
) -> Result<(), (Option<usize>, String)> {
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err((
                None,
                format!(
                    "the template file does not exist; create it (each step needs NAME.html.hbs and NAME.txt.hbs in {})",
                    path.parent().unwrap_or(Path::new(".")).display()
                ),
            ));
        }
        Err(e) => return Err((None, format!("cannot read the template file ({e})"))),
    };
    registry
        .register_template_string(name, &source)
        .map_err(|e| match crate::template_blocks::unclosed_block(&source) {
            Some((line, message)) => (Some(line), message),
            None => (e.pos().map(|(line, _)| line), syntax_message(&e)),
        })
}

fn syntax_message(e: &handlebars::TemplateError) -> String {
    match e.pos() {
        Some((_, column)) => format!("handlebars syntax error at column {column}: {}", e.reason()),
        None => format!("handlebars syntax error: {}", e.reason()),
    }
}

/// A strict-mode or helper failure in plain words.
fn render_message(e: &handlebars::RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => match custom_field(path) {
            Some(column) => {
                format!("uses {{{{fields.{column}}}}}, but this client has no \"{column}\" value")
            }
            None => format!(
                "{{{{{path}}}}} is not a variable; use one of: {}",
                VARIABLES.join(", ")
            ),
        },
        RenderErrorReason::MissingVariable(None) => {
            "a helper's value is missing (strict mode); check the helper's arguments".to_string()
        }
        RenderErrorReason::HelperNotFound(name) => format!(
            "\"{name}\" is neither a variable nor a helper; variables are: {}",
            VARIABLES.join(", ")
        ),
        RenderErrorReason::PartialNotFound(name) => format!(
            "the partial {{{{> {name}}}}} does not exist; partials are not supported, write the text in the template"
        ),
        other => other.to_string(),
    }
}

fn template_error(
    templates: &StepTemplates,
    part: Part,
    e: &handlebars::RenderError,
) -> RenderError {
    let template = match part {
        Part::Subject => templates.subject.clone(),
        Part::Html => templates.html.clone(),
        Part::Text => templates.text.clone(),
    };
    RenderError::Template {
        template,
        line: if part == Part::Subject {
            None
        } else {
            e.line_no
        },
        message: render_message(e),
    }
}

/// The column of a `fields.COLUMN` path (`fields.plan`, `fields.[Plan Name]`).
fn custom_field(path: &str) -> Option<String> {
    let column = path.strip_prefix("fields.")?;
    let column = column
        .strip_prefix('[')
        .and_then(|c| c.strip_suffix(']'))
        .unwrap_or(column);
    Some(column.to_string())
}

/// Problems in first-seen order, without repeats (a file shared by several steps is
/// reported once).
fn dedup(problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = HashSet::new();
    problems
        .into_iter()
        .filter(|p| seen.insert((p.file.clone(), p.line, p.message.clone())))
        .collect()
}

/// `first_name`: the record's `first_name` column; else the first word of `name`
/// (skipping a title such as "Dr."); else the empty string, so that templates can write
/// `{{#if first_name}}Hi {{first_name}},{{else}}Hello,{{/if}}`. A fallback word such as
/// "there" would read wrongly in most places a first name goes ("there, may we ask...").
fn first_name(client: &ClientRecord) -> String {
    if let Some(first) = client
        .first_name
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        return first.to_string();
    }
    const TITLES: [&str; 8] = ["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir"];
    client
        .name
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .find(|word| !TITLES.contains(&word.trim_end_matches('.').to_lowercase().as_str()))
        .unwrap_or_default()
        .to_string()
}

/// Whole calendar months from the churn date to `now`'s date, both in `tz`; 0 if `now`
/// is not later.
fn months_since(churned_at: ChurnedAt, now: DateTime<Utc>, tz: Tz) -> u32 {
    let from = match churned_at {
        ChurnedAt::Date(date) => date,
        ChurnedAt::Instant(t) => t.with_timezone(&tz).date_naive(),
    };
    let to = now.with_timezone(&tz).date_naive();
    let mut months = (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32;
    if to.day() < from.day() {
        months -= 1;
    }
    months.max(0) as u32
}

/// `text` on one line: every run of whitespace that holds a control character (CR, LF,
/// TAB, ...) or a Unicode line separator becomes one space; the ends are trimmed.
fn one_line(text: &str) -> String {
    let breaks = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_whitespace() || breaks(c) {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            out.push_str(if run.chars().any(breaks) { " " } else { &run });
            run.clear();
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// A realistic former client, used by `check` and `preview`.
pub fn sample_client() -> ClientRecord {
    ClientRecord {
        email: "jordan.rivera@northwind.example".to_string(),
        name: Some("Jordan Rivera".to_string()),
        first_name: None,
        company: Some("Northwind Traders".to_string()),
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 1, 14).expect("a valid date")),
        churn_reason: Some("competitor".to_string()),
        timezone: Some(chrono_tz::America::Chicago),
        fields: BTreeMap::from([
            ("account_manager".to_string(), "Sam Okafor".to_string()),
            ("plan".to_string(), "Team".to_string()),
        ]),
    }
}

/// The fixed "now" of the sample rendering: five months after the sample churned.
fn sample_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 17, 15, 0, 0)
        .single()
        .expect("a valid instant")
}

/// A new, unique `Message-ID`: `<winback.RANDOM@DOMAIN>` with 128 random bits and the
/// domain of `smtp.from`.
pub fn new_message_id(config: &Config, at: DateTime<Utc>) -> String {
    // The claim time first, so that ids sort as they are made: a new one is stored at the
    // end of the outbox's unique index instead of on a random page of it.
    let micros = at.timestamp_micros().max(0);
    let random: [u8; 16] = rand::random();
    let hex = crate::store::lower_hex(&random);
    format!(
        "<winback.{micros:013x}.{hex}@{}>",
        config.smtp.from.email.domain()
    )
}

/// Builds the message for `to`: From (and Reply-To) from the config, To, the one-line
/// subject, `Date` = `date`, `Message-ID` = `message_id`, the one-click unsubscribe
/// headers, multipart/alternative (text, then HTML), signed by `signer` when DKIM is
/// configured.
fn build(
    config: &Config,
    signer: Option<&DkimConfig>,
    rendered: &Rendered,
    to: &ClientRecord,
    message_id: &str,
    date: DateTime<Utc>,
    unsubscribe_url: &str,
) -> Result<Built, RenderError> {
    let address: lettre::Address =
        to.email
            .trim()
            .parse()
            .map_err(|e: lettre::address::AddressError| RenderError::Recipient {
                email: to.email.clone(),
                reason: e.to_string(),
            })?;
    let display_name = to.name.as_deref().map(one_line).filter(|n| !n.is_empty());
    let recipient = Mailbox::new(display_name, address.clone());

    header_safe("the unsubscribe URL", unsubscribe_url, |c| {
        c != '<' && c != '>'
    })?;
    header_safe("the Message-ID", message_id, |_| true)?;
    if !(message_id.starts_with('<') && message_id.ends_with('>') && message_id.contains('@')) {
        return Err(RenderError::BadHeader {
            what: "the Message-ID",
            value: message_id.to_string(),
            reason: "it must look like <unique@domain>",
        });
    }

    let mut builder = Message::builder().from(config.smtp.from.clone());
    if let Some(reply_to) = &config.smtp.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let mut message = builder
        .to(recipient)
        .subject(one_line(&rendered.subject))
        .date(date.into())
        .message_id(Some(message_id.to_string()))
        .raw_header(HeaderValue::new(
            LIST_UNSUBSCRIBE,
            format!("<{unsubscribe_url}>"),
        ))
        .raw_header(HeaderValue::new(
            LIST_UNSUBSCRIBE_POST,
            "List-Unsubscribe=One-Click".to_string(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))?;
    if let Some(signer) = signer {
        message.sign(signer);
    }
    let bytes = message.formatted();
    assert_one_recipient(&bytes)?;
    Ok(Built {
        message_id: message_id.to_string(),
        from: config.smtp.from.email.to_string(),
        to: address.to_string(),
        bytes,
    })
}

/// Refuses a header value that is empty or holds anything but printable ASCII.
fn header_safe(
    what: &'static str,
    value: &str,
    also: impl Fn(char) -> bool,
) -> Result<(), RenderError> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic() && also(c)) {
        return Err(RenderError::BadHeader {
            what,
            value: value.escape_debug().to_string(),
            reason: "it must be non-empty printable ASCII without spaces or angle brackets",
        });
    }
    Ok(())
}

/// Defense in depth against header injection: the formatted header block has exactly
/// one To and one Subject, and no Cc or Bcc.
fn assert_one_recipient(bytes: &[u8]) -> Result<(), RenderError> {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let names: Vec<String> = head
        .split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| {
            line.split_once(':')
                .map(|(name, _)| name.trim().to_ascii_lowercase())
        })
        .collect();
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    if count("to") != 1 || count("subject") != 1 || count("cc") + count("bcc") != 0 {
        return Err(RenderError::BadHeader {
            what: "the message header",
            value: String::new(),
            reason: "it must carry exactly one To and one Subject, and no Cc or Bcc",
        });
    }
    Ok(())
}

/// The signing configuration: relaxed/relaxed canonicalization (survives relays that
/// refold headers), covering the headers a receiver shows or acts on.
fn dkim_config(dkim: &Dkim, reply_to: bool) -> Result<DkimConfig, RenderError> {
    let key_error = |message: String| RenderError::DkimKey {
        path: dkim.key_file.clone(),
        message,
    };
    let pem = std::fs::read_to_string(&dkim.key_file)
        .map_err(|e| key_error(format!("cannot be read ({e})")))?;
    let key = signing_key(&pem).map_err(key_error)?;
    let mut headers: Vec<HeaderName> = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    if reply_to {
        headers.push(HeaderName::new_from_ascii_str("Reply-To"));
    }
    Ok(DkimConfig::new(
        dkim.selector.clone(),
        dkim.domain.clone(),
        key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}

const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];
const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A DKIM key from the text of a key file: PEM PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`), PEM
/// PKCS#8 RSA or Ed25519 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes), or the
/// bare base64 of a 32-byte Ed25519 seed.
fn signing_key(text: &str) -> Result<DkimSigningKey, String> {
    let unusable = |what: &str| {
        format!(
            "{what}; use an unencrypted PEM key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048, or -algorithm ed25519)"
        )
    };
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return DkimSigningKey::new(text.trim(), DkimSigningAlgorithm::Rsa)
            .map_err(|e| unusable(&format!("is not a valid RSA key ({e})")));
    }
    if text.contains("ENCRYPTED") {
        return Err(unusable("is encrypted"));
    }
    if let Some(der) = pem_body(text, "PRIVATE KEY") {
        let der = der.ok_or_else(|| unusable("is not valid PEM"))?;
        let (algorithm, private) =
            pkcs8(&der).ok_or_else(|| unusable("is not a PKCS#8 private key"))?;
        if algorithm == ED25519_OID {
            // The private key is itself an OCTET STRING holding the 32-byte seed.
            let seed = match der_read(private) {
                Some((0x04, seed, [])) if seed.len() == 32 => seed,
                _ => return Err(unusable("is not a valid Ed25519 key")),
            };
            return DkimSigningKey::new(&BASE64.encode(seed), DkimSigningAlgorithm::Ed25519)
                .map_err(|e| unusable(&format!("is not a valid Ed25519 key ({e})")));
        }
        if algorithm == RSA_OID {
            // The PEM parser wants the standard 64-character lines.
            let body = BASE64.encode(private);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|l| std::str::from_utf8(l).unwrap_or_default())
                .collect();
            let pkcs1 = format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
                lines.join("\n")
            );
            return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
                .map_err(|e| unusable(&format!("is not a valid RSA key ({e})")));
        }
        return Err(unusable(
            "uses an algorithm DKIM does not support (only RSA and Ed25519)",
        ));
    }
    if text.contains("-----BEGIN") {
        return Err(unusable("is not a private key winback can read"));
    }
    match BASE64.decode(text.trim()) {
        Ok(seed) if seed.len() == 32 => {
            DkimSigningKey::new(text.trim(), DkimSigningAlgorithm::Ed25519)
                .map_err(|e| unusable(&format!("is not a valid Ed25519 key ({e})")))
        }
        _ => Err(unusable("is not a PEM key")),
    }
}

/// The decoded body of the PEM block labelled `label`: `None` if there is none,
/// `Some(None)` if it is not valid base64.
fn pem_body(text: &str, label: &str) -> Option<Option<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let Some(length) = text[start..].find(&end) else {
        return Some(None);
    };
    let body: String = text[start..start + length]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some(BASE64.decode(body).ok())
}

/// The algorithm OID and the private key octets of a PKCS#8 `PrivateKeyInfo` (or
/// `OneAsymmetricKey`).
fn pkcs8(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, info, _) = der_read(der)? else {
        return None;
    };
    let (0x02, _version, rest) = der_read(info)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_read(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_read(algorithm)? else {
        return None;
    };
    let (0x04, private, _) = der_read(rest)? else {
        return None;
    };
    Some((oid, private))
}

/// One DER tag-length-value: (tag, value, the bytes after it).
fn der_read(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |n, b| (n << 8) | *b as usize);
        rest = &rest[count..];
        length
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;

    /// The test key from lettre's documentation (PKCS#1).
    const RSA_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAt2gawjoybf0mAz0mSX0cq1ah5F9cPazZdCwLnFBhRufxaZB8
NLTdc9xfPIOK8l/xGrN7Nd63J4cTATqZukumczkA46O8YKHwa53pNT6NYwCNtDUL
eBu+7xUW18GmDzkIFkxGO2R5kkTeWPlKvKpEiicIMfl0OmyW/fI3AbtM7e/gmqQ4
kEYIO0mTjPT+jTgWE4JIi5KUTHudUBtfMKcSFyM2HkUOExl1c9+A4epjRFQwEXMA
hM5GrqZoOdUm4fIpvGpLIGIxFgHPpZYbyq6yJZzH3+5aKyCHrsHawPuPiCD45zsU
re31zCE6b6k1sDiiBR4CaRHnbL7hxFp0aNLOVQIDAQABAoIBAGMK3gBrKxaIcUGo
gQeIf7XrJ6vK72YC9L8uleqI4a9Hy++E7f4MedZ6eBeWta8jrnEL4Yp6xg+beuDc
A24+Mhng+6Dyp+TLLqj+8pQlPnbrMprRVms7GIXFrrs+wO1RkBNyhy7FmH0roaMM
pJZzoGW2pE9QdbqjL3rdlWTi/60xRX9eZ42nNxYnbc+RK03SBd46c3UBha6Y9iQX
562yWilDnB5WCX2tBoSN39bEhJvuZDzMwOuGw68Q96Hdz82Iz1xVBnRhH+uNStjR
VnAssSHVxPSpwWrm3sHlhjBHWPnNIaOKIKl1lbL+qWfVQCj/6a5DquC+vYAeYR6L
3mA0z0ECgYEA5YkNYcILSXyE0hZ8eA/t58h8eWvYI5iqt3nT4fznCoYJJ74Vukeg
6BTlq/CsanwT1lDtvDKrOaJbA7DPTES/bqT0HoeIdOvAw9w/AZI5DAqYp61i6RMK
xfAQL/Ik5MDFN8gEMLLXRVMe/aR27f6JFZpShJOK/KCzHqikKfYVJ+UCgYEAzI2F
ZlTyittWSyUSl5UKyfSnFOx2+6vNy+lu5DeMJu8Wh9rqBk388Bxq98CfkCseWESN
pTCGdYltz9DvVNBdBLwSMdLuYJAI6U+Zd70MWyuNdHFPyWVHUNqMUBvbUtj2w74q
Hzu0GI0OrRjdX6C63S17PggmT/N2R9X7P4STxbECgYA+AZAD4I98Ao8+0aQ+Ks9x
1c8KXf+9XfiAKAD9A3zGcv72JXtpHwBwsXR5xkJNYcdaFfKi7G0k3J8JmDHnwIqW
MSlhNeu+6hDg2BaNLhsLDbG/Wi9mFybJ4df9m8Qrp4efUgEPxsAwkgvFKTCXijMu
CspP1iutoxvAJH50d22voQKBgDIsSFtIXNGYaTs3Va8enK3at5zXP3wNsQXiNRP/
V/44yNL77EktmewfXFF2yuym1uOZtRCerWxpEClYO0wXa6l8pA3aiiPfUIBByQfo
s/4s2Z6FKKfikrKPWLlRi+NvWl+65kQQ9eTLvJzSq4IIP61+uWsGvrb/pbSLFPyI
fWKRAoGBALFCStBXvdMptjq4APUzAdJ0vytZzXkOZHxgmc+R0fQn22OiW0huW6iX
JcaBbL6ZSBIMA3AdaIjtvNRiomueHqh0GspTgOeCE2585TSFnw6vEOJ8RlR4A0Mw
I45fbR4l+3D/30WMfZlM6bzZbwPXEnr2s1mirmuQpjumY9wLhK25
-----END RSA PRIVATE KEY-----
";

    /// An Ed25519 key as `openssl genpkey -algorithm ed25519` writes it (PKCS#8).
    fn ed25519_pkcs8(seed: [u8; 32]) -> String {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            BASE64.encode(der)
        )
    }

    /// The lettre test key wrapped as PKCS#8, as OpenSSL 3 writes RSA keys.
    fn rsa_pkcs8() -> String {
        let pkcs1 = pem_body(RSA_PKCS1, "RSA PRIVATE KEY").unwrap().unwrap();
        let mut inner = vec![0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09];
        inner.extend_from_slice(RSA_OID);
        inner.extend_from_slice(&[
            0x05,
            0x00,
            0x04,
            0x82,
            (pkcs1.len() >> 8) as u8,
            pkcs1.len() as u8,
        ]);
        inner.extend_from_slice(&pkcs1);
        let mut der = vec![0x30, 0x82, (inner.len() >> 8) as u8, inner.len() as u8];
        der.extend_from_slice(&inner);
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            BASE64.encode(der)
        )
    }

    const SUBJECT: &str = "{{first_name}}, may we ask why you left?";
    const FOOTER_HTML: &str = "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a> {{sender.company}}, {{sender.postal_address}}</p>";
    const FOOTER_TEXT: &str =
        "Unsubscribe: {{unsubscribe_url}}\n{{sender.company}}, {{sender.postal_address}}\n";

    /// A temporary setup: a config file and a templates folder.
    struct Setup {
        dir: tempfile::TempDir,
    }

    impl Setup {
        fn new() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("templates")).unwrap();
            Setup { dir }
        }

        /// Writes `templates/NAME.html.hbs` and `.txt.hbs`.
        fn template(&self, name: &str, html: &str, text: &str) -> &Setup {
            let dir = self.dir.path().join("templates");
            fs::write(dir.join(format!("{name}.html.hbs")), html).unwrap();
            fs::write(dir.join(format!("{name}.txt.hbs")), text).unwrap();
            self
        }

        /// The survey template with `body` before the standard footer.
        fn survey(&self, html_body: &str, text_body: &str) -> &Setup {
            self.template(
                "survey",
                &format!("{html_body}\n{FOOTER_HTML}"),
                &format!("{text_body}\n{FOOTER_TEXT}"),
            )
        }

        fn config_text(&self, extra: &str, steps: &str) -> String {
            format!(
                r#"
[smtp]
url = "file://outbox"
from = "Acme Customer Success <success@acme.example>"
{extra}

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme & Sons"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"
{steps}
"#
            )
        }

        fn config_with(&self, extra: &str, steps: &str) -> Result<Config, String> {
            let path = self.dir.path().join("winback.toml");
            let text = self.config_text(extra, steps);
            fs::write(&path, &text).unwrap();
            Config::parse(&path, &text).map_err(|e| e.to_string())
        }

        /// One survey step, signed with the DKIM key in `key_file` (in the test dir).
        fn signing_config(&self, key_file: &str) -> Config {
            let extra = format!(
                "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = \"{key_file}\"\n"
            );
            let step = format!(
                "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
            );
            self.config_with(&extra, &step)
                .unwrap_or_else(|e| panic!("{key_file}: {e}"))
        }

        fn config(&self) -> Config {
            self.config_with("", &format!("[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n")).unwrap()
        }

        fn renderer(&self) -> Renderer {
            Renderer::load(&self.config()).unwrap_or_else(|p| panic!("{p:#?}"))
        }

        fn problems(&self) -> Vec<Problem> {
            Renderer::load(&self.config()).expect_err("load should fail")
        }
    }

    fn client() -> ClientRecord {
        ClientRecord {
            email: "pat@client.example".to_string(),
            name: Some("Pat Smith".to_string()),
            first_name: None,
            company: Some("Globex".to_string()),
            churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 3, 10).unwrap()),
            churn_reason: None,
            timezone: None,
            fields: BTreeMap::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 9, 14, 30, 5).unwrap()
    }

    fn vars(client: &ClientRecord) -> Vars<'_> {
        Vars {
            client,
            unsubscribe_url: "https://winback.acme.example/u/TOKEN-u".to_string(),
            survey_url: "https://winback.acme.example/s/TOKEN-s".to_string(),
            now: now(),
        }
    }

    fn render(setup: &Setup, client: &ClientRecord) -> Result<Rendered, RenderError> {
        let config = setup.config();
        let renderer = setup.renderer();
        renderer.render(&config.campaigns[0], 1, &vars(client))
    }

    /// The header block of a built message, unfolded, as (name, value) pairs.
    fn headers(bytes: &[u8]) -> Vec<(String, String)> {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let head = text
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .replace("\r\n ", " ")
            .replace("\r\n\t", " ");
        head.split("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_string(), value.trim().to_string())
            })
            .collect()
    }

    fn header(bytes: &[u8], name: &str) -> Vec<String> {
        headers(bytes)
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The built message, with the message id, date and unsubscribe link the tests share.
    fn built(
        renderer: &Renderer,
        config: &Config,
        rendered: &Rendered,
        to: &ClientRecord,
    ) -> Built {
        renderer
            .build_message(
                config,
                rendered,
                to,
                "<a@acme.example>",
                now(),
                "https://winback.acme.example/u/T",
            )
            .unwrap()
    }

    #[test]
    fn renders_every_variable() {
        let setup = Setup::new();
        let all = "{{first_name}}|{{name}}|{{company}}|{{email}}|{{churned_at}}|{{churn_reason}}|{{months_since_churn}}|{{fields.plan}}|{{unsubscribe_url}}|{{survey_url}}|{{campaign}}|{{step}}|{{step_kind}}|{{sender.company}}|{{sender.postal_address}}";
        setup.survey(all, all);
        let mut client = client();
        client.churn_reason = Some("price".to_string());
        client.fields.insert("plan".to_string(), "Pro".to_string());
        let rendered = render(&setup, &client).unwrap();
        assert_eq!(
            rendered.text.lines().next().unwrap(),
            "Pat|Pat Smith|Globex|pat@client.example|2025-03-10|price|5|Pro|https://winback.acme.example/u/TOKEN-u|https://winback.acme.example/s/TOKEN-s|former-clients|1|survey|Acme & Sons|1 Main Street, Springfield, IL 62701, USA"
        );
        assert_eq!(rendered.subject, "Pat, may we ask why you left?");
        assert!(rendered.html.starts_with("Pat|Pat Smith|Globex|pat@client.example|2025-03-10|price|5|Pro|https://winback.acme.example/u/TOKEN-u|"));
        assert!(rendered.html.contains("|Acme &amp; Sons|"));
    }

    #[test]
    fn optional_columns_render_empty_and_first_name_falls_back() {
        let setup = Setup::new();
        setup.survey(
            "[{{name}}][{{company}}][{{churn_reason}}]",
            "{{#if first_name}}Hi {{first_name}},{{else}}Hello,{{/if}} [{{company}}]",
        );
        let mut client = client();
        client.name = None;
        client.company = None;
        let rendered = render(&setup, &client).unwrap();
        assert!(rendered.html.starts_with("[][][]"), "{}", rendered.html);
        assert!(rendered.text.starts_with("Hello, []"), "{}", rendered.text);
        assert_eq!(rendered.subject, ", may we ask why you left?");

        let with = |first: Option<&str>, name: Option<&str>| {
            let mut c = client.clone();
            c.first_name = first.map(String::from);
            c.name = name.map(String::from);
            first_name(&c)
        };
        assert_eq!(with(Some(" Ann "), Some("Pat Smith")), "Ann");
        assert_eq!(with(Some(""), Some("Pat Smith")), "Pat");
        assert_eq!(with(None, Some("Dr. Jane Doe")), "Jane");
        assert_eq!(with(None, Some("  Cher ")), "Cher");
        assert_eq!(with(None, None), "");
    }

    #[test]
    fn months_since_churn_counts_whole_calendar_months() {
        let date = |y, m, d| ChurnedAt::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
        let tz = chrono_tz::UTC;
        for (churned, now, expected) in [
            (date(2025, 1, 14), at(2025, 1, 14), 0),
            (date(2025, 1, 14), at(2025, 2, 13), 0),
            (date(2025, 1, 14), at(2025, 2, 14), 1),
            (date(2024, 11, 30), at(2025, 6, 1), 6),
            (date(2025, 1, 31), at(2025, 2, 28), 0),
            (date(2025, 6, 1), at(2025, 1, 1), 0),
            (ChurnedAt::Instant(at(2025, 1, 1)), at(2026, 1, 1), 12),
        ] {
            assert_eq!(
                months_since(churned, now, tz),
                expected,
                "{churned} → {now}"
            );
        }
    }

    #[test]
    fn strict_mode_missing_variable_names_it() {
        let setup = Setup::new();
        setup.survey("<p>Hello</p>", "Hello\n\nDear {{frist_name}},");
        let problems = setup.problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        let p = &problems[0];
        assert!(p.file.ends_with("templates/survey.txt.hbs"), "{p}");
        assert_eq!(p.line, Some(3), "{p}");
        assert_eq!(p.key, "campaign[1].step[1].template");
        assert!(
            p.message.contains("{{frist_name}} is not a variable"),
            "{p}"
        );
        assert!(p.message.contains("first_name"), "{p}");
    }

    #[test]
    fn a_custom_field_is_a_warning_at_load_and_an_error_for_a_client_without_it() {
        let setup = Setup::new();
        setup.survey(
            "<p>{{fields.seats}} {{#if fields.region}}{{fields.region}}{{/if}}</p>",
            "{{fields.plan}}",
        );
        let renderer = setup.renderer();
        let warnings: Vec<&Problem> = renderer
            .warnings()
            .iter()
            .filter(|w| w.message.contains("fields."))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].message.contains("\"seats\" column"),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].file.ends_with("survey.html.hbs"));

        let err = render(&setup, &client()).unwrap_err();
        assert!(
            matches!(&err, RenderError::Template { template, .. } if template == "survey.txt.hbs"),
            "{err}"
        );
        assert!(err.to_string().contains("no \"plan\" value"), "{err}");

        let mut client = client();
        client.fields.insert("plan".to_string(), "Pro".to_string());
        client.fields.insert("seats".to_string(), "12".to_string());
        let rendered = render(&setup, &client).unwrap();
        assert!(rendered.html.starts_with("<p>12 </p>"));
    }

    #[test]
    fn html_part_is_escaped_and_text_and_subject_are_not() {
        let setup = Setup::new();
        let body = "{{name}} / {{company}} / {{fields.note}}";
        setup.survey(body, body);
        let config = setup.config_with("", "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"For {{company}}\"\n").unwrap();
        let renderer = Renderer::load(&config).unwrap();
        let mut client = client();
        client.name = Some("<script>alert(1)</script>".to_string());
        client.company = Some("Smith & Wesson".to_string());
        client
            .fields
            .insert("note".to_string(), "a<b & \"c\"".to_string());
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        assert!(rendered.html.starts_with("&lt;script&gt;alert(1)&lt;/script&gt; / Smith &amp; Wesson / a&lt;b &amp; &quot;c&quot;"), "{}", rendered.html);
        assert!(!rendered.html.contains("<script>"));
        assert!(
            rendered
                .text
                .starts_with("<script>alert(1)</script> / Smith & Wesson / a<b & \"c\""),
            "{}",
            rendered.text
        );
        assert_eq!(rendered.subject, "For Smith & Wesson");
    }

    #[test]
    fn subject_stays_one_line_and_no_header_is_injected() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        let config = setup.config();
        let renderer = Renderer::load(&config).unwrap();
        let mut client = client();
        client.first_name = Some("Eve\r\nBcc: x@y\r\n\tX-Evil:\u{2028}1".to_string());
        client.name = Some("Eve\r\nBcc: x@y".to_string());
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        assert_eq!(
            rendered.subject,
            "Eve Bcc: x@y X-Evil: 1, may we ask why you left?"
        );

        let built = built(&renderer, &config, &rendered, &client);
        let names: Vec<String> = headers(&built.bytes)
            .into_iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        assert!(
            !names.iter().any(|n| n == "bcc" || n == "x-evil"),
            "{names:?}"
        );
        assert_eq!(header(&built.bytes, "To").len(), 1);
        assert_eq!(header(&built.bytes, "Subject").len(), 1);
        assert_eq!(built.to, "pat@client.example");

        // A hand-made Rendered (not from `render`) is made one line too.
        let raw = Rendered {
            subject: "Hello\r\nBcc: x@y".to_string(),
            ..rendered
        };
        let built = renderer
            .build_message(
                &config,
                &raw,
                &client,
                "<b@acme.example>",
                now(),
                "https://winback.acme.example/u/T",
            )
            .unwrap();
        assert!(header(&built.bytes, "Bcc").is_empty());
        assert_eq!(header(&built.bytes, "Subject"), ["Hello Bcc: x@y"]);
    }

    #[test]
    fn built_message_has_the_required_headers_and_parts() {
        let setup = Setup::new();
        setup.survey("<p>Hé {{first_name}}</p>", "Hé {{first_name}}");
        let config = setup
            .config_with(
                "reply_to = \"Dana <dana@acme.example>\"",
                &format!("[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"),
            )
            .unwrap();
        let renderer = Renderer::load(&config).unwrap();
        let client = client();
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        let id = new_message_id(&config, now());
        let url = "https://winback.acme.example/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let built = renderer
            .build_message(&config, &rendered, &client, &id, now(), url)
            .unwrap();
        let bytes = &built.bytes;

        assert_eq!(header(bytes, "To"), ["\"Pat Smith\" <pat@client.example>"]);
        assert_eq!(
            header(bytes, "From"),
            ["\"Acme Customer Success\" <success@acme.example>"]
        );
        assert_eq!(header(bytes, "Reply-To"), ["Dana <dana@acme.example>"]);
        assert_eq!(header(bytes, "List-Unsubscribe"), [format!("<{url}>")]);
        assert_eq!(
            header(bytes, "List-Unsubscribe-Post"),
            ["List-Unsubscribe=One-Click"]
        );
        assert_eq!(header(bytes, "Message-ID"), [id.as_str()]);
        let date = header(bytes, "Date");
        assert_eq!(date.len(), 1);
        assert_eq!(DateTime::parse_from_rfc2822(&date[0]).unwrap(), now());
        assert_eq!(header(bytes, "MIME-Version"), ["1.0"]);
        let content_type = header(bytes, "Content-Type");
        assert_eq!(content_type.len(), 1);
        assert!(
            content_type[0].starts_with("multipart/alternative;"),
            "{content_type:?}"
        );
        assert!(header(bytes, "DKIM-Signature").is_empty());

        let text = String::from_utf8(bytes.clone()).unwrap();
        let plain = text
            .find("Content-Type: text/plain; charset=utf-8")
            .expect("a text part");
        let html = text
            .find("Content-Type: text/html; charset=utf-8")
            .expect("an HTML part");
        assert!(plain < html, "text comes before HTML");
        assert!(!text.contains("\r\n.\r\n") && text.lines().all(|l| l.len() <= 998));

        assert_eq!(built.message_id, id);
        assert_eq!(built.from, "success@acme.example");
        assert_eq!(built.to, "pat@client.example");
    }

    #[test]
    fn message_ids_are_unique_and_well_formed() {
        let setup = Setup::new();
        setup.survey("", "");
        let config = setup.config();
        let ids: HashSet<String> = (0..1000).map(|_| new_message_id(&config, now())).collect();
        assert_eq!(ids.len(), 1000);
        let later = now() + chrono::Duration::microseconds(1);
        assert!(new_message_id(&config, now()) < new_message_id(&config, later));
        for id in ids.iter().take(3) {
            assert!(
                id.starts_with("<winback.")
                    && id.ends_with("@acme.example>")
                    && id.len() == 9 + 13 + 1 + 32 + 14,
                "{id}"
            );
        }
    }

    #[test]
    fn bad_header_values_are_refused() {
        let setup = Setup::new();
        setup.survey("", "");
        let config = setup.config();
        let rendered = Rendered {
            subject: "s".to_string(),
            text: "t".to_string(),
            html: "h".to_string(),
        };
        let client = client();
        let renderer = setup.renderer();
        let url = "https://winback.acme.example/u/T";
        for (id, url) in [
            ("<a@b>\r\nBcc: x@y", url),
            ("no-brackets@b", url),
            ("<a@b>", "https://x/u/T>\r\nBcc: x@y"),
            ("<a@b>", ""),
        ] {
            assert!(
                matches!(
                    renderer.build_message(&config, &rendered, &client, id, now(), url),
                    Err(RenderError::BadHeader { .. })
                ),
                "{id:?} {url:?}"
            );
        }
        let mut bad = client.clone();
        bad.email = "pat@client.example\r\nBcc: x@y".to_string();
        assert!(matches!(
            renderer.build_message(&config, &rendered, &bad, "<a@b>", now(), url),
            Err(RenderError::Recipient { .. })
        ));
    }

    #[test]
    fn load_reports_a_template_without_unsubscribe_url_or_postal_address() {
        let setup = Setup::new();
        setup.template(
            "survey",
            "<p>{{sender.postal_address}}</p>",
            "{{unsubscribe_url}}\n",
        );
        let problems = setup.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].file.ends_with("survey.html.hbs"));
        assert!(
            problems[0].message.contains("add {{unsubscribe_url}}"),
            "{}",
            problems[0]
        );
        assert!(problems[1].file.ends_with("survey.txt.hbs"));
        assert!(
            problems[1]
                .message
                .contains("add {{sender.postal_address}}"),
            "{}",
            problems[1]
        );
    }

    #[test]
    fn load_reports_missing_files_and_syntax_errors() {
        let setup = Setup::new();
        fs::write(
            setup.dir.path().join("templates/survey.txt.hbs"),
            format!("Hello\n{{{{#if first_name}}\n{FOOTER_TEXT}"),
        )
        .unwrap();
        let problems = setup.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].file.ends_with("templates/survey.html.hbs"),
            "{}",
            problems[0]
        );
        assert_eq!(problems[0].key, "campaign[1].step[1].template");
        assert!(
            problems[0].message.contains("does not exist"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].file.ends_with("templates/survey.txt.hbs"),
            "{}",
            problems[1]
        );
        assert_eq!(problems[1].line, Some(2), "{}", problems[1]);
        assert!(
            problems[1]
                .message
                .contains("the tag {{#if first_name} is not finished"),
            "{}",
            problems[1]
        );

        let config = setup.config_with("", "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"Hi {{#if}}\"\n").unwrap();
        let problems = Renderer::load(&config).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.key == "campaign[1].step[1].subject"
                    && p.file == config.file
                    && p.line.is_some()),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_template_shared_by_two_steps_is_reported_once() {
        let setup = Setup::new();
        setup.template("survey", "<p>{{oops}}</p>", "x");
        let step = |kind: &str, after: &str| {
            format!(
                "[[campaign.step]]\nkind = \"{kind}\"\n{after}template = \"survey\"\nsubject = \"s\"\n"
            )
        };
        let config = setup
            .config_with(
                "",
                &(step("survey", "") + &step("newsletter", "after_days = 30\n")),
            )
            .unwrap();
        let problems = Renderer::load(&config).unwrap_err();
        let oops = problems
            .iter()
            .filter(|p| p.message.contains("oops"))
            .count();
        assert_eq!(oops, 1, "{problems:#?}");
    }

    #[test]
    fn dkim_signs_with_rsa_pkcs1_pkcs8_and_ed25519() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        let keys = [
            ("rsa1.pem", RSA_PKCS1.to_string(), "rsa"),
            ("rsa8.pem", rsa_pkcs8(), "rsa"),
            ("ed.pem", ed25519_pkcs8([42; 32]), "ed25519"),
        ];
        for (file, pem, algorithm) in keys {
            fs::write(setup.dir.path().join(file), pem).unwrap();
            let config = setup.signing_config(file);
            let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{file}: {p:#?}"));
            let client = client();
            let rendered = renderer
                .render(&config.campaigns[0], 1, &vars(&client))
                .unwrap();
            let built = built(&renderer, &config, &rendered, &client);
            let signature = header(&built.bytes, "DKIM-Signature");
            assert_eq!(signature.len(), 1, "{file}");
            let signature = signature[0].replace(' ', "");
            assert!(
                signature.contains(&format!("a={algorithm}-sha256;")),
                "{signature}"
            );
            assert!(
                signature.contains("d=acme.example;") && signature.contains("s=winback;"),
                "{signature}"
            );
            assert!(signature.contains("c=relaxed/relaxed;"), "{signature}");
            assert!(signature.contains("h=from:to:subject:date:message-id:mime-version:list-unsubscribe:list-unsubscribe-post;"), "{signature}");
            assert!(!signature.ends_with("b="), "{signature}");
        }
    }

    #[test]
    fn the_dkim_key_is_read_once_at_load() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        let key = setup.dir.path().join("key.pem");
        fs::write(&key, ed25519_pkcs8([7; 32])).unwrap();
        let config = setup.signing_config("key.pem");
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
        // Gone after the daemon started (a botched key rotation): messages are still
        // signed, rather than failing to render and ending their sequences.
        fs::remove_file(&key).unwrap();
        let client = client();
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        let built = built(&renderer, &config, &rendered, &client);
        assert_eq!(header(&built.bytes, "DKIM-Signature").len(), 1);
    }

    #[test]
    fn load_reports_an_unusable_dkim_key() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        for (content, expected) in [
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                "not a private key",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
                "not valid PEM",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "not a PKCS#8",
            ),
            ("hello", "not a PEM key"),
        ] {
            fs::write(setup.dir.path().join("key.pem"), content).unwrap();
            let config = setup.signing_config("key.pem");
            let problems = Renderer::load(&config).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert_eq!(problems[0].key, "dkim.key_file");
            assert!(
                problems[0].message.contains(expected),
                "{expected}: {}",
                problems[0]
            );
        }
        assert!(signing_key(&BASE64.encode([9u8; 32])).is_ok());
    }

    #[test]
    fn der_reader_never_panics() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x05, 1],
            &[0x30, 0x80],
        ] {
            assert!(pkcs8(bytes).is_none());
        }
    }

    #[test]
    fn one_line_collapses_breaks_only() {
        assert_eq!(one_line("a\r\nb"), "a b");
        assert_eq!(one_line("a \r\n\t b"), "a b");
        assert_eq!(one_line("a  b"), "a  b");
        assert_eq!(one_line("\n a\u{0085}b\u{2029}c \n"), "a b c");
        assert_eq!(one_line("\r\n"), "");
    }

    #[test]
    fn renderer_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Renderer>();
    }

    #[test]
    fn unknown_step_is_an_error() {
        let setup = Setup::new();
        setup.survey("", "");
        let config = setup.config();
        let renderer = Renderer::load(&config).unwrap();
        let client = client();
        assert!(matches!(
            renderer.render(&config.campaigns[0], 2, &vars(&client)),
            Err(RenderError::UnknownStep { step: 2, .. })
        ));
        assert!(matches!(
            renderer.render(&config.campaigns[0], 0, &vars(&client)),
            Err(RenderError::UnknownStep { .. })
        ));
    }

    /// The shipped templates/ folder, with a config like the shipped one.
    fn shipped_config(dir: &Path) -> Config {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let path = dir.join("winback.toml");
        let text = format!(
            r#"
[smtp]
from = "Acme Customer Success <success@acme.example>"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme Analytics"
postal_address = "100 Market Street, Suite 300, San Francisco, CA 94105, USA"

[templates]
dir = "{}"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "{{{{#if first_name}}}}{{{{first_name}}}}, may{{{{else}}}}May{{{{/if}}}} we ask why you left?"

[[campaign.step]]
kind = "newsletter"
after_days = 45
template = "newsletter"
subject = "What changed at {{{{sender.company}}}} this season"

[[campaign.step]]
kind = "article"
after_days = 45
template = "article"
subject = "Something you might find useful"

[[campaign.step]]
kind = "whitepaper"
after_days = 60
template = "whitepaper"
subject = "Our report, no strings attached"

[[campaign.step]]
kind = "greeting"
after_days = 90
template = "greeting"
subject = "Season's greetings from {{{{sender.company}}}}"
"#,
            templates.display().to_string().replace('\\', "\\\\")
        );
        fs::write(&path, &text).unwrap();
        Config::parse(&path, &text).unwrap()
    }

    #[test]
    fn shipped_templates_load_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_config(dir.path());
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
        // Only the placeholders the operator is meant to replace.
        for warning in renderer.warnings() {
            assert!(warning.message.contains("placeholder"), "{warning}");
        }
        let campaign = &config.campaigns[0];
        for client in [
            sample_client(),
            ClientRecord {
                name: None,
                company: None,
                fields: BTreeMap::new(),
                ..sample_client()
            },
        ] {
            for step in 1..=campaign.steps.len() as u32 {
                let vars = Vars {
                    client: &client,
                    unsubscribe_url: "https://winback.acme.example/u/TOKEN".to_string(),
                    survey_url: "https://winback.acme.example/s/TOKEN".to_string(),
                    now: now(),
                };
                let rendered = renderer
                    .render(campaign, step, &vars)
                    .unwrap_or_else(|e| panic!("step {step}: {e}"));
                for body in [&rendered.text, &rendered.html] {
                    assert!(
                        body.contains("https://winback.acme.example/u/TOKEN"),
                        "step {step}"
                    );
                    assert!(body.contains("100 Market Street"), "step {step}");
                    assert!(body.contains("Acme Analytics"), "step {step}");
                    assert!(!body.contains("{{"), "step {step}");
                }
                if step == 1 {
                    assert!(
                        rendered
                            .text
                            .contains("https://winback.acme.example/s/TOKEN")
                    );
                    assert!(
                        rendered
                            .html
                            .contains("https://winback.acme.example/s/TOKEN")
                    );
                    assert!(
                        rendered.text.contains("not sent in error"),
                        "{}",
                        rendered.text
                    );
                }
                let built = renderer
                    .build_message(
                        &config,
                        &rendered,
                        &client,
                        &new_message_id(&config, now()),
                        now(),
                        &vars.unsubscribe_url,
                    )
                    .unwrap();
                assert!(!built.bytes.is_empty());
            }
        }
    }
}
