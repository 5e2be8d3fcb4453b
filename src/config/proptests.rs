//! Property tests for the configuration: any text, and any edit of a valid file, is
//! accepted or refused with problems that each name a line of the file, never a panic;
//! the TOML parser's errors are explained for any text and line; and a file written from
//! chosen values (any text in its strings, quotes and backslashes included) reads back
//! as those values.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::domain::model::StepKind;
use chrono_tz::Tz;

const BASE: &str = r#"[database]
path = "winback.db"

[smtp]
from = "Acme Customer Success <success@acme.example>"
connections = 4

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[templates]
dir = "."

[[campaign]]
name = "former-clients"
quiet_days = 90
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"
exclude_reasons = ["price"]
catch_up_hours = 4

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "{{first_name}}, may we ask why you left?"

[[campaign.step]]
kind = "newsletter"
after_days = 30
template = "newsletter"
subject = "What we've been working on"
"#;

/// The crate root, which exists, so that `dir = "."` is a real directory.
fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml")
}

fn lines(text: &str) -> usize {
    text.lines().count().max(1)
}

fn check_problems(text: &str, result: Result<Config, ConfigErrors>) -> Result<(), TestCaseError> {
    if let Err(ConfigErrors(problems)) = result {
        prop_assert!(!problems.is_empty());
        for problem in problems {
            prop_assert!(!problem.message.trim().is_empty(), "{:?}", problem);
            if let Some(line) = problem.line {
                prop_assert!(
                    line >= 1 && line <= lines(text) + 1,
                    "{:?} in {:?}",
                    problem,
                    text
                );
            }
        }
    }
    Ok(())
}

/// Pieces of TOML and of the values this file holds.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "[", "]", "[[", "]]", "=", "\"", "'", "\"\"\"", "\n", "#", ",", "{", "}", ".", " ",
            "“", "”", "campaign", "step", "smtp", "kind", "quiet_days", "send_at", "=?", "-1",
            "99999999999999999999", "1e3", "true", "0 10 * * Mon", "Europe/Paris", "survey",
            "\\", "\\u", "\t", "\r\n", "[[campaign]]", "[[campaign.step]]", "name = \"x\"",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z_0-9]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ]
}

/// BASE with a range taken out and pieces put in its place.
fn edited_base() -> impl Strategy<Value = String> {
    (
        any::<prop::sample::Index>(),
        0usize..40,
        prop::collection::vec(piece(), 0..6),
    )
        .prop_map(|(at, length, pieces)| {
            let chars: Vec<char> = BASE.chars().collect();
            let start = at.index(chars.len());
            let end = (start + length).min(chars.len());
            let mut text: String = chars[..start].iter().collect();
            text.push_str(&pieces.concat());
            text.extend(&chars[end..]);
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_accepted_or_refused_line_by_line(
        text in prop_oneof![
            prop::collection::vec(piece(), 0..40).prop_map(|p| p.concat()),
            any::<String>(),
        ],
    ) {
        check_problems(&text, Config::parse(&path(), &text))?;
    }

    #[test]
    fn any_edit_of_a_valid_file_is_accepted_or_refused_line_by_line(text in edited_base()) {
        check_problems(&text, Config::parse(&path(), &text))?;
    }

    #[test]
    fn toml_errors_are_explained_for_any_text_and_line(
        text in prop_oneof![
            edited_base(),
            prop::collection::vec(piece(), 0..30).prop_map(|p| p.concat()),
        ],
        line in prop::option::of(0usize..80),
        message in "[!-~][ -~]{0,40}",
    ) {
        let (_key, explained) = toml_errors::explain(&text, line, &message);
        prop_assert!(!explained.is_empty());
    }
}

/// A TOML basic string holding `text` exactly.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text a marketer may write in a string: quotes, backslashes, accents, emoji.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9 ,.&'\"\\\\()-]{1,30}", "[^\\p{Cc}]{1,20}",]
        .prop_filter("not blank", |text| !text.trim().is_empty())
}

#[derive(Debug, Clone)]
struct Chosen {
    company: String,
    postal_address: String,
    connections: u32,
    name: String,
    quiet_days: u32,
    send_at: &'static str,
    timezone: Tz,
    catch_up_hours: u32,
    exclude_reasons: Vec<String>,
    /// (kind, after_days, template, subject); the first is the survey.
    steps: Vec<(StepKind, u32, String, String)>,
}

fn chosen() -> impl Strategy<Value = Chosen> {
    let step = (
        prop::sample::select(vec![
            StepKind::Newsletter,
            StepKind::Article,
            StepKind::Whitepaper,
            StepKind::Greeting,
        ]),
        14u32..400,
        "[a-z][a-z0-9_-]{0,10}",
        text(),
    );
    (
        (
            text(),
            text(),
            1u32..=64,
            "[a-z][a-z0-9-]{0,15}",
            90u32..2000,
        ),
        (
            prop::sample::select(vec![
                "0 10 * * Tue-Thu",
                "* * * * *",
                "30 9 1-7 * Mon",
                "0 0 10 * * 2",
                "15 14 * * 0,7",
            ]),
            prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec()),
            1u32..=24,
            prop::collection::vec("[a-z][a-z0-9_]{0,10}", 0..3),
            ("[a-z][a-z0-9_-]{0,10}", text()),
            prop::collection::vec(step, 0..4),
        ),
    )
        .prop_map(
            |(
                (company, postal_address, connections, name, quiet_days),
                (send_at, timezone, catch_up_hours, exclude_reasons, survey, steps),
            )| {
                let mut all = vec![(StepKind::Survey, 0, survey.0, survey.1)];
                all.extend(steps);
                Chosen {
                    company,
                    postal_address,
                    connections,
                    name,
                    quiet_days,
                    send_at,
                    timezone,
                    catch_up_hours,
                    exclude_reasons,
                    steps: all,
                }
            },
        )
}

impl Chosen {
    fn toml(&self) -> String {
        let mut text = format!(
            "[database]\npath = \"winback.db\"\n\n[smtp]\nfrom = \"success@acme.example\"\n\
             connections = {}\n\n[http]\npublic_url = \"https://winback.acme.example\"\n\n\
             [sender]\ncompany = {}\npostal_address = {}\n\n[templates]\ndir = \".\"\n\n\
             [[campaign]]\nname = {}\nquiet_days = {}\nsend_at = {}\ntimezone = {}\n\
             catch_up_hours = {}\nexclude_reasons = [{}]\n",
            self.connections,
            toml_string(&self.company),
            toml_string(&self.postal_address),
            toml_string(&self.name),
            self.quiet_days,
            toml_string(self.send_at),
            toml_string(self.timezone.name()),
            self.catch_up_hours,
            self.exclude_reasons
                .iter()
                .map(|r| toml_string(r))
                .collect::<Vec<_>>()
                .join(", "),
        );
        for (kind, after_days, template, subject) in &self.steps {
            text.push_str(&format!(
                "\n[[campaign.step]]\nkind = {}\ntemplate = {}\nsubject = {}\n",
                toml_string(kind.as_str()),
                toml_string(template),
                toml_string(subject),
            ));
            if *kind != StepKind::Survey {
                text.push_str(&format!("after_days = {after_days}\n"));
            }
        }
        text
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_file_written_from_chosen_values_reads_back_as_them(chosen in chosen()) {
        let text = chosen.toml();
        let config = match Config::parse(&path(), &text) {
            Ok(config) => config,
            Err(errors) => return Err(TestCaseError::fail(format!("{errors}\n{text}"))),
        };
        prop_assert_eq!(&config.sender.company, &chosen.company);
        prop_assert_eq!(&config.sender.postal_address, &chosen.postal_address);
        prop_assert_eq!(config.smtp.connections, chosen.connections as usize);
        prop_assert_eq!(config.campaigns.len(), 1);
        let campaign = &config.campaigns[0];
        prop_assert_eq!(&campaign.name, &chosen.name);
        prop_assert_eq!(campaign.quiet_days, chosen.quiet_days);
        prop_assert_eq!(campaign.send_at.source(), chosen.send_at);
        prop_assert_eq!(campaign.timezone, chosen.timezone);
        prop_assert_eq!(campaign.catch_up_hours, chosen.catch_up_hours);
        prop_assert_eq!(&campaign.exclude_reasons, &chosen.exclude_reasons);
        let steps: Vec<_> = campaign
            .steps
            .iter()
            .map(|s| (s.kind, s.after_days, s.template.clone(), s.subject.clone()))
            .collect();
        prop_assert_eq!(steps, chosen.steps.clone());
    }
}
