//! Every CRM export in `tests/fixtures/crm/` imports as it came out of the CRM, with
//! nothing but `[clients]` keys a marketer writes (a mapping, a date format), through the
//! real binary: the four accented names arrive byte-exact in the database (`export`) and
//! in the survey each person is sent.

use serde_json::Value;

use crate::support::{Captured, Project};

const NOW: &str = "2026-06-02T15:00:00Z";

/// The people in every fixture: address, first name, full name.
const PEOPLE: [(&str, &str, &str); 4] = [
    (
        "juergen.mueller@bergwerk.example",
        "Jürgen",
        "Jürgen Müller",
    ),
    ("zoe.lefevre@atelier.example", "Zoë", "Zoë Lefèvre"),
    (
        "f.dubois@boulangerie.example",
        "François",
        "François Dubois",
    ),
    ("ana.nunez@cafe-nunez.example", "Ana", "Ana Ñúñez"),
];

/// Each fixture and the `[clients]` lines it needs.
const EXPORTS: [(&str, &str); 7] = [
    (
        "hubspot-contacts.csv",
        r#"columns = { churned_at = "Churn Date" }"#,
    ),
    (
        "salesforce-report-us.csv",
        "columns = { churned_at = \"Close Date\" }\ndate_format = \"MM/DD/YYYY\"",
    ),
    (
        "salesforce-report-de.csv",
        "columns = { churned_at = \"Schlusstermin\", churn_reason = \"Verlustgrund\" }\ndate_format = \"DD.MM.YYYY\"",
    ),
    ("excel-de-windows-1252.csv", r#"date_format = "DD.MM.YYYY""#),
    ("excel-de-utf8-bom.csv", r#"date_format = "DD.MM.YYYY""#),
    (
        "excel-unicode-text.txt",
        r#"columns = { churned_at = "Churned" }"#,
    ),
    (
        "pipedrive-deals.csv",
        r#"columns = { churned_at = "Deal - Lost time" }"#,
    ),
];

fn project(clients: &str) -> Project {
    let project = Project::new();
    project.write_config(&format!(
        r#"{settings}
[clients]
{clients}

[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{{{first_name}}}}, may we ask why you left?"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    ));
    project
}

fn subjects(project: &Project) -> Vec<String> {
    let mut subjects: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("an outbox")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|raw| {
            Captured {
                seq: 0,
                mail_from: String::new(),
                rcpt_tos: Vec::new(),
                raw,
            }
            .header_decoded("Subject")
        })
        .collect();
    subjects.sort();
    subjects
}

#[test]
fn every_crm_export_imports_as_it_comes_with_every_accent_intact() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crm");
    for (file, clients) in EXPORTS {
        let project = project(clients);
        let path = fixtures.join(file);
        let path = path.to_str().expect("a UTF-8 path");
        project.winback(&["check", "--now", NOW]).assert_success();
        let out = project.winback(&["import", path, "--now", NOW]);
        assert!(
            out.success() && out.stdout.contains("4 added"),
            "{file}: {}\n{}",
            out.stdout,
            out.stderr
        );
        for (email, _, name) in PEOPLE {
            let out = project.winback(&["export", email, "--now", NOW]);
            out.assert_success();
            let export: Value = serde_json::from_str(&out.stdout).expect("export is JSON");
            assert!(
                export.to_string().contains(&format!("\"{name}\"")),
                "{file}: {name} in {}",
                out.stdout
            );
        }
        project
            .winback(&["run", "--once", "--now", NOW])
            .assert_success();
        let mut expected: Vec<String> = PEOPLE
            .iter()
            .map(|(_, first, _)| format!("{first}, may we ask why you left?"))
            .collect();
        expected.sort();
        assert_eq!(subjects(&project), expected, "{file}");
    }
}

/// A HubSpot export says who unsubscribed: they are opted out by the import, never
/// mailed, and a later export without the flag lifts nothing.
#[test]
fn a_crm_opt_out_flag_opts_the_person_out_of_everything() {
    let project = project(r#"columns = { churned_at = "Churn Date" }"#);
    project.write_file(
        "hubspot.csv",
        "\"Email\",\"First Name\",\"Churn Date\",\"Unsubscribed from all email\"\n\
         \"ann@x.example\",\"Ann\",\"2025-06-30\",\"true\"\n\
         \"bob@x.example\",\"Bob\",\"2025-06-30\",\"false\"\n",
    );
    let out = project.winback(&["import", "hubspot.csv", "--now", NOW]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("\"Unsubscribed from all email\" is read as an opt-out flag"),
        "{}",
        out.stdout
    );
    project.write_file(
        "hubspot.csv",
        "\"Email\",\"First Name\",\"Churn Date\"\nann@x.example,Ann,2025-06-30\nbob@x.example,Bob,2025-06-30\n",
    );
    project
        .winback(&["import", "hubspot.csv", "--now", NOW])
        .assert_success();
    let export = project.winback(&["export", "ann@x.example", "--now", NOW]);
    export.assert_success();
    assert!(export.stdout.contains("\"crm\""), "{}", export.stdout);
    project
        .winback(&["run", "--once", "--now", NOW])
        .assert_success();
    assert_eq!(subjects(&project), ["Bob, may we ask why you left?"]);
}
