//! What unit tests across modules build the same way.

use std::path::Path;

use crate::config::Config;

/// A configuration for tests, written to `DIR/winback.toml` and parsed: mail to
/// `file://outbox` (plus the `[smtp]` lines in `smtp_extra`), a sender, and `rest`
/// (campaigns, other sections). `DIR/templates` is created if it is missing.
pub(crate) fn config(dir: &Path, smtp_extra: &str, rest: &str) -> Config {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let path = dir.join("winback.toml");
    let text = format!(
        r#"
[smtp]
url = "file://outbox"
from = "Acme <success@acme.example>"
{smtp_extra}

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme"
postal_address = "1 Main Street"
{rest}
"#
    );
    std::fs::write(&path, &text).unwrap();
    Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// One campaign, `former-clients`, sending at any minute in UTC: a survey only.
pub(crate) const SURVEY_ONLY: &str = r#"
[[campaign]]
name = "former-clients"
send_at = "* * * * *"
timezone = "UTC"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"
"#;

/// A person who left on 2025-06-01, of whom nothing else is known.
pub(crate) fn left_on_june_1(email: &str) -> crate::domain::model::ClientRecord {
    crate::domain::model::ClientRecord {
        email: email.to_string(),
        name: None,
        first_name: None,
        company: None,
        churned_at: crate::domain::model::ChurnedAt::parse("2025-06-01").unwrap(),
        churn_reason: None,
        timezone: None,
        fields: Default::default(),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}
