//! Content by churn reason: the reasons a campaign can reach (each rendered by `check` for
//! a sample client) and the reason literals a template compares `churn_reason` with
//! (`{{#if (eq churn_reason "price")}}`), so that a branch no client can take is named.
//!
//! Reads compiled templates and the configuration; renders, reads and writes nothing.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};

use crate::config::hints::edit_distance;
use crate::config::{Campaign, Config};

/// The churn reasons the README lists; a CRM's own labels become slugs of their own.
pub(super) use crate::config::hints::KNOWN_REASONS;

/// Every churn reason a client of `campaign` can have, in a stable order: the known
/// reasons, the slugs `[clients] reasons` maps CRM labels to, the campaign's own
/// `include_reasons`, the reasons its templates compare with (`literals`, which may be a
/// CRM's own slug), and no reason at all (`None`), each kept only if the campaign's
/// audience admits it.
pub(super) fn reachable(
    config: &Config,
    campaign: &Campaign,
    literals: &[String],
) -> Vec<Option<String>> {
    let mut candidates: Vec<String> = Vec::new();
    let mut add = |reason: &str| {
        let reason = reason.trim().to_lowercase();
        if !reason.is_empty() && !candidates.contains(&reason) {
            candidates.push(reason);
        }
    };
    KNOWN_REASONS.iter().for_each(|r| add(r));
    config
        .clients
        .format
        .reasons
        .iter()
        .for_each(|(_, slug)| add(slug));
    campaign
        .include_reasons
        .iter()
        .flatten()
        .for_each(|r| add(r));
    literals.iter().for_each(|r| add(r));
    candidates
        .into_iter()
        .map(Some)
        .chain([None])
        .filter(|reason| admits(campaign, reason.as_deref()))
        .collect()
}

/// Whether a client who left for `reason` is in `campaign`'s audience: the one place
/// this module asks.
fn admits(campaign: &Campaign, reason: Option<&str>) -> bool {
    campaign.admits_reason(reason)
}

/// Each string `template` compares `churn_reason` with in an `eq` or `ne` (as a block,
/// an expression or a subexpression, either side), with its line.
pub(super) fn compared_literals(template: &Template) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    walk(template, None, &mut found);
    found
}

fn walk(template: &Template, outer_line: Option<usize>, found: &mut Vec<(usize, String)>) {
    for (index, element) in template.elements.iter().enumerate() {
        // A block's inner template maps its own lines; a subexpression has its element's.
        let line = template
            .mapping
            .get(index)
            .map(|m| m.0)
            .or(outer_line)
            .unwrap_or(1);
        element_literals(element, line, found);
    }
}

fn element_literals(element: &TemplateElement, line: usize, found: &mut Vec<(usize, String)>) {
    match element {
        TemplateElement::Expression(helper)
        | TemplateElement::HtmlExpression(helper)
        | TemplateElement::HelperBlock(helper) => helper_literals(helper, line, found),
        TemplateElement::DecoratorBlock(block) | TemplateElement::PartialBlock(block) => {
            if let Some(body) = &block.template {
                walk(body, Some(line), found);
            }
        }
        _ => {}
    }
}

fn helper_literals(helper: &HelperTemplate, line: usize, found: &mut Vec<(usize, String)>) {
    if matches!(helper.name.as_name(), Some("eq" | "ne"))
        && let [a, b] = helper.params.as_slice()
    {
        for (one, other) in [(a, b), (b, a)] {
            if one.as_name().is_some_and(is_churn_reason)
                && let Parameter::Literal(serde_json::Value::String(literal)) = other
            {
                found.push((line, literal.clone()));
            }
        }
    }
    for param in helper.params.iter().chain(helper.hash.values()) {
        if let Parameter::Subexpression(sub) = param {
            element_literals(&sub.element, line, found);
        }
    }
    for body in [&helper.template, &helper.inverse].into_iter().flatten() {
        walk(body, Some(line), found);
    }
}

/// The reason in `reasons` that `literal` is most likely a misspelling of (at most two
/// letters apart), if any.
pub(super) fn closest<'a>(literal: &str, reasons: &[&'a str]) -> Option<&'a str> {
    let literal = literal.trim().to_lowercase();
    reasons
        .iter()
        .map(|r| (edit_distance(&literal, r), *r))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, r)| r)
}

/// `churn_reason`, also reached from an inner scope (`../churn_reason`,
/// `@root.churn_reason`); not a CSV column of that name (`fields.churn_reason`).
fn is_churn_reason(path: &str) -> bool {
    let last = path.rsplit(['.', '/']).next().unwrap_or(path);
    last == "churn_reason" && !path.starts_with("fields")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(source: &str) -> Vec<(usize, String)> {
        compared_literals(&Template::compile(source).unwrap())
    }

    #[test]
    fn finds_reason_literals_in_blocks_expressions_and_subexpressions() {
        let source = "Hi\n{{#if (eq churn_reason \"price\")}}a{{else if (ne \"prize\" churn_reason)}}b{{/if}}\n{{#if (or (eq churn_reason \"competitor\") (eq ../churn_reason \"other\"))}}\n{{eq @root.churn_reason \"acquisition\"}}{{/if}}";
        let found = literals(source);
        let words: Vec<&str> = found.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            words,
            ["price", "prize", "competitor", "other", "acquisition"],
            "{found:?}"
        );
        assert_eq!(found[0].0, 2, "{found:?}");
        assert_eq!(found[1].0, 2, "{found:?}");
        assert_eq!(found[2].0, 3, "{found:?}");
        assert_eq!(found[4].0, 4, "{found:?}");
    }

    #[test]
    fn a_misspelt_reason_is_matched_to_the_closest() {
        let reasons = ["competitor", "price", "other"];
        assert_eq!(closest("prize", &reasons), Some("price"));
        assert_eq!(closest("Competiter", &reasons), Some("competitor"));
        assert_eq!(closest("bankruptcy", &reasons), None);
    }

    #[test]
    fn other_comparisons_are_not_reason_literals() {
        let found = literals(
            "{{#if (eq fields.churn_reason \"price\")}}{{/if}}{{#if (eq company \"price\")}}{{/if}}{{#if (eq churn_reason step_kind)}}{{/if}}{{#if (gt churn_reason \"a\")}}{{/if}}",
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
