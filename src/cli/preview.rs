//! `winback preview`: one step as its recipient will get it, or a gallery of every step.
//!
//! Renders with the daemon's own pieces: the same templates (`Renderer`), the same MIME
//! builder (`mail::build_message`) and the same link building (`Deliverer`'s
//! `unsubscribe_url` and `survey_url`, for an enrolled client's real enrollment). It never
//! sends, and writes only the files asked for (plus the link secret on first use, as the
//! daemon would).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use handlebars::html_escape;

use super::{Cli, load_config, output};
use crate::config::{Campaign, Config};
use crate::domain::model::ClientRecord;
use crate::domain::schedule::{self, Next};
use crate::mail::{self, Renderer, Vars};
use crate::token::Target;

/// The token in the links of a preview for someone without an enrollment: obviously
/// not one the daemon issues (it has 43 base64url characters), so it can never work.
pub(super) const FAKE_TOKEN: &str = "PREVIEW-NOT-A-REAL-LINK";
/// How long `--open` waits to hear whether the browser launcher failed.
const OPENER_WAIT: Duration = Duration::from_secs(5);

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
        Renderer::load(config).map_err(|problems| anyhow!(mail::templates_refused(&problems)))?,
    );
    let campaign = find_campaign(config, args.campaign)?;
    if let Some(dir) = args.gallery {
        return gallery(
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
    let (client, links, about) = match args.email {
        None => (
            mail::sample_client(),
            Links::fake(config),
            "a sample client (pass --email to preview for a real one); links are placeholders"
                .to_string(),
        ),
        Some(email) => {
            let email = &super::address(email)?;
            if !config.database_path.exists() {
                bail!(
                    "there is no database at {} yet, so no former client {email}; import clients first (winback import FILE), or leave out --email to preview for a sample client",
                    config.database_path.display()
                );
            }
            let mut store = super::open_store(config)?;
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
                    let secret = crate::daemon::load_secret(&mut store)?;
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
    };

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
        open_in_browser(&path);
    }
    Ok(ExitCode::SUCCESS)
}

/// The two links of a message.
struct Links {
    unsubscribe: String,
    survey: String,
}

impl Links {
    /// Links that look like the real ones but carry [`FAKE_TOKEN`].
    fn fake(config: &Config) -> Links {
        let base = &config.http.public_url;
        Links {
            unsubscribe: format!("{base}/u/{FAKE_TOKEN}"),
            survey: match &config.survey_external_url {
                Some(external) => format!("{external}{FAKE_TOKEN}"),
                None => format!("{base}/s/{FAKE_TOKEN}"),
            },
        }
    }
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

/// `winback preview --gallery DIR`: DIR/index.html with every step for a sample client.
fn gallery(
    config: &Config,
    renderer: &Renderer,
    campaign: &Campaign,
    now: chrono::DateTime<chrono::Utc>,
    dir: &Path,
    open: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let client = mail::sample_client();
    let links = Links::fake(config);
    let vars = Vars {
        client: &client,
        unsubscribe_url: links.unsubscribe.clone(),
        survey_url: links.survey.clone(),
        now,
    };
    let example = example_sends(campaign, &client);
    let mut cards = Vec::new();
    for (index, step) in campaign.steps.iter().enumerate() {
        let number = index as u32 + 1;
        let rendered = renderer
            .render(campaign, number, &vars)
            .map_err(|e| anyhow!("step {number}: {e}"))?;
        let example = example
            .get(index)
            .map(|t| format!("For the sample client: {t}"))
            .unwrap_or_default();
        cards.push(format!(
            r#"<section class="step" id="step-{number}">
  <header>
    <p class="kind">Step {number} · {kind}</p>
    <h2 class="subject">{subject}</h2>
    <p class="timing">{timing}</p>
    <p class="moment">then at the next <code>send_at</code> moment <code>{send_at}</code>, in the recipient's time zone ({zone} for clients without one)</p>
    <p class="example">{example}</p>
  </header>
  <iframe title="Step {number}: the HTML part" sandbox="allow-same-origin" srcdoc="{srcdoc}"></iframe>
  <details><summary>Text part</summary><pre>{text}</pre></details>
</section>"#,
            kind = step.kind,
            subject = html_escape(&rendered.subject),
            timing = html_escape(&timing(campaign, number)),
            send_at = html_escape(campaign.send_at.source()),
            zone = html_escape(campaign.timezone.name()),
            example = html_escape(&example),
            srcdoc = html_escape(&rendered.html),
            text = html_escape(&rendered.text),
        ));
    }
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430; background: #eef1f5; }}
  body > header {{ padding: 20px 28px 8px; }}
  h1 {{ font-size: 22px; margin: 0 0 4px; }}
  .note {{ color: #5a6578; margin: 2px 0; }}
  .steps {{ display: flex; flex-wrap: wrap; gap: 20px; padding: 16px 28px 28px; align-items: flex-start; }}
  .step {{ flex: 0 0 620px; background: #fff; border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); overflow: hidden; }}
  .step header {{ padding: 14px 18px 10px; border-bottom: 1px solid #e2e6ec; }}
  .kind {{ margin: 0; font-size: 12px; letter-spacing: .06em; text-transform: uppercase; color: #3d6bd6; font-weight: 600; }}
  .subject {{ font-size: 17px; margin: 4px 0 8px; }}
  .timing {{ margin: 0; font-weight: 600; }}
  .moment, .example {{ margin: 2px 0 0; color: #5a6578; font-size: 13px; }}
  iframe {{ display: block; width: 100%; height: 720px; border: 0; background: #fff; }}
  details {{ border-top: 1px solid #e2e6ec; padding: 8px 18px; }}
  pre {{ white-space: pre-wrap; font-size: 13px; }}
</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <p class="note">{count} step{plural}, rendered for a sample client ({sample}); the links are placeholders.</p>
  <p class="note">Sender: {sender}. Generated by <code>winback preview --gallery</code>.</p>
</header>
<main class="steps">
{cards}
</main>
</body>
</html>
"#,
        title = html_escape(&format!("Campaign \"{}\": every step", campaign.name)),
        count = campaign.steps.len(),
        plural = if campaign.steps.len() == 1 { "" } else { "s" },
        sample = html_escape(&format!(
            "{}, {}, left {}",
            client.name.as_deref().unwrap_or_default(),
            client.company.as_deref().unwrap_or_default(),
            client.churned_at
        )),
        sender = html_escape(&config.smtp.from.to_string()),
        cards = cards.join("\n"),
    );
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let index = dir.join("index.html");
    output::write_output(config, &index, page.as_bytes(), force)?;
    println!(
        "wrote {} ({} step{} of \"{}\"); open it in a browser to review them side by side.",
        index.display(),
        campaign.steps.len(),
        if campaign.steps.len() == 1 { "" } else { "s" },
        campaign.name
    );
    if open {
        open_in_browser(&index);
    }
    Ok(ExitCode::SUCCESS)
}

/// When step `number` is due, in the words of the configuration.
pub(super) fn timing(campaign: &Campaign, number: u32) -> String {
    match (number, campaign.step(number)) {
        (1, _) | (_, None) => format!("{} quiet days after the client left", campaign.quiet_days),
        (n, Some(step)) => format!(
            "+{} day{} after step {}",
            step.after_days,
            if step.after_days == 1 { "" } else { "s" },
            n - 1
        ),
    }
}

/// When each step would go out for `client`, were every step sent at its first moment.
fn example_sends(campaign: &Campaign, client: &ClientRecord) -> Vec<String> {
    let tz = schedule::zone(campaign, client.timezone);
    let mut out = Vec::new();
    let due = schedule::survey_due(campaign, client.churned_at, tz);
    let mut at = schedule::earliest_send(campaign, tz, due, due, due);
    let mut number = 1;
    while let Some(t) = at {
        out.push(format!(
            "left {}, so this goes out {}",
            client.churned_at,
            t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z")
        ));
        at = match schedule::after_send(campaign, number, t, tz) {
            Next::Step { number: next, due } => {
                number = next;
                schedule::earliest_send(campaign, tz, due, due, due)
            }
            Next::Completed => None,
        };
    }
    out
}

/// The built message's header fields, unfolded and decoded, without the MIME plumbing.
fn readable_headers(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    const PLUMBING: [&str; 4] = [
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "dkim-signature",
    ];
    fields
        .into_iter()
        .filter(|(name, _)| !PLUMBING.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name, decode_encoded_words(&value)))
        .collect()
}

/// RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) as text; the space
/// between two adjacent encoded words is dropped, as the RFC says.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut previous_encoded = false;
    for (index, token) in value.split(' ').enumerate() {
        if index > 0 {
            pending_space.push(' ');
        }
        if token.is_empty() {
            continue;
        }
        match decode_word(token) {
            Some(decoded) => {
                if !previous_encoded {
                    out.push_str(&pending_space);
                }
                out.push_str(&decoded);
                previous_encoded = true;
            }
            None => {
                out.push_str(&pending_space);
                out.push_str(token);
                previous_encoded = false;
            }
        }
        pending_space.clear();
    }
    out
}

/// One encoded word, or `None` if `token` is not one.
fn decode_word(token: &str) -> Option<String> {
    use base64::Engine as _;
    // A word may carry punctuation around it, e.g. a display name in quotes.
    let start = token.find("=?")?;
    let end = token.rfind("?=")?;
    let inner = token.get(start + 2..end)?;
    let mut parts = inner.splitn(3, '?');
    let (_charset, encoding, data) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = match encoding {
        "b" | "B" => base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?,
        "q" | "Q" => {
            let mut bytes = Vec::with_capacity(data.len());
            let raw = data.as_bytes();
            let mut i = 0;
            while i < raw.len() {
                match raw[i] {
                    b'_' => bytes.push(b' '),
                    b'=' => {
                        let hex = raw.get(i + 1..i + 3)?;
                        let hex = std::str::from_utf8(hex).ok()?;
                        bytes.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    other => bytes.push(other),
                }
                i += 1;
            }
            bytes
        }
        _ => return None,
    };
    Some(format!(
        "{}{}{}",
        &token[..start],
        String::from_utf8_lossy(&bytes),
        &token[end + 2..]
    ))
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

/// Opens `path` in the desktop's browser (`xdg-open`, or `open` on macOS). A launcher
/// that is missing or fails is a warning: the file is written either way.
pub(super) fn open_in_browser(path: &Path) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let path: PathBuf = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let spawned = Command::new(opener)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "warning: could not start {opener} to open {} ({e}); open the file yourself.",
                path.display()
            );
            return;
        }
    };
    // Launchers return quickly once a browser has the file; one still running is fine.
    let deadline = Instant::now() + OPENER_WAIT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return,
            Ok(Some(status)) => {
                eprintln!(
                    "warning: {opener} could not open {} ({status}); open the file yourself.",
                    path.display()
                );
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_decoded() {
        assert_eq!(
            decode_encoded_words("=?utf-8?b?Wm/Dqw==?= Smith"),
            "Zoë Smith"
        );
        assert_eq!(
            decode_encoded_words("=?utf-8?b?Wm/Dqw==?= =?utf-8?b?IFNtaXRo?="),
            "Zoë Smith"
        );
        assert_eq!(
            decode_encoded_words("=?UTF-8?Q?Caf=C3=A9_au_lait?="),
            "Café au lait"
        );
        assert_eq!(
            decode_encoded_words("\"=?utf-8?b?Wm/Dqw==?=\" <z@x.example>"),
            "\"Zoë\" <z@x.example>"
        );
        assert_eq!(
            decode_encoded_words("plain  text =?broken"),
            "plain  text =?broken"
        );
        assert_eq!(
            decode_encoded_words("=?utf-8?q?bad=Z?="),
            "=?utf-8?q?bad=Z?="
        );
    }
}
