//! Tests of the template checks: templates that could overflow the stack are refused
//! unrendered, and the one way a list of problems is written.

use std::path::PathBuf;

use super::*;
use crate::mail::Renderer;
use crate::mail::tests::{FOOTER_TEXT, Setup, client, render};

#[test]
fn a_problem_list_is_one_indented_line_each_and_no_trailing_break() {
    let problem = |line: Option<usize>, message: &str| Problem {
        file: PathBuf::from("templates/survey.html.hbs"),
        line,
        key: "campaign[1].step[1].template".to_string(),
        message: message.to_string(),
    };
    let problems = [problem(Some(3), "first"), problem(None, "second")];
    assert_eq!(
        ProblemList(&problems).to_string(),
        "  templates/survey.html.hbs:3: campaign[1].step[1].template: first\n  templates/survey.html.hbs: campaign[1].step[1].template: second"
    );
    assert_eq!(
        templates_refused(&problems[1..]),
        "the templates have problems (run `winback check`):\n  templates/survey.html.hbs: campaign[1].step[1].template: second"
    );
    assert_eq!(ProblemList(&[]).to_string(), "");
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
    let nested = |n: usize| format!("{}x{}", "{{#if first_name}}".repeat(n), "{{/if}}".repeat(n));
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
