//! The TOML file as written, before any validation: plain serde structs.
//!
//! Every value that can be wrong on its own carries its span, so that the validation in
//! `config` can name the line. Unknown keys are refused here (`deny_unknown_fields`).

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub database: Option<Spanned<RawDatabase>>,
    pub smtp: Option<Spanned<RawSmtp>>,
    pub http: Option<Spanned<RawHttp>>,
    pub sender: Option<Spanned<RawSender>>,
    pub templates: Option<Spanned<RawTemplates>>,
    pub clients: Option<RawClients>,
    pub survey: Option<RawSurvey>,
    pub dkim: Option<Spanned<RawDkim>>,
    pub inbound: Option<Spanned<RawInbound>>,
    #[serde(default)]
    pub campaign: Vec<Spanned<RawCampaign>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    pub url: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub reply_to: Option<Spanned<String>>,
    pub connections: Option<Spanned<i64>>,
    pub max_per_minute: Option<Spanned<i64>>,
    pub max_per_day: Option<Spanned<i64>>,
    pub timeout_seconds: Option<Spanned<i64>>,
    pub retry_first_minutes: Option<Spanned<i64>>,
    pub retry_give_up_hours: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub listen: Option<Spanned<String>>,
    pub public_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSender {
    pub company: Option<Spanned<String>>,
    pub postal_address: Option<Spanned<String>>,
    pub privacy_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTemplates {
    pub dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClients {
    pub sync_file: Option<Spanned<String>>,
    pub customers_file: Option<Spanned<String>>,
    pub columns: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    pub encoding: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
    pub date_format: Option<Spanned<String>>,
    pub reasons: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    pub account: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSurvey {
    pub external_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDkim {
    pub selector: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub second_selector: Option<Spanned<String>>,
    pub second_key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInbound {
    pub return_path: Option<Spanned<String>>,
    pub feedback_id: Option<Spanned<String>>,
    pub mailboxes: Option<Spanned<Vec<Spanned<String>>>>,
    pub processed_folder: Option<Spanned<String>>,
    pub notify: Option<Spanned<String>>,
    pub soft_bounce_limit: Option<Spanned<i64>>,
    pub soft_bounce_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCampaign {
    pub name: Option<Spanned<String>>,
    pub quiet_days: Option<Spanned<i64>>,
    pub send_at: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub exclude_reasons: Option<Spanned<Vec<String>>>,
    pub catch_up_hours: Option<Spanned<i64>>,
    pub renamed_from: Option<Spanned<String>>,
    pub include_reasons: Option<Spanned<Vec<String>>>,
    #[serde(rename = "match")]
    pub matches: Option<Spanned<toml::Table>>,
    pub min_gap_days: Option<Spanned<i64>>,
    pub account_gap_days: Option<Spanned<i64>>,
    pub holidays: Option<Spanned<Vec<String>>>,
    pub quiet_dates: Option<Spanned<Vec<String>>>,
    pub max_days_since_churn: Option<Spanned<i64>>,
    pub enroll_within_days: Option<Spanned<i64>>,
    pub paused: Option<Spanned<bool>>,
    #[serde(default)]
    pub step: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub kind: Option<Spanned<String>>,
    pub after_days: Option<Spanned<i64>>,
    pub template: Option<Spanned<String>>,
    pub subject: Option<Spanned<String>>,
    pub on: Option<Spanned<String>>,
    pub every_days: Option<Spanned<i64>>,
}
