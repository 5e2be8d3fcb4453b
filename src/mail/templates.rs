//! Compiling and rendering: reads the handlebars files the campaigns name (refusing any
//! whose rendering could overflow the stack, see `lint`), renders each step at load for
//! a sample client of each churn reason its campaign can reach (see `reasons`) so that
//! `check` sees what `run` would, and renders one step for one client. The [`Renderer`] also holds the DKIM signers read at load and hands them to
//! `message` to build the signed message.
//!
//! Only the HTML part is HTML-escaped; the subject and the text part are not, and the
//! subject is made one line. Reads only the template files and the DKIM keys; never
//! reads the clock (`now` is an argument) and sends nothing.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use handlebars::{Handlebars, RenderErrorReason, no_escape};
use serde_json::{Value, json};

use super::dkim;
use super::header::one_line;
use super::lint::{self, Weight};
use super::message::{self, Origin, Part, RenderError, Rendered};
use super::reasons;
use super::sample::{sample_client, sample_links, sample_now};
use super::template_blocks::unclosed_block;
use crate::config::{Campaign, Config, Problem};
use crate::domain::model::{ChurnedAt, ClientRecord, StepKind};
use crate::mailer::OutgoingMessage;

/// The values a step is rendered with, besides the campaign, step and sender.
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    pub client: &'a ClientRecord,
    pub unsubscribe_url: String,
    pub survey_url: String,
    /// The daemon's clock, for `months_since_churn`.
    pub now: DateTime<Utc>,
}

/// The compiled templates of every step of every campaign of one configuration.
#[derive(Debug)]
pub(crate) struct Renderer {
    /// `NAME.html.hbs` files, registered under their file name; escapes HTML.
    html: Handlebars<'static>,
    /// `NAME.txt.hbs` files and subjects; no escaping.
    text: Handlebars<'static>,
    steps: HashMap<(String, u32), StepTemplates>,
    sender: crate::config::Sender,
    /// The DKIM signers (one or two keys), read once at load: a key file that becomes
    /// unreadable later must not make every message fail to render (which would end
    /// their sequences).
    pub(super) dkim: Vec<dkim::Signer>,
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

impl Renderer {
    /// Compiles every step's subject, `NAME.html.hbs` and `NAME.txt.hbs` from
    /// `config.templates_dir`, renders each against [`sample_client`], and checks the DKIM
    /// key. Returns every problem found, each naming the file, line when known, the
    /// campaign/step key and the fix.
    ///
    /// The sample client cannot know the CSV's custom columns, so a `{{fields.X}}` it
    /// lacks is not an error here but a [warning](Renderer::warnings); rendering for a
    /// real client without that column fails with [`RenderError::Template`].
    pub(crate) fn load(config: &Config) -> Result<Renderer, Vec<Problem>> {
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
                        unclosed_block(&step.subject)
                            .map_or_else(|| lint::syntax_message(&e), |(_, message)| message)
                    })
                    .and_then(|()| {
                        match text.get_template(&templates.subject).map(lint::stack_risk) {
                            Some(Some((_, message))) => Err(message),
                            _ => Ok(()),
                        }
                    });
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
        // Registry name → the campaigns using it and the reasons their clients can have,
        // for the reason literals no client can match.
        let mut reached: HashMap<String, Reach> = HashMap::new();
        for (ci, campaign) in config.campaigns.iter().enumerate() {
            let literals: Vec<String> = (1..=campaign.steps.len() as u32)
                .filter_map(|number| renderer.steps.get(&(campaign.name.clone(), number)))
                .flat_map(|templates| renderer.reason_literals(templates))
                .map(|(_, _, literal)| literal)
                .collect();
            let render_for = reasons::reachable(config, campaign, &literals);
            let known = reasons::reachable(config, campaign, &[]);
            for number in 1..=campaign.steps.len() as u32 {
                let Some(templates) = renderer.steps.get(&(campaign.name.clone(), number)) else {
                    continue;
                };
                let key = format!("campaign[{}].step[{number}]", ci + 1);
                for part in [Part::Subject, Part::Html, Part::Text] {
                    let (name, file, line, part_key) = match part {
                        Part::Subject => (
                            &templates.subject,
                            config.file.clone(),
                            Some(config_step_line(campaign, number)),
                            templates.subject.clone(),
                        ),
                        Part::Html => (
                            &templates.html,
                            config.templates_dir.join(&templates.html),
                            None,
                            format!("{key}.template"),
                        ),
                        Part::Text => (
                            &templates.text,
                            config.templates_dir.join(&templates.text),
                            None,
                            format!("{key}.template"),
                        ),
                    };
                    let reach = reached.entry(name.clone()).or_insert_with(|| Reach {
                        file,
                        line,
                        key: part_key,
                        campaigns: Vec::new(),
                        reasons: Vec::new(),
                    });
                    if !reach.campaigns.contains(&campaign.name) {
                        reach.campaigns.push(campaign.name.clone());
                    }
                    for reason in &known {
                        if !reach.reasons.contains(reason) {
                            reach.reasons.push(reason.clone());
                        }
                    }
                }
                renderer.check_step(
                    config,
                    campaign,
                    number,
                    &key,
                    &render_for,
                    &mut problems,
                    &mut warnings,
                    &mut placeholders,
                );
            }
        }
        renderer.unreachable_literals(&reached, &mut warnings);
        let signers = dkim::signers(config, &mut problems, &mut warnings);
        if !problems.is_empty() {
            return Err(dedup(problems));
        }
        renderer.dkim = signers;
        renderer.warnings = dedup(warnings);
        renderer.placeholders = dedup(placeholders);
        Ok(renderer)
    }

    /// The message for `to` (see `message::build`), signed with the DKIM key read at load.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build_message(
        &self,
        config: &Config,
        rendered: &Rendered,
        to: &ClientRecord,
        origin: &Origin<'_>,
        message_id: &str,
        date: DateTime<Utc>,
        unsubscribe_url: &str,
    ) -> Result<OutgoingMessage, RenderError> {
        message::build(
            config,
            &self.dkim,
            rendered,
            to,
            origin,
            message_id,
            date,
            unsubscribe_url,
        )
    }

    /// The notice to the team about `notice`, for `to` (`[inbound] notify`), signed as
    /// every message is.
    pub(crate) fn build_notice(
        &self,
        config: &Config,
        to: &lettre::message::Mailbox,
        notice: &crate::domain::notice::Notice,
        message_id: &str,
        date: DateTime<Utc>,
    ) -> Result<OutgoingMessage, RenderError> {
        super::notice::build(config, &self.dkim, to, notice, message_id, date)
    }

    /// Things worth a look that do not stop sending (printed by `check`): custom fields
    /// the templates need, a survey without its link.
    pub(crate) fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Steps that still hold a placeholder for the sample client. Such a message is held,
    /// never sent; `check` calls it an error when mail goes to a real server and a warning
    /// while it only goes to files.
    pub(crate) fn placeholders(&self) -> &[Problem] {
        &self.placeholders
    }

    /// Renders step `step` (1-based) of `campaign` for `vars.client`.
    pub(crate) fn render(
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

    /// Renders one step for a sample client of each reason in `reasons` (the churn
    /// reasons the campaign can reach) and reports what `check` must catch. What the
    /// sample's own reason (or the first) finds is reported as it is; what another reason
    /// adds, such as a missing value inside `{{#if (eq churn_reason "price")}}`, names the
    /// reasons it was found for.
    #[allow(clippy::too_many_arguments)] // three lists of findings, each its own severity
    fn check_step(
        &self,
        config: &Config,
        campaign: &Campaign,
        number: u32,
        key: &str,
        reasons: &[Option<String>],
        problems: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
        placeholders: &mut Vec<Problem>,
    ) {
        let sample = sample_client().churn_reason;
        let mut order: Vec<&Option<String>> = reasons.iter().filter(|r| **r == sample).collect();
        order.extend(reasons.iter().filter(|r| **r != sample));
        if order.is_empty() {
            order.push(&sample);
        }
        let mut first: Option<Vec<(Weight, Problem)>> = None;
        // Findings another reason adds, and the reasons that add each.
        let mut added: Vec<((Weight, Problem), Vec<&str>)> = Vec::new();
        for reason in order {
            let found = self.step_findings(config, campaign, number, key, reason.as_deref());
            let Some(base) = &first else {
                first = Some(found);
                continue;
            };
            for finding in found.into_iter().filter(|f| !base.contains(f)) {
                let shown = reason.as_deref().unwrap_or("");
                match added.iter_mut().find(|(f, _)| *f == finding) {
                    Some((_, reasons)) => reasons.push(shown),
                    None => added.push((finding, vec![shown])),
                }
            }
        }
        let added = added.into_iter().map(|((weight, mut problem), reasons)| {
            let quoted: Vec<String> = reasons.iter().map(|r| format!("\"{r}\"")).collect();
            problem.message = format!(
                "{} (for a client whose churn_reason is {})",
                problem.message,
                quoted.join(" or ")
            );
            (weight, problem)
        });
        for (weight, problem) in first.into_iter().flatten().chain(added) {
            match weight {
                Weight::Problem => problems.push(problem),
                Weight::Warning => warnings.push(problem),
                Weight::Placeholder => placeholders.push(problem),
            }
        }
    }

    /// What rendering one step for the sample client, with churn reason `reason`, finds.
    fn step_findings(
        &self,
        config: &Config,
        campaign: &Campaign,
        number: u32,
        key: &str,
        reason: Option<&str>,
    ) -> Vec<(Weight, Problem)> {
        let mut findings = Vec::new();
        let templates = &self.steps[&(campaign.name.clone(), number)];
        let mut client = sample_client();
        client.churn_reason = reason.map(str::to_string);
        let (unsubscribe_url, survey_url) = sample_links(config);
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
                            && let Some(column) = lint::custom_field(path)
                            && !client.fields.contains_key(&column)
                        {
                            findings.push((Weight::Warning, problem(
                                e.line_no,
                                format!(
                                    "uses {{{{fields.{column}}}}}: every client must have a \"{column}\" column in the CSV, or this step fails for them (wrap it in {{{{#if fields.{column}}}}}...{{{{/if}}}} to make it optional)"
                                ),
                            )));
                            client.fields.insert(column.clone(), format!("({column})"));
                            continue;
                        }
                        findings.push((
                            Weight::Problem,
                            problem(e.line_no, lint::render_message(&e)),
                        ));
                        break None;
                    }
                }
            };
            let Some(rendered) = rendered else { continue };
            let links = (unsubscribe_url.as_str(), survey_url.as_str());
            for (weight, line, message) in
                lint::sample_findings(config, templates.kind, part, &rendered, links, &file)
            {
                findings.push((weight, problem(line, message)));
            }
        }
        findings
    }

    /// Each reason literal of a step's templates, as (registry name, line, literal).
    fn reason_literals(&self, templates: &StepTemplates) -> Vec<(String, usize, String)> {
        [
            (&self.text, &templates.subject),
            (&self.html, &templates.html),
            (&self.text, &templates.text),
        ]
        .into_iter()
        .filter_map(|(registry, name)| Some((name, registry.get_template(name)?)))
        .flat_map(|(name, template)| {
            reasons::compared_literals(template)
                .into_iter()
                .map(move |(line, literal)| (name.clone(), line, literal))
        })
        .collect()
    }

    /// A warning for each comparison of `churn_reason` with a reason no client of the
    /// campaigns using that template can have: a typo (`"prize"`), or a CRM's own label
    /// that `[clients] reasons` does not map. Its branch never shows.
    fn unreachable_literals(&self, reached: &HashMap<String, Reach>, warnings: &mut Vec<Problem>) {
        let mut seen = HashSet::new();
        let mut names: Vec<&String> = reached.keys().collect();
        names.sort();
        for name in names {
            let reach = &reached[name];
            let registry = if name.ends_with(".html.hbs") {
                &self.html
            } else {
                &self.text
            };
            let Some(template) = registry.get_template(name) else {
                continue;
            };
            for (line, literal) in reasons::compared_literals(template) {
                let wanted = Some(literal.trim().to_lowercase());
                if reach.reasons.contains(&wanted)
                    || !seen.insert((name.clone(), line, literal.clone()))
                {
                    continue;
                }
                let mut theirs: Vec<&str> =
                    reach.reasons.iter().flatten().map(String::as_str).collect();
                theirs.sort();
                let campaigns: Vec<String> =
                    reach.campaigns.iter().map(|c| format!("\"{c}\"")).collect();
                let meant = reasons::closest(&literal, &theirs)
                    .map(|m| format!(" Did you mean \"{m}\"?"))
                    .unwrap_or_default();
                warnings.push(Problem {
                    file: reach.file.clone(),
                    line: reach.line.or(Some(line)),
                    key: reach.key.clone(),
                    message: format!(
                        "compares churn_reason with \"{literal}\", a reason no client of {} {} can have (theirs: {}), so that branch never shows.{meant} If your CRM uses \"{literal}\", map its label in [clients] reasons = {{ \"Label in the CRM\" = \"{literal}\" }}",
                        if campaigns.len() == 1 { "campaign" } else { "campaigns" },
                        campaigns.join(", "),
                        theirs.join(", "),
                    ),
                });
            }
        }
    }
}

/// Where a template is used: for the reason literals no client can match.
struct Reach {
    /// The file to name, and the line when the template is a subject (its step's line).
    file: std::path::PathBuf,
    line: Option<usize>,
    key: String,
    campaigns: Vec<String>,
    /// The reasons the clients of those campaigns can have.
    reasons: Vec<Option<String>>,
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
        .map_err(|e| match unclosed_block(&source) {
            Some((line, message)) => (Some(line), message),
            None => (e.pos().map(|(line, _)| line), lint::syntax_message(&e)),
        })?;
    match registry.get_template(name).map(lint::stack_risk) {
        Some(Some(problem)) => Err(problem),
        _ => Ok(()),
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
        message: lint::render_message(e),
    }
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
pub(super) fn first_name(client: &ClientRecord) -> String {
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
pub(super) fn months_since(churned_at: ChurnedAt, now: DateTime<Utc>, tz: Tz) -> u32 {
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
