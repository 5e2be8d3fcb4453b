//! Accounts: which contacts are one relationship (`[clients] account`), the key that
//! groups them, the free-mail domains that group nobody, and what one contact's return or
//! reply means for the others.
//!
//! Pure: no database, no clock. The store computes keys through [`account_key`] and asks
//! [`AccountStop`], [`stop_for`], [`stop_at_send`] and [`resumes`] what to do; the
//! account gap between messages is `schedule`'s.

use std::collections::BTreeMap;

use super::model::EnrollmentState;
use super::schedule::Standing;

/// What groups contacts into one account (`[clients] account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccountKey {
    /// `"company"`: the company column.
    Company,
    /// `"domain"`: the email's domain, free-mail domains excepted.
    Domain,
    /// Any other column, by its header as written (`"account_id"`).
    Column(String),
}

impl AccountKey {
    /// The rule in words, for the event that says the keys were derived again.
    pub(crate) fn describe(rule: Option<&AccountKey>) -> String {
        match rule {
            None => "not set (each contact alone)".to_string(),
            Some(AccountKey::Company) => "\"company\"".to_string(),
            Some(AccountKey::Domain) => "\"domain\"".to_string(),
            Some(AccountKey::Column(name)) => format!("the column \"{name}\""),
        }
    }

    /// A stable description of the rule, stored to tell when it changed (and the keys
    /// must be derived again). The free-mail list's version is part of it: a longer list
    /// ungroups addresses that were grouped.
    pub(crate) fn fingerprint(rule: Option<&AccountKey>) -> String {
        match rule {
            None => "none".to_string(),
            Some(AccountKey::Company) => format!("company/{PLACEHOLDER_VERSION}"),
            Some(AccountKey::Domain) => format!("domain/{FREE_MAIL_VERSION}"),
            Some(AccountKey::Column(name)) => {
                format!("column:{}/{PLACEHOLDER_VERSION}", header_words(name))
            }
        }
    }
}

/// The account a contact belongs to under `rule`: lower case, trimmed, inner spaces
/// collapsed; `None` when the value is empty or a placeholder (see [`is_placeholder`]),
/// or for `Domain` when the address is at a free-mail provider (two Gmail users are not
/// one company). `fields` are the custom
/// columns as imported (lower-cased header names); a `Column` is found in them as
/// headers are matched (case, spaces, `_` and `-` do not count).
pub(crate) fn account_key(
    rule: &AccountKey,
    email: &str,
    company: Option<&str>,
    fields: &BTreeMap<String, String>,
) -> Option<String> {
    let value = match rule {
        AccountKey::Company => company?,
        AccountKey::Domain => {
            let (_, domain) = email.rsplit_once('@')?;
            let domain = domain.trim().trim_end_matches('.');
            if is_free_mail(domain) {
                return None;
            }
            domain
        }
        AccountKey::Column(name) => {
            let wanted = header_words(name);
            fields
                .iter()
                .find(|(header, _)| header_words(header) == wanted)
                .map(|(_, value)| value.as_str())?
        }
    };
    let key = value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    (!key.is_empty() && !is_placeholder(&key)).then_some(key)
}

/// Raised whenever [`PLACEHOLDERS`] or [`is_placeholder`] change: keys by company or by
/// column are then derived again at the next start.
const PLACEHOLDER_VERSION: u32 = 1;

/// Values a CRM puts in a company (or account) cell that name no company: hundreds of
/// freelancers with "N/A" or "Self-employed" are not one relationship. Compared with the
/// value's letters and digits only, in lower case ("N/A", "n.a." and "N / A" alike).
const PLACEHOLDERS: &[&str] = &[
    "na",
    "none",
    "null",
    "nil",
    "unknown",
    "private",
    "personal",
    "selfemployed",
    "freelance",
    "freelancer",
    "independent",
    "individual",
    "notapplicable",
    "nocompany",
    "tbd",
];

/// Whether an account value is a placeholder rather than a company: one of
/// [`PLACEHOLDERS`], or a value with no letter or digit ("-", "--", "?", "...").
pub(crate) fn is_placeholder(value: &str) -> bool {
    // Asked of every imported row: no allocation, and a long value stops early.
    let mut compact = [0u8; 16];
    let mut len = 0;
    for c in value.chars().filter(|c| c.is_alphanumeric()) {
        if !c.is_ascii() || len == compact.len() {
            return false;
        }
        compact[len] = c.to_ascii_lowercase() as u8;
        len += 1;
    }
    len == 0 || PLACEHOLDERS.iter().any(|p| p.as_bytes() == &compact[..len])
}

/// A header as headers are matched: case, spaces, `_` and `-` do not count, nor a
/// `fields.` before it (as templates name custom columns).
fn header_words(name: &str) -> String {
    let name = name.trim();
    let name = match name.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("fields.") => &name[7..],
        _ => name,
    };
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Raised whenever [`FREE_MAIL`] or [`FREE_MAIL_FAMILIES`] change: keys by domain are
/// then derived again at the next start.
const FREE_MAIL_VERSION: u32 = 1;

/// Domains of mail providers anyone can sign up with: their users are not one company.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "msn.com",
    "passport.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "ymail.com",
    "rocketmail.com",
    "web.de",
    "t-online.de",
    "freenet.de",
    "posteo.de",
    "mailbox.org",
    "proton.me",
    "pm.me",
    "protonmail.com",
    "protonmail.ch",
    "tutanota.com",
    "tutanota.de",
    "tuta.io",
    "tuta.com",
    "ya.ru",
    "mail.ru",
    "inbox.ru",
    "list.ru",
    "bk.ru",
    "rambler.ru",
    "qq.com",
    "foxmail.com",
    "163.com",
    "126.com",
    "yeah.net",
    "sina.com",
    "sina.cn",
    "sohu.com",
    "aliyun.com",
    "naver.com",
    "hanmail.net",
    "daum.net",
    "zoho.com",
    "zohomail.com",
    "fastmail.com",
    "fastmail.fm",
    "hey.com",
    "hushmail.com",
    "mail.com",
    "email.com",
    "usa.com",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "laposte.net",
    "sfr.fr",
    "neuf.fr",
    "libero.it",
    "virgilio.it",
    "tiscali.it",
    "alice.it",
    "seznam.cz",
    "centrum.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "onet.pl",
    "rediffmail.com",
    "comcast.net",
    "att.net",
    "sbcglobal.net",
    "verizon.net",
    "cox.net",
    "charter.net",
    "earthlink.net",
    "btinternet.com",
    "sky.com",
    "virginmedia.com",
    "ntlworld.com",
    "talktalk.net",
    "bigpond.com",
    "optusnet.com.au",
    "shaw.ca",
    "rogers.com",
    "sympatico.ca",
    "videotron.ca",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
    "ig.com.br",
    "bluewin.ch",
    "telenet.be",
    "skynet.be",
    "ziggo.nl",
    "kpnmail.nl",
    "home.nl",
    "planet.nl",
    "xs4all.nl",
];

/// Providers with a domain per country (`yahoo.co.uk`, `gmx.de`, `hotmail.fr`): the
/// first label of the domain, followed by a country or generic ending only.
const FREE_MAIL_FAMILIES: &[&str] = &[
    "yahoo",
    "hotmail",
    "outlook",
    "live",
    "windowslive",
    "gmx",
    "aol",
    "yandex",
];

/// Whether `domain` (lower case, ASCII form) belongs to a free-mail provider.
pub(crate) fn is_free_mail(domain: &str) -> bool {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if FREE_MAIL.contains(&domain.as_str()) {
        return true;
    }
    let Some((family, ending)) = domain.split_once('.') else {
        return false;
    };
    // `co.uk`, `com.br`, `de`, `com`, `net`: an ending of one or two short labels, so
    // that `live.acme-corp.com` (a company's own host) is not mistaken for `live.com`.
    let ending_labels: Vec<&str> = ending.split('.').collect();
    FREE_MAIL_FAMILIES.contains(&family)
        && ending_labels.len() <= 2
        && ending_labels.iter().all(|label| {
            (2..=4).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_alphabetic())
        })
}

/// What one contact's news means for the other contacts of their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountStop {
    /// The contact came back as a client: the account is a client again, and every
    /// sequence of its other contacts stops as `returned` (they are not themselves
    /// recorded as returned: their own churn and return dates stay theirs).
    Returned,
    /// A person answered: the relationship is in the team's hands, and the other
    /// contacts' sequences stop as `replied` (resumed when the reply is undone).
    Replied,
}

impl AccountStop {
    /// The state the other contacts' active sequences stop in.
    pub(crate) fn state(self) -> EnrollmentState {
        match self {
            AccountStop::Returned => EnrollmentState::Returned,
            AccountStop::Replied => EnrollmentState::Replied,
        }
    }

    /// The kind of the event logged for each contact whose sequences it stopped.
    pub(crate) fn event(self) -> &'static str {
        match self {
            AccountStop::Returned => "account_returned",
            AccountStop::Replied => "account_replied",
        }
    }

    /// The event logged for each contact whose sequences it stopped, naming the contact
    /// whose news it was.
    pub(crate) fn detail(self, by: &str) -> String {
        match self {
            AccountStop::Returned => {
                format!("{by}, of the same account, came back as a client: sequences stopped")
            }
            AccountStop::Replied => {
                format!("{by}, of the same account, replied: sequences stopped")
            }
        }
    }
}

/// What else is true of an account when a stop of one of its contacts is undone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AccountStanding {
    /// A contact of the account is recorded as returned.
    pub returned: bool,
    /// Replies from contacts of the account that still stand (applied, not undone),
    /// other than the one being undone.
    pub replies: usize,
}

/// What of their account stops a contact: another contact's return (the account is a
/// client again) before a reply that stands (the team is talking to them).
pub(crate) fn stop_for(standing: AccountStanding) -> Option<AccountStop> {
    if standing.returned {
        Some(AccountStop::Returned)
    } else if standing.replies > 0 {
        Some(AccountStop::Replied)
    } else {
        None
    }
}

/// The state a message about to go (claimed, or about to start) stops its sequence in:
/// the person's own standing first (an opt-out outranks the rest), then their account's
/// (see [`stop_for`]). Enrolling already stops such a contact; this holds the message
/// whatever way its sequence became active, as an opt-out is checked again at send time.
pub(crate) fn stop_at_send(own: Standing, account: AccountStanding) -> Option<EnrollmentState> {
    own.stop().or(stop_for(account).map(AccountStop::state))
}

/// Accounts with more contacts than this are named by `import` and `check`: more often
/// a placeholder or a reseller than one company.
pub(crate) const LARGE_ACCOUNT: u64 = 50;

/// The warning for an account of `contacts` contacts (more than [`LARGE_ACCOUNT`]),
/// `key` as stored, `gap_days` the campaigns' `account_gap_days`.
pub(crate) fn large_account_warning(key: &str, contacts: u64, gap_days: &[u32]) -> String {
    let mut gaps: Vec<u32> = gap_days.to_vec();
    gaps.sort_unstable();
    gaps.dedup();
    let gap = match gaps.as_slice() {
        [] | [0] => "account_gap_days is 0, so no gap between their messages".to_string(),
        [days] => format!("one message per account_gap_days ({days} days) between them"),
        _ => "one message per account_gap_days (set per campaign) between them".to_string(),
    };
    format!(
        "the account \"{key}\" has {contacts} contacts: [clients] account makes them one \
         relationship ({gap}), and a return or reply of any one stops them all; if they \
         are not one company, fix that value in the CRM (or leave it empty) and import again"
    )
}

/// Whether a contact's sequences stopped by their account may resume when the stop that
/// was theirs (an undone opt-out, an undone reply of theirs or a colleague's) is lifted:
/// not while the account is a client again, nor while another reply of the account
/// stands (it stopped them too).
pub(crate) fn resumes(standing: AccountStanding) -> bool {
    !standing.returned && standing.replies == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn free_mail_providers_are_known_in_every_country() {
        for domain in [
            "gmail.com",
            "GoogleMail.com",
            "outlook.com",
            "outlook.de",
            "hotmail.co.uk",
            "hotmail.fr",
            "live.com",
            "live.co.uk",
            "msn.com",
            "yahoo.com",
            "yahoo.co.jp",
            "yahoo.com.br",
            "icloud.com",
            "me.com",
            "mac.com",
            "aol.com",
            "aol.de",
            "gmx.de",
            "gmx.net",
            "gmx.at",
            "web.de",
            "proton.me",
            "protonmail.com",
            "yandex.ru",
            "yandex.com",
            "mail.ru",
            "qq.com",
            "163.com",
        ] {
            assert!(is_free_mail(domain), "{domain}");
        }
        for domain in [
            "acme.com",
            "acme.co.uk",
            "live.acme-corp.com",
            "outlook.acme.example",
            "gmail.com.acme.example",
            "yahoo-fans.org",
            "mail.acme.com",
            "webde.com",
        ] {
            assert!(!is_free_mail(domain), "{domain}");
        }
    }

    #[test]
    fn keys_are_lower_case_trimmed_and_empty_is_none() {
        let none = BTreeMap::new();
        let company = |c: Option<&str>| account_key(&AccountKey::Company, "a@acme.com", c, &none);
        assert_eq!(company(Some("  ACME   Corp ")), Some("acme corp".into()));
        assert_eq!(company(Some("Acme Corp")), company(Some("acme corp")));
        assert_eq!(company(Some("   ")), None);
        assert_eq!(company(None), None);
    }

    #[test]
    fn a_domain_key_is_the_address_domain_except_free_mail() {
        let none = BTreeMap::new();
        let domain = |email: &str| account_key(&AccountKey::Domain, email, Some("Acme"), &none);
        assert_eq!(domain("ann@Acme.COM"), Some("acme.com".into()));
        assert_eq!(domain("bob@acme.com"), domain("ann@acme.com"));
        assert_ne!(domain("bob@eu.acme.com"), domain("ann@acme.com"));
        assert_eq!(domain("ann@gmail.com"), None);
        assert_eq!(domain("ann@yahoo.co.uk"), None);
        assert_eq!(domain("no-at-sign"), None);
    }

    #[test]
    fn a_column_key_is_found_as_headers_are_matched() {
        let row = fields(&[("account id", " A-17 "), ("region", "EMEA")]);
        for name in [
            "account_id",
            "Account ID",
            "fields.account_id",
            "ACCOUNT-ID",
        ] {
            assert_eq!(
                account_key(&AccountKey::Column(name.into()), "a@x.example", None, &row),
                Some("a-17".into()),
                "{name}"
            );
        }
        assert_eq!(
            account_key(
                &AccountKey::Column("owner".into()),
                "a@x.example",
                None,
                &row
            ),
            None
        );
        let empty = fields(&[("account_id", "")]);
        assert_eq!(
            account_key(
                &AccountKey::Column("account_id".into()),
                "a@x.example",
                None,
                &empty
            ),
            None
        );
    }

    #[test]
    fn placeholder_companies_and_values_without_letters_give_no_account() {
        let none = BTreeMap::new();
        let company = |c: &str| account_key(&AccountKey::Company, "a@acme.com", Some(c), &none);
        for placeholder in [
            "N/A",
            "n/a",
            " N / A ",
            "-",
            "--",
            "?",
            "...",
            "none",
            "None",
            "unknown",
            "UNKNOWN",
            "private",
            "Self-employed",
            "self employed",
            "Freelance",
            "freelancer",
            "individual",
            "Not applicable",
            "n.a.",
            "#",
            "0",
        ] {
            // A digit is a value (a company can be a number, "0" an account id).
            let expected = (placeholder == "0").then(|| "0".to_string());
            assert_eq!(company(placeholder), expected, "{placeholder:?}");
        }
        for real in [
            "Acme",
            "3M",
            "Private Bank AG",
            "Freelance.com",
            "None Such Ltd",
            "A-1",
        ] {
            assert!(company(real).is_some(), "{real:?}");
        }
        let row = fields(&[("account id", "n/a")]);
        assert_eq!(
            account_key(
                &AccountKey::Column("account_id".into()),
                "a@x.example",
                None,
                &row
            ),
            None
        );
    }

    #[test]
    fn a_large_account_is_named_with_what_it_means() {
        let warning = large_account_warning("acme", 312, &[7, 7]);
        assert!(warning.contains("\"acme\" has 312 contacts"), "{warning}");
        assert!(
            warning.contains("one message per account_gap_days (7 days) between them"),
            "{warning}"
        );
        assert!(large_account_warning("acme", 51, &[0]).contains("no gap"));
        assert!(large_account_warning("acme", 51, &[7, 14]).contains("set per campaign"));
    }

    #[test]
    fn the_account_stops_a_message_after_the_persons_own_standing() {
        let own_opt_out = Standing {
            opted_out: true,
            ..Standing::default()
        };
        let returned = AccountStanding {
            returned: true,
            replies: 1,
        };
        let replied = AccountStanding {
            returned: false,
            replies: 2,
        };
        let cases = [
            (Standing::default(), AccountStanding::default(), None),
            (
                Standing::default(),
                returned,
                Some(EnrollmentState::Returned),
            ),
            (Standing::default(), replied, Some(EnrollmentState::Replied)),
            (own_opt_out, returned, Some(EnrollmentState::OptedOut)),
            (
                own_opt_out,
                AccountStanding::default(),
                Some(EnrollmentState::OptedOut),
            ),
        ];
        for (own, account, expected) in cases {
            assert_eq!(stop_at_send(own, account), expected, "{own:?} {account:?}");
        }
        assert_eq!(stop_for(replied), Some(AccountStop::Replied));
        assert_eq!(stop_for(AccountStanding::default()), None);
    }

    #[test]
    fn the_fingerprint_changes_with_the_rule_only() {
        let column = |n: &str| AccountKey::fingerprint(Some(&AccountKey::Column(n.into())));
        assert_eq!(column("Account ID"), column("account_id"));
        assert_ne!(column("account_id"), column("owner"));
        assert_ne!(
            AccountKey::fingerprint(None),
            AccountKey::fingerprint(Some(&AccountKey::Company))
        );
        assert_ne!(
            AccountKey::fingerprint(Some(&AccountKey::Company)),
            AccountKey::fingerprint(Some(&AccountKey::Domain))
        );
    }

    #[test]
    fn stopped_contacts_resume_only_when_nothing_else_of_the_account_stops_them() {
        assert!(resumes(AccountStanding::default()));
        assert!(!resumes(AccountStanding {
            returned: true,
            replies: 0
        }));
        assert!(!resumes(AccountStanding {
            returned: false,
            replies: 1
        }));
    }

    #[test]
    fn a_return_stops_as_returned_and_a_reply_as_replied_naming_the_contact() {
        assert_eq!(AccountStop::Returned.state(), EnrollmentState::Returned);
        assert_eq!(AccountStop::Replied.state(), EnrollmentState::Replied);
        assert!(
            AccountStop::Replied
                .detail("ann@acme.com")
                .contains("ann@acme.com")
        );
    }
}
