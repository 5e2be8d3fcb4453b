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
            account_column: None,
        };
        let account = raw.account.and_then(|a| self.account(a));
        let format = CsvFormat {
            account_column: match &account {
                Some(AccountKey::Column(name)) => Some(name.clone()),
                _ => None,
            },
            ..format
        };
        Clients {
            sync_file,
            customers_file,
            format,
            account,
        }
    }

    /// `account`: "company", "domain" or the column that names the account. Whether the
    /// column is in the CRM's file is checked where the file's header is read.
    fn account(&mut self, raw: Spanned<String>) -> Option<AccountKey> {
        let span = raw.span();
        let text = raw.get_ref().trim();
        let name = match text.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("fields.") => text[7..].trim(),
            _ => text,
        };
        if name.is_empty() {
            self.problem(
                Some(&span),
                "clients.account",
                "is empty; write \"company\" (contacts of one company are one account), \"domain\" (one email domain, free-mail addresses excepted) or the name of the column that holds the account, e.g. \"account_id\"; or remove the line",
            );
            return None;
        }
        if name.eq_ignore_ascii_case("company") {
            return Some(AccountKey::Company);
        }
        if name.eq_ignore_ascii_case("domain") {
            return Some(AccountKey::Domain);
        }
        if let Some(field) = Field::parse(&name.to_ascii_lowercase()) {
            let why = match field {
                Field::Email => {
                    "every contact has an address of their own, so each would be an account alone; to group by the address's domain write \"domain\""
                }
                _ => "it describes one person, not the company they work for",
            };
            self.problem(
                Some(&span),
                "clients.account",
                format!(
                    "\"{name}\" cannot group contacts into accounts: {why}; write \"company\", \"domain\" or the name of the column that holds the account, e.g. \"account_id\""
                ),
            );
            return None;
        }
        Some(AccountKey::Column(name.to_string()))
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
    use crate::config::{AccountKey, Config, ConfigErrors};

    /// A valid configuration with `account = ACCOUNT` on line 9.
    fn with_account(account: &str) -> Result<Config, ConfigErrors> {
        let text = format!(
            r#"[smtp]
from = "Acme <success@acme.example>"
[http]
public_url = "https://winback.acme.example"
[sender]
company = "Acme"
postal_address = "1 Main Street"
[clients]
account = {account}
[templates]
dir = "."
[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"
[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"
"#
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("winback.toml");
        Config::parse(&path, &text)
    }

    #[test]
    fn an_account_is_the_company_the_domain_or_a_column() {
        let account = |text: &str| with_account(text).map(|c| c.clients.account);
        assert_eq!(account("\"company\"").unwrap(), Some(AccountKey::Company));
        assert_eq!(account("\" Company \"").unwrap(), Some(AccountKey::Company));
        assert_eq!(account("\"domain\"").unwrap(), Some(AccountKey::Domain));
        let column = Some(AccountKey::Column("account_id".to_string()));
        assert_eq!(account("\"account_id\"").unwrap(), column);
        assert_eq!(account("\"fields.account_id\"").unwrap(), column);
        let format = with_account("\"Account ID\"").unwrap().clients.format;
        assert_eq!(format.account_column.as_deref(), Some("Account ID"));
        let format = with_account("\"company\"").unwrap().clients.format;
        assert_eq!(format.account_column, None, "no column to look for");
    }

    #[test]
    fn an_empty_account_or_a_persons_field_is_refused_with_what_to_write() {
        for (text, fragment) in [
            ("\"\"", "is empty"),
            (
                "\"email\"",
                "to group by the address's domain write \"domain\"",
            ),
            ("\"first_name\"", "describes one person"),
        ] {
            let Err(ConfigErrors(problems)) = with_account(text) else {
                panic!("{text} accepted");
            };
            assert_eq!(problems.len(), 1, "{problems:?}");
            let problem = &problems[0];
            assert_eq!(
                (problem.line, problem.key.as_str()),
                (Some(9), "clients.account")
            );
            assert!(problem.message.contains(fragment), "{problem}");
            assert!(problem.message.contains("\"company\""), "{problem}");
        }
    }

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
