//! A campaign's audience: `include_reasons` and `match`; and, across campaigns, one that
//! can never enroll anyone because the campaigns before it take all it would.
//!
//! Part of the validator: records problems and warnings, builds nothing else. What the
//! keys mean is `domain::audience`'s.

use std::ops::Range;

use toml::Spanned;

use super::super::hints::likely_reason;
use super::Validator;
use crate::domain::audience::{MatchKey, shadowed_by};
use crate::domain::campaign::{ALWAYS_EXCLUDED, Campaign};

impl Validator<'_> {
    /// `include_reasons`: only these churn reasons, lower case. A likely misspelling is a
    /// warning; `we_ended`, a reason also in `exclude_reasons`, or an empty list (nobody
    /// would ever be enrolled) is a problem.
    pub(super) fn include_reasons(
        &mut self,
        raw: Option<Spanned<Vec<String>>>,
        exclude_reasons: &[String],
        key: &str,
    ) -> Option<Vec<String>> {
        let raw = raw?;
        let span = raw.span();
        let mut list: Vec<String> = Vec::new();
        for written in raw.into_inner() {
            let reason = written.trim().to_lowercase();
            if reason.is_empty() {
                self.problem(Some(&span), key, "holds an empty reason; write churn reasons as the churn_reason column does, e.g. [\"price\", \"competitor\"]");
                continue;
            }
            if let Some(meant) = likely_reason(&reason) {
                self.warning(&span, key, format!("\"{written}\" is not a churn reason winback knows; did you mean \"{meant}\"? Reasons are matched exactly as the CSV's churn_reason column writes them"));
            }
            if reason == ALWAYS_EXCLUDED {
                self.problem(
                    Some(&span),
                    key,
                    format!(
                        "names \"{ALWAYS_EXCLUDED}\": those clients are never contacted; remove it"
                    ),
                );
            } else if exclude_reasons.contains(&reason) {
                self.problem(Some(&span), key, format!("names \"{reason}\", which exclude_reasons also names; a reason is either in the campaign's audience or not: remove it from one of the two"));
            }
            if !list.contains(&reason) {
                list.push(reason);
            }
        }
        if list.is_empty() {
            self.problem(Some(&span), key, "is empty, so the campaign would enroll nobody; list the churn reasons it is for, e.g. [\"price\"], or remove the key to take every reason");
        }
        Some(list)
    }

    /// `match = { "fields.region" = "EMEA", country = "DE" }`: each key `country`,
    /// `company` or `fields.COLUMN`, each value a non-empty string (a country as its ISO
    /// code). Returned as (key, value) with the key in one spelling.
    pub(super) fn matches(
        &mut self,
        raw: Option<Spanned<toml::Table>>,
        key: &str,
    ) -> Vec<(String, String)> {
        let Some(raw) = raw else {
            return Vec::new();
        };
        let span = raw.span();
        let mut out: Vec<(String, String)> = Vec::new();
        for (written, value) in raw.into_inner() {
            let this = format!("{key}.{written}");
            let parsed = match MatchKey::parse(&written) {
                Ok(parsed) => parsed,
                Err(hint) => {
                    self.problem(Some(&span), &this, hint);
                    continue;
                }
            };
            let Some(text) = value.as_str() else {
                self.problem(Some(&span), &this, format!("is {value}; write the value as text in quotes, e.g. \"{written}\" = \"EMEA\""));
                continue;
            };
            let value = match parsed.normalize(text) {
                Ok(value) => value,
                Err(hint) => {
                    self.problem(Some(&span), &this, hint);
                    continue;
                }
            };
            let name = match &parsed {
                MatchKey::Country => "country".to_string(),
                MatchKey::Company => "company".to_string(),
                MatchKey::Field(name) => format!("fields.{name}"),
            };
            if out.iter().any(|(k, _)| *k == name) {
                self.problem(
                    Some(&span),
                    &this,
                    format!("{name} is matched twice; a client has one value, keep one"),
                );
                continue;
            }
            out.push((name, value));
        }
        out
    }

    /// A warning for each campaign the campaigns before it leave nobody to: a client is
    /// enrolled in the first campaign whose audience admits them.
    pub(super) fn unreachable_campaigns(&mut self, campaigns: &[Campaign], spans: &[Range<usize>]) {
        for (index, campaign) in campaigns.iter().enumerate() {
            let Some(by) = shadowed_by(campaigns, index) else {
                continue;
            };
            let Some(span) = spans.get(index) else {
                continue;
            };
            let names: Vec<String> = by.iter().map(|n| format!("\"{n}\"")).collect();
            let (earlier, them) = if names.len() == 1 {
                (format!("the campaign {} before it takes", names[0]), "it")
            } else {
                (
                    format!("the campaigns {} before it take", names.join(" and ")),
                    "them",
                )
            };
            self.warning(
                span,
                &format!("campaign[{}]", index + 1),
                format!(
                    "\"{}\" can never enroll anyone: {earlier} every client it would (each client goes to the first campaign whose audience admits them); move it above {them}, or narrow {them} with include_reasons or match",
                    campaign.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const HEAD: &str = r#"
[smtp]
url = "file://outbox"
from = "Acme <success@acme.example>"

[http]
public_url = "https://winback.acme.example"

[sender]
company = "Acme"
postal_address = "1 Main Street"

[templates]
dir = "."
"#;

    /// A campaign named `name` with `extra` lines.
    fn campaign(name: &str, extra: &str) -> String {
        format!(
            "\n[[campaign]]\nname = \"{name}\"\nsend_at = \"0 10 * * *\"\n{extra}\n[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"Why?\"\n"
        )
    }

    fn parse(campaigns: &str) -> Result<Config, String> {
        Config::parse(
            Path::new("/tmp/winback.toml"),
            &format!("{HEAD}{campaigns}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn include_reasons_and_match_are_read_in_one_spelling() {
        let config = parse(&campaign(
            "emea",
            "include_reasons = [\" Price \", \"competitor\"]\nmatch = { \"Fields.Region\" = \"EMEA\", country = \"Germany\", company = \"Acme\" }",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let c = &config.campaigns[0];
        assert_eq!(
            c.include_reasons,
            Some(vec!["price".to_string(), "competitor".to_string()])
        );
        let mut matches = c.matches.clone();
        matches.sort();
        assert_eq!(
            matches,
            vec![
                ("company".to_string(), "Acme".to_string()),
                ("country".to_string(), "DE".to_string()),
                ("fields.region".to_string(), "EMEA".to_string()),
            ]
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_bad_audience_is_refused_with_the_fix() {
        // (extra lines, what the error must say)
        let table = [
            (
                "include_reasons = [\"price\"]\nexclude_reasons = [\"we_ended\", \"price\"]",
                "which exclude_reasons also names",
            ),
            (
                "include_reasons = [\"we_ended\"]",
                "those clients are never contacted",
            ),
            ("include_reasons = []", "would enroll nobody"),
            ("match = { region = \"EMEA\" }", "\"fields.region\""),
            ("match = { churn_reason = \"price\" }", "include_reasons"),
            ("match = { country = \"Atlantis\" }", "is not a country"),
            ("match = { \"fields.region\" = \"\" }", "is empty"),
            ("match = { \"fields.size\" = 3 }", "in quotes"),
        ];
        for (extra, expected) in table {
            let error = parse(&campaign("c", extra))
                .err()
                .unwrap_or_else(|| panic!("{extra} was accepted"));
            assert!(error.contains(expected), "{extra}: {error}");
            assert!(error.contains("campaign[1]."), "{extra}: {error}");
        }
    }

    #[test]
    fn a_misspelt_included_reason_is_a_warning() {
        let config = parse(&campaign("c", "include_reasons = [\"competiter\"]"))
            .unwrap_or_else(|e| panic!("{e}"));
        let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("did you mean \"competitor\"")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_campaign_earlier_ones_leave_nobody_to_is_warned_about() {
        let config = parse(&format!(
            "{}{}{}",
            campaign("everyone", ""),
            campaign("price", "include_reasons = [\"price\"]"),
            campaign("emea", "match = { \"fields.region\" = \"EMEA\" }"),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("campaign[2]")
                && warnings[0].contains("\"price\" can never enroll anyone: the campaign \"everyone\" before it takes every client it would"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("\"emea\" can never enroll anyone"),
            "{warnings:?}"
        );

        // In the other order, each campaign has clients of its own.
        let config = parse(&format!(
            "{}{}{}",
            campaign("price", "include_reasons = [\"price\"]"),
            campaign("emea", "match = { \"fields.region\" = \"EMEA\" }"),
            campaign("everyone", ""),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }
}
