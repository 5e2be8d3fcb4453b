//! The recipient pages: handlebars templates in `templates_dir/pages/NAME.hbs`, each
//! falling back to the built-in copy shipped in `templates/pages/` when the operator's
//! folder lacks it. Values are HTML-escaped; strict mode makes a misspelt variable an
//! error, found when the pages are loaded (and by `check_pages`), never by a recipient.
//!
//! Owns compiling, checking and rendering the pages and the values each one takes; what
//! a request gets (which page, which status) is the HTTP server's, not decided here.

use std::path::PathBuf;

use handlebars::Handlebars;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Problem, Sender};
use crate::domain::survey::MAX_TEXT_CHARS;

/// The page templates, by name, with their built-in text. `layout` is the partial every
/// other page renders inside (`{{#> layout title="…"}} … {{/layout}}`).
const BUILT_IN: [(&str, &str); 7] = [
    ("layout", include_str!("../../templates/pages/layout.hbs")),
    (
        "unsubscribe",
        include_str!("../../templates/pages/unsubscribe.hbs"),
    ),
    (
        "unsubscribed",
        include_str!("../../templates/pages/unsubscribed.hbs"),
    ),
    (
        "resubscribed",
        include_str!("../../templates/pages/resubscribed.hbs"),
    ),
    ("survey", include_str!("../../templates/pages/survey.hbs")),
    (
        "survey_thanks",
        include_str!("../../templates/pages/survey_thanks.hbs"),
    ),
    ("error", include_str!("../../templates/pages/error.hbs")),
];

/// One page and the values it is rendered with. Every field is always present (an
/// absent value is `null`), so strict mode only catches real misspellings.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Page {
    /// `GET /u/TOKEN`: a button that unsubscribes.
    Unsubscribe {
        first_name: Option<String>,
        already_unsubscribed: bool,
        unsubscribe_url: String,
        undo_url: String,
    },
    /// After `POST /u/TOKEN`.
    Unsubscribed {
        first_name: Option<String>,
        undo_url: String,
        survey_url: Option<String>,
    },
    /// After `POST /u/TOKEN/undo`.
    Resubscribed {
        first_name: Option<String>,
        unsubscribe_url: String,
    },
    /// `GET /s/TOKEN`, or the form again with `error` set.
    Survey {
        first_name: Option<String>,
        survey_url: String,
        reason: Option<String>,
        better: Option<String>,
        would_return: Option<String>,
        stop_contact: bool,
        error: Option<String>,
        max_length: usize,
    },
    /// After `POST /s/TOKEN`.
    SurveyThanks {
        first_name: Option<String>,
        opted_out: bool,
        survey_url: String,
    },
    /// Every refusal: an unknown link, a bad request, a limit, a failure of ours.
    Error {
        status: u16,
        kind: &'static str,
        title: &'static str,
        message: &'static str,
    },
}

impl Page {
    pub(crate) fn template(&self) -> &'static str {
        match self {
            Page::Unsubscribe { .. } => "unsubscribe",
            Page::Unsubscribed { .. } => "unsubscribed",
            Page::Resubscribed { .. } => "resubscribed",
            Page::Survey { .. } => "survey",
            Page::SurveyThanks { .. } => "survey_thanks",
            Page::Error { .. } => "error",
        }
    }

    /// One of each page, with every optional value both set and unset, for checking.
    fn samples() -> Vec<Page> {
        let url = "https://winback.example/u/TOKEN".to_string();
        let name = Some("Pat".to_string());
        let mut pages = Vec::new();
        for first_name in [name, None] {
            pages.extend([
                Page::Unsubscribe {
                    first_name: first_name.clone(),
                    already_unsubscribed: false,
                    unsubscribe_url: url.clone(),
                    undo_url: url.clone(),
                },
                Page::Unsubscribe {
                    first_name: first_name.clone(),
                    already_unsubscribed: true,
                    unsubscribe_url: url.clone(),
                    undo_url: url.clone(),
                },
                Page::Unsubscribed {
                    first_name: first_name.clone(),
                    undo_url: url.clone(),
                    survey_url: Some(url.clone()),
                },
                Page::Unsubscribed {
                    first_name: first_name.clone(),
                    undo_url: url.clone(),
                    survey_url: None,
                },
                Page::Resubscribed {
                    first_name: first_name.clone(),
                    unsubscribe_url: url.clone(),
                },
                Page::Survey {
                    first_name: first_name.clone(),
                    survey_url: url.clone(),
                    reason: Some("competitor".to_string()),
                    better: Some("Answer the phone.".to_string()),
                    would_return: Some("maybe".to_string()),
                    stop_contact: true,
                    error: Some("Please fix".to_string()),
                    max_length: MAX_TEXT_CHARS,
                },
                Page::Survey {
                    first_name: first_name.clone(),
                    survey_url: url.clone(),
                    reason: None,
                    better: None,
                    would_return: None,
                    stop_contact: false,
                    error: None,
                    max_length: MAX_TEXT_CHARS,
                },
                Page::SurveyThanks {
                    first_name: first_name.clone(),
                    opted_out: true,
                    survey_url: url.clone(),
                },
                Page::SurveyThanks {
                    first_name,
                    opted_out: false,
                    survey_url: url.clone(),
                },
            ]);
        }
        pages.push(Page::Error {
            status: 404,
            kind: "not_found",
            title: "This link is not valid",
            message: "Please copy the whole link from the email.",
        });
        pages
    }
}

/// The compiled page templates of one configuration.
#[derive(Debug)]
pub(crate) struct Pages {
    registry: Handlebars<'static>,
    sender: Sender,
}

impl Pages {
    /// Compiles the pages from `config.templates_dir/pages` (built-in copies for the
    /// files that are not there) and renders each once against sample values.
    pub(crate) fn load(config: &Config) -> Result<Pages, Vec<Problem>> {
        let dir = config.templates_dir.join("pages");
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        let mut problems = Vec::new();
        let mut compiled = Vec::new();
        for (name, built_in) in BUILT_IN {
            let path = dir.join(format!("{name}.hbs"));
            let (text, file) = match std::fs::read_to_string(&path) {
                Ok(text) => (text, path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    built_in.to_string(),
                    PathBuf::from(format!("{} (built in)", path.display())),
                ),
                Err(e) => {
                    problems.push(problem(
                        path,
                        None,
                        format!("cannot read this page template: {e}"),
                    ));
                    continue;
                }
            };
            // Handlebars has no depth limit: a page that could recurse would overflow the
            // stack on its first view, which aborts the daemon. Refused like a step's.
            let outside: &[&str] = if name == "layout" { &[] } else { &["layout"] };
            if let Ok(template) = handlebars::template::Template::compile(&text)
                && let Some((line, message)) = crate::mail::stack_risk_with(&template, outside)
            {
                problems.push(problem(file, line, message));
                continue;
            }
            let registered = if name == "layout" {
                registry.register_partial(name, &text)
            } else {
                registry.register_template_string(name, &text)
            };
            match registered {
                Ok(()) => compiled.push((name, file)),
                Err(e) => match crate::mail::template_blocks::unclosed_block(&text) {
                    Some((line, message)) => problems.push(problem(file, Some(line), message)),
                    None => {
                        let line = e.pos().map(|(line, _)| line);
                        problems.push(problem(file, line, format!("{}", e.reason())));
                    }
                },
            }
        }
        let pages = Pages {
            registry,
            sender: config.sender.clone(),
        };
        // Render what compiled (everything needs the layout) against sample values.
        if compiled.iter().any(|(name, _)| *name == "layout") {
            for page in Page::samples() {
                let Some((_, page_file)) =
                    compiled.iter().find(|(name, _)| *name == page.template())
                else {
                    continue;
                };
                if let Err(e) = pages.render(&page) {
                    // The error may lie in the layout the page renders inside.
                    let in_template = e.template_name.as_deref().unwrap_or(page.template());
                    let file = compiled
                        .iter()
                        .find(|(name, _)| *name == in_template)
                        .map_or_else(|| page_file.clone(), |(_, file)| file.clone());
                    let found = problem(file, e.line_no, format!("{}", e.reason()));
                    if !problems.contains(&found) {
                        problems.push(found);
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(pages)
        } else {
            Err(problems)
        }
    }

    pub(crate) fn render(&self, page: &Page) -> Result<String, handlebars::RenderError> {
        let mut context = serde_json::to_value(page).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut context {
            map.insert(
                "sender".to_string(),
                serde_json::to_value(&self.sender).unwrap_or(Value::Null),
            );
        }
        self.registry.render(page.template(), &context)
    }
}

fn problem(file: PathBuf, line: Option<usize>, message: String) -> Problem {
    Problem {
        file,
        line,
        key: "pages".to_string(),
        message: format!(
            "{message}; the page variables are listed at the top of each built-in template in templates/pages/"
        ),
    }
}

/// The problems with the recipient page templates, for `winback check`.
pub(crate) fn check_pages(config: &Config) -> Vec<Problem> {
    match Pages::load(config) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::survey::{SURVEY_REASONS, WOULD_RETURN};

    /// The values the built-in survey form offers for the field `name`, in order.
    fn offered(name: &str) -> Vec<String> {
        let (_, survey) = BUILT_IN.iter().find(|(page, _)| *page == "survey").unwrap();
        let field = format!("name=\"{name}\" value=\"");
        survey
            .match_indices(&field)
            .map(|(at, _)| {
                let rest = &survey[at + field.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    }

    #[test]
    fn the_built_in_survey_offers_exactly_the_choices_the_server_accepts() {
        assert_eq!(offered("reason"), SURVEY_REASONS);
        assert_eq!(offered("would_return"), WOULD_RETURN);
    }
}
