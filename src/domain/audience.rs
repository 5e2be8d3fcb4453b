//! Who a campaign is for, and where a person is enrolled: a campaign's audience
//! (`exclude_reasons`, `include_reasons`, `match`), the first campaign in file order whose
//! audience admits a person (campaigns are segments: nobody is in two), whether a person
//! first seen now is still worth enrolling (`enroll_within_days`), whether they are past
//! the consent horizon (`max_days_since_churn`), and which campaign can never enroll
//! anyone because earlier ones take all it would.
//!
//! Pure: plain functions over a [`Person`] and the campaigns; no database, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::calendar::add_local_days;
use crate::domain::campaign::{ALWAYS_EXCLUDED, Campaign};
use crate::domain::country::country_code;
use crate::domain::holidays::country_of;
use crate::domain::model::{ChurnedAt, ClientRecord};

/// What an audience looks at in a client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Person<'a> {
    pub churn_reason: Option<&'a str>,
    pub company: Option<&'a str>,
    /// The `country` column (an ISO code once imported).
    pub country: Option<&'a str>,
    /// Their own time zone: where the country column is empty, the country it lies in.
    pub timezone: Option<Tz>,
    pub fields: &'a BTreeMap<String, String>,
}

impl<'a> Person<'a> {
    pub(crate) fn of(record: &'a ClientRecord) -> Person<'a> {
        Person {
            churn_reason: record.churn_reason.as_deref(),
            company: record.company.as_deref(),
            country: record.country.as_deref(),
            timezone: record.timezone,
            fields: &record.fields,
        }
    }
}

/// A `match` key: what of the client it compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchKey {
    /// `country`: the ISO code of their country (column, else their time zone's).
    Country,
    /// `company`.
    Company,
    /// `fields.NAME`: a column of the CRM file read as a field, by its lower-cased name.
    Field(String),
}

impl MatchKey {
    /// The key as written in `match`, or what to write instead.
    pub(crate) fn parse(written: &str) -> Result<MatchKey, String> {
        let key = written.trim().to_lowercase();
        match key.as_str() {
            "country" => Ok(MatchKey::Country),
            "company" => Ok(MatchKey::Company),
            "churn_reason" | "reason" => Err("churn reasons are chosen with include_reasons = [\"price\"] (and exclude_reasons), not match".to_string()),
            _ => match key.strip_prefix("fields.") {
                Some(name) if !name.trim().is_empty() => Ok(MatchKey::Field(name.trim().to_string())),
                _ => Err(format!(
                    "\"{written}\" is not something match can compare; use \"country\", \"company\" or \"fields.COLUMN\" for a column of the CRM file (e.g. \"fields.{}\")",
                    if key.is_empty() || key.starts_with("fields.") { "region" } else { key.as_str() }
                )),
            },
        }
    }

    /// The value to compare with, as `match` must hold it: a country as its ISO code.
    pub(crate) fn normalize(&self, value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("is empty; write the value clients must have, e.g. \"EMEA\"".to_string());
        }
        match self {
            MatchKey::Country => country_code(value).map(str::to_string).ok_or_else(|| {
                format!("\"{value}\" is not a country; write its ISO code (\"DE\") or English name (\"Germany\")")
            }),
            MatchKey::Company | MatchKey::Field(_) => Ok(value.to_string()),
        }
    }

    /// The person's value for this key, if they have one.
    fn value_of(&self, person: &Person<'_>) -> Option<String> {
        match self {
            MatchKey::Country => {
                let own = country_of(person.country, person.timezone)?;
                Some(country_code(&own).map_or(own, str::to_string))
            }
            MatchKey::Company => person.company.map(str::to_string),
            MatchKey::Field(name) => person
                .fields
                .get(name)
                .or_else(|| {
                    // A header written with other spacing (`Sales Region` for `sales_region`).
                    let wanted = squeezed(name);
                    person
                        .fields
                        .iter()
                        .find(|(k, _)| squeezed(k) == wanted)
                        .map(|(_, v)| v)
                })
                .cloned(),
        }
    }
}

/// A column name without case, spaces, `_` and `-`, as headers are matched.
fn squeezed(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `value` (trimmed) equals `wanted`, whatever the case.
fn same(value: &str, wanted: &str) -> bool {
    let value = value.trim();
    !value.is_empty() && value.to_lowercase() == wanted.trim().to_lowercase()
}

impl Campaign {
    /// Whether a client who left for `reason` is never contacted by this campaign
    /// (`exclude_reasons`, and `we_ended` always). An enrollment already made stops when
    /// its client's reason becomes one of these.
    pub(crate) fn excludes(&self, reason: Option<&str>) -> bool {
        reason.is_some_and(|r| r == ALWAYS_EXCLUDED || self.exclude_reasons.iter().any(|x| x == r))
    }

    /// Whether the churn reason alone lets a client in: not excluded, and among
    /// `include_reasons` when the campaign lists them (a client without a reason is then
    /// not in).
    pub(crate) fn admits_reason(&self, reason: Option<&str>) -> bool {
        if self.excludes(reason) {
            return false;
        }
        match &self.include_reasons {
            None => true,
            Some(included) => reason.is_some_and(|r| included.iter().any(|i| i == r)),
        }
    }

    /// Whether the client belongs to this campaign's audience: their churn reason is
    /// admitted and every `match` holds (exact, case-insensitive; a client without the
    /// value is not in).
    pub(crate) fn admits(&self, person: &Person<'_>) -> bool {
        self.admits_reason(person.churn_reason)
            && self.matches.iter().all(|(key, wanted)| {
                MatchKey::parse(key).is_ok_and(|key| {
                    key.value_of(person)
                        .is_some_and(|value| same(&value, wanted))
                })
            })
    }

    /// The audience in words, for `check`: "churn reasons price, competitor; where
    /// country = DE" or "every churn reason".
    pub(crate) fn audience(&self) -> String {
        let reasons = match &self.include_reasons {
            Some(list) => format!("churn reason {}", list.join(" or ")),
            None => "every churn reason".to_string(),
        };
        if self.matches.is_empty() {
            reasons
        } else {
            let matches: Vec<String> = self
                .matches
                .iter()
                .map(|(k, v)| format!("{k} = \"{v}\""))
                .collect();
            format!("{reasons}, where {}", matches.join(" and "))
        }
    }
}

/// The campaign a person without a sequence is enrolled in: the first in file order
/// whose audience admits them (its index), if any.
pub(crate) fn first_admitting(campaigns: &[Campaign], person: &Person<'_>) -> Option<usize> {
    campaigns.iter().position(|c| c.admits(person))
}

/// Whether a campaign still enrolls a person first seen at `now` whose survey is due at
/// `survey_due`: not when it would have been due more than `enroll_within_days` (local
/// days) before, so a first import of years of CRM history surveys nobody who left long
/// ago.
pub(crate) fn enrolls_in_time(
    campaign: &Campaign,
    survey_due: DateTime<Utc>,
    tz: Tz,
    now: DateTime<Utc>,
) -> bool {
    campaign
        .enroll_within_days
        .is_none_or(|days| add_local_days(survey_due, days, tz) >= now)
}

/// Whether a client who left at `churned_at` is past the campaign's consent horizon at
/// `now`: the last local day on which a message may start (`max_days_since_churn` days
/// after the churn day) is over. The same instant the scheduler stops at, so a client
/// counted here is one no message can reach.
pub(crate) fn past_horizon(
    campaign: &Campaign,
    churned_at: ChurnedAt,
    tz: Tz,
    now: DateTime<Utc>,
) -> bool {
    crate::domain::schedule::horizon(campaign, churned_at, tz).is_some_and(|end| end <= now)
}

/// When campaign `index` can never enroll anyone because the campaigns before it take
/// every client its audience admits: the names of those that do. `None` while some
/// client would still reach it.
///
/// Exact for churn reasons (each reason any campaign names, no reason, and any other
/// reason are tried) and for `match`: the client tried has only the values the campaign's
/// own `match` requires, so an earlier campaign that admits them admits every client the
/// campaign would.
pub(crate) fn shadowed_by(campaigns: &[Campaign], index: usize) -> Option<Vec<&str>> {
    let campaign = campaigns.get(index)?;
    let earlier = &campaigns[..index];
    if earlier.is_empty() {
        return None;
    }
    // The values the campaign's `match` requires, and nothing else.
    let mut fields = BTreeMap::new();
    let mut company = None;
    let mut country = None;
    for (key, value) in &campaign.matches {
        match MatchKey::parse(key) {
            Ok(MatchKey::Country) => country = Some(value.as_str()),
            Ok(MatchKey::Company) => company = Some(value.as_str()),
            Ok(MatchKey::Field(name)) => {
                fields.insert(name, value.clone());
            }
            Err(_) => return None,
        }
    }
    // Every reason named anywhere, no reason, and one named nowhere (all such behave alike).
    const UNNAMED: &str = "\u{0}any other reason";
    let mut reasons: Vec<Option<&str>> = vec![None, Some(UNNAMED), Some(ALWAYS_EXCLUDED)];
    for c in campaigns {
        reasons.extend(c.exclude_reasons.iter().map(|r| Some(r.as_str())));
        reasons.extend(c.include_reasons.iter().flatten().map(|r| Some(r.as_str())));
    }
    let mut by: Vec<usize> = Vec::new();
    let mut reachable_at_all = false;
    for reason in reasons {
        let person = Person {
            churn_reason: reason,
            company,
            country,
            timezone: None,
            fields: &fields,
        };
        if !campaign.admits(&person) {
            continue;
        }
        reachable_at_all = true;
        let taker = earlier.iter().position(|c| c.admits(&person))?;
        if !by.contains(&taker) {
            by.push(taker);
        }
    }
    by.sort_unstable();
    reachable_at_all.then(|| by.iter().map(|&i| earlier[i].name.as_str()).collect())
}

#[cfg(test)]
mod tests;
