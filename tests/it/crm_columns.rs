//! A CRM's own export through the real binary: its headers mapped or recognised, its
//! dates read through `[clients] date_format`, its reason labels made slugs, what `import`
//! says about how it read the file, and `check`'s word on exclusions no client matches.

use crate::support::Project;

/// A Tuesday afternoon: anyone who left before early March 2026 is due.
const NOW: &str = "2026-06-02T15:00:00Z";

fn winback(project: &Project, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    project.winback(&all)
}

/// A Salesforce report as it comes: `Object: Field` headers, US dates, reason labels, a
/// second email column and accented names.
const SALESFORCE: &str = "Contact: First Name,Contact: Last Name,Contact: Email,Account: Account Name,Close Date,Loss Reason,Email 2,Mailing Country\n\
J\u{fc}rgen,M\u{fc}ller,juergen@client.example,M\u{fc}ller & S\u{f6}hne,01/14/2026,Moved to competitor,j@home.example,Deutschland\n\
Zo\u{eb},Lef\u{e8}vre,zoe@client.example,Ch\u{e2}teau SARL,02/03/2026,Preis zu hoch,,France\n";

fn project() -> Project {
    let project = Project::new();
    project.write_config(&format!(
        r#"{settings}
[clients]
columns = {{ churned_at = "Close Date" }}
date_format = "MM/DD/YYYY"
reasons = {{ "Moved to competitor" = "competitor" }}

[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "America/New_York"
exclude_reasons = ["we_ended", "competitor", "budget_cut"]

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{{{first_name}}}}, may we ask why you left?"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    ));
    project
}

#[test]
fn a_salesforce_report_imports_as_it_comes_and_import_says_how_it_was_read() {
    let project = project();
    project.write_file("report.csv", SALESFORCE);
    let import = winback(&project, &["import", "report.csv"]);
    import.assert_success();
    for line in [
        "columns: email ← \"Contact: Email\", churned_at ← \"Close Date\", first_name ← \
         \"Contact: First Name\", last_name ← \"Contact: Last Name\", company ← \"Account: \
         Account Name\", churn_reason ← \"Loss Reason\", country ← \"Mailing Country\"",
        "churn reasons: competitor, preis_zu_hoch",
        "warning: the column \"Email 2\" looks like email but is not read as it (email is read \
         from \"Contact: Email\")",
    ] {
        assert!(import.stdout.contains(line), "{line}\n{}", import.stdout);
    }
    let export = winback(&project, &["export", "juergen@client.example"]);
    export.assert_success();
    for value in [
        "\"J\u{fc}rgen M\u{fc}ller\"",
        "\"M\u{fc}ller & S\u{f6}hne\"",
        "\"2026-01-14\"",
        "\"competitor\"",
        "\"DE\"",
        "\"email 2\":\"j@home.example\"",
    ] {
        assert!(
            export.stdout.replace(": ", ":").contains(value),
            "{value}\n{}",
            export.stdout
        );
    }
    // Jürgen left for a competitor, whom this campaign excludes: only Zoë is surveyed.
    winback(&project, &["run", "--once"]).assert_success();
    let sent: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("outbox")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("zoe@client.example"), "{}", sent[0]);
}

#[test]
fn check_names_an_excluded_reason_no_imported_client_has() {
    let project = project();
    let check = winback(&project, &["check"]);
    check.assert_success();
    assert!(
        !check.stdout.contains("warning"),
        "no clients yet: nothing to compare\n{}",
        check.stdout
    );
    project.write_file("report.csv", SALESFORCE);
    winback(&project, &["import", "report.csv"]).assert_success();
    let check = winback(&project, &["check"]);
    check.assert_success();
    for line in [
        "warning: \"budget_cut\" (excluded by \"former-clients\") is a churn reason no imported \
         client has (theirs: competitor, preis_zu_hoch); if your CRM words it otherwise, map its \
         label in [clients] reasons = { \"Label in the CRM\" = \"budget_cut\" } and import again",
        "warning: \"we_ended\" (excluded by \"former-clients\") is a churn reason no imported client has",
    ] {
        assert!(check.stdout.contains(line), "{line}\n{}", check.stdout);
    }
    assert!(
        !check.stdout.contains("\"competitor\" (excluded"),
        "a reason some client has is not named\n{}",
        check.stdout
    );
}

#[test]
fn an_unknown_country_is_warned_about_and_its_row_imported_without_it() {
    let project = project();
    project.write_file(
        "report.csv",
        "Contact: Email,Close Date,Country,Time Zone\n\
         ann@client.example,01/14/2026,Eastern Time,Eastern Time\n\
         bob@client.example,01/14/2026,UK,Europe/London\n",
    );
    let import = winback(&project, &["import", "report.csv"]);
    import.assert_success();
    for line in [
        "warning: line 2: country \"Eastern Time\" is not a country winback knows",
        "warning: line 2: unknown time zone \"Eastern Time\"",
        "2 added, 0 updated, 0 unchanged, 0 skipped",
    ] {
        assert!(import.stdout.contains(line), "{line}\n{}", import.stdout);
    }
    let ann = winback(&project, &["export", "ann@client.example"]);
    ann.assert_success();
    assert!(
        !ann.stdout.contains("\"country\": \"GB\""),
        "{}",
        ann.stdout
    );
    let bob = winback(&project, &["export", "bob@client.example"]);
    bob.assert_success();
    assert!(bob.stdout.contains("GB"), "{}", bob.stdout);
}

/// What `check` accepts, the sync reads: a sync file whose header lacks the mapped
/// churn date column fails `check` with the column named, as the sync would refuse it.
#[test]
fn check_reads_the_sync_files_header_as_the_sync_will() {
    let project = Project::new();
    project.write_config(&format!(
        r#"{settings}
[clients]
sync_file = "crm.csv"
columns = {{ churned_at = "Close Date" }}

[[campaign]]
name = "former-clients"
send_at = "* * * * *"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "Why?"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    ));
    project.write_file("crm.csv", "Email,Closed Date\nann@x.example,2026-01-05\n");
    let out = winback(&project, &["check"]);
    assert_eq!(out.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("[clients] sync_file") && out.stdout.contains("Close Date"),
        "{}",
        out.stdout
    );
    project.write_file("crm.csv", "Email,Close Date\nann@x.example,2026-01-05\n");
    winback(&project, &["check"]).assert_success();
}
