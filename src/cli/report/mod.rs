//! `winback report --html FILE`: one self-contained page for the people who ask "is it
//! working?" — the funnel, why clients left, where sequences stop, the mail that came
//! back, what goes out next.
//!
//! The numbers come from the store, counted in SQL (`Store::report_data`,
//! `period_rows`, `upcoming_counts`), so the page costs the same memory for ten clients
//! or a million; this file only lays them out. The page has inline CSS and
//! SVG, and no scripts, fonts or links to anything outside it, so it can be mailed or
//! archived as one file.

mod chart;
mod period;
mod returned;
mod sections;
mod syncs;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::{Cli, ReportFormat, load_config, open_store};
use crate::config::Config;
use crate::store::ReportData;
use chart::esc;
use sections::WEEKS_AHEAD;

/// What `winback report` was asked for.
pub(super) struct ReportArgs<'a> {
    pub html: Option<&'a Path>,
    pub format: ReportFormat,
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub attribution_days: u32,
    pub force: bool,
}

/// Days in the default period before `--until` (12 weeks and the day itself: weekly).
const DEFAULT_PERIOD_DAYS: i64 = 83;

pub(super) fn run(cli: &Cli, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    // Refused before any work when the file may not be written.
    if let Some(html) = args.html {
        super::output::output_path(&setup.config, html, args.force)?;
    }
    let now = setup.clock.now();
    let zone = crate::domain::report_period::report_zone(
        setup.config.campaigns.iter().map(|c| c.timezone),
    );
    let until = args.until.unwrap_or(now.with_timezone(&zone).date_naive());
    let since = args
        .since
        .unwrap_or(until - Duration::days(DEFAULT_PERIOD_DAYS));
    if since > until {
        anyhow::bail!(
            "--since {since} is after --until {until}: give the first day of the period, then the last"
        );
    }
    let mut store = open_store(&setup.config)?;
    store.for_reading()?;
    let period = period::period(&setup.config, &store, since, until, args.attribution_days)?;
    let Some(html) = args.html else {
        match args.format {
            ReportFormat::Table => print!("{}", period::table(&period)),
            ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&period)?),
            ReportFormat::Csv => period::csv(&period, std::io::stdout().lock())?,
        }
        return Ok(ExitCode::SUCCESS);
    };
    let force = args.force;
    // The page's upcoming sends follow the configuration as it is now: a campaign added or
    // renamed since the daemon's last pass is applied first, as `plan` applies it.
    store.sync_campaigns(&setup.config, now)?;
    let data = store.report_data()?;
    let counts = store.upcoming_counts(now, WEEKS_AHEAD as u32)?;
    let weeks = sections::weekly(&counts, |campaign, step| {
        sections::sending_step_kind(&setup.config, campaign, step)
    });
    let upcoming: u64 = weeks.iter().flat_map(|w| w.values()).sum();
    let page = page(&setup.config, &data, &weeks, &period, now);
    super::output::write_output(&setup.config, html, page.as_bytes(), force)
        .context("the report was not written")?;
    let f = data.funnel;
    println!(
        "wrote {} ({} bytes): {} former clients, {} enrolled, {} surveyed, {} answered, {} came back; {} next message{} due in the next {WEEKS_AHEAD} weeks.",
        html.display(),
        page.len(),
        f.left,
        f.enrolled,
        f.surveyed,
        f.answered,
        f.came_back,
        upcoming,
        if upcoming == 1 { "" } else { "s" }
    );
    let blocked: u64 = data
        .returned
        .iter()
        .filter(|c| c.outcome == crate::domain::inbound::Outcome::Blocked.as_str())
        .map(|c| c.messages)
        .sum();
    if blocked > 0 {
        println!(
            "{blocked} message{} refused by receivers as coming from us: check your sending reputation and DNS (SPF, DKIM, DMARC); see \"Returned mail\" in the report.",
            if blocked == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole page.
fn page(
    config: &Config,
    data: &ReportData,
    upcoming: &[BTreeMap<&'static str, u64>],
    period: &period::Period,
    now: DateTime<Utc>,
) -> String {
    let generated = now.format("%Y-%m-%d %H:%M UTC").to_string();
    let sent = data.messages.get("sent").copied().unwrap_or(0);
    let attention: u64 = crate::store::ATTENTION
        .iter()
        .map(|s| data.messages.get(*s).copied().unwrap_or(0))
        .sum();
    let sections = [
        sections::funnel(&data.funnel),
        period::section(period),
        sections::reasons(config, data),
        sections::stops(config, data),
        returned::returned(config, &data.returned),
        sections::upcoming(upcoming, now),
        syncs::syncs(&data.syncs, data.sync_failures_total),
    ];
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>winback report, {generated}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
  <h1>Winning former clients back</h1>
  <p class="note">{company} · generated {generated} from <code>{database}</code> · {sent} message{plural} sent so far{attention}</p>
</header>
<main>
{sections}
</main>
<footer><p class="note">Terminal summary: <code>winback status</code>. Every message ahead, later steps and the rate limits included: <code>winback plan --days {days}</code>.</p></footer>
</body>
</html>
"#,
        company = esc(&config.sender.company),
        database = esc(&config.database_path.display().to_string()),
        plural = if sent == 1 { "" } else { "s" },
        attention = if attention > 0 {
            format!(
                " · <strong>{attention} need attention</strong> (<code>winback outbox list</code>)"
            )
        } else {
            String::new()
        },
        sections = sections.join("\n"),
        days = WEEKS_AHEAD * 7,
    )
}

const STYLE: &str = r#"
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 980px; padding: 24px 28px; color: #1d2430; background: #f6f7f9; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 18px; margin: 0 0 4px; }
  h3 { font-size: 15px; margin: 14px 0 4px; }
  section { background: #fff; border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.1); padding: 18px 22px; margin: 18px 0; }
  .note { color: #5a6578; margin: 2px 0 10px; }
  svg { display: block; max-width: 100%; height: auto; }
  svg text { font: 13px system-ui, -apple-system, "Segoe UI", sans-serif; fill: #1d2430; }
  svg text.value { fill: #5a6578; }
  table { border-collapse: collapse; margin-top: 10px; font-size: 14px; }
  th, td { padding: 3px 12px 3px 0; text-align: left; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  thead th { border-bottom: 1px solid #d5dae2; }
  details summary { cursor: pointer; color: #3d6bd6; margin-top: 8px; }
  .legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 4px 0 6px; font-size: 13px; }
  .legend span::before { content: ""; display: inline-block; width: 11px; height: 11px; margin-right: 5px; border-radius: 2px; vertical-align: -1px; background: var(--c); }
  .c-funnel { fill: #3d6bd6; --c: #3d6bd6; }
  .c-clients { fill: #8a94a6; --c: #8a94a6; }
  .c-yes { fill: #2e9e6a; --c: #2e9e6a; }
  .c-maybe { fill: #e0a526; --c: #e0a526; }
  .c-no { fill: #d1495b; --c: #d1495b; }
  .c-none { fill: #b8c0cc; --c: #b8c0cc; }
  .c-optout { fill: #e07a26; --c: #e07a26; }
  .c-bounce { fill: #7b4bc4; --c: #7b4bc4; }
  .c-survey { fill: #3d6bd6; --c: #3d6bd6; }
  .c-newsletter { fill: #2e9e6a; --c: #2e9e6a; }
  .c-article { fill: #e0a526; --c: #e0a526; }
  .c-whitepaper { fill: #7b4bc4; --c: #7b4bc4; }
  .c-greeting { fill: #d1495b; --c: #d1495b; }
"#;
