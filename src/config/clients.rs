//! `[clients]`, validated: where former clients come from (`sync_file`), who the current
//! customers are (`customers_file`), and how the CRM's CSV exports read ([`CsvFormat`]:
//! column mapping, encoding, delimiter, date format, reason labels), the same for
//! `winback import`, the sync file and the customers file.
//!
//! Plain data: reading a file through it is `import::csv`'s.

use std::path::PathBuf;

/// A field winback reads from a CSV row; every other column is a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Field {
    Email,
    ChurnedAt,
    Name,
    FirstName,
    LastName,
    Company,
    ChurnReason,
    Timezone,
    Country,
    ReturnedAt,
}

impl Field {
    pub(crate) const ALL: [Field; 10] = [
        Field::Email,
        Field::ChurnedAt,
        Field::Name,
        Field::FirstName,
        Field::LastName,
        Field::Company,
        Field::ChurnReason,
        Field::Timezone,
        Field::Country,
        Field::ReturnedAt,
    ];

    /// Its name in `[clients] columns` and in a file's header.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::ChurnedAt => "churned_at",
            Field::Name => "name",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Company => "company",
            Field::ChurnReason => "churn_reason",
            Field::Timezone => "timezone",
            Field::Country => "country",
            Field::ReturnedAt => "returned_at",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == text)
    }
}

/// How the CRM's CSV exports read. The default reads what winback always read, and
/// detects the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CsvFormat {
    /// `columns = { email = "Contact: Email", ... }`: the header each field is read from,
    /// as written in the configuration (matched case- and space-insensitively).
    pub columns: Vec<(Field, String)>,
    /// `encoding`: forced; `None` detects it (UTF-8 with or without BOM, UTF-16 with BOM,
    /// else Windows-1252).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// `delimiter`: forced; `None` detects it from the header line (`,`, `;` or tab).
    pub delimiter: Option<u8>,
    /// `date_format`, as written (e.g. `MM/DD/YYYY`); checked when the configuration is
    /// read.
    pub date_format: Option<String>,
    /// `reasons = { "Moved to competitor" = "competitor" }`: the CRM's label and its slug.
    pub reasons: Vec<(String, String)>,
    /// `[clients] account` when it names a column: the file must have it, and its value
    /// is kept with the row's fields (where the account key is read from).
    pub account_column: Option<String>,
}

/// `[clients]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Clients {
    /// A CRM export imported at start and whenever it changes.
    pub sync_file: Option<PathBuf>,
    /// A list of current customers: everyone in it counts as returned.
    pub customers_file: Option<PathBuf>,
    pub format: CsvFormat,
    /// `account`: how contacts group into accounts (one relationship); `None`: each
    /// contact is their own.
    pub account: Option<AccountKey>,
}

/// What groups contacts into one account: defined with the rules that use it.
pub(crate) use crate::domain::accounts::AccountKey;
