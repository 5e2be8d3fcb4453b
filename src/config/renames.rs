//! Renamed campaigns: a campaign that leaves the configuration while a new one arrives is
//! taken for a rename until the operator says so with `renamed_from`, because a new
//! name would otherwise enroll, and survey, every former client again.
//!
//! Pure: the store's side (names, enrolled counts) comes in as data; `check` and the
//! daemon both ask [`unconfirmed_renames`].

use super::Config;

/// A campaign the database knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredCampaign {
    pub name: String,
    /// People enrolled under this name, in any state.
    pub enrolled: u64,
    /// The churn reasons of those people (None: no reason given), each once.
    pub reasons: Vec<Option<String>>,
    /// Whether the daemon last ran with it in the configuration.
    pub configured: bool,
}

/// A campaign gone from the configuration, with people, while others are new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SuspectedRename {
    pub old: String,
    pub enrolled: u64,
    /// The new campaigns, any of which may be its new name.
    pub new: Vec<String>,
}

impl SuspectedRename {
    /// What to do, in words.
    pub(crate) fn explain(&self) -> String {
        let new: Vec<String> = self.new.iter().map(|n| format!("\"{n}\"")).collect();
        let first = &self.new[0];
        format!(
            "the campaign \"{}\" ({} {} enrolled) is no longer in the configuration and {} {} new. \
             If it was renamed, add renamed_from = \"{}\" to the [[campaign]] named \"{first}\": its people keep their place and are not surveyed again. \
             If \"{}\" has really ended, start winback once without {}, then add {}",
            self.old,
            self.enrolled,
            if self.enrolled == 1 {
                "person"
            } else {
                "people"
            },
            new.join(" and "),
            if new.len() == 1 { "is" } else { "are" },
            self.old,
            self.old,
            new.join(" and "),
            if new.len() == 1 { "it" } else { "them" },
        )
    }
}

/// The renames the operator has not confirmed: a campaign the daemon last ran with, that
/// has people and is gone now (no campaign says `renamed_from` it), while a campaign
/// without `renamed_from` and without anyone enrolled yet has appeared that would take
/// some of those people in. Every way into the store (import, `run`, `plan`) asks first,
/// so a new name cannot gather people before the question is answered.
pub(crate) fn unconfirmed_renames(
    config: &Config,
    stored: &[StoredCampaign],
) -> Vec<SuspectedRename> {
    let stored_as = |name: &str| stored.iter().find(|s| s.name == name);
    let appeared: Vec<&super::Campaign> = config
        .campaigns
        .iter()
        .filter(|c| c.renamed_from.is_none())
        .filter(|c| stored_as(&c.name).is_none_or(|s| !s.configured && s.enrolled == 0))
        .collect();
    stored
        .iter()
        .filter(|s| s.configured && s.enrolled > 0)
        .filter(|s| config.campaign(&s.name).is_none())
        .filter(|s| {
            !config
                .campaigns
                .iter()
                .any(|c| c.renamed_from.as_deref() == Some(s.name.as_str()))
        })
        .filter_map(|s| {
            let new: Vec<String> = appeared
                .iter()
                .filter(|c| s.reasons.iter().any(|r| c.admits_reason(r.as_deref())))
                .map(|c| c.name.clone())
                .collect();
            (!new.is_empty()).then(|| SuspectedRename {
                old: s.name.clone(),
                enrolled: s.enrolled,
                new,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(name: &str, renamed_from: Option<&str>) -> String {
        let renamed = renamed_from.map_or(String::new(), |r| format!("renamed_from = \"{r}\"\n"));
        format!(
            "[[campaign]]\nname = \"{name}\"\nsend_at = \"* * * * *\"\n{renamed}[[campaign.step]]\nkind = \"survey\"\ntemplate = \"survey\"\nsubject = \"Why?\"\n"
        )
    }

    fn stored(name: &str, enrolled: u64, configured: bool) -> StoredCampaign {
        StoredCampaign {
            name: name.to_string(),
            enrolled,
            configured,
            reasons: if enrolled > 0 {
                vec![Some("price".to_string()), None]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn a_campaign_gone_with_people_while_another_appears_is_a_rename_until_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let renamed =
            crate::test_support::config(dir.path(), "", &campaign("former_clients", None));
        let was = [stored("former-clients", 40, true)];
        assert_eq!(
            unconfirmed_renames(&renamed, &was),
            vec![SuspectedRename {
                old: "former-clients".to_string(),
                enrolled: 40,
                new: vec!["former_clients".to_string()],
            }]
        );
        let explained = unconfirmed_renames(&renamed, &was)[0].explain();
        assert!(
            explained.contains(
                "add renamed_from = \"former-clients\" to the [[campaign]] named \"former_clients\""
            ),
            "{explained}"
        );

        // Confirmed; or nothing new; or nobody enrolled; or gone long ago (the daemon
        // already ran without it); or both still configured: no question.
        let confirmed = crate::test_support::config(
            dir.path(),
            "",
            &campaign("former_clients", Some("former-clients")),
        );
        assert_eq!(unconfirmed_renames(&confirmed, &was), vec![]);
        let both = crate::test_support::config(
            dir.path(),
            "",
            &format!(
                "{}{}",
                campaign("former-clients", None),
                campaign("partners", None)
            ),
        );
        assert_eq!(unconfirmed_renames(&both, &was), vec![]);
        let no_new = [
            stored("former-clients", 40, true),
            stored("former_clients", 0, true),
        ];
        assert_eq!(unconfirmed_renames(&renamed, &no_new), vec![]);
        assert_eq!(
            unconfirmed_renames(&renamed, &[stored("former-clients", 0, true)]),
            vec![]
        );
        assert_eq!(
            unconfirmed_renames(&renamed, &[stored("former-clients", 40, false)]),
            vec![]
        );
        // A campaign put back after a while has its people: not new.
        let put_back = [
            stored("former-clients", 40, true),
            stored("former_clients", 3, false),
        ];
        assert_eq!(unconfirmed_renames(&renamed, &put_back), vec![]);
        // A new campaign that would take none of the people in is not its new name.
        let only_price = [StoredCampaign {
            reasons: vec![Some("price".to_string())],
            ..stored("former-clients", 40, true)
        }];
        let elsewhere = crate::test_support::config(
            dir.path(),
            "",
            &campaign("former_clients", None).replace(
                "send_at =",
                "exclude_reasons = [\"we_ended\", \"price\"]\nsend_at =",
            ),
        );
        assert_eq!(unconfirmed_renames(&elsewhere, &only_price), vec![]);
        assert_eq!(unconfirmed_renames(&renamed, &only_price).len(), 1);
    }
}
