//! Values a row is read without (an unknown country or time zone) and the columns kept
//! for templates, read through `read_rows` as an import reads them.

use chrono::{DateTime, TimeZone, Utc};

use super::super::read_rows;
use crate::config::CsvFormat;
use crate::config::clients::Field;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 2, 15, 0, 0).unwrap()
}

#[test]
fn an_unknown_country_or_spelt_time_zone_is_warned_about_and_the_row_kept() {
    let input = "email,churned_at,Country,Time Zone\n\
                 a@x.example,2026-01-05,UK,Eastern Time\n\
                 b@x.example,2026-01-05,Atlantis,Europe/Paris\n\
                 c@x.example,2026-01-05,Atlantis,Eastern Time\n\
                 d@x.example,2026-01-05,U.S.,\n";
    let mut rows = read_rows(input.as_bytes(), now(), &CsvFormat::default()).unwrap();
    let read: Vec<_> = rows.by_ref().collect();
    let clients: Vec<_> = read
        .iter()
        .map(|row| row.as_ref().map(|(_, client)| client).unwrap())
        .collect();
    let countries: Vec<_> = clients.iter().map(|c| c.country.as_deref()).collect();
    assert_eq!(countries, [Some("GB"), None, None, Some("US")]);
    let zones: Vec<_> = clients.iter().map(|c| c.timezone).collect();
    assert_eq!(zones, [None, Some(chrono_tz::Europe::Paris), None, None]);
    // Templates written when these columns were custom fields still find them.
    assert_eq!(
        clients[0].fields.get("country").map(String::as_str),
        Some("UK")
    );
    // Not a name a template can use: it was never read as one.
    assert_eq!(clients[0].fields.get("time zone"), None);
    let warnings = rows.into_summary().warnings;
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("line 2: unknown time zone \"Eastern Time\""),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("line 3: country \"Atlantis\" is not a country"),
        "{warnings:?}"
    );
}

#[test]
fn an_unknown_time_zone_in_a_timezone_column_still_refuses_the_row() {
    let input = "email,churned_at,timezone\na@x.example,2026-01-05,Eastern Time\n";
    let rows: Vec<_> = read_rows(input.as_bytes(), now(), &CsvFormat::default())
        .unwrap()
        .collect();
    let error = rows[0].as_ref().unwrap_err();
    assert!(error.reason.contains("unknown time zone"), "{error:?}");

    let format = CsvFormat {
        columns: vec![(Field::Timezone, "Time Zone".to_string())],
        ..CsvFormat::default()
    };
    let input = "email,churned_at,Time Zone\na@x.example,2026-01-05,Eastern Time\n";
    let rows: Vec<_> = read_rows(input.as_bytes(), now(), &format)
        .unwrap()
        .collect();
    assert!(rows[0].is_err(), "{rows:?}");
}

#[test]
fn an_opt_out_flag_column_opts_out_the_rows_it_marks_and_is_never_the_email() {
    let flags = [
        "Unsubscribed from all email",
        "Email Opt Out",
        "HasOptedOutOfEmail",
        "Marketing emails opt-out",
        "Email hard bounced",
    ];
    for flag in flags {
        let input = format!(
            "email,churned_at,{flag}\na@x.example,2026-01-05,true\nb@x.example,2026-01-05,\nc@x.example,2026-01-05,No\nd@x.example,2026-01-05, Ja \n"
        );
        let mut rows = read_rows(input.as_bytes(), now(), &CsvFormat::default()).unwrap();
        let marked: Vec<(String, bool)> = rows
            .by_ref()
            .map(|row| {
                let (_, record) = row.unwrap_or_else(|e| panic!("{flag}: {e}"));
                (record.email, record.opted_out)
            })
            .collect();
        assert_eq!(
            marked,
            [
                ("a@x.example".to_string(), true),
                ("b@x.example".to_string(), false),
                ("c@x.example".to_string(), false),
                ("d@x.example".to_string(), true),
            ],
            "{flag}"
        );
        let warnings = rows.into_summary().warnings;
        assert_eq!(
            warnings,
            [format!(
                "the column \"{flag}\" is read as an opt-out flag: a row it marks (true, \
                 yes, 1, x) is opted out of all mail"
            )],
            "{flag}"
        );
    }
}

#[test]
fn an_account_column_must_be_in_the_file_and_is_kept_with_the_fields() {
    let format = CsvFormat {
        account_column: Some("account_id".to_string()),
        ..CsvFormat::default()
    };
    let input = "email,churned_at,Company\na@x.example,2026-01-05,Acme\n";
    match read_rows(input.as_bytes(), now(), &format) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("[clients] account names the column \"account_id\", but the file has no such column")
                    && message.contains("columns found: email, churned_at, Company"),
                "{message}"
            );
        }
        Ok(_) => panic!("a file without the account column was read"),
    }
    // Found however it is spelt; a column another field reads is kept as a field too.
    for (header, key) in [("Account ID", "account id"), ("Account_Id", "account_id")] {
        let input = format!("email,churned_at,{header}\na@x.example,2026-01-05,A-17\n");
        let rows: Vec<_> = read_rows(input.as_bytes(), now(), &format)
            .unwrap()
            .collect();
        let (_, client) = rows[0].as_ref().unwrap();
        assert_eq!(client.fields.get(key).map(String::as_str), Some("A-17"));
    }
    let format = CsvFormat {
        account_column: Some("Account Name".to_string()),
        columns: vec![(Field::Company, "Account Name".to_string())],
        ..CsvFormat::default()
    };
    let input = "email,churned_at,Account Name\na@x.example,2026-01-05,Acme\n";
    let rows: Vec<_> = read_rows(input.as_bytes(), now(), &format)
        .unwrap()
        .collect();
    let (_, client) = rows[0].as_ref().unwrap();
    assert_eq!(client.company.as_deref(), Some("Acme"));
    assert_eq!(
        client.fields.get("account name").map(String::as_str),
        Some("Acme")
    );
}
