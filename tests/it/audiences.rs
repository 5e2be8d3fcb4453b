//! Audiences through the real binary: campaigns are segments (each client in the first
//! whose audience admits them, never surveyed twice), `check` says who each campaign is
//! for and which one earlier campaigns leave nobody to, `import` counts the clients the
//! enrollment window and the consent horizon leave out, and a paused campaign says so.

use std::fs;

use crate::support::Project;

/// A campaign `name` sending at any minute, with `extra` lines: a survey, then a
/// newsletter 30 days later.
fn campaign(name: &str, extra: &str) -> String {
    format!(
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
    )
}

fn project(campaigns: &[String]) -> Project {
    let project = Project::new();
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    for c in campaigns {
        text.push_str(c);
    }
    project.write_config(&text);
    // The shipped newsletter's placeholders would hold it.
    project.fill_placeholders();
    project
}

/// Every message in `outbox/` as (recipient, subject), sorted.
fn sent(project: &Project) -> Vec<(String, String)> {
    let Ok(entries) = fs::read_dir(project.path("outbox")) else {
        return Vec::new();
    };
    let mut sent: Vec<(String, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .map(|eml| {
            let header = |name: &str| {
                eml.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                    .unwrap_or_default()
            };
            (header("To:"), header("Subject:"))
        })
        .collect();
    sent.sort();
    sent
}

#[test]
fn two_campaigns_by_reason_survey_each_person_once_from_their_own_campaign() {
    let project = project(&[
        campaign("price", "include_reasons = [\"price\"]"),
        campaign(
            "emea",
            "match = { \"fields.region\" = \"EMEA\", country = \"Germany\" }",
        ),
        campaign("everyone", ""),
    ]);
    project.write_file(
        "clients.csv",
        "email,churned_at,churn_reason,region,country\n\
         pia@price.example,2026-01-05,price,EMEA,DE\n\
         eva@emea.example,2026-01-05,competitor,emea,Deutschland\n\
         ole@other.example,2026-01-05,competitor,EMEA,FR\n\
         nan@none.example,2026-01-05,,,\n",
    );
    project
        .winback(&["--now", "2026-06-02T14:00:00Z", "import", "clients.csv"])
        .assert_success();
    // A few months of passes, with a later export that moves Pia to another audience.
    for (i, now) in [
        "2026-06-02T14:00:00Z",
        "2026-06-03T14:00:00Z",
        "2026-07-03T14:00:00Z",
        "2026-08-04T14:00:00Z",
        "2026-10-01T14:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        if i == 2 {
            project.write_file(
                "clients.csv",
                "email,churned_at,churn_reason,region,country\npia@price.example,2026-01-05,competitor,EMEA,DE\n",
            );
            project
                .winback(&["--now", now, "import", "clients.csv"])
                .assert_success();
        }
        project
            .winback(&["--now", now, "run", "--once"])
            .assert_success();
    }
    let sent = sent(&project);
    let to = |who: &str, subjects: &[&str]| {
        let got: Vec<&str> = sent
            .iter()
            .filter(|(to, _)| to.contains(who))
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(got, subjects, "{who}: {sent:#?}");
    };
    to(
        "pia@",
        &["price: may we ask why you left?", "price: our news"],
    );
    to(
        "eva@",
        &["emea: may we ask why you left?", "emea: our news"],
    );
    to(
        "ole@",
        &["everyone: may we ask why you left?", "everyone: our news"],
    );
    to(
        "nan@",
        &["everyone: may we ask why you left?", "everyone: our news"],
    );

    let status = project.winback(&["status"]);
    status.assert_success();
    assert!(
        status
            .stdout
            .contains("campaign price:\n  enrollments: active 1\n")
            || status
                .stdout
                .contains("campaign price:\n  enrollments: completed 1\n"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_campaign_added_later_takes_only_those_no_campaign_had() {
    let project = project(&[campaign("price", "include_reasons = [\"price\"]")]);
    project.write_file(
        "clients.csv",
        "email,churned_at,churn_reason\npia@price.example,2026-01-05,price\nole@other.example,2026-01-05,competitor\n",
    );
    project
        .winback(&["--now", "2026-06-02T14:00:00Z", "import", "clients.csv"])
        .assert_success();
    project
        .winback(&["--now", "2026-06-02T14:00:00Z", "run", "--once"])
        .assert_success();
    // A catch-all campaign, placed first: Pia stays where she is, Ole joins it.
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    text.push_str(&campaign("everyone", ""));
    text.push_str(&campaign("price", "include_reasons = [\"price\"]"));
    project.write_config(&text);
    project
        .winback(&["--now", "2026-06-05T14:00:00Z", "run", "--once"])
        .assert_success();
    assert_eq!(
        sent(&project)
            .into_iter()
            .map(|(to, s)| format!("{to} {s}"))
            .collect::<Vec<_>>(),
        vec![
            "ole@other.example everyone: may we ask why you left?".to_string(),
            "pia@price.example price: may we ask why you left?".to_string(),
        ]
    );
}

#[test]
fn check_says_who_each_campaign_is_for_and_which_one_gets_nobody() {
    let project = project(&[
        campaign("everyone", "paused = true"),
        campaign("price", "include_reasons = [\"price\", \"competiter\"]"),
    ]);
    let check = project.winback(&["check"]);
    check.assert_success();
    let out = &check.stdout;
    assert!(
        out.contains("\"price\" can never enroll anyone: the campaign \"everyone\" before it takes every client it would"),
        "{out}"
    );
    assert!(out.contains("did you mean \"competitor\"?"), "{out}");
    assert!(
        out.contains("  everyone (PAUSED: nothing of it is sent; enrollment goes on): 2 steps")
            && out.contains("audience: every churn reason, never contacts: we_ended"),
        "{out}"
    );
    assert!(
        out.contains("  price: 2 steps")
            && out.contains("audience: churn reason price or competiter,"),
        "{out}"
    );

    // A reason no imported client has: the CRM may word it otherwise.
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    text.push_str(&campaign("price", "include_reasons = [\"price\"]"));
    text.push_str(&campaign("everyone", ""));
    project.write_config(&text);
    project.write_file(
        "clients.csv",
        "email,churned_at,churn_reason\nann@a.example,2026-01-05,Budget\n",
    );
    project.winback(&["import", "clients.csv"]).assert_success();
    let check = project.winback(&["check"]);
    check.assert_success();
    assert!(
        check.stdout.contains("warning: \"price\" (the audience of \"price\") is a churn reason no imported client has (theirs: budget)"),
        "{}",
        check.stdout
    );

    // Each has an audience of its own; a bad match key is refused.
    let mut text = crate::support::settings("file://outbox", "127.0.0.1:0");
    text.push_str(&campaign("price", "include_reasons = [\"price\"]"));
    text.push_str(&campaign("everyone", "match = { region = \"EMEA\" }"));
    project.write_config(&text);
    let check = project.winback(&["check"]);
    check.assert_failure();
    assert!(
        check.stdout.contains("campaign[2].match.region")
            && check
                .stdout
                .contains("use \"country\", \"company\" or \"fields.COLUMN\""),
        "{}",
        check.stdout
    );
}

#[test]
fn import_counts_the_clients_left_out_by_the_enrollment_window_and_the_horizon() {
    let project = project(&[campaign(
        "former-clients",
        "enroll_within_days = 365\nmax_days_since_churn = 730",
    )]);
    // Now is 2026-06-02: the first left ten years ago, the second two and a half (survey
    // due March 2024), the third this year.
    project.write_file(
        "clients.csv",
        "email,churned_at\nold@a.example,2016-03-01\nmid@b.example,2023-12-01\nnew@c.example,2026-01-05\n",
    );
    let dry = project.winback(&[
        "--now",
        "2026-06-02T14:00:00Z",
        "import",
        "clients.csv",
        "--dry-run",
    ]);
    dry.assert_success();
    assert!(
        dry.stdout.contains("2 clients would not be enrolled: their survey would have been due more than their campaign's enroll_within_days before today."),
        "{}",
        dry.stdout
    );
    let import = project.winback(&["--now", "2026-06-02T14:00:00Z", "import", "clients.csv"]);
    import.assert_success();
    assert!(
        import.stdout.contains("2 clients not enrolled: their survey would have been due more than their campaign's enroll_within_days before today.")
            && import.stdout.contains("2 clients already past their campaign's max_days_since_churn"),
        "{}",
        import.stdout
    );
    project
        .winback(&["--now", "2026-06-02T14:00:00Z", "run", "--once"])
        .assert_success();
    let sent = sent(&project);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].0.contains("new@c.example"), "{sent:#?}");

    // Without the window, the old clients are enrolled, and check counts those in
    // sequence past the horizon.
    let project = self::project(&[campaign("former-clients", "max_days_since_churn = 730")]);
    project.write_file(
        "clients.csv",
        "email,churned_at\nold@a.example,2016-03-01\nmid@b.example,2023-12-01\nnew@c.example,2026-01-05\n",
    );
    project
        .winback(&["--now", "2026-06-02T14:00:00Z", "import", "clients.csv"])
        .assert_success();
    let check = project.winback(&["--now", "2026-06-02T14:00:00Z", "check"]);
    check.assert_success();
    assert!(
        check.stdout.contains("consent horizon: nothing starts more than 730 days after the churn; 2 clients in sequence already past it"),
        "{}",
        check.stdout
    );
}

#[test]
fn a_paused_campaign_says_so_in_status_and_plan() {
    let project = project(&[campaign("former-clients", "paused = true")]);
    project.write_file(
        "clients.csv",
        "email,churned_at\nann@a.example,2026-01-05\n",
    );
    project
        .winback(&["--now", "2026-06-02T14:00:00Z", "import", "clients.csv"])
        .assert_success();
    let status = project.winback(&["--now", "2026-06-02T14:00:00Z", "status"]);
    status.assert_success();
    assert!(
        status.stdout.contains("campaign former-clients (PAUSED: nothing of it is sent; enrollment goes on):\n  enrollments: active 1"),
        "{}",
        status.stdout
    );
    let json = project.winback(&["status", "--format", "json"]);
    json.assert_success();
    let json: serde_json::Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    assert_eq!(
        json["paused_campaigns"],
        serde_json::json!(["former-clients"])
    );
    let plan = project.winback(&["--now", "2026-06-02T14:00:00Z", "plan"]);
    plan.assert_success();
    assert!(
        plan.stdout.contains(
            "campaign former-clients is PAUSED: none of its messages is sent or listed here"
        ),
        "{}",
        plan.stdout
    );
}
