//! Table tests for audiences: who a campaign admits, where a person is enrolled, the
//! enrollment window, the consent horizon and campaigns earlier ones shadow.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Berlin;
use chrono_tz::UTC;

use super::*;
use crate::domain::send_at::SendAt;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad instant {text:?} in a test table: {e}"))
        .with_timezone(&Utc)
}

/// A survey-only campaign: `include` (None: every reason), `exclude` beside `we_ended`,
/// `matches` as validated (country as its code).
fn campaign(
    name: &str,
    include: Option<&[&str]>,
    exclude: &[&str],
    matches: &[(&str, &str)],
) -> Campaign {
    let mut exclude_reasons = vec!["we_ended".to_string()];
    exclude_reasons.extend(exclude.iter().map(|r| r.to_string()));
    Campaign {
        name: name.to_string(),
        quiet_days: 90,
        send_at: SendAt::parse("0 10 * * *").unwrap_or_else(|e| panic!("{e}")),
        timezone: UTC,
        exclude_reasons,
        catch_up_hours: 4,
        renamed_from: None,
        steps: Vec::new(),
        include_reasons: include.map(|l| l.iter().map(|r| r.to_string()).collect()),
        matches: matches
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        min_gap_days: 7,
        account_gap_days: 7,
        holidays: Default::default(),
        max_days_since_churn: None,
        enroll_within_days: None,
        paused: false,
    }
}

struct Client {
    reason: Option<&'static str>,
    company: Option<&'static str>,
    country: Option<&'static str>,
    timezone: Option<Tz>,
    fields: BTreeMap<String, String>,
}

fn client(reason: Option<&'static str>) -> Client {
    Client {
        reason,
        company: None,
        country: None,
        timezone: None,
        fields: BTreeMap::new(),
    }
}

impl Client {
    fn field(mut self, name: &str, value: &str) -> Client {
        self.fields.insert(name.to_string(), value.to_string());
        self
    }
    fn person(&self) -> Person<'_> {
        Person {
            churn_reason: self.reason,
            company: self.company,
            country: self.country,
            timezone: self.timezone,
            fields: &self.fields,
        }
    }
}

#[test]
fn a_campaign_admits_by_reason_and_by_match() {
    let price = campaign("price", Some(&["price"]), &[], &[]);
    let emea_de = campaign(
        "emea",
        None,
        &["contact_left"],
        &[("fields.region", "EMEA"), ("country", "DE")],
    );
    let de = |c: Option<&'static str>| Client {
        country: c,
        ..client(Some("price"))
    };
    // (campaign, client, admitted, why)
    let table: Vec<(&Campaign, Client, bool, &str)> = vec![
        (&price, client(Some("price")), true, "an included reason"),
        (
            &price,
            client(Some("competitor")),
            false,
            "a reason not included",
        ),
        (
            &price,
            client(None),
            false,
            "no reason: not among those included",
        ),
        (
            &emea_de,
            client(None).field("region", "emea"),
            false,
            "no country",
        ),
        (
            &emea_de,
            de(Some("DE")).field("region", "emea"),
            true,
            "case-insensitive",
        ),
        (
            &emea_de,
            de(Some("de")).field("region", " EMEA "),
            true,
            "trimmed, any case",
        ),
        (
            &emea_de,
            de(Some("Germany")).field("region", "EMEA"),
            true,
            "a country by name",
        ),
        (
            &emea_de,
            de(Some("AT")).field("region", "EMEA"),
            false,
            "another country",
        ),
        (
            &emea_de,
            de(Some("DE")).field("region", "EMEA-North"),
            false,
            "exact, not a prefix",
        ),
        (&emea_de, de(Some("DE")), false, "without the field"),
        (
            &emea_de,
            de(Some("DE")).field("region", ""),
            false,
            "an empty field",
        ),
        (
            &emea_de,
            Client {
                reason: Some("contact_left"),
                ..de(Some("DE")).field("region", "EMEA")
            },
            false,
            "an excluded reason wins over match",
        ),
        (
            &emea_de,
            Client {
                reason: Some("we_ended"),
                ..de(Some("DE")).field("region", "EMEA")
            },
            false,
            "we_ended is never admitted",
        ),
        (
            &emea_de,
            Client {
                timezone: Some(Berlin),
                ..de(None).field("region", "EMEA")
            },
            // The country of a zone is the holiday rules' to say; with none, the
            // column alone counts.
            country_of(None, Some(Berlin)).as_deref() == Some("DE"),
            "a country from the time zone",
        ),
    ];
    for (campaign, client, admitted, why) in &table {
        assert_eq!(campaign.admits(&client.person()), *admitted, "{why}");
    }
}

#[test]
fn match_keys_are_country_company_and_fields() {
    let table: Vec<(&str, Result<MatchKey, ()>)> = vec![
        ("country", Ok(MatchKey::Country)),
        (" Country ", Ok(MatchKey::Country)),
        ("company", Ok(MatchKey::Company)),
        ("fields.region", Ok(MatchKey::Field("region".to_string()))),
        (
            "fields.Sales Region",
            Ok(MatchKey::Field("sales region".to_string())),
        ),
        ("region", Err(())),
        ("fields.", Err(())),
        ("churn_reason", Err(())),
        ("", Err(())),
    ];
    for (written, expected) in table {
        assert_eq!(
            MatchKey::parse(written).map_err(|_| ()),
            expected,
            "{written:?}"
        );
    }
    let hint = MatchKey::parse("region").unwrap_err();
    assert!(hint.contains("fields.region"), "{hint}");
    assert_eq!(MatchKey::Country.normalize("Germany"), Ok("DE".to_string()));
    assert_eq!(MatchKey::Country.normalize("uk"), Ok("GB".to_string()));
    assert!(MatchKey::Country.normalize("Atlantis").is_err());
    assert!(MatchKey::Company.normalize(" ").is_err());
}

#[test]
fn a_field_matches_whatever_its_header_spacing() {
    let c = campaign("c", None, &[], &[("fields.sales_region", "north")]);
    assert!(c.admits(&client(None).field("sales region", "North").person()));
    assert!(!c.admits(&client(None).field("region", "North").person()));
}

#[test]
fn a_person_is_enrolled_in_the_first_campaign_that_admits_them() {
    let campaigns = vec![
        campaign("price", Some(&["price"]), &[], &[]),
        campaign("emea", None, &[], &[("fields.region", "EMEA")]),
        campaign("everyone", None, &["acquisition"], &[]),
    ];
    // (client, campaign index)
    let table: Vec<(Client, Option<usize>)> = vec![
        (client(Some("price")), Some(0)),
        (client(Some("price")).field("region", "EMEA"), Some(0)),
        (client(Some("competitor")).field("region", "EMEA"), Some(1)),
        (client(Some("competitor")), Some(2)),
        (client(None), Some(2)),
        (client(Some("acquisition")), None),
        (client(Some("acquisition")).field("region", "emea"), Some(1)),
        (client(Some("we_ended")).field("region", "EMEA"), None),
    ];
    for (client, expected) in table {
        assert_eq!(
            first_admitting(&campaigns, &client.person()),
            expected,
            "{:?} {:?}",
            client.reason,
            client.fields
        );
    }
}

#[test]
fn a_survey_due_long_before_the_person_is_first_seen_is_not_enrolled() {
    let mut c = campaign("c", None, &[], &[]);
    // (enroll_within_days, survey due, now, enrolled)
    let table = [
        (None, "2016-01-01T10:00:00Z", "2026-06-01T10:00:00Z", true),
        (
            Some(365),
            "2025-06-01T10:00:00Z",
            "2026-06-01T10:00:00Z",
            true,
        ),
        (
            Some(365),
            "2025-06-01T09:59:59Z",
            "2026-06-01T10:00:00Z",
            false,
        ),
        (
            Some(365),
            "2026-09-01T10:00:00Z",
            "2026-06-01T10:00:00Z",
            true,
        ),
        (
            Some(30),
            "2026-04-01T10:00:00Z",
            "2026-06-01T10:00:00Z",
            false,
        ),
    ];
    for (within, due, now, enrolled) in table {
        c.enroll_within_days = within;
        assert_eq!(
            enrolls_in_time(&c, utc(due), UTC, utc(now)),
            enrolled,
            "{within:?} {due} {now}"
        );
    }
}

#[test]
fn a_client_is_past_the_horizon_once_the_last_day_a_message_may_start_is_over() {
    let mut c = campaign("c", None, &[], &[]);
    let churned = |t: &str| ChurnedAt::parse(t).unwrap_or_else(|| panic!("{t}"));
    // (max_days_since_churn, churned_at, now, past)
    let table = [
        (None, "2010-01-01", "2026-06-01T10:00:00Z", false),
        (Some(730), "2024-06-01", "2026-06-01T00:00:00Z", false),
        // 2026-06-01 is the 730th day after the churn: a message may still start on it.
        (Some(730), "2024-06-01", "2026-06-01T23:59:59Z", false),
        (Some(730), "2024-06-01", "2026-06-02T00:00:00Z", true),
        (Some(730), "2025-01-01", "2026-06-01T00:00:00Z", false),
    ];
    for (days, at, now, past) in table {
        c.max_days_since_churn = days;
        assert_eq!(
            past_horizon(&c, churned(at), UTC, utc(now)),
            past,
            "{days:?} {at} {now}"
        );
    }
}

#[test]
fn a_campaign_after_one_that_takes_everyone_is_shadowed() {
    let everyone = campaign("everyone", None, &[], &[]);
    let price = campaign("price", Some(&["price"]), &[], &[]);
    let competitor = campaign("competitor", Some(&["competitor"]), &[], &[]);
    let emea = campaign("emea", None, &[], &[("fields.region", "EMEA")]);
    let emea_de = campaign(
        "emea-de",
        None,
        &[],
        &[("fields.region", "emea"), ("country", "DE")],
    );
    let not_price = campaign("not-price", None, &["price"], &[]);
    let both = campaign("both", Some(&["price", "competitor"]), &[], &[]);
    let table: Vec<(Vec<&Campaign>, Option<Vec<&str>>)> = vec![
        (vec![&price, &everyone], None),
        (vec![&everyone, &price], Some(vec!["everyone"])),
        (vec![&everyone, &emea], Some(vec!["everyone"])),
        (vec![&emea, &everyone], None),
        (vec![&emea, &emea_de], Some(vec!["emea"])),
        (vec![&emea_de, &emea], None),
        // Excluding price leaves the price clients to the next campaign.
        (vec![&not_price, &everyone], None),
        (vec![&not_price, &price], None),
        (vec![&not_price, &competitor], Some(vec!["not-price"])),
        // Two earlier campaigns together take all of a third.
        (
            vec![&price, &competitor, &both],
            Some(vec!["price", "competitor"]),
        ),
        (vec![&price, &both], None),
        (
            vec![&price, &not_price, &everyone],
            Some(vec!["price", "not-price"]),
        ),
    ];
    for (order, expected) in table {
        let campaigns: Vec<Campaign> = order.iter().map(|c| (*c).clone()).collect();
        let last = campaigns.len() - 1;
        let names: Vec<&str> = campaigns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(shadowed_by(&campaigns, last), expected, "{names:?}");
        assert_eq!(
            shadowed_by(&campaigns, 0),
            None,
            "the first is never shadowed"
        );
    }
}

#[test]
fn the_audience_is_said_in_words() {
    assert_eq!(
        campaign("c", None, &[], &[]).audience(),
        "every churn reason"
    );
    assert_eq!(
        campaign(
            "c",
            Some(&["price", "competitor"]),
            &[],
            &[("country", "DE")]
        )
        .audience(),
        "churn reason price or competitor, where country = \"DE\""
    );
}
