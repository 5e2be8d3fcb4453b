//! The sample former client `check` renders every step for, and `preview` shows when no
//! real client is named: a fixed record, a fixed "now" and placeholder links, so that the
//! same templates always give the same sample. Reads nothing and renders nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::config::{Campaign, Config};
use crate::domain::audience::MatchKey;
use crate::domain::model::{ChurnedAt, ClientRecord};

/// A realistic former client, used by `check` and `preview`.
pub(crate) fn sample_client() -> ClientRecord {
    ClientRecord {
        email: "jordan.rivera@northwind.example".to_string(),
        name: Some("Jordan Rivera".to_string()),
        first_name: None,
        company: Some("Northwind Traders".to_string()),
        churned_at: ChurnedAt::Date(NaiveDate::from_ymd_opt(2025, 1, 14).expect("a valid date")),
        churn_reason: Some("competitor".to_string()),
        timezone: Some(chrono_tz::America::Chicago),
        fields: BTreeMap::from([
            ("account_manager".to_string(), "Sam Okafor".to_string()),
            ("plan".to_string(), "Team".to_string()),
        ]),
        country: None,
        returned_at: None,
        opted_out: false,
    }
}

/// The sample client as a client of `campaign`: with the sample's churn reason if the
/// campaign's audience takes it, else with the first reason it does take (a campaign
/// for those who left over price renders its own words).
pub(crate) fn sample_client_for(config: &Config, campaign: &Campaign) -> ClientRecord {
    let mut client = sample_client();
    let reachable = super::reasons::reachable(config, campaign, &[]);
    if !reachable.contains(&client.churn_reason)
        && let Some(reason) = reachable.first()
    {
        client.churn_reason = reason.clone();
    }
    // The values the campaign's `match` asks for, so that its templates render as for the
    // clients it takes.
    // Keys are read as the audience reads them (`domain::audience::MatchKey`), so a key
    // written `Fields.Region` fills the same field the audience compares.
    for (key, value) in &campaign.matches {
        match MatchKey::parse(key) {
            Ok(MatchKey::Country) => client.country = Some(value.clone()),
            Ok(MatchKey::Company) => client.company = Some(value.clone()),
            Ok(MatchKey::Field(field)) => {
                client.fields.insert(field, value.clone());
            }
            // `check` refuses such a key before anything renders.
            Err(_) => {}
        }
    }
    client
}

/// The fixed "now" of the sample rendering: five months after the sample churned.
pub(super) fn sample_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 17, 15, 0, 0)
        .single()
        .expect("a valid instant")
}

/// The sample's unsubscribe and survey links: where the real ones would point, with a
/// placeholder for the token.
pub(super) fn sample_links(config: &Config) -> (String, String) {
    let base = &config.http.public_url;
    let survey_url = match &config.survey_external_url {
        Some(external) => format!("{external}SAMPLE-SURVEY-TOKEN"),
        None => format!("{base}/s/SAMPLE-SURVEY-TOKEN"),
    };
    (format!("{base}/u/SAMPLE-UNSUBSCRIBE-TOKEN"), survey_url)
}
