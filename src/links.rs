//! The links in an email: where a recipient unsubscribes, undoes it, and answers the survey.
//!
//! One definition for the daemon that writes them, the HTTP server that serves the pages
//! they lead to, and `preview` (real links, or placeholders that carry a token no link
//! has), so the three can never disagree. Builds addresses only: the token format is
//! `token`'s, the routes that answer them `http`'s.

use crate::config::Config;
use crate::token::{self, Purpose, Secret, Target};

/// `{public_url}/u/{token}`: the List-Unsubscribe and footer link.
pub(crate) fn unsubscribe_url(config: &Config, secret: &Secret, link: Target) -> String {
    unsubscribe_link(config, &token::issue(secret, Purpose::Unsubscribe, link))
}

/// `{public_url}/u/{token}/undo`: where the page after an unsubscribe takes it back.
pub(crate) fn undo_url(config: &Config, secret: &Secret, link: Target) -> String {
    format!("{}/undo", unsubscribe_url(config, secret, link))
}

/// The built-in survey form, or `[survey] external_url` with the token appended.
pub(crate) fn survey_url(config: &Config, secret: &Secret, link: Target) -> String {
    survey_link(config, &token::issue(secret, Purpose::Survey, link))
}

/// The unsubscribe link that carries `token`.
pub(crate) fn unsubscribe_link(config: &Config, token: &str) -> String {
    format!("{}/u/{token}", config.http.public_url)
}

/// The survey link that carries `token`.
pub(crate) fn survey_link(config: &Config, token: &str) -> String {
    match &config.survey_external_url {
        Some(base) => format!("{base}{token}"),
        None => format!("{}/s/{token}", config.http.public_url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let rest = format!("{}{extra}", crate::test_support::SURVEY_ONLY);
        crate::test_support::config(dir.path(), "", &rest)
    }

    #[test]
    fn a_link_is_its_address_with_the_token_the_link_carries() {
        let secret = Secret::from_text("test secret");
        let link = Target::Enrollment(7);
        let unsubscribe = token::issue(&secret, Purpose::Unsubscribe, link);
        let survey = token::issue(&secret, Purpose::Survey, link);
        let built_in = config("");
        assert_eq!(
            unsubscribe_url(&built_in, &secret, link),
            format!("https://winback.acme.example/u/{unsubscribe}")
        );
        assert_eq!(
            undo_url(&built_in, &secret, link),
            format!("https://winback.acme.example/u/{unsubscribe}/undo")
        );
        assert_eq!(
            survey_url(&built_in, &secret, link),
            format!("https://winback.acme.example/s/{survey}")
        );
        assert_eq!(
            survey_link(&built_in, "PLACEHOLDER"),
            "https://winback.acme.example/s/PLACEHOLDER"
        );
        let external = config("\n[survey]\nexternal_url = \"https://forms.example/f?t=\"\n");
        assert_eq!(
            survey_url(&external, &secret, link),
            format!("https://forms.example/f?t={survey}")
        );
        assert_eq!(
            unsubscribe_link(&external, "PLACEHOLDER"),
            "https://winback.acme.example/u/PLACEHOLDER"
        );
    }
}
