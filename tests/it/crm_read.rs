//! CRM exports read as they come, through the real binary: a German Excel sheet in
//! Windows-1252 with semicolons and decimal commas, and Excel's "Unicode text" (UTF-16,
//! tabs), each wrapped in a report's title and footer lines. The names arrive intact in the
//! database and in the email; `import` says how it read the file.

use serde_json::Value;

use crate::support::{Captured, Project};

/// A Tuesday afternoon: anyone who left before early March 2026 is due.
const NOW: &str = "2026-06-02T15:00:00Z";

fn project() -> Project {
    let project = Project::new();
    project.write_config(&format!(
        r#"{settings}
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "Europe/Berlin"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{{{first_name}}}}, may we ask why you left?"
"#,
        settings = crate::support::settings("file://outbox", "127.0.0.1:0"),
    ));
    project
}

fn winback(project: &Project, args: &[&str]) -> crate::support::Output {
    let mut all = vec!["--now", NOW];
    all.extend_from_slice(args);
    project.winback(&all)
}

/// The report as a CRM writes it: title lines, a header, three people, a footer.
const REPORT: &str = "Verlorene Kunden\r\n\
    \"Stand: 01.06.2026\"\r\n\
    \r\n\
    email;first_name;name;company;churned_at;Umsatz\r\n\
    juergen@bergwerk.example;Jürgen;Jürgen Müller;Bergwerk GmbH;2025-06-30;1.234,56\r\n\
    zoe@atelier.example;Zoë;Zoë Lefèvre;\"Atelier Lefèvre; Fils\";2025-06-30;980,00\r\n\
    ana@cafe.example;Ana;Ana Ñúñez;Café Ñúñez S.L.;2025-06-30;15.000,00\r\n\
    \r\n\
    Gesamtsummen (3 Datensätze)\r\n\
    Vertrauliche Informationen - Nicht weitergeben\r\n";

fn surveyed_subjects(project: &Project) -> Vec<String> {
    let mut subjects: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("an outbox")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter_map(|raw| {
            let message = Captured {
                seq: 0,
                mail_from: String::new(),
                rcpt_tos: Vec::new(),
                raw,
            };
            message.header_decoded("Subject")
        })
        .collect();
    subjects.sort();
    subjects
}

fn assert_read_intact(project: &Project, file: &str, encoding: &str, delimiter: &str) {
    let out = winback(project, &["import", file]);
    out.assert_success();
    for said in [
        format!("encoding: {encoding} (detected)"),
        format!("delimiter: {delimiter} (detected)"),
        "line 1 skipped (not data): Verlorene Kunden".to_owned(),
        "line 2 skipped (not data): Stand: 01.06.2026".to_owned(),
        "line 9 skipped (not data): Gesamtsummen (3 Datensätze)".to_owned(),
        "line 10 skipped (not data): Vertrauliche Informationen - Nicht weitergeben".to_owned(),
    ] {
        assert!(out.stdout.contains(&said), "{said:?} in {}", out.stdout);
    }
    for (email, name, company, amount) in [
        (
            "juergen@bergwerk.example",
            "Jürgen Müller",
            "Bergwerk GmbH",
            "1.234,56",
        ),
        (
            "zoe@atelier.example",
            "Zoë Lefèvre",
            "Atelier Lefèvre; Fils",
            "980,00",
        ),
        (
            "ana@cafe.example",
            "Ana Ñúñez",
            "Café Ñúñez S.L.",
            "15.000,00",
        ),
    ] {
        let out = winback(project, &["export", email]);
        out.assert_success();
        let export: Value = serde_json::from_str(&out.stdout).expect("export is JSON");
        let text = export.to_string();
        for value in [name, company, amount] {
            assert!(
                text.contains(&format!("\"{value}\"")),
                "{value} in {}",
                out.stdout
            );
        }
    }
    winback(project, &["run", "--once"]).assert_success();
    assert_eq!(
        surveyed_subjects(project),
        vec![
            "Ana, may we ask why you left?",
            "Jürgen, may we ask why you left?",
            "Zoë, may we ask why you left?",
        ]
    );
}

#[test]
fn a_windows_1252_semicolon_report_imports_with_every_accent_intact() {
    let project = project();
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(REPORT);
    assert!(!unmappable);
    std::fs::write(project.path("export.csv"), &bytes).expect("write the export");
    assert_read_intact(&project, "export.csv", "windows-1252", "semicolon");
}

#[test]
fn an_excel_unicode_text_report_imports_with_every_accent_intact() {
    let project = project();
    let tabs = REPORT
        .replace(';', "\t")
        .replace("Lefèvre\t Fils", "Lefèvre; Fils");
    let mut bytes = vec![0xff, 0xfe];
    for unit in tabs.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    std::fs::write(project.path("export.txt"), &bytes).expect("write the export");
    assert_read_intact(&project, "export.txt", "UTF-16LE", "tab");
}
