//! The header line of a former-client CSV file (which column is which, and what is wrong
//! with a header that cannot be read) and one record read through it into a
//! [`ClientRecord`]. Each value's own rules are in `values.rs`. No I/O, no clock: the
//! caller passes `now`.

mod spellings;

use chrono::{DateTime, NaiveDate, Utc};
use csv::ByteRecord;

use super::values::{
    keep, parse_churn_reason, parse_churned_at, parse_country, parse_date, parse_email,
    parse_header_text, parse_timezone,
};
use crate::config::CsvFormat;
use crate::config::clients::Field;
use crate::config::normalize_header;
use crate::domain::date_format::DateFormat;
use crate::domain::model::ClientRecord;

pub(super) const NOT_UTF8: &str = "not valid UTF-8 text (save the file as UTF-8)";
pub(super) const EMPTY_FILE: &str =
    "the file is empty: it needs a header line such as `email,churned_at,name,company`";

/// Where each field's column is, and the names of the others; resolved once, at the
/// header, so that a row costs what it always did.
#[derive(Debug)]
pub(super) struct Columns {
    count: usize,
    email: usize,
    churned_at: usize,
    name: Option<usize>,
    first_name: Option<usize>,
    last_name: Option<usize>,
    company: Option<usize>,
    churn_reason: Option<usize>,
    timezone: Option<usize>,
    country: Option<usize>,
    returned_at: Option<usize>,
    /// Custom fields: (column index, lower-cased name).
    custom: Vec<(usize, String)>,
    /// Opt-out and bounce flag columns (`Unsubscribed from all email`, `Email Opt Out`):
    /// a row one of them marks is opted out.
    opt_out_flags: Vec<usize>,
    date_format: Option<DateFormat>,
    /// `[clients] reasons`: (lower-cased label, slug).
    reasons: Vec<(String, String)>,
    /// The header each field is read from, for the summary.
    used: Vec<(Field, String)>,
    /// Columns that look like a field but feed none, and other things worth a look.
    warnings: Vec<String>,
    /// Whether an unknown time zone refuses the row: only in a column named `timezone`
    /// or mapped by `[clients] columns`; in a `Time Zone` column found by its spelling it
    /// is warned about and left out.
    timezone_strict: bool,
    /// Values left out of rows (an unknown country or time zone), each warned about once
    /// with the first line it is on. Rows are read through `&self`.
    row_warnings: std::cell::RefCell<RowWarnings>,
}

/// Values warned about while reading rows.
#[derive(Debug, Default)]
struct RowWarnings {
    seen: std::collections::HashSet<(Field, String)>,
    warnings: Vec<String>,
}

/// Past this many different values left out, more are not named (a column of free text).
const MAX_ROW_WARNINGS: usize = 20;

impl Columns {
    /// Reads a header line through `[clients]` (`format`): mapped columns first, then the
    /// common spellings. Refuses (cheaply, without panicking) any line that is not a
    /// header with an email and a churn date column, so a title line can be tried.
    pub(super) fn from_header(header: &ByteRecord, format: &CsvFormat) -> Result<Columns, String> {
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
            names.push(text.trim());
        }
        if names.iter().all(|name| name.is_empty()) {
            return Err(EMPTY_FILE.to_owned());
        }
        if names.iter().any(|name| name.contains(['\r', '\n'])) {
            return Err(
                "a column name in the header line contains a line break: the file may \
                        use old Mac line breaks (CR only); save it again as \"CSV UTF-8\""
                    .to_owned(),
            );
        }
        if let Some(index) = names.iter().position(|name| name.is_empty()) {
            return Err(format!(
                "column {} of the header line has no name (name it, or delete the column if \
                 it is not needed)",
                index + 1
            ));
        }
        let normal: Vec<String> = names.iter().map(|name| normalize_header(name)).collect();
        let mut field_at: Vec<Option<Field>> = vec![None; names.len()];
        let column_of = |field: Field, field_at: &[Option<Field>]| {
            field_at.iter().position(|f| *f == Some(field))
        };
        // Mapped columns: the configuration's word is final.
        for (field, header) in &format.columns {
            let wanted = normalize_header(header);
            match normal.iter().position(|name| *name == wanted) {
                Some(index) => field_at[index] = Some(*field),
                None => {
                    return Err(format!(
                        "[clients] columns maps {} to \"{header}\", but the file has no such \
                         column (columns found: {}); write the name as it appears in the \
                         header line",
                        field.as_str(),
                        listed(&names)
                    ));
                }
            }
        }
        // The common spellings, for the fields not mapped: the best match, then the first.
        let mapped = |field: Field| format.columns.iter().any(|(f, _)| *f == field);
        let recognised: Vec<Option<(Field, u8)>> = names
            .iter()
            .zip(&normal)
            .map(|(name, normal)| spellings::recognise(name, normal))
            .collect();
        for field in Field::ALL {
            if mapped(field) {
                continue;
            }
            let best = recognised
                .iter()
                .enumerate()
                .filter(|(index, found)| {
                    field_at[*index].is_none() && found.is_some_and(|(f, _)| f == field)
                })
                .min_by_key(|(index, found)| (found.map(|(_, rank)| rank), *index));
            if let Some((index, _)) = best {
                field_at[index] = Some(field);
            }
        }
        let (email, churned_at) = match (
            column_of(Field::Email, &field_at),
            column_of(Field::ChurnedAt, &field_at),
        ) {
            (Some(email), Some(churned_at)) => (email, churned_at),
            (email, churned_at) => {
                let missing = match (email, churned_at) {
                    (None, None) => "no email column and no churned_at column",
                    (None, Some(_)) => "no email column",
                    _ => "no churned_at column",
                };
                let field = if email.is_none() {
                    "email"
                } else {
                    "churned_at"
                };
                return Err(missing_columns_message(missing, field, &names));
            }
        };
        let date_format = match &format.date_format {
            Some(pattern) => Some(
                DateFormat::parse(pattern)
                    .map_err(|problem| format!("[clients] date_format {pattern:?} {problem}"))?,
            ),
            None => None,
        };
        let mut warnings = Vec::new();
        let mut custom: Vec<(usize, String)> = Vec::new();
        let mut opt_out_flags: Vec<usize> = Vec::new();
        for (index, name) in names.iter().enumerate() {
            if field_at[index].is_some() {
                continue;
            }
            let key = name.to_lowercase();
            if let Some((first, _)) = custom.iter().find(|(_, taken)| *taken == key) {
                warnings.push(format!(
                    "the column \"{name}\" appears twice (columns {} and {}): templates get the \
                     first as fields.{key}, the second is not read",
                    first + 1,
                    index + 1
                ));
                continue;
            }
            if spellings::is_opt_out_flag(&normal[index]) {
                warnings.push(format!(
                    "the column \"{name}\" is read as an opt-out flag: a row it marks (true, \
                     yes, 1, x) is opted out of all mail"
                ));
                opt_out_flags.push(index);
                custom.push((index, key));
                continue;
            }
            let like = recognised[index]
                .map(|(field, _)| field)
                .or_else(|| spellings::looks_like(&normal[index]));
            if let Some(field) = like {
                let source = match column_of(field, &field_at) {
                    Some(used) => format!("{} is read from \"{}\"", field.as_str(), names[used]),
                    None => format!("no column is read as {}", field.as_str()),
                };
                warnings.push(format!(
                    "the column \"{name}\" looks like {} but is not read as it ({source}); \
                     templates get it as fields.{key}; if it is the one, set [clients] columns \
                     = {{ {} = \"{name}\" }}",
                    field.as_str(),
                    field.as_str()
                ));
            }
            custom.push((index, key));
        }
        // `[clients] account` names a column: the file must have it, and its value goes
        // with the row's fields (the account key is read from there), whatever else the
        // column feeds.
        if let Some(account) = &format.account_column {
            let wanted = normalize_header(account.strip_prefix("fields.").unwrap_or(account));
            let Some(index) = normal.iter().position(|name| *name == wanted) else {
                return Err(format!(
                    "[clients] account names the column \"{account}\", but the file has no such \
                     column (columns found: {}); write the name as it appears in the header \
                     line, or account = \"company\" or \"domain\"",
                    listed(&names)
                ));
            };
            if !custom.iter().any(|(taken, _)| *taken == index) {
                custom.push((index, names[index].to_lowercase()));
            }
        }
        let used = Field::ALL
            .into_iter()
            .filter_map(|field| {
                column_of(field, &field_at).map(|index| (field, names[index].to_string()))
            })
            .collect();
        let at = |field: Field| column_of(field, &field_at);
        // Before columns were recognised by their spelling, these were templates'
        // `fields.<header>`: a template written then (`{{fields.country}}`) keeps working.
        // Only headers a template can name that way; the email and churn date columns
        // were always read as fields.
        for (index, name) in names.iter().enumerate() {
            let key = name.to_lowercase();
            let newly_read = field_at[index].is_some_and(|field| {
                field != Field::Email
                    && field != Field::ChurnedAt
                    && !OLD_FIELDS.contains(&key.as_str())
                    && key.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
            if newly_read && !custom.iter().any(|(_, taken)| *taken == key) {
                custom.push((index, key));
            }
        }
        let timezone_strict = at(Field::Timezone).is_some_and(|index| {
            mapped(Field::Timezone) || names[index].eq_ignore_ascii_case("timezone")
        });
        Ok(Columns {
            count: names.len(),
            email,
            churned_at,
            name: at(Field::Name),
            first_name: at(Field::FirstName),
            last_name: at(Field::LastName),
            company: at(Field::Company),
            churn_reason: at(Field::ChurnReason),
            timezone: at(Field::Timezone),
            country: at(Field::Country),
            returned_at: at(Field::ReturnedAt),
            custom,
            opt_out_flags,
            date_format,
            reasons: format
                .reasons
                .iter()
                .map(|(label, slug)| (label.trim().to_lowercase(), slug.clone()))
                .collect(),
            used,
            warnings,
            timezone_strict,
            row_warnings: std::cell::RefCell::default(),
        })
    }

    /// The header each field is read from.
    pub(super) fn used(&self) -> &[(Field, String)] {
        &self.used
    }

    /// Columns that look like a field but feed none.
    pub(super) fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Values left out of the rows read so far, each named once with its first line.
    pub(super) fn row_warnings(&self) -> Vec<String> {
        self.row_warnings.borrow().warnings.clone()
    }

    /// Notes a value left out of the row on `line` (once per value).
    fn left_out(&self, field: Field, line: u64, text: &str, why: String) {
        let mut row_warnings = self.row_warnings.borrow_mut();
        if row_warnings.seen.len() >= MAX_ROW_WARNINGS
            || !row_warnings.seen.insert((field, text.to_owned()))
        {
            return;
        }
        row_warnings.warnings.push(format!(
            "line {line}: {why}; the row is imported without it"
        ));
    }

    /// Checks one record, on `line`; on failure, the reason names every problem in the
    /// row.
    pub(super) fn parse(
        &self,
        line: u64,
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

        let mut fields = std::collections::BTreeMap::new();
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

        let mut opted_out = false;
        for &index in &self.opt_out_flags {
            opted_out |= marks(text(index)?);
        }
        let mut problems = Vec::new();
        let format = self.date_format.as_ref();
        let email = keep(parse_email(email), &mut problems);
        let churned_at = keep(
            parse_churned_at(churned_at, format, now, latest_date),
            &mut problems,
        );
        let name = keep(parse_header_text("name", name), &mut problems).flatten();
        let first_name = keep(parse_header_text("first_name", first_name), &mut problems).flatten();
        let company = keep(parse_header_text("company", company), &mut problems).flatten();
        let churn_reason = keep(
            parse_churn_reason(churn_reason, &self.reasons),
            &mut problems,
        )
        .flatten();
        let timezone = match parse_timezone(timezone) {
            Ok(timezone) => timezone,
            Err(why) if !self.timezone_strict => {
                self.left_out(Field::Timezone, line, timezone.trim(), why);
                None
            }
            Err(why) => {
                problems.push(why);
                None
            }
        };
        // Columns most files lack cost nothing when absent (the import's hot path).
        let last_name = match self.last_name {
            Some(index) => keep(parse_header_text("last_name", text(index)?), &mut problems),
            None => None,
        }
        .flatten();
        // An unknown country leaves the row's country empty: a refused row would stop
        // the whole nightly sync over a value no step needs.
        let country = match self.country {
            Some(index) => {
                let raw = text(index)?;
                parse_country(raw).unwrap_or_else(|why| {
                    self.left_out(Field::Country, line, raw.trim(), why);
                    None
                })
            }
            None => None,
        };
        let returned_at = match self.returned_at {
            Some(index) => keep(
                parse_date("returned_at", text(index)?, format, now, latest_date),
                &mut problems,
            ),
            None => None,
        }
        .flatten();
        // No name of their own: first and last name make it.
        let name = name.or_else(|| match (&first_name, &last_name) {
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            (None, Some(last)) => Some(last.clone()),
            (Some(first), None) if self.last_name.is_some() => Some(first.clone()),
            _ => None,
        });
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
                country,
                returned_at,
                opted_out,
            }),
            _ => Err(problems.join("; ")),
        }
    }
}

/// Whether an opt-out flag's cell marks its row: `true`, `yes`, `1`, `x` (and the same in
/// German, French and Spanish); anything else, an empty cell included, does not.
fn marks(cell: &str) -> bool {
    const MARKS: [&str; 10] = [
        "true", "yes", "y", "1", "x", "ja", "wahr", "oui", "si", "sí",
    ];
    let cell = cell.trim();
    MARKS.iter().any(|mark| cell.eq_ignore_ascii_case(mark))
}

/// Whether a header name is read as the email column on its own, as an import reads it
/// (`Email`, `Contact: Email`, `Person - Email - Work`); list files use it too.
pub(crate) fn names_email(name: &str) -> bool {
    let name = name.trim().trim_start_matches('\u{feff}').trim();
    spellings::recognise(name, &normalize_header(name))
        .is_some_and(|(field, _)| field == Field::Email)
}

/// The columns read as fields before the others were recognised by their spelling,
/// lower-cased: these never were templates' `fields.*`.
const OLD_FIELDS: [&str; 7] = [
    "email",
    "churned_at",
    "name",
    "first_name",
    "company",
    "churn_reason",
    "timezone",
];

/// Whether a header name feeds a field, or looks like one, on its own.
#[cfg(test)]
pub(super) fn is_recognised(name: &str) -> bool {
    let normal = normalize_header(name);
    spellings::recognise(name, &normal).is_some() || spellings::looks_like(&normal).is_some()
}

/// Header names for a message, the first twenty.
fn listed(names: &[&str]) -> String {
    const MAX_LISTED: usize = 20;
    let mut found = names
        .iter()
        .take(MAX_LISTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        found.push_str(", …");
    }
    found
}

fn missing_columns_message(missing: &str, field: &str, names: &[&str]) -> String {
    let found = listed(names);
    let mut message = format!(
        "the file has {missing} (columns found: {found}); if one of these holds it, name it \
         in the configuration: [clients] columns = {{ {field} = \"…\" }}"
    );
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

#[cfg(test)]
mod tests;
