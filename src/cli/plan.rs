//! `winback plan`: exactly what the daemon will send over the next days, and why then.

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};

use super::{Cli, Format, load_config, open_store};
use crate::config::Config;
use crate::schedule::{self, PlanItem, Planned};
use crate::store::Store;

pub(super) fn run(cli: &Cli, days: u32, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    let now = setup.clock.now();
    let until = now + Duration::days(i64::from(days));
    let planned = simulate(&setup.config, &mut store, now, until)?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&planned)?);
        return Ok(ExitCode::SUCCESS);
    }
    if planned.is_empty() {
        println!("nothing to send in the next {days} days.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<17}  {:<34}  {:<38}  {:<16}  {:<14}  why",
        "when (UTC)", "recipient's time", "email", "campaign", "step"
    );
    for p in &planned {
        println!(
            "{:<17}  {:<34}  {:<38}  {:<16}  {:<14}  {}",
            p.at.format("%Y-%m-%d %H:%M"),
            p.local,
            p.email,
            p.campaign,
            format!("{} {}", p.step, p.kind),
            p.reason
        );
    }
    println!(
        "{} message{} in the next {days} days.",
        planned.len(),
        if planned.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Every message the daemon will send from `now` to `until`, in send order: the store's
/// waiting enrollments and retries, run forward by `schedule::plan`. `report` charts the
/// same simulation.
pub(super) fn simulate(
    config: &Config,
    store: &mut Store,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> anyhow::Result<Vec<Planned>> {
    store.sync_campaigns(config, now)?;
    let data = store.plan_data(until, now)?;
    let items: Vec<PlanItem<'_>> = data
        .rows
        .into_iter()
        .filter_map(|row| {
            let campaign = config.campaign(&row.campaign)?;
            Some(PlanItem {
                email: row.email,
                client_key: row.client_id,
                timezone: row.timezone,
                churned_at: row.churned_at,
                campaign,
                next_step: row.next_step,
                due: row.due,
                not_before: row.not_before,
            })
        })
        .collect();
    let limits = schedule::RateLimits {
        per_minute: config.smtp.max_per_minute,
        per_day: config.smtp.max_per_day,
        recent: store.claim_times_since(now - Duration::days(1))?,
    };
    Ok(schedule::plan_with_limits(
        items, &data.busy, &limits, now, until,
    ))
}
