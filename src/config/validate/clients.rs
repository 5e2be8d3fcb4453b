//! The `[clients]` section: the sync and customers files, and how the CRM's exports read
//! (column mapping, encoding, delimiter, date format, reason labels), each key checked
//! with an error that says what to write instead.
//!
//! Part of the validator: pure, no file access (whether the files exist is `check`'s).

use std::collections::BTreeMap;

use toml::Spanned;

use super::super::clients::{AccountKey, Clients, CsvFormat, Field};
use super::super::raw;
use super::Validator;

impl Validator<'_> {
    pub(super) fn clients(&mut self, raw: Option<raw::RawClients>) -> Clients {
        let Some(raw) = raw else {
            return Clients::default();
        };
        let sync_file = raw.sync_file.map(|f| self.resolve(f.get_ref()));
        let customers_file = raw.customers_file.map(|f| self.resolve(f.get_ref()));
        let format = CsvFormat {
            columns: raw.columns.map(|c| self.columns(c)).unwrap_or_default(),
            encoding: raw.encoding.and_then(|e| self.encoding(&e)),
            delimiter: raw.delimiter.and_then(|d| self.delimiter(&d)),
            date_format: raw.date_format.and_then(|f| self.date_format(f)),
            reasons: raw.reasons.map(|r| self.reasons(r)).unwrap_or_default(),
        };
        let account = raw.account.and_then(|a| self.account(a));
        Clients {
            sync_file,
            customers_file,
            format,
            account,
        }
    }

    /// `account`: "company", "domain" or a column name.
    fn account(&mut self, raw: Spanned<String>) -> Option<AccountKey> {
        match raw.get_ref().trim() {
            "" => None,
            "company" => Some(AccountKey::Company),
            "domain" => Some(AccountKey::Domain),
            other => Some(AccountKey::Column(other.to_string())),
        }
    }

    fn columns(&mut self, raw: Spanned<BTreeMap<String, Spanned<String>>>) -> Vec<(Field, String)> {
        let span = raw.span();
        let mut columns: Vec<(Field, String)> = Vec::new();
        for (key, header) in raw.into_inner() {
            let Some(field) = Field::parse(key.trim()) else {
                let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
                self.problem(
                    Some(&span),
                    &format!("clients.columns.{key}"),
                    format!(
                        "\"{key}\" is not a field winback reads; map one of {} to your file's column name (other columns become template fields on their own)",
                        known.join(", ")
                    ),
                );
                continue;
            };
            let name = header.get_ref().trim();
            if name.is_empty() {
                self.problem(
                    Some(&header.span()),
                    &format!("clients.columns.{key}"),
                    "is empty; write the column's name as it appears in the file's header line",
                );
                continue;
            }
            let same = |a: &str, b: &str| normalize_header(a) == normalize_header(b);
            if let Some((other, _)) = columns.iter().find(|(_, taken)| same(taken, name)) {
                self.problem(
                    Some(&header.span()),
                    &format!("clients.columns.{key}"),
                    format!(
                        "the column \"{name}\" is already mapped to {}; each column feeds one field",
                        other.as_str()
                    ),
                );
                continue;
            }
            columns.push((field, name.to_string()));
        }
        columns
    }

    fn date_format(&mut self, raw: Spanned<String>) -> Option<String> {
        match crate::domain::date_format::DateFormat::parse(raw.get_ref()) {
            Ok(_) => Some(raw.into_inner().trim().to_string()),
            Err(problem) => {
                self.problem(
                    Some(&raw.span()),
                    "clients.date_format",
                    format!("{:?} {problem}", raw.get_ref()),
                );
                None
            }
        }
    }

    fn encoding(&mut self, raw: &Spanned<String>) -> Option<&'static encoding_rs::Encoding> {
        let label = raw.get_ref().trim();
        match encoding_rs::Encoding::for_label(label.as_bytes()) {
            Some(encoding)
                if [
                    encoding_rs::UTF_8,
                    encoding_rs::UTF_16LE,
                    encoding_rs::UTF_16BE,
                    encoding_rs::WINDOWS_1252,
                ]
                .contains(&encoding) =>
            {
                Some(encoding)
            }
            _ => {
                self.problem(
                    Some(&raw.span()),
                    "clients.encoding",
                    format!(
                        "\"{label}\" is not an encoding winback reads; use \"utf-8\", \"utf-16\" or \"windows-1252\" (also for Latin-1), or leave it out to detect it"
                    ),
                );
                None
            }
        }
    }

    fn delimiter(&mut self, raw: &Spanned<String>) -> Option<u8> {
        match raw.get_ref().as_str() {
            "," | "comma" => Some(b','),
            ";" | "semicolon" => Some(b';'),
            "\t" | "tab" => Some(b'\t'),
            "|" | "pipe" => Some(b'|'),
            other => {
                self.problem(
                    Some(&raw.span()),
                    "clients.delimiter",
                    format!(
                        "{other:?} is not a delimiter winback reads; use \",\", \";\", \"tab\" or \"|\", or leave it out to detect it from the header line"
                    ),
                );
                None
            }
        }
    }

    fn reasons(
        &mut self,
        raw: Spanned<BTreeMap<String, Spanned<String>>>,
    ) -> Vec<(String, String)> {
        let mut reasons = Vec::new();
        for (label, slug) in raw.into_inner() {
            let text = slug.get_ref().trim();
            let is_slug = !text.is_empty()
                && text.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !is_slug {
                self.problem(
                    Some(&slug.span()),
                    "clients.reasons",
                    format!(
                        "\"{label}\" = {text:?}: the right-hand side must be a slug of lower-case letters, digits, _ or - (e.g. \"competitor\", \"we_ended\")"
                    ),
                );
                continue;
            }
            reasons.push((label, text.to_string()));
        }
        reasons
    }
}

/// A header name as it is matched: case, spaces, `_` and `-` do not count.
pub(crate) fn normalize_header(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::normalize_header;

    #[test]
    fn headers_match_whatever_their_case_and_spacing() {
        assert_eq!(
            normalize_header("Contact: Email"),
            normalize_header("contact:email")
        );
        assert_eq!(
            normalize_header("First Name"),
            normalize_header("first_name")
        );
        assert_ne!(normalize_header("Email"), normalize_header("E-mail 2"));
    }
}
