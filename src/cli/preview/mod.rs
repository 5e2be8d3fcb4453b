//! `winback preview`: one step as its recipient will get it, or a gallery of every step.
//!
//! Renders with the daemon's own pieces: the same templates (`Renderer`), the same MIME
//! builder (`mail::build_message`) and the same link building (`links`: an enrolled
//! client's real links, else placeholders built the same way). It never sends, and writes
//! only the files asked for (plus the link secret on first use, as the daemon would).

mod browser;
mod gallery;
mod headers;
mod who;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail};

use super::{Cli, load_config, output};
use crate::config::{Campaign, Config};
use crate::mail::{self, Renderer, Vars};
use headers::readable_headers;

/// What `winback preview` was asked for.
pub(super) struct PreviewArgs<'a> {
    pub campaign: &'a str,
    pub step: Option<u32>,
    pub email: Option<&'a str>,
    pub html: Option<&'a Path>,
    pub open: bool,
    pub gallery: Option<&'a Path>,
    /// Replace an existing `--html` file or gallery index.
    pub force: bool,
}

pub(super) fn run(cli: &Cli, args: PreviewArgs<'_>) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let config = &setup.config;
    if let Some(path) = args.html {
        output::output_path(config, path, args.force)?;
    }
    let renderer = Arc::new(
        Renderer::load(config)
            .map_err(|problems| anyhow!(crate::mail::templates_refused(&problems)))?,
    );
    let campaign = find_campaign(config, args.campaign)?;
    if let Some(dir) = args.gallery {
        return gallery::write(
            config,
            &renderer,
            campaign,
            setup.clock.now(),
            dir,
            args.open,
            args.force,
        );
    }
    let step = args
        .step
        .ok_or_else(|| anyhow!("--step N is needed (or --gallery DIR)"))?;
    if campaign.step(step).is_none() {
        bail!(
            "campaign \"{}\" has {} step{}; --step takes 1 to {}",
            campaign.name,
            campaign.steps.len(),
            if campaign.steps.len() == 1 { "" } else { "s" },
            campaign.steps.len()
        );
    }
    let now = setup.clock.now();

    // Who, and the links they would get.
    let (client, links, about) = who::recipient(config, campaign, args.email, &setup.secrets, now)?;

    let vars = Vars {
        client: &client,
        unsubscribe_url: links.unsubscribe.clone(),
        survey_url: links.survey.clone(),
        now,
    };
    let rendered = renderer
        .render(campaign, step, &vars)
        .map_err(|e| anyhow!("{e}"))?;
    let built = renderer
        .build_message(
            config,
            &rendered,
            &client,
            &mail::Origin {
                campaign: &campaign.name,
                step,
                return_path: None,
            },
            &mail::new_message_id(config, now),
            now,
            &links.unsubscribe,
        )
        .map_err(|e| anyhow!("{e}"))?;

    let kind = campaign
        .step(step)
        .map(|s| s.kind.as_str())
        .unwrap_or_default();
    println!(
        "Preview of \"{}\" step {step} ({kind}) for {about}.",
        campaign.name
    );
    println!();
    for (name, value) in readable_headers(&built.bytes) {
        println!("{name}: {value}");
    }
    if let Some(dkim) = &config.dkim {
        println!(
            "(DKIM-signed for {} with selector {})",
            dkim.domain, dkim.selector
        );
    }
    println!();
    print!("{}", rendered.text);
    if !rendered.text.ends_with('\n') {
        println!();
    }
    println!();
    let html_len = rendered.html.len();
    match args.html {
        Some(path) => {
            output::write_output(config, path, rendered.html.as_bytes(), args.force)?;
            println!("The HTML part ({html_len} bytes) is in {}.", path.display());
        }
        None if !args.open => {
            println!(
                "The HTML part has {html_len} bytes: --html FILE writes it, --open shows it in a browser."
            );
        }
        None => {}
    }
    if args.open {
        let path = match args.html {
            Some(path) => path.to_path_buf(),
            None => {
                let path = std::env::temp_dir().join(format!(
                    "winback-preview-{}-step{step}.html",
                    safe_name(&campaign.name)
                ));
                // Our own scratch file, replaced at each preview.
                output::write_output(config, &path, rendered.html.as_bytes(), true)?;
                println!("The HTML part ({html_len} bytes) is in {}.", path.display());
                path
            }
        };
        browser::open(&path);
    }
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

fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
