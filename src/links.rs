//! The links in an email: where a recipient unsubscribes and answers the survey.
//!
//! One definition for the daemon that writes them, the HTTP server that serves the pages
//! they lead to, and `preview`, so the three can never disagree.

use crate::config::Config;
use crate::token::{self, Purpose, Secret, Target};

/// `{public_url}/u/{token}`: the List-Unsubscribe and footer link.
pub fn unsubscribe_url(config: &Config, secret: &Secret, link: Target) -> String {
    format!(
        "{}/u/{}",
        config.http.public_url,
        token::issue(secret, Purpose::Unsubscribe, link)
    )
}

/// The built-in survey form, or `[survey] external_url` with the token appended.
pub fn survey_url(config: &Config, secret: &Secret, link: Target) -> String {
    let token = token::issue(secret, Purpose::Survey, link);
    match &config.survey_external_url {
        Some(base) => format!("{base}{token}"),
        None => format!("{}/s/{token}", config.http.public_url),
    }
}
