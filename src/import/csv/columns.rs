//! The header line of a former-client CSV file (which column is which, and what is wrong
//! with a header that cannot be read) and one record read through it into a
//! [`ClientRecord`]. Each value's own rules are in `values.rs`. No I/O, no clock: the
//! caller passes `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use csv::ByteRecord;

use super::values::{
    keep, parse_churn_reason, parse_churned_at, parse_email, parse_header_text, parse_timezone,
};
use crate::config::CsvFormat;
use crate::domain::model::ClientRecord;

pub(super) const NOT_UTF8: &str = "not valid UTF-8 text (save the file as UTF-8)";
pub(super) const EMPTY_FILE: &str =
    "the file is empty: it needs a header line such as `email,churned_at,name,company`";

/// The columns winback reads itself; every other one is a custom field.
pub(super) const KNOWN: [&str; 7] = [
    "email",
    "churned_at",
    "name",
    "first_name",
    "company",
    "churn_reason",
    "timezone",
];

/// Where each known column is, and the names of the others.
#[derive(Debug)]
pub(super) struct Columns {
    count: usize,
    email: usize,
    churned_at: usize,
    name: Option<usize>,
    first_name: Option<usize>,
    company: Option<usize>,
    churn_reason: Option<usize>,
    timezone: Option<usize>,
    /// Custom fields: (column index, lower-cased name).
    custom: Vec<(usize, String)>,
}

impl Columns {
    pub(super) fn from_header(header: &ByteRecord, format: &CsvFormat) -> Result<Columns, String> {
        // The mapping is read from the next version of this function on.
        let _ = format;
        let mut names = Vec::with_capacity(header.len());
        for (index, raw) in header.iter().enumerate() {
            let Ok(text) = std::str::from_utf8(raw) else {
                return Err(format!("the header line is {NOT_UTF8}"));
            };
            let text = if index == 0 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            names.push(text.trim().to_lowercase());
        }
        if names.iter().all(String::is_empty) {
            return Err(EMPTY_FILE.to_owned());
        }
        if names.iter().any(|name| name.contains(['\r', '\n'])) {
            return Err(
                "a column name in the header line contains a line break: the file may \
                        use old Mac line breaks (CR only); save it again as \"CSV UTF-8\""
                    .to_owned(),
            );
        }
        if let Some(index) = names.iter().position(String::is_empty) {
            return Err(format!(
                "column {} of the header line has no name (name it, or delete the column if \
                 it is not needed)",
                index + 1
            ));
        }
        let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, name) in names.iter().enumerate() {
            if let Some(first) = first_seen.insert(name, index) {
                return Err(format!(
                    "the column `{name}` appears twice in the header line (columns {} and {})",
                    first + 1,
                    index + 1
                ));
            }
        }
        // `First Name` would otherwise become a custom field, silently.
        for name in &names {
            let canonical = name.replace([' ', '-'], "_");
            if canonical != *name && KNOWN.contains(&canonical.as_str()) {
                return Err(format!(
                    "the column `{name}` should be named `{canonical}` (with an underscore)"
                ));
            }
        }
        let position = |wanted: &str| names.iter().position(|name| name == wanted);
        let (email, churned_at) = match (position("email"), position("churned_at")) {
            (Some(email), Some(churned_at)) => (email, churned_at),
            (email, churned_at) => {
                let missing = match (email, churned_at) {
                    (None, None) => "no `email` column and no `churned_at` column",
                    (None, Some(_)) => "no `email` column",
                    _ => "no `churned_at` column",
                };
                return Err(missing_columns_message(missing, &names));
            }
        };
        let custom = names
            .iter()
            .enumerate()
            .filter(|(_, name)| !KNOWN.contains(&name.as_str()))
            .map(|(index, name)| (index, name.clone()))
            .collect();
        Ok(Columns {
            count: names.len(),
            email,
            churned_at,
            name: position("name"),
            first_name: position("first_name"),
            company: position("company"),
            churn_reason: position("churn_reason"),
            timezone: position("timezone"),
            custom,
        })
    }

    /// Checks one record; on failure, the reason names every problem in the row.
    pub(super) fn parse(
        &self,
        record: &ByteRecord,
        now: DateTime<Utc>,
        latest_date: Option<NaiveDate>,
    ) -> Result<ClientRecord, String> {
        if record.len() != self.count {
            return Err(format!(
                "expected {} fields (one per header column), found {}",
                self.count,
                record.len()
            ));
        }
        // One UTF-8 check per record; a field is then valid unless it splits a character.
        let Ok(whole) = std::str::from_utf8(record.as_slice()) else {
            return Err(NOT_UTF8.to_owned());
        };
        let text = |index: usize| {
            record
                .range(index)
                .and_then(|range| whole.get(range))
                .ok_or_else(|| NOT_UTF8.to_owned())
        };
        let optional = |index: Option<usize>| index.map_or(Ok(""), text);

        let mut fields = BTreeMap::new();
        for (index, name) in &self.custom {
            fields.insert(name.clone(), text(*index)?.trim().to_owned());
        }
        let email = text(self.email)?;
        let churned_at = text(self.churned_at)?;
        let name = optional(self.name)?;
        let first_name = optional(self.first_name)?;
        let company = optional(self.company)?;
        let churn_reason = optional(self.churn_reason)?;
        let timezone = optional(self.timezone)?;

        let mut problems = Vec::new();
        let email = keep(parse_email(email), &mut problems);
        let churned_at = keep(
            parse_churned_at(churned_at, now, latest_date),
            &mut problems,
        );
        let name = keep(parse_header_text("name", name), &mut problems).flatten();
        let first_name = keep(parse_header_text("first_name", first_name), &mut problems).flatten();
        let company = keep(parse_header_text("company", company), &mut problems).flatten();
        let churn_reason = keep(parse_churn_reason(churn_reason), &mut problems).flatten();
        let timezone = keep(parse_timezone(timezone), &mut problems).flatten();
        match (email, churned_at) {
            (Some(email), Some(churned_at)) if problems.is_empty() => Ok(ClientRecord {
                email,
                name,
                first_name,
                company,
                churned_at,
                churn_reason,
                timezone,
                fields,
                country: None,
                returned_at: None,
            }),
            _ => Err(problems.join("; ")),
        }
    }
}

fn missing_columns_message(missing: &str, names: &[String]) -> String {
    const MAX_LISTED: usize = 20;
    let mut found = names
        .iter()
        .take(MAX_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        found.push_str(", …");
    }
    let mut message = format!("the file has {missing} (columns found: {found})");
    if let [only] = names {
        for (separator, what) in [(';', "semicolons"), ('\t', "tabs")] {
            if only.contains(separator) {
                message.push_str(&format!(
                    "; the columns seem to be separated by {what}, but they must be separated \
                     by commas: save the file as \"CSV UTF-8 (comma delimited)\""
                ));
                break;
            }
        }
    }
    message
}
