//! Template checks in words a marketer can act on: what in a template's structure could
//! overflow the stack when it renders ([`stack_risk`]: circles of partials, nesting too
//! deep), handlebars' syntax and strict-mode failures, what the sample rendering of one
//! part lacks (the unsubscribe link, the postal address, the survey link, a subject) or
//! still holds (a placeholder), and the one way a list of template problems is written.
//!
//! Compiles and renders nothing itself: it reads the syntax trees and rendered text it is
//! given (and the template file, for a placeholder's line).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use handlebars::RenderErrorReason;

use super::fitness;
use super::header::one_line;
use super::message::Part;
use crate::config::{Config, Problem};
use crate::domain::model::StepKind;

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
pub(super) fn stack_risk(
    template: &handlebars::template::Template,
) -> Option<(Option<usize>, String)> {
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

pub(super) fn syntax_message(e: &handlebars::TemplateError) -> String {
    match e.pos() {
        Some((_, column)) => format!("handlebars syntax error at column {column}: {}", e.reason()),
        None => format!("handlebars syntax error: {}", e.reason()),
    }
}

/// A strict-mode or helper failure in plain words.
pub(super) fn render_message(e: &handlebars::RenderError) -> String {
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

/// The column of a `fields.COLUMN` path (`fields.plan`, `fields.[Plan Name]`).
pub(super) fn custom_field(path: &str) -> Option<String> {
    let column = path.strip_prefix("fields.")?;
    let column = column
        .strip_prefix('[')
        .and_then(|c| c.strip_suffix(']'))
        .unwrap_or(column);
    Some(column.to_string())
}

/// How much a finding about the sample rendering weighs (see `Renderer::warnings` and
/// `Renderer::placeholders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Weight {
    /// Stops `check` and `run`.
    Problem,
    /// Worth a look; sending goes on.
    Warning,
    /// A placeholder left to edit: its messages are held.
    Placeholder,
}

/// What the sample rendering of one part of a step lacks or still holds, each with its
/// weight and, when known, the line of `file` (the template the operator will edit).
/// `links` are the sample's unsubscribe and survey links.
pub(super) fn sample_findings(
    config: &Config,
    kind: StepKind,
    part: Part,
    rendered: &str,
    links: (&str, &str),
    file: &Path,
) -> Vec<(Weight, Option<usize>, String)> {
    let (unsubscribe_url, survey_url) = links;
    let mut found = Vec::new();
    let shows = |value: &str| fitness::holds(rendered, value, part == Part::Html);
    match part {
        Part::Subject => {
            if one_line(rendered).is_empty() {
                found.push((
                    Weight::Problem,
                    None,
                    "the subject renders empty; write a subject line".to_string(),
                ));
            }
        }
        Part::Html | Part::Text => {
            if !shows(unsubscribe_url) {
                found.push((
                    Weight::Problem,
                    None,
                    "the rendered message lacks the unsubscribe link; add {{unsubscribe_url}} (in the footer)".to_string(),
                ));
            }
            if !shows(&config.sender.postal_address) {
                found.push((
                    Weight::Problem,
                    None,
                    "the rendered message lacks the sender's postal address (required by anti-spam law); add {{sender.postal_address}} (in the footer)".to_string(),
                ));
            }
            if let Some(privacy) = &config.sender.privacy_url
                && !shows(privacy)
            {
                found.push((
                    Weight::Warning,
                    None,
                    "does not link the privacy notice of [sender] privacy_url; add {{sender.privacy_url}} to the footer (the shipped templates show how)".to_string(),
                ));
            }
            if kind == StepKind::Survey && !shows(survey_url) {
                found.push((
                    Weight::Warning,
                    None,
                    "is a survey step but does not link the survey; add {{survey_url}}".to_string(),
                ));
            }
        }
    }
    if let Some(example) = fitness::placeholder(rendered) {
        let count = fitness::placeholders(rendered);
        // The line in the template file, where the operator will edit.
        let line = std::fs::read_to_string(file).ok().and_then(|source| {
            let at = source.find(fitness::PLACEHOLDER)?;
            Some(source[..at].matches('\n').count() + 1)
        });
        found.push((
            Weight::Placeholder,
            line,
            format!(
                "still contains {count} placeholder{} such as \"{example}\"; replace {} with your own text: until then this step is held, never sent",
                if count == 1 { "" } else { "s" },
                if count == 1 { "it" } else { "them" },
            ),
        ));
    }
    found
}

/// A list of problems as every command prints it: one indented line each
/// (`  FILE:LINE: KEY: MESSAGE`), no line break after the last.
pub(crate) struct ProblemList<'a>(pub(crate) &'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {problem}")?;
        }
        Ok(())
    }
}

/// Why a command cannot start with these templates: what `run`, a reload and `preview`
/// say, pointing to `check`.
pub(crate) fn templates_refused(problems: &[Problem]) -> String {
    format!(
        "the templates have problems (run `winback check`):\n{}",
        ProblemList(problems)
    )
}

#[cfg(test)]
mod tests;
