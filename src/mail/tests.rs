//! The fixtures the mail tests share (a temporary config and templates folder, a client,
//! the shipped templates), and the tests of compiling and rendering.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::message::{RenderError, Rendered};
use super::templates::{first_name, months_since};
use super::*;
use crate::config::{Config, Problem};
use crate::domain::model::{ChurnedAt, ClientRecord, StepKind};
use crate::mailer::OutgoingMessage;

pub(super) const SUBJECT: &str = "{{first_name}}, may we ask why you left?";
pub(super) const FOOTER_HTML: &str = "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a> {{sender.company}}, {{sender.postal_address}}</p>";
pub(super) const FOOTER_TEXT: &str =
    "Unsubscribe: {{unsubscribe_url}}\n{{sender.company}}, {{sender.postal_address}}\n";

/// A temporary setup: a config file and a templates folder.
pub(super) struct Setup {
    pub(super) dir: tempfile::TempDir,
}

impl Setup {
    pub(super) fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("templates")).unwrap();
        Setup { dir }
    }

    /// Writes `templates/NAME.html.hbs` and `.txt.hbs`.
    pub(super) fn template(&self, name: &str, html: &str, text: &str) -> &Setup {
        let dir = self.dir.path().join("templates");
        fs::write(dir.join(format!("{name}.html.hbs")), html).unwrap();
        fs::write(dir.join(format!("{name}.txt.hbs")), text).unwrap();
        self
    }

    /// The survey template with `body` before the standard footer.
    pub(super) fn survey(&self, html_body: &str, text_body: &str) -> &Setup {
        self.template(
            "survey",
            &format!("{html_body}\n{FOOTER_HTML}"),
            &format!("{text_body}\n{FOOTER_TEXT}"),
        )
    }

    pub(super) fn config_text(&self, extra: &str, steps: &str) -> String {
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

    pub(super) fn config_with(&self, extra: &str, steps: &str) -> Result<Config, String> {
        let path = self.dir.path().join("winback.toml");
        let text = self.config_text(extra, steps);
        fs::write(&path, &text).unwrap();
        Config::parse(&path, &text).map_err(|e| e.to_string())
    }

    /// One survey step, signed with the DKIM key in `key_file` (in the test dir).
    pub(super) fn signing_config(&self, key_file: &str) -> Config {
        let extra = format!(
            "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = \"{key_file}\"\n"
        );
        let step = format!(
            "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
        );
        self.config_with(&extra, &step)
            .unwrap_or_else(|e| panic!("{key_file}: {e}"))
    }

    pub(super) fn config(&self) -> Config {
        self.config_with("", &format!("[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n")).unwrap()
    }

    pub(super) fn renderer(&self) -> Renderer {
        Renderer::load(&self.config()).unwrap_or_else(|p| panic!("{p:#?}"))
    }

    pub(super) fn problems(&self) -> Vec<Problem> {
        Renderer::load(&self.config()).expect_err("load should fail")
    }
}

pub(super) fn client() -> ClientRecord {
    ClientRecord {
        email: "pat@client.example".to_string(),
        name: Some("Pat Smith".to_string()),
        first_name: None,
        company: Some("Globex".to_string()),
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 3, 10).unwrap()),
        churn_reason: None,
        timezone: None,
        fields: BTreeMap::new(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 9, 14, 30, 5).unwrap()
}

/// Step 1 of `former-clients`, sent from `smtp.from`.
pub(super) fn origin() -> super::Origin<'static> {
    super::Origin {
        campaign: "former-clients",
        step: 1,
        return_path: None,
    }
}

pub(super) fn vars(client: &ClientRecord) -> Vars<'_> {
    Vars {
        client,
        unsubscribe_url: "https://winback.acme.example/u/TOKEN-u".to_string(),
        survey_url: "https://winback.acme.example/s/TOKEN-s".to_string(),
        now: now(),
    }
}

pub(super) fn render(setup: &Setup, client: &ClientRecord) -> Result<Rendered, RenderError> {
    let config = setup.config();
    let renderer = setup.renderer();
    renderer.render(&config.campaigns[0], 1, &vars(client))
}

/// The header block of a built message, unfolded, as (name, value) pairs.
pub(super) fn headers(bytes: &[u8]) -> Vec<(String, String)> {
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

pub(super) fn header(bytes: &[u8], name: &str) -> Vec<String> {
    headers(bytes)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// The built message, with the message id, date and unsubscribe link the tests share.
pub(super) fn built(
    renderer: &Renderer,
    config: &Config,
    rendered: &Rendered,
    to: &ClientRecord,
) -> OutgoingMessage {
    renderer
        .build_message(
            config,
            rendered,
            to,
            &origin(),
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
pub(super) fn shipped_config(dir: &Path) -> Config {
    shipped_config_with(dir, "")
}

/// `shipped_config` with `sender` added to its `[sender]` section.
pub(super) fn shipped_config_with(dir: &Path, sender: &str) -> Config {
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
                    &origin(),
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

#[test]
fn eq_ne_or_and_not_work_in_subjects_and_bodies_in_strict_mode() {
    let setup = Setup::new();
    let body = "{{#if (eq churn_reason \"price\")}}P{{else if (and (ne churn_reason \"\") (not (eq churn_reason \"other\")))}}R{{else}}N{{/if}}|{{#if (or (eq churn_reason \"price\") (eq churn_reason \"competitor\"))}}money{{/if}}|";
    setup.survey(body, body);
    let subject = "{{#if (eq churn_reason \"price\")}}About our prices{{else}}May we ask why you left?{{/if}}";
    let config = setup
        .config_with(
            "",
            &format!(
                "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = '{subject}'\n"
            ),
        )
        .unwrap();
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    let for_reason = |reason: Option<&str>| {
        let mut client = client();
        client.churn_reason = reason.map(str::to_string);
        renderer
            .render(&config.campaigns[0], 1, &vars(&client))
            .unwrap()
    };
    let price = for_reason(Some("price"));
    assert_eq!(price.subject, "About our prices");
    assert!(price.text.starts_with("P|money|"), "{}", price.text);
    let competitor = for_reason(Some("competitor"));
    assert_eq!(competitor.subject, "May we ask why you left?");
    assert!(
        competitor.html.starts_with("R|money|"),
        "{}",
        competitor.html
    );
    assert!(for_reason(Some("other")).text.starts_with("N||"));
    assert!(for_reason(None).text.starts_with("N||"));
}

#[test]
fn check_renders_every_step_for_each_reason_the_campaign_can_reach() {
    let setup = Setup::new();
    // The sample client left for a competitor: only a "price" client takes the branch.
    setup.survey(
        "<p>Hello</p>",
        "Hello\n{{#if (eq churn_reason \"price\")}}\nOur prices, {{frist_name}}.\n{{/if}}",
    );
    let problems = setup.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert!(p.file.ends_with("templates/survey.txt.hbs"), "{p}");
    assert_eq!(p.line, Some(3), "{p}");
    assert!(
        p.message.contains("{{frist_name}} is not a variable"),
        "{p}"
    );
    assert!(
        p.message
            .contains("for a client whose churn_reason is \"price\""),
        "{p}"
    );

    // A reason the campaign excludes is not rendered: its branch cannot be taken.
    let config = setup
        .config_with(
            "",
            &format!("exclude_reasons = [\"we_ended\", \"price\"]\n[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"),
        )
        .unwrap();
    assert!(Renderer::load(&config).is_ok());
}

#[test]
fn a_reason_no_client_can_have_is_a_warning_naming_the_template_and_line() {
    let setup = Setup::new();
    setup.survey(
        "<p>{{#if (eq churn_reason \"price\")}}Prices{{/if}}</p>",
        "Hello\n\n{{#if (eq churn_reason \"prize\")}}Prices{{/if}}",
    );
    let renderer = setup.renderer();
    let warnings: Vec<&Problem> = renderer
        .warnings()
        .iter()
        .filter(|w| w.message.contains("churn_reason"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = warnings[0];
    assert!(w.file.ends_with("templates/survey.txt.hbs"), "{w}");
    assert_eq!(w.line, Some(3), "{w}");
    assert!(w.message.contains("\"prize\""), "{w}");
    assert!(w.message.contains("Did you mean \"price\"?"), "{w}");
    assert!(w.message.contains("campaign \"former-clients\""), "{w}");

    // A CRM's own label, once mapped, is a reason like the others.
    let config = setup
        .config_with(
            "\n[clients]\nreasons = { \"Prize draw\" = \"prize\" }\n",
            &format!("[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"),
        )
        .unwrap();
    let renderer = Renderer::load(&config).unwrap_or_else(|p| panic!("{p:#?}"));
    assert!(
        !renderer
            .warnings()
            .iter()
            .any(|w| w.message.contains("churn_reason")),
        "{:#?}",
        renderer.warnings()
    );
}

#[test]
fn the_sample_client_of_a_campaign_has_a_reason_its_audience_takes() {
    let setup = Setup::new();
    let step = format!(
        "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
    );
    let config = setup.config_with("", &step).unwrap();
    assert_eq!(
        sample_client_for(&config, &config.campaigns[0]).churn_reason,
        sample_client().churn_reason,
        "the sample's own reason when the audience takes it"
    );
    let config = setup
        .config_with(
            "",
            &format!("exclude_reasons = [\"we_ended\", \"competitor\"]\n{step}"),
        )
        .unwrap();
    let reason = sample_client_for(&config, &config.campaigns[0]).churn_reason;
    assert!(
        reason.is_some() && reason != sample_client().churn_reason,
        "{reason:?}"
    );
    assert_ne!(reason.as_deref(), Some("we_ended"));
}

#[test]
fn the_sample_client_of_a_campaign_has_the_values_its_match_asks_for() {
    let setup = Setup::new();
    let step = format!(
        "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{SUBJECT}\"\n"
    );
    let config = setup
        .config_with(
            "",
            &format!("match = {{ \"Fields.Region\" = \"EMEA\", Company = \"Globex\" }}\n{step}"),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let sample = sample_client_for(&config, &config.campaigns[0]);
    assert_eq!(
        sample.fields.get("region").map(String::as_str),
        Some("EMEA")
    );
    assert_eq!(sample.company.as_deref(), Some("Globex"));
}
