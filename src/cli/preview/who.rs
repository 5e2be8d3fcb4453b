//! Who a preview is for, and the links in their message: a sample client with
//! placeholder links, or a former client found by address, with the real links of their
//! enrollment in the campaign; and a sentence saying which. Reads the database only for
//! `--email` (enrolling campaigns added since the daemon started, as `plan` does).

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};

use crate::cli::{address, open_store};
use crate::config::{Campaign, Config};
use crate::domain::model::ClientRecord;
use crate::mail;
use crate::token::Target;

/// The token in the links of a preview for someone without an enrollment: obviously
/// not one the daemon issues (it has 43 base64url characters), so it can never work.
pub(super) const FAKE_TOKEN: &str = "PREVIEW-NOT-A-REAL-LINK";

/// The two links of a message.
pub(super) struct Links {
    pub(super) unsubscribe: String,
    pub(super) survey: String,
}

impl Links {
    /// Links built as the real ones are, but carrying [`FAKE_TOKEN`].
    pub(super) fn fake(config: &Config) -> Links {
        Links {
            unsubscribe: crate::links::unsubscribe_link(config, FAKE_TOKEN),
            survey: crate::links::survey_link(config, FAKE_TOKEN),
        }
    }
}

/// The client a preview of `campaign` renders for (`email`, or the sample client), their
/// links, and what to tell the operator about both.
pub(super) fn recipient(
    config: &Config,
    campaign: &Campaign,
    email: Option<&str>,
    secrets: &crate::setup::Secrets,
    now: DateTime<Utc>,
) -> anyhow::Result<(ClientRecord, Links, String)> {
    Ok(match email {
        None => (
            mail::sample_client(),
            Links::fake(config),
            "a sample client (pass --email to preview for a real one); links are placeholders"
                .to_string(),
        ),
        Some(email) => {
            let email = &address(email)?;
            if !config.database_path.exists() {
                bail!(
                    "there is no database at {} yet, so no former client {email}; import clients first (winback import FILE), or leave out --email to preview for a sample client",
                    config.database_path.display()
                );
            }
            let mut store = open_store(config)?;
            // A campaign added or retimed since the daemon last started is enrolled now, as
            // `plan` does, so that its links are the ones the daemon will use.
            store.sync_campaigns(config, now)?;
            let found = store.preview_client(email, &campaign.name)?.ok_or_else(|| {
                anyhow!(
                    "{email} is not a known former client (check the address, or import them first); leave out --email to preview for a sample client"
                )
            })?;
            match found.enrollment_id {
                Some(id) => {
                    let secret = crate::setup::load_secret(&mut store, secrets)?;
                    let links = Links {
                        unsubscribe: crate::links::unsubscribe_url(
                            config,
                            &secret,
                            Target::Enrollment(id),
                        ),
                        survey: crate::links::survey_url(config, &secret, Target::Enrollment(id)),
                    };
                    let note = match (found.suppressed.as_deref(), found.returned_at) {
                        (Some("bounce"), _) => {
                            "; their address bounced, so nothing more will be sent to them"
                        }
                        (Some(_), _) => "; they opted out, so nothing more will be sent to them",
                        (None, Some(_)) => {
                            "; they came back as a client, so nothing more will be sent to them"
                        }
                        (None, None) => "",
                    };
                    (
                        found.record,
                        links,
                        format!(
                            "{email}, with their real links: do not click unsubscribe or answer the survey from here{note}"
                        ),
                    )
                }
                None => (
                    found.record,
                    Links::fake(config),
                    format!(
                        "{email}, who is not in campaign \"{}\" (their churn reason is not in its audience); links are placeholders",
                        campaign.name
                    ),
                ),
            }
        }
    })
}
