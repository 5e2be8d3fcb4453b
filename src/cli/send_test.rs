//! `winback send-test`: one step, rendered for a former client or the sample client,
//! sent to an address of the operator's choosing through the configured transport, with
//! `[TEST]` before its subject, so that a campaign can be seen in a real mail program
//! before it goes live.
//!
//! Records nothing: the database is only read (opened read-only, and only for `--email`),
//! no outbox row, event or link key is written, and the links in the message carry a
//! token no key signed, so opening one shows the "link not found" page and changes
//! nothing for anyone. A message the daemon would hold (a placeholder left, a footer
//! missing) is refused unless `--anyway`, and its problems are listed either way.

use std::process::ExitCode;

use anyhow::{anyhow, bail};

use super::{Cli, address, clock};
use crate::config::{Campaign, Config};
use crate::domain::model::ClientRecord;
use crate::mail::{self, Vars, fitness};
use crate::setup::Setup;

/// The token in a test message's links: not one the daemon issues, so it never verifies.
const TEST_TOKEN: &str = "TEST-MESSAGE-NOT-A-REAL-LINK";

/// What `winback send-test` was asked for.
pub(super) struct SendTestArgs<'a> {
    pub campaign: &'a str,
    pub step: u32,
    pub to: &'a str,
    pub email: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub anyway: bool,
}

pub(super) fn run(cli: &Cli, args: SendTestArgs<'_>) -> anyhow::Result<ExitCode> {
    let to = address(args.to)?;
    let setup = Setup::load(&cli.config, clock(cli)).map_err(|e| anyhow!("{e}"))?;
    let config = &setup.config;
    let campaign = find_campaign(config, args.campaign)?;
    if campaign.step(args.step).is_none() {
        bail!(
            "campaign \"{}\" has {} step{}; --step takes 1 to {}",
            campaign.name,
            campaign.steps.len(),
            if campaign.steps.len() == 1 { "" } else { "s" },
            campaign.steps.len()
        );
    }
    let (client, about) = recipient(config, campaign, args.email, args.reason)?;
    let now = setup.clock.now();
    let unsubscribe = crate::links::unsubscribe_link(config, TEST_TOKEN);
    let vars = Vars {
        client: &client,
        unsubscribe_url: unsubscribe.clone(),
        survey_url: crate::links::survey_link(config, TEST_TOKEN),
        now,
    };
    let mut rendered = setup
        .renderer
        .render(campaign, args.step, &vars)
        .map_err(|e| anyhow!("{e}"))?;
    let unfit = fitness::unfit(&rendered, &unsubscribe, &config.sender.postal_address);
    if !unfit.is_empty() {
        println!(
            "The daemon would hold this message, not send it: {}.",
            fitness::held_reason(&unfit)
        );
        if !args.anyway {
            println!(
                "Nothing was sent. Fix the template, or add --anyway to send the test to {to} as it is and see the problem in a mail program."
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    rendered.subject = format!("[TEST] {}", rendered.subject);
    // Addressed to the tester, not the client the step was rendered for.
    let tester = ClientRecord {
        email: to.clone(),
        name: None,
        first_name: None,
        ..client.clone()
    };
    let message = setup
        .renderer
        .build_message(
            config,
            &rendered,
            &tester,
            &mail::Origin {
                campaign: &campaign.name,
                step: args.step,
                return_path: None,
            },
            &mail::new_message_id(config, now),
            now,
            &unsubscribe,
        )
        .map_err(|e| anyhow!("{e}"))?;
    let smtp = &config.smtp;
    let mailer = crate::mailer::from_endpoint(
        &smtp.endpoint,
        crate::mailer::SmtpOptions {
            connections: 1,
            timeout: smtp.timeout,
            password: setup.secrets.smtp_password.clone(),
            hello_name: None,
        },
    )
    .map_err(|e| anyhow!("smtp.url: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let delivered = runtime
        .block_on(mailer.send(&message))
        .map_err(|e| anyhow!("the test was not sent: {e}"))?;
    println!(
        "Sent \"{}\" step {} ({}) to {to}, rendered for {about}: \"{}\" ({}).",
        campaign.name,
        args.step,
        campaign
            .step(args.step)
            .map(|s| s.kind.as_str())
            .unwrap_or_default(),
        rendered.subject,
        delivered.reply
    );
    println!(
        "Nothing was recorded; its links lead to the \"link not found\" page and change nothing."
    );
    Ok(ExitCode::SUCCESS)
}

fn find_campaign<'a>(config: &'a Config, name: &str) -> anyhow::Result<&'a Campaign> {
    config.campaign(name).ok_or_else(|| {
        let names: Vec<&str> = config.campaigns.iter().map(|c| c.name.as_str()).collect();
        anyhow!(
            "{} has no campaign named \"{name}\"; its campaigns are: {}",
            config.file.display(),
            names.join(", ")
        )
    })
}

/// The client the step is rendered for (`--email`, read from the database opened
/// read-only; else the sample client, who left for `reason` when given, or else for a
/// reason the campaign's audience takes), and how to name them.
fn recipient(
    config: &Config,
    campaign: &Campaign,
    email: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<(ClientRecord, String)> {
    let Some(email) = email else {
        let mut sample = mail::sample_client_for(config, campaign);
        if let Some(reason) = reason {
            sample.churn_reason = Some(reason.trim().to_lowercase());
        }
        let about = match &sample.churn_reason {
            Some(reason) => format!("a sample client who left for \"{reason}\""),
            None => "a sample client".to_string(),
        };
        return Ok((sample, about));
    };
    let email = address(email)?;
    let client = crate::store::Store::client_at(&config.database_path, &email)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| {
            anyhow!(
                "{email} is not a known former client (check the address, or import them first); leave out --email to render for a sample client"
            )
        })?;
    Ok((client, email))
}
