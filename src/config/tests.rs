//! Table tests for configuration validation: every rule, its message, and the line it names.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;

use super::*;
use crate::domain::model::StepKind;

/// A valid configuration. Line numbers matter: edits replace one line by one line, so the
/// numbers below stay true.
const BASE: &str = r#"[database]
path = "winback.db"

[smtp]
from = "Acme Customer Success <success@acme.example>"

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
// Lines:  1 [database]   4 [smtp]   5 from   7 [http]   10 [sender]   12 postal_address
//        14 [templates]  17 [[campaign]]  18 name  19 quiet_days  20 send_at  21 timezone
//        23 [[campaign.step]]  24 kind  25 template  26 subject  27 (blank)
//        28 [[campaign.step]]  29 kind  30 after_days  31 template  32 subject

/// A second campaign, appended after line 32: its `[[campaign]]` is line 34.
const SECOND_CAMPAIGN: &str = r#"
[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Hello"
"#;

/// Where the tests pretend the file lives: the crate root, which exists, so that
/// `[templates] dir = "."` is a real directory.
fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml")
}

/// BASE with each `(from, to)` applied; `from` must occur exactly once.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the edit {from:?} must match exactly once"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// `(from, to)` replacements of whole lines of [`BASE`].
type Edits<'a> = &'a [(&'a str, &'a str)];

/// (line, key, fragments the message must contain)
type Expected<'a> = (Option<usize>, &'a str, &'a [&'a str]);

fn check_problems(what: &str, problems: &[Problem], expected: &[Expected<'_>]) {
    let summary: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), expected.len(), "{what}: {summary:#?}");
    for (problem, (line, key, fragments)) in problems.iter().zip(expected) {
        assert_eq!(problem.file, path(), "{what}: {problem}");
        assert_eq!(problem.line, *line, "{what}: line of {problem}");
        assert_eq!(problem.key, *key, "{what}: key of {problem}");
        for fragment in *fragments {
            assert!(
                problem.message.contains(fragment),
                "{what}: {problem} lacks {fragment:?}"
            );
        }
    }
}

fn check_errors(what: &str, text: &str, expected: &[Expected<'_>]) {
    match Config::parse(&path(), text) {
        Ok(_) => panic!("{what}: accepted"),
        Err(ConfigErrors(problems)) => check_problems(what, &problems, expected),
    }
}

/// The mailer makes the `file://` folder: a file in its place (or above it) fails the
/// check, not the first delivery.
#[test]
fn a_file_url_must_name_a_folder_that_can_be_made() {
    for url in ["file://Cargo.toml", "file://Cargo.toml/outbox"] {
        let dir = path().with_file_name(url.trim_start_matches("file://"));
        check_errors(
            url,
            &edited(&[("[smtp]", &format!("[smtp]\nurl = \"{url}\""))]),
            &[(
                Some(5),
                "smtp.url",
                &[
                    "Cargo.toml is a file",
                    &format!("the folder {} cannot be made", dir.display()),
                ],
            )],
        );
    }
    let config = Config::parse(
        &path(),
        &edited(&[("[smtp]", "[smtp]\nurl = \"file://src/new\"")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.smtp.endpoint,
        Endpoint::File(path().with_file_name("src/new"))
    );
}

/// `run` creates the database and its folder: a folder in the file's place, or a file
/// in a folder's, fails the check instead.
#[test]
fn the_database_path_must_name_a_file_that_can_be_made() {
    let cases = [
        ("src", "src is a folder; name the database file in it"),
        (
            "Cargo.toml/winback.db",
            "Cargo.toml is a file, so the folder",
        ),
        (
            "Cargo.toml/data/winback.db",
            "Cargo.toml is a file, so the folder",
        ),
    ];
    for (database, expected) in cases {
        check_errors(
            database,
            &edited(&[("path = \"winback.db\"", &format!("path = \"{database}\""))]),
            &[(Some(2), "database.path", &[expected])],
        );
    }
}

#[test]
fn the_base_configuration_is_valid() {
    let config = Config::parse(&path(), BASE).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.campaigns.len(), 1);
    let c = &config.campaigns[0];
    assert_eq!(c.name, "former-clients");
    assert_eq!(c.timezone, chrono_tz::America::New_York);
    assert_eq!(c.send_at.source(), "0 10 * * Tue-Thu");
    let steps: Vec<(StepKind, u32, &str, &str, usize)> = c
        .steps
        .iter()
        .map(|s| {
            (
                s.kind,
                s.after_days,
                s.template.as_str(),
                s.subject.as_str(),
                s.line,
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (
                StepKind::Survey,
                0,
                "survey",
                "{{first_name}}, may we ask why you left?",
                23
            ),
            (
                StepKind::Newsletter,
                30,
                "newsletter",
                "What we've been working on",
                28
            ),
        ]
    );
    assert_eq!(config.sender.company, "Acme Corp");
    assert_eq!(config.smtp.from.email.to_string(), "success@acme.example");
    assert_eq!(config.http.public_url, "https://winback.acme.example");
}

#[test]
fn each_rule_names_its_line_key_and_fix() {
    let cases: &[(&str, Edits<'_>, &[Expected<'_>])] = &[
        (
            "quiet period too short",
            &[("quiet_days = 90", "quiet_days = 89")],
            &[(
                Some(19),
                "campaign[1].quiet_days",
                &["is 89", "at least 90 days"],
            )],
        ),
        (
            "quiet period over ten years",
            &[("quiet_days = 90", "quiet_days = 3651")],
            &[(Some(19), "campaign[1].quiet_days", &["at most 3650"])],
        ),
        (
            "first step not a survey",
            &[("kind = \"survey\"", "kind = \"article\"")],
            &[(
                Some(24),
                "campaign[1].step[1].kind",
                &["is \"article\"", "the first step must be kind = \"survey\""],
            )],
        ),
        (
            "unknown step kind",
            &[("kind = \"newsletter\"", "kind = \"webinar\"")],
            &[(
                Some(29),
                "campaign[1].step[2].kind",
                &[
                    "\"webinar\" is not a step kind",
                    "survey, newsletter, article, whitepaper, greeting",
                ],
            )],
        ),
        (
            "after_days 0",
            &[("after_days = 30", "after_days = 0")],
            &[(
                Some(30),
                "campaign[1].step[2].after_days",
                &["is 0", "at least 1"],
            )],
        ),
        (
            "after_days negative",
            &[("after_days = 30", "after_days = -5")],
            &[(
                Some(30),
                "campaign[1].step[2].after_days",
                &["is -5", "at least 1"],
            )],
        ),
        (
            "after_days missing on a later step",
            &[("after_days = 30", "# no after_days")],
            &[(
                Some(28),
                "campaign[1].step[2].after_days",
                &["is missing", "after_days = 30"],
            )],
        ),
        (
            "after_days on the survey",
            &[(
                "subject = \"{{first_name}}, may we ask why you left?\"\n\n",
                "subject = \"{{first_name}}, may we ask why you left?\"\nafter_days = 10\n",
            )],
            &[(
                Some(27),
                "campaign[1].step[1].after_days",
                &["timed by the campaign's quiet_days", "remove after_days"],
            )],
        ),
        (
            "send_at with four fields",
            &[("send_at = \"0 10 * * Tue-Thu\"", "send_at = \"0 10 * *\"")],
            &[(
                Some(20),
                "campaign[1].send_at",
                &["\"0 10 * *\" has 4 fields", "e.g. \"0 10 * * Tue-Thu\""],
            )],
        ),
        (
            "send_at with a bad hour",
            &[("send_at = \"0 10 * * Tue-Thu\"", "send_at = \"0 25 * * *\"")],
            &[(
                Some(20),
                "campaign[1].send_at",
                &["\"0 25 * * *\" has hour 25, which does not exist: hours go from 0 to 23"],
            )],
        ),
        (
            "send_at missing",
            &[("send_at = \"0 10 * * Tue-Thu\"", "# no send_at")],
            &[(
                Some(17),
                "campaign[1].send_at",
                &["is missing", "\"0 10 * * Tue-Thu\""],
            )],
        ),
        (
            "unknown time zone",
            &[(
                "timezone = \"America/New_York\"",
                "timezone = \"America/NewYork\"",
            )],
            &[(
                Some(21),
                "campaign[1].timezone",
                &["\"America/NewYork\" is not a time zone", "IANA name"],
            )],
        ),
        (
            "missing postal address",
            &[(
                "postal_address = \"1 Main Street, Springfield, IL 62701, USA\"",
                "# no postal address",
            )],
            &[(
                Some(10),
                "sender.postal_address",
                &["is missing", "anti-spam law"],
            )],
        ),
        (
            "empty postal address",
            &[(
                "postal_address = \"1 Main Street, Springfield, IL 62701, USA\"",
                "postal_address = \"  \"",
            )],
            &[(
                Some(12),
                "sender.postal_address",
                &["is empty", "anti-spam law"],
            )],
        ),
        (
            "missing smtp.from",
            &[(
                "from = \"Acme Customer Success <success@acme.example>\"",
                "# no from",
            )],
            &[(
                Some(4),
                "smtp.from",
                &[
                    "is missing",
                    "from = \"Acme Customer Success <success@acme.example>\"",
                ],
            )],
        ),
        (
            "smtp.from not an address",
            &[(
                "from = \"Acme Customer Success <success@acme.example>\"",
                "from = \"Acme Customer Success\"",
            )],
            &[(
                Some(5),
                "smtp.from",
                &["\"Acme Customer Success\" is not an email address"],
            )],
        ),
        (
            "smtp url scheme",
            &[("[smtp]", "[smtp]\nurl = \"http://mail.acme.example\"")],
            // The inserted line is 5; everything below moves down by one.
            &[(
                Some(5),
                "smtp.url",
                &[
                    "\"http://mail.acme.example\" is not supported",
                    "smtp://HOST:PORT",
                ],
            )],
        ),
        (
            "public_url without a scheme",
            &[(
                "public_url = \"https://winback.acme.example\"",
                "public_url = \"winback.acme.example\"",
            )],
            &[(
                Some(8),
                "http.public_url",
                &["must be a URL starting with https://"],
            )],
        ),
        (
            "catch_up_hours zero",
            &[("quiet_days = 90", "catch_up_hours = 0")],
            &[(
                Some(19),
                "campaign[1].catch_up_hours",
                &["is 0", "between 1 and 168"],
            )],
        ),
        (
            "no steps",
            &[(
                "[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{{first_name}}, may we ask why you left?\"\n\n[[campaign.step]]\nkind = \"newsletter\"\nafter_days = 30\ntemplate = \"newsletter\"\nsubject = \"What we've been working on\"\n",
                "",
            )],
            &[(
                Some(17),
                "campaign[1].step",
                &["no [[campaign.step]]", "kind = \"survey\""],
            )],
        ),
        (
            "template with a folder",
            &[(
                "template = \"newsletter\"",
                "template = \"mail/newsletter.hbs\"",
            )],
            &[(
                Some(31),
                "campaign[1].step[2].template",
                &["must be a bare name"],
            )],
        ),
        (
            "templates dir missing",
            &[("dir = \".\"", "dir = \"no-such-templates-dir\"")],
            &[(
                None,
                "templates.dir",
                &["no-such-templates-dir does not exist"],
            )],
        ),
        (
            "no campaign",
            &[(
                "[[campaign]]\nname = \"former-clients\"\nquiet_days = 90\nsend_at = \"0 10 * * Tue-Thu\"\ntimezone = \"America/New_York\"\n\n[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"{{first_name}}, may we ask why you left?\"\n\n[[campaign.step]]\nkind = \"newsletter\"\nafter_days = 30\ntemplate = \"newsletter\"\nsubject = \"What we've been working on\"\n",
                "",
            )],
            &[(None, "campaign", &["no [[campaign]] is defined"])],
        ),
        (
            "missing [smtp] section",
            &[(
                "[smtp]\nfrom = \"Acme Customer Success <success@acme.example>\"\n",
                "\n\n",
            )],
            &[(None, "smtp", &["the [smtp] section is missing", "from"])],
        ),
    ];
    for (what, edits, expected) in cases {
        check_errors(what, &edited(edits), expected);
    }
}

#[test]
fn several_problems_are_reported_at_once_in_line_order() {
    // Edits listed out of line order on purpose.
    let text = edited(&[
        ("after_days = 30", "after_days = 0"),
        (
            "timezone = \"America/New_York\"",
            "timezone = \"Mars/Olympus\"",
        ),
        (
            "postal_address = \"1 Main Street, Springfield, IL 62701, USA\"",
            "# no postal address",
        ),
        ("quiet_days = 90", "quiet_days = 30"),
        (
            "from = \"Acme Customer Success <success@acme.example>\"",
            "# no from",
        ),
    ]);
    check_errors(
        "five problems",
        &text,
        &[
            (Some(4), "smtp.from", &["is missing"]),
            (Some(10), "sender.postal_address", &["is missing"]),
            (
                Some(19),
                "campaign[1].quiet_days",
                &["is 30", "at least 90 days"],
            ),
            (
                Some(21),
                "campaign[1].timezone",
                &["\"Mars/Olympus\" is not a time zone"],
            ),
            (Some(30), "campaign[1].step[2].after_days", &["is 0"]),
        ],
    );
}

#[test]
fn problems_are_sorted_by_line_whatever_order_they_are_found_in() {
    // catch_up_hours is checked after quiet_days but written above it here, and a
    // duplicate name is found only after its campaign's steps are checked: the report
    // still reads top to bottom.
    let text = edited(&[
        ("quiet_days = 90", "catch_up_hours = 0"),
        ("timezone = \"America/New_York\"", "quiet_days = 89"),
    ]) + &SECOND_CAMPAIGN.replace("kind = \"survey\"", "kind = \"webinar\"");
    check_errors(
        "out of order",
        &text,
        &[
            (Some(19), "campaign[1].catch_up_hours", &["is 0"]),
            (Some(21), "campaign[1].quiet_days", &["is 89"]),
            (
                Some(34),
                "campaign.name",
                &["\"former-clients\" is used by two campaigns"],
            ),
            (
                Some(39),
                "campaign[2].step[1].kind",
                &["\"webinar\" is not a step kind"],
            ),
        ],
    );
}

#[test]
fn a_problem_prints_as_file_line_key_message() {
    let Err(ConfigErrors(problems)) =
        Config::parse(&path(), &edited(&[("quiet_days = 90", "quiet_days = 89")]))
    else {
        panic!("quiet_days 89 accepted");
    };
    assert_eq!(
        problems[0].to_string(),
        format!(
            "{}:19: campaign[1].quiet_days: is 89; the quiet period must be at least 90 days (a former client contacted sooner is lost for good)",
            path().display()
        )
    );
    let all = ConfigErrors(problems).to_string();
    assert!(
        all.starts_with("1 problem in the configuration:\n"),
        "{all}"
    );
}

#[test]
fn duplicate_campaign_names_are_refused() {
    let text = format!("{BASE}{SECOND_CAMPAIGN}");
    check_errors(
        "duplicate names",
        &text,
        &[(
            Some(34),
            "campaign.name",
            &["\"former-clients\" is used by two campaigns", "unique"],
        )],
    );
    // A different name is fine.
    let renamed = text.replacen(
        "name = \"former-clients\"\nsend_at = \"0 10 * * *\"",
        "name = \"partners\"\nsend_at = \"0 10 * * *\"",
        1,
    );
    let config = Config::parse(&path(), &renamed).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = config.campaigns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["former-clients", "partners"]);
}

#[test]
fn toml_mistakes_name_their_line() {
    // (what, edits, line, fragments)
    let cases: &[(&str, Edits<'_>, usize, &[&str])] = &[
        (
            "unknown campaign key",
            &[("quiet_days = 90", "quiet_dayz = 90")],
            19,
            &[
                "unknown field `quiet_dayz`",
                "(did you mean `quiet_days`?)",
                "check its spelling",
            ],
        ),
        (
            "unknown step key",
            &[("after_days = 30", "after_day = 30")],
            30,
            &["unknown field `after_day`", "check its spelling"],
        ),
        (
            "unknown smtp key",
            &[("from = ", "form = ")],
            5,
            &["unknown field `form`", "check its spelling"],
        ),
        (
            "unknown section",
            &[("[templates]", "[template]")],
            14,
            &["unknown field `template`", "check its spelling"],
        ),
        (
            "unterminated string",
            &[("name = \"former-clients\"", "name = \"former-clients")],
            18,
            &[],
        ),
        (
            "bare word value",
            &[("quiet_days = 90", "quiet_days = ninety")],
            19,
            &[],
        ),
        (
            "number as a string",
            &[("quiet_days = 90", "quiet_days = \"90\"")],
            19,
            &[],
        ),
    ];
    for (what, edits, line, fragments) in cases {
        let Err(ConfigErrors(problems)) = Config::parse(&path(), &edited(edits)) else {
            panic!("{what}: accepted");
        };
        assert_eq!(problems.len(), 1, "{what}: {problems:#?}");
        let problem = &problems[0];
        assert_eq!(problem.line, Some(*line), "{what}: {problem}");
        assert!(!problem.message.is_empty(), "{what}");
        for fragment in *fragments {
            assert!(
                problem.message.contains(fragment),
                "{what}: {problem} lacks {fragment:?}"
            );
        }
        if fragments.is_empty() {
            assert!(
                !problem.message.contains("check its spelling"),
                "{what}: {problem}"
            );
        }
    }
}

#[test]
fn questionable_but_valid_settings_are_warnings() {
    // (what, edits, warnings)
    let cases: &[(&str, Edits<'_>, &[Expected<'_>])] = &[
        ("none", &[], &[]),
        (
            "touches a week apart",
            &[("after_days = 30", "after_days = 7")],
            &[(
                Some(30),
                "campaign[1].step[2].after_days",
                &["is 7", "at least 14 days apart"],
            )],
        ),
        (
            "touches two weeks apart",
            &[("after_days = 30", "after_days = 14")],
            &[],
        ),
        (
            "exclude_reasons without we_ended",
            &[("quiet_days = 90", "exclude_reasons = [\"price\"]")],
            &[(
                Some(19),
                "campaign[1].exclude_reasons",
                &["does not list \"we_ended\"", "never contacted anyway"],
            )],
        ),
        (
            "exclude_reasons with we_ended",
            &[(
                "quiet_days = 90",
                "exclude_reasons = [\"price\", \"we_ended\"]",
            )],
            &[],
        ),
    ];
    for (what, edits, expected) in cases {
        let config =
            Config::parse(&path(), &edited(edits)).unwrap_or_else(|e| panic!("{what}: {e}"));
        check_problems(what, &config.warnings, expected);
    }
}

#[test]
fn we_ended_is_never_admitted() {
    // (exclude_reasons line, reason, admitted)
    let cases: &[(Option<&str>, Option<&str>, bool)] = &[
        // Default: only we_ended is excluded.
        (None, Some("we_ended"), false),
        (None, Some("competitor"), true),
        (None, Some("price"), true),
        (None, None, true),
        // A list that omits we_ended still never admits it.
        (
            Some("exclude_reasons = [\"price\"]"),
            Some("we_ended"),
            false,
        ),
        (Some("exclude_reasons = [\"price\"]"), Some("price"), false),
        (
            Some("exclude_reasons = [\"price\"]"),
            Some("competitor"),
            true,
        ),
        (Some("exclude_reasons = [\"price\"]"), None, true),
        (Some("exclude_reasons = []"), Some("we_ended"), false),
        (Some("exclude_reasons = []"), Some("acquisition"), true),
        // Listed slugs are trimmed and lower-cased.
        (
            Some("exclude_reasons = [\" Price \", \"we_ended\"]"),
            Some("price"),
            false,
        ),
        (
            Some("exclude_reasons = [\"we_ended\", \"contact_left\"]"),
            Some("contact_left"),
            false,
        ),
        (
            Some("exclude_reasons = [\"we_ended\", \"contact_left\"]"),
            Some("needs_changed"),
            true,
        ),
    ];
    for (line, reason, admitted) in cases {
        let text = match line {
            None => BASE.to_string(),
            Some(line) => edited(&[("quiet_days = 90", line)]),
        };
        let config = Config::parse(&path(), &text).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(
            config.campaigns[0].admits_reason(*reason),
            *admitted,
            "{line:?} admits {reason:?}"
        );
    }
}

#[test]
fn relative_paths_are_resolved_against_the_config_file_directory() {
    let root = tempfile::tempdir().expect("a temp dir");
    let config_dir = root.path().join("config");
    std::fs::create_dir(&config_dir).expect("config dir");
    std::fs::create_dir(root.path().join("templates")).expect("templates dir");
    std::fs::create_dir(root.path().join("keys")).expect("keys dir");
    std::fs::write(root.path().join("keys/dkim.pem"), "not really a key").expect("key file");
    let text = r#"
[database]
path = "data/winback.db"

[smtp]
url = "file://../outbox"
from = "success@acme.example"

[http]
public_url = "https://winback.acme.example/"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street"

[templates]
dir = "../templates"

[clients]
sync_file = "clients.csv"

[dkim]
selector = "winback"
domain = "acme.example"
key_file = "../keys/dkim.pem"

[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Hello"
"#;
    let file = config_dir.join("winback.toml");
    let config = Config::parse(&file, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.file, file);
    assert_eq!(config.base_dir(), config_dir.as_path());
    assert_eq!(config.database_path, config_dir.join("data/winback.db"));
    // `..` is resolved in the text, so logs show the plain path.
    assert_eq!(config.templates_dir, root.path().join("templates"));
    assert_eq!(
        config.smtp.url,
        format!("file://{}", root.path().join("outbox").display())
    );
    assert_eq!(
        config.clients.sync_file,
        Some(config_dir.join("clients.csv"))
    );
    let dkim = config.dkim.expect("dkim");
    assert_eq!(dkim.key_file, root.path().join("keys/dkim.pem"));
    assert_eq!(
        (dkim.selector.as_str(), dkim.domain.as_str()),
        ("winback", "acme.example")
    );
    // The trailing slash of public_url is dropped.
    assert_eq!(config.http.public_url, "https://winback.acme.example");

    // The same text one directory up does not find the templates.
    let Err(ConfigErrors(problems)) = Config::parse(&root.path().join("winback.toml"), text) else {
        panic!("templates found from the wrong directory");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["templates.dir", "dkim.key_file"],
        "{problems:#?}"
    );
}

#[test]
fn unset_keys_take_their_defaults() {
    let text = r#"
[smtp]
from = "success@acme.example"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street"

[templates]
dir = "."

[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Hello"
"#;
    let config = Config::parse(&path(), text).unwrap_or_else(|e| panic!("{e}"));
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        config.smtp.url,
        format!("file://{}", base.join("outbox").display())
    );
    assert_eq!(config.smtp.connections, 4);
    assert_eq!(config.smtp.max_per_minute, None);
    assert_eq!(config.smtp.max_per_day, None);
    assert_eq!(config.smtp.reply_to, None);
    assert_eq!(config.smtp.timeout, std::time::Duration::from_secs(60));
    assert_eq!(config.smtp.retry_first, chrono::Duration::minutes(5));
    assert_eq!(config.smtp.retry_give_up, chrono::Duration::hours(72));
    assert_eq!(config.database_path, base.join("winback.db"));
    assert_eq!(
        config.http.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.clients.sync_file, None);
    assert_eq!(config.survey_external_url, None);
    assert!(config.dkim.is_none());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let c = &config.campaigns[0];
    assert_eq!(c.quiet_days, 90);
    assert_eq!(c.catch_up_hours, 4);
    assert_eq!(c.timezone, Tz::UTC);
    assert_eq!(c.exclude_reasons, vec!["we_ended".to_string()]);
}

#[test]
fn set_keys_override_the_defaults() {
    let text = edited(&[
        (
            "from = \"Acme Customer Success <success@acme.example>\"",
            "from = \"Acme Customer Success <success@acme.example>\"\nurl = \"smtps://mail.acme.example:465\"\nconnections = 2\nmax_per_minute = 30\nmax_per_day = 500\nreply_to = \"help@acme.example\"",
        ),
        ("quiet_days = 90", "quiet_days = 120\ncatch_up_hours = 2"),
    ]);
    let config = Config::parse(&path(), &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.smtp.url, "smtps://mail.acme.example:465");
    assert_eq!(config.smtp.connections, 2);
    assert_eq!(config.smtp.max_per_minute, Some(30));
    assert_eq!(config.smtp.max_per_day, Some(500));
    assert_eq!(
        config.smtp.reply_to.map(|m| m.email.to_string()),
        Some("help@acme.example".to_string())
    );
    assert_eq!(config.campaigns[0].quiet_days, 120);
    assert_eq!(config.campaigns[0].catch_up_hours, 2);
}

#[test]
fn privacy_url_is_optional_and_must_be_an_https_address() {
    let postal = "postal_address = \"1 Main Street, Springfield, IL 62701, USA\"";
    let with = |url: &str| edited(&[(postal, &format!("{postal}\nprivacy_url = \"{url}\""))]);
    let config = Config::parse(&path(), BASE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.sender.privacy_url, None);
    let config = Config::parse(&path(), &with("https://acme.example/privacy"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.sender.privacy_url.as_deref(),
        Some("https://acme.example/privacy")
    );
    for bad in [
        "http://acme.example/privacy",
        "acme.example/privacy",
        "https://",
        "https:///privacy",
        "https://acme.example/a b",
        "https://acme.example/\\\">x",
    ] {
        check_errors(
            bad,
            &with(bad),
            &[(
                Some(13),
                "sender.privacy_url",
                &["not a web address", "https://acme.example/privacy"],
            )],
        );
    }
}

#[test]
fn dkim_warns_when_its_domain_does_not_align_with_from_and_takes_a_second_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.pem"), "key").unwrap();
    std::fs::write(dir.path().join("b.pem"), "key").unwrap();
    let file = dir.path().join("winback.toml");
    let parse = |dkim: &str| {
        let text = format!("{BASE}\n[dkim]\n{dkim}");
        Config::parse(&file, &text)
    };
    let keys = "selector = \"s1\"\nkey_file = \"a.pem\"\n";
    // From is success@acme.example.
    for aligned in ["acme.example", "ACME.example."] {
        let config =
            parse(&format!("domain = \"{aligned}\"\n{keys}")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            config.warnings.is_empty(),
            "{aligned}: {:?}",
            config.warnings
        );
        assert!(config.dkim.unwrap().second.is_none());
    }
    for unaligned in ["mail.acme.example", "esp.example", "acme.example.net"] {
        let config =
            parse(&format!("domain = \"{unaligned}\"\n{keys}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.warnings.len(),
            1,
            "{unaligned}: {:?}",
            config.warnings
        );
        let warning = &config.warnings[0];
        assert_eq!(
            (warning.key.as_str(), warning.line),
            ("dkim.domain", Some(35))
        );
        assert!(
            warning
                .message
                .contains("does not match the From address's domain \"acme.example\"")
                && warning.message.contains("align"),
            "{warning}"
        );
    }

    let config = parse(&format!(
        "domain = \"acme.example\"\n{keys}second_selector = \"s2\"\nsecond_key_file = \"b.pem\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let second = config.dkim.unwrap().second.expect("a second key");
    assert_eq!(second.selector, "s2");
    assert_eq!(second.key_file, dir.path().join("b.pem"));
    for (extra, key, fragment) in [
        (
            "second_selector = \"s2\"\n",
            "dkim.second_selector",
            "set both",
        ),
        (
            "second_key_file = \"b.pem\"\n",
            "dkim.second_selector",
            "set both",
        ),
        (
            "second_selector = \"s1\"\nsecond_key_file = \"b.pem\"\n",
            "dkim.second_selector",
            "its own selector",
        ),
        (
            "second_selector = \"s2\"\nsecond_key_file = \"missing.pem\"\n",
            "dkim.second_key_file",
            "does not exist",
        ),
    ] {
        let errors = parse(&format!("domain = \"acme.example\"\n{keys}{extra}")).expect_err(extra);
        assert_eq!(errors.0.len(), 1, "{extra}: {errors}");
        assert_eq!(errors.0[0].key, key, "{extra}");
        assert!(errors.0[0].message.contains(fragment), "{extra}: {errors}");
    }
}

#[test]
fn public_url_must_open_for_recipients_when_mail_goes_to_a_server() {
    let to_server = |public_url: &str| {
        edited(&[
            ("[smtp]", "[smtp]\nurl = \"smtps://mail.acme.example:465\""),
            (
                "public_url = \"https://winback.acme.example\"",
                &format!("public_url = \"{public_url}\""),
            ),
        ])
    };
    // (public_url, fragments of the error)
    let refused: &[(&str, &[&str])] = &[
        (
            "http://127.0.0.1:8080",
            &[
                "starts with http://",
                "RFC 8058",
                "this machine's own address",
            ],
        ),
        ("http://winback.acme.example", &["starts with http://"]),
        ("https://[::1]:8443", &["this machine's own address"]),
        ("https://10.1.2.3", &["private network address"]),
        ("https://172.20.0.4/winback", &["private network address"]),
        ("https://192.168.1.20", &["private network address"]),
        ("https://169.254.10.10", &["private network address"]),
        ("https://[fd12:3456::1]", &["private network address"]),
        ("https://[fe80::1]", &["private network address"]),
        ("https://203.0.113.9", &["bare IP address"]),
        ("https://localhost:8443", &["this machine itself"]),
        ("https://winback.localhost", &["this machine itself"]),
        ("https://winback", &["only your own network knows"]),
        ("https://winback.internal", &["only your own network knows"]),
        ("https://crm.local", &["only your own network knows"]),
    ];
    for (public_url, fragments) in refused {
        let mut all = vec!["cannot be opened by the people you mail", "https://"];
        all.extend_from_slice(fragments);
        check_errors(
            public_url,
            &to_server(public_url),
            &[(Some(9), "http.public_url", &all)],
        );
    }
    for public_url in [
        "https://winback.acme.example",
        "https://winback.acme.example:8443/links/",
        "https://WINBACK.ACME.EXAMPLE.",
    ] {
        let config =
            Config::parse(&path(), &to_server(public_url)).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    // Mail written to files reaches no one yet: a warning, not an error.
    let text = edited(&[(
        "public_url = \"https://winback.acme.example\"",
        "public_url = \"http://127.0.0.1:8080\"",
    )]);
    let config = Config::parse(&path(), &text).unwrap_or_else(|e| panic!("{e}"));
    check_problems(
        "file:// with a local public_url",
        &config.warnings,
        &[(
            Some(8),
            "http.public_url",
            &[
                "starts with http://",
                "this machine's own address",
                "fine while",
            ],
        )],
    );
}

#[test]
fn mistakes_get_sentences_a_marketer_can_act_on() {
    /// (what, edits, line, key, fragments, words that must not appear)
    type Case<'a> = (
        &'a str,
        Edits<'a>,
        usize,
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
    );
    let cases: &[Case<'_>] = &[
        (
            "a number in quotes",
            &[("quiet_days = 90", "quiet_days = \"90\"")],
            19,
            "campaign[1].quiet_days",
            &[
                "is written as text (\"90\")",
                "without quotes: quiet_days = 90",
            ],
            &["i64", "invalid type"],
        ),
        (
            "a list written as one value",
            &[("quiet_days = 90", "exclude_reasons = \"we_ended\"")],
            19,
            "campaign[1].exclude_reasons",
            &[
                "must be a list in square brackets",
                "exclude_reasons = [\"we_ended\"]",
            ],
            &["sequence"],
        ),
        (
            "curly double quotes",
            &[(
                "send_at = \"0 10 * * Tue-Thu\"",
                "send_at = \u{201c}0 10 * * Tue-Thu\u{201d}",
            )],
            20,
            "campaign[1].send_at",
            &[
                "curly quotes",
                "word processor",
                "straight quotes",
                "send_at = \"0 10 * * Tue-Thu\"",
            ],
            &["literal string"],
        ),
        (
            "curly single quotes, an apostrophe inside",
            &[(
                "company = \"Acme Corp\"",
                "company = \u{2018}Acme\u{2019}s Corp\u{2019}",
            )],
            11,
            "sender.company",
            &["curly quotes", "company = \"Acme\u{2019}s Corp\""],
            &["literal string"],
        ),
        (
            "a number where text goes",
            &[("send_at = \"0 10 * * Tue-Thu\"", "send_at = 5")],
            20,
            "campaign[1].send_at",
            &["must be text in double quotes: send_at = \"5\""],
            &["integer"],
        ),
        (
            "a decimal number",
            &[("after_days = 30", "after_days = 30.5")],
            30,
            "campaign[1].step[2].after_days",
            &["whole number", "after_days = 30"],
            &["floating"],
        ),
        (
            "a word where a number goes",
            &[("quiet_days = 90", "quiet_days = ninety")],
            19,
            "campaign[1].quiet_days",
            &["whole number", "quiet_days = 90"],
            &["nan", "float"],
        ),
        (
            "text without quotes",
            &[(
                "public_url = \"https://winback.acme.example\"",
                "public_url = https://winback.acme.example",
            )],
            8,
            "http.public_url",
            &[
                "needs double quotes",
                "public_url = \"https://winback.acme.example\"",
            ],
            &["literal string"],
        ),
        (
            "a key written twice",
            &[("quiet_days = 90", "quiet_days = 90\nquiet_days = 120")],
            20,
            "campaign[1].quiet_days",
            &["written twice"],
            &[],
        ),
    ];
    for (what, edits, line, key, fragments, absent) in cases {
        let Err(ConfigErrors(problems)) = Config::parse(&path(), &edited(edits)) else {
            panic!("{what}: accepted");
        };
        check_problems(what, &problems, &[(Some(*line), key, fragments)]);
        for word in *absent {
            assert!(
                !problems[0].message.contains(word),
                "{what}: {} says {word:?}",
                problems[0]
            );
        }
    }

    check_errors(
        "a space after the zone",
        &edited(&[(
            "timezone = \"America/New_York\"",
            "timezone = \"Europe/Paris \"",
        )]),
        &[(
            Some(21),
            "campaign[1].timezone",
            &["has a space", "timezone = \"Europe/Paris\""],
        )],
    );
    check_errors(
        "an abbreviation for a zone",
        &edited(&[("timezone = \"America/New_York\"", "timezone = \"PST\"")]),
        &[(
            Some(21),
            "campaign[1].timezone",
            &["abbreviation", "\"America/Los_Angeles\""],
        )],
    );
}

#[test]
fn likely_mistakes_that_still_run_are_warnings() {
    // (what, edits, warnings)
    let cases: &[(&str, Edits<'_>, &[Expected<'_>])] = &[
        (
            "a fixed-offset zone",
            &[("timezone = \"America/New_York\"", "timezone = \"EST\"")],
            &[(
                Some(21),
                "campaign[1].timezone",
                &["fixed offset", "no daylight saving", "\"America/New_York\""],
            )],
        ),
        (
            "an offset zone",
            &[(
                "timezone = \"America/New_York\"",
                "timezone = \"Etc/GMT-1\"",
            )],
            &[(Some(21), "campaign[1].timezone", &["fixed offset"])],
        ),
        (
            "a named zone",
            &[(
                "timezone = \"America/New_York\"",
                "timezone = \"Asia/Tokyo\"",
            )],
            &[],
        ),
        (
            "we_ended with a hyphen",
            &[("quiet_days = 90", "exclude_reasons = [\"we-ended\"]")],
            &[(
                Some(19),
                "campaign[1].exclude_reasons",
                &["\"we-ended\"", "did you mean \"we_ended\"?"],
            )],
        ),
        (
            "a misspelt reason",
            &[(
                "quiet_days = 90",
                "exclude_reasons = [\"competiter\", \"we_ended\"]",
            )],
            &[(
                Some(19),
                "campaign[1].exclude_reasons",
                &["did you mean \"competitor\"?"],
            )],
        ),
        (
            "a reason of one's own",
            &[(
                "quiet_days = 90",
                "exclude_reasons = [\"reorg\", \"we_ended\"]",
            )],
            &[],
        ),
        (
            "both day fields",
            &[(
                "send_at = \"0 10 * * Tue-Thu\"",
                "send_at = \"0 10 1-20 * Tue-Thu\"",
            )],
            &[(
                Some(20),
                "campaign[1].send_at",
                &[
                    "either day 1-20 of the month or a Tue-Thu day",
                    "at weekends",
                    "\"0 10 1-20 * *\"",
                    "crontab cannot say \"both\"",
                    "\"0 10 * * Tue-Thu\"",
                ],
            )],
        ),
    ];
    for (what, edits, expected) in cases {
        let config =
            Config::parse(&path(), &edited(edits)).unwrap_or_else(|e| panic!("{what}: {e}"));
        check_problems(what, &config.warnings, expected);
    }
}

#[test]
fn a_date_format_is_checked_when_the_configuration_is_read() {
    let with = |format: &str| format!("{BASE}\n[clients]\ndate_format = \"{format}\"\n");
    let config = Config::parse(&path(), &with("MM/DD/YYYY")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.clients.format.date_format.as_deref(),
        Some("MM/DD/YYYY")
    );
    check_errors(
        "lower-case date parts",
        &with("dd.mm.yyyy"),
        &[(
            Some(35),
            "clients.date_format",
            &["\"dd.mm.yyyy\"", "capitals", "\"DD.MM.YYYY\""],
        )],
    );
    check_errors(
        "a two-digit year",
        &with("MM/DD/YY"),
        &[(Some(35), "clients.date_format", &["YYYY (four digits)"])],
    );
}
