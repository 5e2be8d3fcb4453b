//! What an import would change in one known client, field by field: the words of
//! `winback import --dry-run`.
//!
//! Pure: compares two records and says nothing about whether the change is wanted (that
//! is `lifecycle::merged`'s to decide, before this is asked).

use std::fmt;

use super::model::{ClientRecord, printable};

/// One field whose value an import changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct FieldChange {
    /// The field's name as a CSV column or template field says it (`company`,
    /// `fields.plan`).
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: &Option<String>| match v {
            Some(v) => format!("\"{}\"", printable(v)),
            None => "(empty)".to_string(),
        };
        write!(
            f,
            "{} {} → {}",
            self.field,
            value(&self.before),
            value(&self.after)
        )
    }
}

/// The fields that differ between what is stored and what the import would store, in the
/// order of the CSV columns, then template fields by name.
pub(crate) fn field_changes(before: &ClientRecord, after: &ClientRecord) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut compare = |field: &str, b: Option<String>, a: Option<String>| {
        if b != a {
            changes.push(FieldChange {
                field: field.to_string(),
                before: b,
                after: a,
            });
        }
    };
    compare("name", before.name.clone(), after.name.clone());
    compare(
        "first_name",
        before.first_name.clone(),
        after.first_name.clone(),
    );
    compare("company", before.company.clone(), after.company.clone());
    compare(
        "churned_at",
        Some(before.churned_at.to_string()),
        Some(after.churned_at.to_string()),
    );
    compare(
        "churn_reason",
        before.churn_reason.clone(),
        after.churn_reason.clone(),
    );
    let zone = |r: &ClientRecord| r.timezone.map(|t| t.name().to_string());
    compare("timezone", zone(before), zone(after));
    compare("country", before.country.clone(), after.country.clone());
    compare(
        "returned_at",
        before.returned_at.map(|t| t.to_string()),
        after.returned_at.map(|t| t.to_string()),
    );
    let names: std::collections::BTreeSet<&String> =
        before.fields.keys().chain(after.fields.keys()).collect();
    for name in names {
        compare(
            &format!("fields.{name}"),
            before.fields.get(name).cloned(),
            after.fields.get(name).cloned(),
        );
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::ChurnedAt;

    fn record() -> ClientRecord {
        ClientRecord {
            email: "anna@x.example".to_string(),
            name: Some("Anna".to_string()),
            first_name: None,
            company: Some("A".to_string()),
            churned_at: ChurnedAt::Date(chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()),
            churn_reason: None,
            timezone: None,
            fields: [("plan".to_string(), "pro".to_string())].into(),
            country: None,
            returned_at: None,
            opted_out: false,
        }
    }

    #[test]
    fn only_the_fields_that_differ_are_named_with_both_values() {
        let before = record();
        assert!(field_changes(&before, &before).is_empty());
        let mut after = record();
        after.company = Some("B".to_string());
        after.churn_reason = Some("price".to_string());
        after.timezone = Some(chrono_tz::Europe::Berlin);
        after.fields.remove("plan");
        after.fields.insert("seats".to_string(), "5".to_string());
        let words: Vec<String> = field_changes(&before, &after)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            words,
            [
                "company \"A\" → \"B\"",
                "churn_reason (empty) → \"price\"",
                "timezone (empty) → \"Europe/Berlin\"",
                "fields.plan \"pro\" → (empty)",
                "fields.seats (empty) → \"5\"",
            ]
        );
    }

    #[test]
    fn values_are_shown_without_control_characters() {
        let before = record();
        let mut after = record();
        after.name = Some("Anna\u{202E}evil".to_string());
        let shown = field_changes(&before, &after)[0].to_string();
        assert!(!shown.contains('\u{202E}'), "{shown}");
    }
}
