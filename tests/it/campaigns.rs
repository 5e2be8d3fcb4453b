//! Campaign names through the real binary: a rename is confirmed before the daemon runs
//! with it, carries everyone's place over, and nobody is surveyed twice.

use std::fs;

use crate::support::Project;

const NOW: &str = "2026-06-02T14:00:00Z";
const NEXT_DAY: &str = "2026-06-03T14:00:00Z";
const MONTH_LATER: &str = "2026-07-03T14:00:00Z";

/// `campaigns`: (name, extra lines), each a survey then a newsletter 30 days later.
fn config(campaigns: &[(&str, &str)]) -> String {
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    for (name, extra) in campaigns {
        text.push_str(&format!(
            r#"
[[campaign]]
name = "{name}"
send_at = "* * * * *"
{extra}
  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{name}: may we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "{name}: our news"
"#
        ));
    }
    text
}

/// The subjects of every message in `outbox/`, sorted.
fn subjects(project: &Project) -> Vec<String> {
    let Ok(entries) = fs::read_dir(project.path("outbox")) else {
        return Vec::new();
    };
    let mut subjects: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|eml| {
            eml.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect();
    subjects.sort();
    subjects
}

/// Two former clients past their quiet period, surveyed by `former-clients` at `NOW`.
fn surveyed_project() -> Project {
    let project = Project::new();
    project.write_config(&config(&[("former-clients", "")]));
    // The shipped newsletter's placeholders would hold it.
    project.fill_placeholders();
    project.write_file(
        "clients.csv",
        "email,name,churned_at\nada@analytical.example,Ada,2025-11-01\nbob@builders.example,Bob,2025-11-01\n",
    );
    project
        .winback(&["--now", NOW, "import", "clients.csv"])
        .assert_success();
    project
        .winback(&["--now", NOW, "run", "--once"])
        .assert_success();
    assert_eq!(subjects(&project).len(), 2, "{:?}", subjects(&project));
    project
}

#[test]
fn a_renamed_campaign_is_confirmed_first_and_surveys_nobody_again() {
    let project = surveyed_project();

    // Renamed without a word: check names it, and nothing runs.
    project.write_config(&config(&[("former_clients", "")]));
    let check = project.winback(&["check"]);
    check.assert_failure();
    assert!(
        check.stdout.contains(
            "the campaign \"former-clients\" (2 people enrolled) is no longer in the configuration and \"former_clients\" is new"
        ) && check
            .stdout
            .contains("add renamed_from = \"former-clients\" to the [[campaign]] named \"former_clients\""),
        "{}",
        check.stdout
    );
    for args in [
        &["--now", NEXT_DAY, "run", "--once"][..],
        &["--now", NEXT_DAY, "run"],
        &["--now", NEXT_DAY, "plan"],
        &["--now", NEXT_DAY, "import", "clients.csv"],
    ] {
        let refused = project.winback(args);
        refused.assert_failure();
        assert!(
            refused.stderr.contains("renamed_from = \"former-clients\""),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(subjects(&project).len(), 2, "{:?}", subjects(&project));

    // Confirmed: everyone keeps their place; the next message is the newsletter.
    project.write_config(&config(&[(
        "former_clients",
        "renamed_from = \"former-clients\"\n",
    )]));
    project.winback(&["check"]).assert_success();
    project
        .winback(&["--now", NEXT_DAY, "run", "--once"])
        .assert_success();
    assert_eq!(subjects(&project).len(), 2, "{:?}", subjects(&project));
    project
        .winback(&["--now", MONTH_LATER, "run", "--once"])
        .assert_success();
    assert_eq!(
        subjects(&project),
        vec![
            "former-clients: may we ask why you left?".to_string(),
            "former-clients: may we ask why you left?".to_string(),
            "former_clients: our news".to_string(),
            "former_clients: our news".to_string(),
        ]
    );
}

#[test]
fn a_person_surveyed_by_one_campaign_is_never_surveyed_by_another() {
    let project = surveyed_project();
    // A second campaign beside the first: its survey is skipped for people already
    // asked; its newsletter follows 30 days after the survey they did get.
    project.write_config(&config(&[("former-clients", ""), ("partners", "")]));
    project.winback(&["check"]).assert_success();
    project
        .winback(&["--now", NEXT_DAY, "run", "--once"])
        .assert_success();
    assert_eq!(subjects(&project).len(), 2, "{:?}", subjects(&project));
    project
        .winback(&["--now", "2026-06-10T14:00:00Z", "run", "--once"])
        .assert_success();
    assert!(
        !subjects(&project)
            .iter()
            .any(|s| s.starts_with("partners: may we ask")),
        "{:?}",
        subjects(&project)
    );
}
