//! Templates and messages: compiles the handlebars files the campaigns name (refusing
//! any whose rendering could overflow the stack), renders one step for one client, and
//! builds the signed MIME message (`To` and `Subject` written by `header`, signatures by
//! `dkim`). Whether a rendered message may go is `fitness`'s call.
//!
//! Only the HTML part is HTML-escaped; the subject and the text part are not, and the
//! subject can never carry a line break into the headers. Reads only the template files
//! and the DKIM keys; never reads the clock (`now` and `date` are arguments) and sends
//! nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use handlebars::{Handlebars, RenderErrorReason, no_escape};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use serde_json::{Value, json};

use crate::config::{Campaign, Config, Problem};
use crate::domain::model::{ChurnedAt, ClientRecord, StepKind};

mod dkim;
pub mod fitness;
mod header;
pub(crate) mod pages;
pub mod template_blocks;

/// Every name a template may use, for the message about a typo.
const VARIABLES: [&str; 16] = [
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
    "sender.privacy_url",
];

const TO_HEADER: HeaderName = HeaderName::new_from_ascii_str("To");
const SUBJECT_HEADER: HeaderName = HeaderName::new_from_ascii_str("Subject");
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
    /// The DKIM signers (one or two keys), read once at load: a key file that becomes
    /// unreadable later must not make every message fail to render (which would end
    /// their sequences).
    dkim: Vec<dkim::Signer>,
    warnings: Vec<Problem>,
    /// Steps whose sample still holds a `[EDIT: ...]` placeholder (see `placeholders`).
    placeholders: Vec<Problem>,
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
        let mut placeholders = Vec::new();
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
                let subject = text
                    .register_template_string(&templates.subject, &step.subject)
                    .map_err(|e| {
                        crate::mail::template_blocks::unclosed_block(&step.subject)
                            .map_or_else(|| syntax_message(&e), |(_, message)| message)
                    })
                    .and_then(
                        |()| match text.get_template(&templates.subject).map(stack_risk) {
                            Some(Some((_, message))) => Err(message),
                            _ => Ok(()),
                        },
                    );
                if let Err(message) = subject {
                    ok = false;
                    problems.push(Problem {
                        file: config.file.clone(),
                        line: Some(step.line),
                        key: templates.subject.clone(),
                        message,
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
            dkim: Vec::new(),
            warnings: Vec::new(),
            placeholders: Vec::new(),
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
                        &mut placeholders,
                    );
                }
            }
        }
        let mut signers = Vec::new();
        if let Some(dkim) = &config.dkim {
            let second = dkim
                .second
                .iter()
                .map(|second| ("dkim.second_key_file", &second.selector, &second.key_file));
            for (key, selector, path) in
                std::iter::once(("dkim.key_file", &dkim.selector, &dkim.key_file)).chain(second)
            {
                match signing_key_file(path) {
                    Ok(signing_key) if signing_key.rsa_bits().is_some_and(|bits| bits < 1024) => {
                        problems.push(Problem {
                            file: path.clone(),
                            line: None,
                            key: key.to_string(),
                            message: format!(
                                "is a {}-bit RSA key, too short to sign with; make a new one (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) and publish it",
                                signing_key.rsa_bits().unwrap_or_default()
                            ),
                        });
                    }
                    Ok(signing_key) => {
                        if let Some(bits) = signing_key.rsa_bits().filter(|&bits| bits < 2048) {
                            warnings.push(Problem {
                                file: path.clone(),
                                line: None,
                                key: key.to_string(),
                                message: format!(
                                    "is a {bits}-bit RSA key; receivers such as Gmail and Yahoo treat signatures with keys under 2048 bits as unsigned; make a new one (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) and publish it"
                                ),
                            });
                        }
                        signers.push(dkim::Signer {
                            selector: selector.clone(),
                            domain: dkim.domain.clone(),
                            key: signing_key,
                        });
                    }
                    Err(message) => problems.push(Problem {
                        file: path.clone(),
                        line: None,
                        key: key.to_string(),
                        message,
                    }),
                }
            }
        }

        if !problems.is_empty() {
            return Err(dedup(problems));
        }
        renderer.dkim = signers;
        renderer.warnings = dedup(warnings);
        renderer.placeholders = dedup(placeholders);
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
        build(
            config,
            &self.dkim,
            rendered,
            to,
            message_id,
            date,
            unsubscribe_url,
        )
    }

    /// Things worth a look that do not stop sending (printed by `check`): custom fields
    /// the templates need, a survey without its link.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Steps that still hold a placeholder for the sample client. Such a message is held,
    /// never sent; `check` calls it an error when mail goes to a real server and a warning
    /// while it only goes to files.
    pub fn placeholders(&self) -> &[Problem] {
        &self.placeholders
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
    #[allow(clippy::too_many_arguments)] // three lists of findings, each its own severity
    fn check_step(
        &self,
        config: &Config,
        campaign: &Campaign,
        number: u32,
        key: &str,
        problems: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
        placeholders: &mut Vec<Problem>,
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
            let shows = |value: &str| fitness::holds(&rendered, value, part == Part::Html);
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
                    if !shows(&unsubscribe_url) {
                        problems.push(problem(
                            None,
                            "the rendered message lacks the unsubscribe link; add {{unsubscribe_url}} (in the footer)".to_string(),
                        ));
                    }
                    let postal = &config.sender.postal_address;
                    if !shows(postal) {
                        problems.push(problem(
                            None,
                            "the rendered message lacks the sender's postal address (required by anti-spam law); add {{sender.postal_address}} (in the footer)".to_string(),
                        ));
                    }
                    if let Some(privacy) = &config.sender.privacy_url
                        && !shows(privacy)
                    {
                        warnings.push(problem(
                            None,
                            "does not link the privacy notice of [sender] privacy_url; add {{sender.privacy_url}} to the footer (the shipped templates show how)".to_string(),
                        ));
                    }
                    if templates.kind == StepKind::Survey && !shows(&survey_url) {
                        warnings.push(problem(
                            None,
                            "is a survey step but does not link the survey; add {{survey_url}}"
                                .to_string(),
                        ));
                    }
                }
            }
            if let Some(example) = fitness::placeholder(&rendered) {
                let count = fitness::placeholders(&rendered);
                // The line in the template file, where the operator will edit.
                let line = std::fs::read_to_string(&file).ok().and_then(|source| {
                    let at = source.find(fitness::PLACEHOLDER)?;
                    Some(source[..at].matches('\n').count() + 1)
                });
                placeholders.push(problem(
                    line,
                    format!(
                        "still contains {count} placeholder{} such as \"{example}\"; replace {} with your own text: until then this step is held, never sent",
                        if count == 1 { "" } else { "s" },
                        if count == 1 { "it" } else { "them" },
                    ),
                ));
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
        .map_err(
            |e| match crate::mail::template_blocks::unclosed_block(&source) {
                Some((line, message)) => (Some(line), message),
                None => (e.pos().map(|(line, _)| line), syntax_message(&e)),
            },
        )?;
    match registry.get_template(name).map(stack_risk) {
        Some(Some(problem)) => Err(problem),
        _ => Ok(()),
    }
}

/// How deep blocks, subexpressions and partial calls may nest in a template. Rendering
/// recurses once per level, and a delivery thread's stack (2 MiB) holds about a hundred
/// levels in a debug build: far more than any email needs.
const MAX_DEPTH: usize = 32;

/// Why rendering `template` could overflow the stack, with the line, if it could.
///
/// Handlebars has no depth limit: an inline partial that calls itself, directly or
/// through another, recurses until the stack overflows, and that aborts the process (it
/// cannot be caught); so does nesting blocks a few hundred deep. So both are refused
/// before anything renders: each partial call must name, literally, an inline partial
/// (`{{#*inline "name"}}`) of the same file, no inline partial may reach itself through
/// its calls, and nesting (partials expanded) stays within [`MAX_DEPTH`].
fn stack_risk(template: &handlebars::template::Template) -> Option<(Option<usize>, String)> {
    stack_risk_with(template, &[])
}

/// [`stack_risk`] for a template that may also call the partials named in `outside`
/// (registered from other files, such as the recipient pages' `layout`), each with a
/// partial block or a plain call, and `{{> @partial-block}}`. Those partials are checked
/// on their own, with `outside` empty, so none of them can call another or itself.
pub(crate) fn stack_risk_with(
    template: &handlebars::template::Template,
    outside: &[&str],
) -> Option<(Option<usize>, String)> {
    let mut partials = Partials {
        outside: outside.iter().map(|name| name.to_string()).collect(),
        ..Partials::default()
    };
    partials.walk(template, None, 0);
    if let Some(found) = partials.refused {
        return Some(found);
    }
    for scope in partials.scopes.values() {
        for (name, _, line) in &scope.calls {
            if !partials.scopes.contains_key(&Some(name.clone())) {
                return Some((
                    Some(*line),
                    format!(
                        "{{{{> {name}}}}} names no {{{{#*inline \"{name}\"}}}} of this file; only inline partials defined in the same file are supported"
                    ),
                ));
            }
        }
    }
    // Depth-first, each scope once (a partial called from many places is not walked again):
    // a call back to a scope still open is a circle; a finished one has its depth.
    let mut visits = HashMap::new();
    let mut names: Vec<Option<String>> = partials.scopes.keys().cloned().collect();
    names.sort();
    for name in &names {
        if let Err((found, line)) = expanded(name, &partials, &mut visits, &mut Vec::new()) {
            return Some((
                Some(line),
                format!(
                    "the inline partial \"{}\" calls itself ({}), so it would never finish; remove the call that closes the circle",
                    found[0],
                    found.join(" → ")
                ),
            ));
        }
    }
    let top = partials.scopes.get(&None)?;
    let deepest = match visits.get(&None) {
        Some(Visit::Done(depth)) => *depth,
        _ => top.deepest,
    };
    if deepest > MAX_DEPTH {
        let depth_of = |called: &String| match visits.get(&Some(called.clone())) {
            Some(Visit::Done(depth)) => *depth,
            _ => 0,
        };
        let line = top
            .calls
            .iter()
            .find(|(called, at, _)| at + depth_of(called) > MAX_DEPTH)
            .map_or(top.deepest_line, |(_, _, line)| *line);
        return Some((
            Some(line),
            format!(
                "nests blocks, helpers and partials {deepest} deep (at most {MAX_DEPTH}); rendering it could exhaust the memory set aside for it, so flatten it"
            ),
        ));
    }
    None
}

/// Where the walk of [`expanded`] is with one scope.
enum Visit {
    Open,
    /// Its depth, its partials expanded.
    Done(usize),
}

/// The depth of `scope` with every partial it calls expanded, or the circle of calls
/// (names in order, the first again at the end) and the line that closes it.
fn expanded(
    scope: &Option<String>,
    partials: &Partials,
    visits: &mut HashMap<Option<String>, Visit>,
    open: &mut Vec<String>,
) -> Result<usize, (Vec<String>, usize)> {
    match visits.get(scope) {
        Some(Visit::Done(depth)) => return Ok(*depth),
        // Callers look for an open scope (a circle) before they descend.
        Some(Visit::Open) => return Ok(0),
        None => {}
    }
    let Some(found) = partials.scopes.get(scope) else {
        return Ok(0);
    };
    visits.insert(scope.clone(), Visit::Open);
    if let Some(name) = scope {
        open.push(name.clone());
    }
    let mut deepest = found.deepest;
    for (called, at, line) in &found.calls {
        let key = Some(called.clone());
        if let Some(Visit::Open) = visits.get(&key) {
            let start = open.iter().position(|n| n == called).unwrap_or(0);
            let mut circle = open[start..].to_vec();
            circle.push(called.clone());
            return Err((circle, *line));
        }
        deepest = deepest.max(at + expanded(&key, partials, visits, open)?);
    }
    if scope.is_some() {
        open.pop();
    }
    visits.insert(scope.clone(), Visit::Done(deepest));
    Ok(deepest)
}

/// What [`stack_risk`] gathers from a template's syntax tree.
#[derive(Default)]
struct Partials {
    /// The file itself (`None`) and each inline partial defined in it.
    scopes: HashMap<Option<String>, Scope>,
    /// The first construct refused outright.
    refused: Option<(Option<usize>, String)>,
    /// How deep the walk is in the syntax tree (inline partials inside inline partials
    /// included), so that the walk itself stays shallow.
    nesting: usize,
    /// Partials of other files this template may call (see [`stack_risk_with`]).
    outside: Vec<String>,
}

/// One template or inline partial: how deep it nests of itself, and what it calls.
#[derive(Default)]
struct Scope {
    deepest: usize,
    deepest_line: usize,
    /// Partial called, the depth of the call, and its line.
    calls: Vec<(String, usize, usize)>,
}

impl Partials {
    fn walk(
        &mut self,
        template: &handlebars::template::Template,
        scope: Option<&str>,
        depth: usize,
    ) {
        use handlebars::template::{Parameter, TemplateElement};
        // A name written literally: `x`, `"x"`; not a computed one.
        let literal = |p: &Parameter| match p {
            Parameter::Name(n) => Some(n.clone()),
            Parameter::Path(_) => p.as_name().map(str::to_string),
            Parameter::Literal(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let key = scope.map(str::to_string);
        if self.nesting > 2 * MAX_DEPTH {
            self.refuse(
                template.mapping.first().map_or(1, |m| m.0),
                &format!("nests blocks and partials more than {MAX_DEPTH} deep; flatten it"),
            );
            return;
        }
        self.nesting += 1;
        for (index, element) in template.elements.iter().enumerate() {
            let line = template.mapping.get(index).map_or(1, |m| m.0);
            let here = depth + 1 + element_depth(element);
            let found = self.scopes.entry(key.clone()).or_default();
            if here > found.deepest {
                found.deepest = here;
                found.deepest_line = line;
            }
            if here > MAX_DEPTH {
                self.refuse(
                    line,
                    &format!(
                        "nests blocks and helpers more than {MAX_DEPTH} deep; rendering it could exhaust the memory set aside for it, so flatten it"
                    ),
                );
                break;
            }
            match element {
                TemplateElement::HelperBlock(block) => {
                    for part in [&block.template, &block.inverse].into_iter().flatten() {
                        self.walk(part, scope, depth + 1);
                    }
                }
                TemplateElement::DecoratorBlock(decorator) => {
                    if decorator.name.as_name() != Some("inline") {
                        if let Some(body) = &decorator.template {
                            self.walk(body, scope, depth + 1);
                        }
                        continue;
                    }
                    let Some(name) = decorator.params.first().and_then(literal) else {
                        self.refuse(
                            line,
                            "{{#*inline}} needs its name in quotes, e.g. {{#*inline \"footer\"}}",
                        );
                        continue;
                    };
                    self.scopes.entry(Some(name.clone())).or_default();
                    if let Some(body) = &decorator.template {
                        self.walk(body, Some(&name), 0);
                    }
                }
                TemplateElement::PartialBlock(call)
                    if literal(&call.name).is_some_and(|name| self.outside.contains(&name)) =>
                {
                    if let Some(body) = &call.template {
                        self.walk(body, scope, depth + 1);
                    }
                }
                TemplateElement::PartialExpression(call)
                    if literal(&call.name).is_some_and(|name| {
                        self.outside.contains(&name) || name == "@partial-block"
                    }) => {}
                TemplateElement::PartialBlock(_) => self.refuse(
                    line,
                    "partial blocks ({{#> name}}...{{/name}}) are not supported; call an inline partial with {{> name}}",
                ),
                TemplateElement::PartialExpression(call) => match literal(&call.name) {
                    Some(name) if !name.starts_with('@') => {
                        self.scopes
                            .entry(key.clone())
                            .or_default()
                            .calls
                            .push((name, depth + 1, line));
                    }
                    _ => self.refuse(
                        line,
                        "a partial's name must be written out, e.g. {{> footer}}, and name an inline partial of this file",
                    ),
                },
                _ => {}
            }
        }
        self.nesting -= 1;
    }

    fn refuse(&mut self, line: usize, message: &str) {
        self.refused
            .get_or_insert((Some(line), message.to_string()));
    }
}

/// How deep the subexpressions of one element nest: `{{x (a (b c))}}` is 2.
fn element_depth(element: &handlebars::template::TemplateElement) -> usize {
    use handlebars::template::{Parameter, TemplateElement};
    fn parameter(p: &Parameter) -> usize {
        match p {
            Parameter::Subexpression(sub) => 1 + element_depth(&sub.element),
            _ => 0,
        }
    }
    let (name, params, hash) = match element {
        TemplateElement::Expression(h)
        | TemplateElement::HtmlExpression(h)
        | TemplateElement::HelperBlock(h) => (&h.name, &h.params, &h.hash),
        TemplateElement::DecoratorExpression(d)
        | TemplateElement::DecoratorBlock(d)
        | TemplateElement::PartialExpression(d)
        | TemplateElement::PartialBlock(d) => (&d.name, &d.params, &d.hash),
        _ => return 0,
    };
    std::iter::once(name)
        .chain(params)
        .chain(hash.values())
        .map(parameter)
        .max()
        .unwrap_or(0)
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
/// headers, multipart/alternative (text, then HTML), signed by each of `signers` with
/// `t=` = `date`.
fn build(
    config: &Config,
    signers: &[dkim::Signer],
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
    // Written by `header`, not the builder: the builder neither folds a long word nor
    // encodes text that looks like an encoded word. The builder's `To` (the bare
    // address) gives the envelope; the raw header replaces its value in place.
    let to_value = header::mailbox("To", display_name.as_deref(), address.as_ref());
    let subject = one_line(&rendered.subject);
    let subject_value = header::subject(&subject);

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
    let message = builder
        .to(Mailbox::new(None, address.clone()))
        .raw_header(HeaderValue::dangerous_new_pre_encoded(
            TO_HEADER,
            address.to_string(),
            to_value,
        ))
        .raw_header(HeaderValue::dangerous_new_pre_encoded(
            SUBJECT_HEADER,
            subject,
            subject_value,
        ))
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
    let mut bytes = message.formatted();
    assert_one_recipient(&bytes)?;
    // Each signature covers the message without the others (none signs DKIM-Signature).
    let signatures: String = signers.iter().map(|s| s.sign(&bytes, date)).collect();
    bytes.splice(0..0, signatures.into_bytes());
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

/// The DKIM key in the file at `path`, or why it cannot be used.
fn signing_key_file(path: &Path) -> Result<dkim::Key, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot be read ({e})"))?;
    signing_key(&pem)
}

const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];
const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A DKIM key from the text of a key file: PEM PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`), PEM
/// PKCS#8 RSA or Ed25519 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes), or the
/// bare base64 of a 32-byte Ed25519 seed.
fn signing_key(text: &str) -> Result<dkim::Key, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    let unusable = |what: &str| {
        format!(
            "{what}; use an unencrypted PEM key (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048, or -algorithm ed25519)"
        )
    };
    let rsa = |key: Result<rsa::RsaPrivateKey, rsa::pkcs1::Error>| {
        key.map(|key| dkim::Key::Rsa(Box::new(key)))
            .map_err(|e| unusable(&format!("is not a valid RSA key ({e})")))
    };
    let ed25519 = |seed: &[u8]| match <[u8; 32]>::try_from(seed) {
        Ok(seed) => Ok(dkim::Key::Ed25519(Box::new(
            ed25519_dalek::SigningKey::from_bytes(&seed),
        ))),
        Err(_) => Err(unusable("is not a valid Ed25519 key")),
    };
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return rsa(rsa::RsaPrivateKey::from_pkcs1_pem(text.trim()));
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
            return match der_read(private) {
                Some((0x04, seed, [])) => ed25519(seed),
                _ => Err(unusable("is not a valid Ed25519 key")),
            };
        }
        if algorithm == RSA_OID {
            // The private key is a PKCS#1 RSAPrivateKey.
            return rsa(rsa::RsaPrivateKey::from_pkcs1_der(private));
        }
        return Err(unusable(
            "uses an algorithm DKIM does not support (only RSA and Ed25519)",
        ));
    }
    if text.contains("-----BEGIN") {
        return Err(unusable("is not a private key winback can read"));
    }
    match BASE64.decode(text.trim()) {
        Ok(seed) if seed.len() == 32 => ed25519(&seed),
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

    /// Too short to sign with.
    const RSA_512: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIBOwIBAAJBAN7XskP5BOZv4DkVYawelpwffkEY3E8L/RcrNVCpSpKijqim00yi
IqpGyTptMqe3BtPa8FTTuqRtUK1CDbcLS6UCAwEAAQJBAIbrMyxCVbwrGieVkXhD
YM6PpsJFCgX17Tsc1v/KL7NNBQCFdCBclSbhKKtkexUf6AbHiiYcR8oIgkN9hE9G
PqECIQD4RRLHSSd1aXyCYNGtm+RVdFcMrx6oOZI/nCyk3tYYaQIhAOXH8hV1znm+
3mV0JVo1fRifdidkqGHHVwrFEfp+p1HdAiEAlEd87bWNcZytFpmI4e2ntDol+5dj
8glghclbCKVmrXECICT8cy4bIVodbATeliiYFYPCHy2mGShsAsm8APHWMy6NAiAd
UJT8nnsfHbWj9Pp1ysuADEtVYP0v9mPKpaNlifNQaA==
-----END RSA PRIVATE KEY-----
";

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

    /// The header block's lines as sent (folded), and each header unfolded and decoded.
    fn raw_header_lines(bytes: &[u8]) -> Vec<String> {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap().to_string();
        head.split("\r\n").map(str::to_string).collect()
    }

    #[test]
    fn a_giant_word_or_an_encoded_word_in_a_name_keeps_every_line_short_and_literal() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        let config = setup.config();
        let renderer = Renderer::load(&config).unwrap();
        let giant = "W".repeat(1200);
        let trap = "=?utf-8?q?Bob=0D=0ABcc=3A_x@evil.example?=";
        for name in [
            format!("{giant} Smith"),
            format!("{trap} Smith"),
            format!("Zoë {giant}"),
        ] {
            let mut client = client();
            client.name = Some(name.clone());
            let rendered = renderer
                .render(&config.campaigns[0], 1, &vars(&client))
                .unwrap();
            let built = built(&renderer, &config, &rendered, &client);
            for line in raw_header_lines(&built.bytes) {
                assert!(line.len() <= 998, "{} octets: {line:.100}", line.len());
                assert!(!line.contains(trap), "{line}");
            }
            let text = String::from_utf8(built.bytes.clone()).unwrap();
            assert!(text.lines().all(|l| l.len() <= 998));
            let to = header(&built.bytes, "To");
            let subject = header(&built.bytes, "Subject");
            assert_eq!((to.len(), subject.len()), (1, 1));
            let shown = header::tests::displayed(&to[0]);
            assert_eq!(
                shown
                    .trim_end_matches("<pat@client.example>")
                    .trim_end()
                    .trim_matches('"'),
                name
            );
            assert_eq!(
                header::tests::displayed(&subject[0]),
                format!("{}, may we ask why you left?", first_name(&client))
            );
        }
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
            // Each name once more than it appears: an added header breaks the signature.
            assert!(signature.contains("h=from:from:reply-to:to:to:cc:subject:subject:date:date:message-id:message-id:mime-version:mime-version:content-type:content-type:list-unsubscribe:list-unsubscribe:list-unsubscribe-post:list-unsubscribe-post;"), "{signature}");
            // The daemon's clock (the Date header's), not the system's.
            assert!(
                signature.contains(&format!("t={};", now().timestamp())),
                "{signature}"
            );
            assert!(!signature.ends_with("b="), "{signature}");
            let public = dkim::tests::Public::of(&renderer.dkim[0].key);
            dkim::tests::verify(&built.bytes, 0, &public).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }

    /// An RSA and an Ed25519 key together: two signatures, each verifying with its own
    /// key and selector. A key under 2048 bits is a warning, not an error.
    #[test]
    fn dkim_signs_twice_with_a_second_key_and_warns_about_a_short_rsa_key() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        fs::write(setup.dir.path().join("rsa.pem"), dkim::tests::RSA_1024).unwrap();
        fs::write(setup.dir.path().join("ed.pem"), ed25519_pkcs8([3; 32])).unwrap();
        let extra = "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = \"rsa.pem\"\nsecond_selector = \"winback-ed\"\nsecond_key_file = \"ed.pem\"\n";
        let step = format!(
            "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
        );
        let config = setup.config_with(extra, &step).unwrap();
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
        let short: Vec<&Problem> = renderer
            .warnings()
            .iter()
            .filter(|w| w.key == "dkim.key_file")
            .collect();
        assert_eq!(short.len(), 1, "{:#?}", renderer.warnings());
        assert!(
            short[0].message.contains("1024-bit RSA key"),
            "{}",
            short[0]
        );
        assert!(short[0].message.contains("2048"), "{}", short[0]);
        assert!(short[0].file.ends_with("rsa.pem"));

        let client = client();
        let rendered = renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap();
        let built = built(&renderer, &config, &rendered, &client);
        let signatures = header(&built.bytes, "DKIM-Signature");
        assert_eq!(signatures.len(), 2, "{signatures:#?}");
        let compact: Vec<String> = signatures.iter().map(|s| s.replace(' ', "")).collect();
        assert!(compact[0].contains("a=rsa-sha256;") && compact[0].contains("s=winback;"));
        assert!(compact[1].contains("a=ed25519-sha256;") && compact[1].contains("s=winback-ed;"));
        for (index, signer) in renderer.dkim.iter().enumerate() {
            let public = dkim::tests::Public::of(&signer.key);
            dkim::tests::verify(&built.bytes, index, &public)
                .unwrap_or_else(|e| panic!("signature {index}: {e}"));
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
            (RSA_512, "512-bit RSA key, too short to sign with"),
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
        shipped_config_with(dir, "")
    }

    /// `shipped_config` with `sender` added to its `[sender]` section.
    fn shipped_config_with(dir: &Path, sender: &str) -> Config {
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
{sender}

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
    fn a_partial_that_can_call_itself_is_refused_before_anything_renders() {
        // Rendering any of these would overflow the stack and abort the process: `load`
        // returning at all shows that it refused them unrendered.
        for (html, expected) in [
            (
                r#"{{#*inline "x"}}{{> x}}{{/inline}}{{> x}}"#,
                "the inline partial \"x\" calls itself (x → x)",
            ),
            (
                r#"{{#*inline "a"}}{{#if first_name}}{{> b}}{{/if}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#,
                "the inline partial \"a\" calls itself (a → b → a)",
            ),
            (
                "{{> survey.html.hbs}}",
                "{{> survey.html.hbs}} names no {{#*inline \"survey.html.hbs\"}} of this file",
            ),
            (
                r#"{{#*inline "x"}}{{> (concat "x")}}{{/inline}}{{> x}}"#,
                "a partial's name must be written out",
            ),
            (r#"{{#> x}}{{> x}}{{/x}}"#, "partial blocks"),
        ] {
            let setup = Setup::new();
            setup.survey(&format!("<p>\n{html}</p>"), "Hello");
            let problems = setup.problems();
            assert_eq!(problems.len(), 1, "{html}: {problems:#?}");
            let p = &problems[0];
            assert!(p.message.contains(expected), "{html}: {p}");
            assert!(p.file.ends_with("templates/survey.html.hbs"), "{p}");
            assert_eq!(p.line, Some(2), "{p}");
        }
        // In the subject too.
        let setup = Setup::new();
        setup.survey("", "");
        let step = r#"[[campaign.step]]
kind = "survey"
template = "survey"
subject = '{{#*inline "s"}}{{> s}}{{/inline}}{{> s}}'
"#;
        let problems = Renderer::load(&setup.config_with("", step).unwrap()).unwrap_err();
        assert!(
            problems[0].message.contains("calls itself"),
            "{problems:#?}"
        );
        assert_eq!(problems[0].key, "campaign[1].step[1].subject");
    }

    #[test]
    fn nesting_deeper_than_a_stack_holds_is_refused_unrendered() {
        let nested =
            |n: usize| format!("{}x{}", "{{#if first_name}}".repeat(n), "{{/if}}".repeat(n));
        let setup = Setup::new();
        setup.survey(&nested(20), "Hello");
        setup.renderer();
        for html in [
            nested(40),
            nested(200),
            // Shallow each, deep once the partials are expanded.
            (0..20)
                .map(|i| format!("{{{{#*inline \"p{i}\"}}}}{{{{#if first_name}}}}{{{{> p{}}}}}{{{{/if}}}}{{{{/inline}}}}", i + 1))
                .collect::<String>()
                + "{{#*inline \"p20\"}}end{{/inline}}{{> p0}}",
            // Each partial called twice by the one before: found deep at once, without
            // walking the 2^60 paths.
            (0..60)
                .map(|i| format!("{{{{#*inline \"p{i}\"}}}}{{{{> p{0}}}}}{{{{> p{0}}}}}{{{{/inline}}}}", i + 1))
                .collect::<String>()
                + "{{#*inline \"p60\"}}end{{/inline}}{{> p0}}",
        ] {
            let setup = Setup::new();
            setup.survey(&html, "Hello");
            let problems = setup.problems();
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert!(problems[0].message.contains("deep"), "{}", problems[0]);
        }
    }

    #[test]
    fn an_inline_partial_that_ends_still_renders() {
        let setup = Setup::new();
        setup.template(
            "survey",
            r#"{{#*inline "footer"}}{{unsubscribe_url}} {{sender.postal_address}}{{/inline}}<p>Hi</p>{{> footer}}{{> footer}}"#,
            FOOTER_TEXT,
        );
        let rendered = render(&setup, &client()).unwrap();
        assert_eq!(
            rendered.html.matches("1 Main Street").count(),
            2,
            "{}",
            rendered.html
        );
    }

    #[test]
    fn shipped_templates_load_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_config(dir.path());
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
        // Only the placeholders the operator is meant to replace, listed apart.
        assert_eq!(renderer.warnings(), &[], "{:#?}", renderer.warnings());
        let placeholders: Vec<String> = renderer
            .placeholders()
            .iter()
            .map(|p| p.file.display().to_string())
            .collect();
        for name in ["newsletter", "article", "whitepaper"] {
            assert!(
                placeholders.iter().any(|f| f.contains(name)),
                "{name}: {placeholders:?}"
            );
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

    /// Every step of the shipped campaign, rendered for the sample client.
    fn shipped_renders(config: &Config) -> Vec<(StepKind, Rendered)> {
        let renderer = Renderer::load(config).unwrap_or_else(|p| panic!("{p:#?}"));
        let campaign = &config.campaigns[0];
        let client = sample_client();
        (1..=campaign.steps.len() as u32)
            .map(|step| {
                let vars = Vars {
                    client: &client,
                    unsubscribe_url: "https://winback.acme.example/u/TOKEN".to_string(),
                    survey_url: "https://winback.acme.example/s/TOKEN".to_string(),
                    now: now(),
                };
                let rendered = renderer.render(campaign, step, &vars).unwrap();
                (campaign.steps[step as usize - 1].kind, rendered)
            })
            .collect()
    }

    /// The first contact says in its body, not only in the footer, that one click stops
    /// all mail, and links it there.
    #[test]
    fn the_survey_body_says_one_click_stops_all_mail() {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_config(dir.path());
        let (kind, survey) = &shipped_renders(&config)[0];
        assert_eq!(*kind, StepKind::Survey);
        let url = "https://winback.acme.example/u/TOKEN";
        let (body, footer) = survey.text.split_once("\n--\n").expect("a text footer");
        assert!(footer.contains(url));
        assert!(body.contains(url), "{body}");
        assert!(body.contains("one click"), "{body}");
        assert!(body.contains("stops every email from us"), "{body}");
        let (body, _) = survey
            .html
            .split_once("border-top")
            .expect("an HTML footer");
        assert!(body.contains(&format!("<a href=\"{url}\"")), "{body}");
        assert!(body.contains("stops every email from us"), "{body}");
    }

    #[test]
    fn privacy_url_adds_a_link_to_every_shipped_footer() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://acme.example/privacy";
        let config = shipped_config_with(dir.path(), &format!("privacy_url = \"{url}\""));
        for (kind, rendered) in shipped_renders(&config) {
            let (_, footer) = rendered.text.split_once("\n--\n").expect("a text footer");
            assert!(
                footer.contains(&format!("How we handle your data: {url}\n")),
                "{kind:?}: {footer}"
            );
            let (_, footer) = rendered
                .html
                .split_once("border-top")
                .expect("an HTML footer");
            assert!(
                footer.contains(&format!("<a href=\"{url}\"")),
                "{kind:?}: {footer}"
            );
        }
        let config = shipped_config(dir.path());
        for (kind, rendered) in shipped_renders(&config) {
            for part in [&rendered.text, &rendered.html] {
                assert!(!part.contains("How we handle your data"), "{kind:?}");
            }
        }
    }

    /// With `privacy_url` set, `check` warns about a template that does not link it.
    #[test]
    fn load_warns_about_a_template_without_the_privacy_link() {
        let setup = Setup::new();
        setup.survey("<p>Hi</p>", "Hi");
        let mut config = setup.config();
        let privacy = |renderer: &Renderer| -> Vec<Problem> {
            renderer
                .warnings()
                .iter()
                .filter(|w| w.message.contains("privacy"))
                .cloned()
                .collect()
        };
        assert!(privacy(&Renderer::load(&config).unwrap()).is_empty());
        config.sender.privacy_url = Some("https://acme.example/privacy".to_string());
        let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
        let warnings = privacy(&renderer);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        for (warning, file) in warnings.iter().zip(["survey.html.hbs", "survey.txt.hbs"]) {
            assert!(warning.file.ends_with(file), "{warning}");
            assert!(
                warning.message.contains("{{sender.privacy_url}}"),
                "{warning}"
            );
        }
    }

    /// WCAG 2 contrast ratio of two `#rrggbb` colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let luminance = |hex: &str| {
            let hex = hex.trim_start_matches('#');
            let channel = |i: usize| {
                let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
                if c <= 0.04045 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
        };
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// Every `#rrggbb` after `key` in `text`.
    fn colours_after<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.match_indices(key)
            .filter_map(|(at, _)| {
                let rest = text[at + key.len()..].trim_start();
                rest.get(..7).filter(|c| c.starts_with('#'))
            })
            .collect()
    }

    /// Text in the shipped emails and pages reaches WCAG AA (4.5:1) on its background:
    /// the emails are white; the pages' small print uses --muted, light and dark.
    #[test]
    fn shipped_text_colours_meet_wcag_aa() {
        assert!((contrast("#777777", "#ffffff") - 4.48).abs() < 0.01);
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".html.hbs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                colours_after(&text, "background:"),
                ["#ffffff"],
                "{}",
                path.display()
            );
            for colour in colours_after(&text, "color:") {
                let ratio = contrast(colour, "#ffffff");
                assert!(ratio >= 4.5, "{}: {colour} is {ratio:.2}:1", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 15, "{checked}");

        let layout = std::fs::read_to_string(dir.join("pages/layout.hbs")).unwrap();
        let muted = colours_after(&layout, "--muted:");
        assert_eq!(muted.len(), 2, "{layout}");
        // Canvas in light mode; the lightest dark Canvas of the common browsers.
        assert!(
            contrast(muted[0], "#ffffff") >= 4.5,
            "{}",
            contrast(muted[0], "#ffffff")
        );
        assert!(
            contrast(muted[1], "#2b2a33") >= 4.5,
            "{}",
            contrast(muted[1], "#2b2a33")
        );
        for rule in [".note {", "footer {"] {
            let line = layout
                .lines()
                .find(|l| l.trim_start().starts_with(rule))
                .unwrap();
            assert!(line.contains("color: var(--muted)"), "{line}");
        }
        assert!(
            !layout.contains(" color: GrayText"),
            "GrayText is 3.9:1 on white"
        );
    }
}
