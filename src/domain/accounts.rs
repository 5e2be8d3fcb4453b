//! Accounts: which contacts are one relationship (`[clients] account`), the key that
//! groups them, the free-mail domains that group nobody, and what one contact's return or
//! reply means for the others.
//!
//! Pure: no database, no clock. The store computes keys through [`account_key`] and asks
//! [`AccountStop`] and [`resumes`] what to do; the account gap between messages is
//! `schedule`'s.

use std::collections::BTreeMap;

use super::model::EnrollmentState;

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
            Some(AccountKey::Company) => "company".to_string(),
            Some(AccountKey::Domain) => format!("domain/{FREE_MAIL_VERSION}"),
            Some(AccountKey::Column(name)) => format!("column:{}", header_words(name)),
        }
    }
}

/// The account a contact belongs to under `rule`: lower case, trimmed, inner spaces
/// collapsed; `None` when the value is empty, or for `Domain` when the address is at a
/// free-mail provider (two Gmail users are not one company). `fields` are the custom
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
    (!key.is_empty()).then_some(key)
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
