//! `winback plan`: exactly what the daemon will send over the next days, and why then;
//! and the held steps, which it will not send until they are fixed.

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};

use super::csv_out::CsvOut;
use super::{Cli, Format, load_config, open_store};
use crate::config::Config;
use crate::domain::holidays;
use crate::domain::plan::{self, PlanItem, Planned};
use crate::domain::schedule::{self, Why};
use crate::store::Store;

pub(super) fn run(cli: &Cli, days: u32, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    let now = setup.clock.now();
    let until = now + Duration::days(i64::from(days));
    let planned = simulate(&setup.config, &mut store, now, until)?;
    let held = held(&setup.config, &store, now)?;
    if format == Format::Json {
        // The held steps follow the sends, each marked `"held": true`.
        let mut lines = Vec::new();
        for p in &planned {
            lines.push(serde_json::to_value(p)?);
        }
        for (id, p) in &held {
            let mut line = serde_json::to_value(p)?;
            if let Some(fields) = line.as_object_mut() {
                fields.insert("held".to_string(), true.into());
                fields.insert("message".to_string(), (*id).into());
            }
            lines.push(line);
        }
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Csv {
        // The held steps follow the sends, as in JSON: `held` yes, with their message id.
        let mut table = CsvOut::stdout(&[
            "at",
            "recipient_time",
            "email",
            "campaign",
            "step",
            "kind",
            "why",
            "held",
            "message",
        ])?;
        let sends = planned.iter().map(|p| (p, None));
        for (p, id) in sends.chain(held.iter().map(|(id, p)| (p, Some(*id)))) {
            table.row([
                p.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .as_str(),
                &p.local,
                &p.email,
                &p.campaign,
                &p.step.to_string(),
                p.kind.as_str(),
                &p.reason,
                if id.is_some() { "yes" } else { "no" },
                &id.map(|id| id.to_string()).unwrap_or_default(),
            ])?;
        }
        table.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    print_held(&held);
    for c in setup.config.campaigns.iter().filter(|c| c.paused) {
        println!(
            "campaign {} is PAUSED: none of its messages is sent or listed here; its enrollments go on, and once paused is removed each waiting message goes at its next send_at moment.",
            c.name
        );
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

/// Held steps (message id, and when it is tried again): they go only once fixed.
fn held(config: &Config, store: &Store, now: DateTime<Utc>) -> anyhow::Result<Vec<(i64, Planned)>> {
    let mut out = Vec::new();
    for row in store.held()? {
        let Some(campaign) = config.campaign(&row.campaign) else {
            continue;
        };
        let Some(step) = campaign.step(row.step) else {
            continue;
        };
        let tz = crate::domain::schedule::zone(campaign, row.timezone);
        let at = row.next_attempt_at.unwrap_or(now).max(now);
        out.push((
            row.id,
            Planned {
                at,
                local: at
                    .with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M %Z (%a)")
                    .to_string(),
                email: row.email,
                campaign: campaign.name.clone(),
                step: row.step,
                kind: step.kind,
                reason: format!(
                    "HELD, not sent until fixed: {}; tried again at each start of winback and once a day",
                    row.reason.as_deref().unwrap_or("not fit to go")
                ),
            },
        ));
    }
    Ok(out)
}

fn print_held(held: &[(i64, Planned)]) {
    if held.is_empty() {
        return;
    }
    println!(
        "held, not sent until fixed ({} message{}; `winback outbox list` shows them):",
        held.len(),
        if held.len() == 1 { "" } else { "s" }
    );
    for (id, p) in held {
        println!(
            "  message {id}  {}  {}  step {} {}  {}",
            p.email, p.campaign, p.step, p.kind, p.reason
        );
    }
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
    let lookback = config
        .campaigns
        .iter()
        .map(schedule::lookback)
        .max()
        .unwrap_or_else(|| Duration::hours(schedule::BUSY_LOOKBACK_HOURS));
    let data = store.plan_data_within(until, now, lookback)?;
    let items: Vec<PlanItem<'_>> = data
        .rows
        .into_iter()
        .filter_map(|row| {
            let campaign = config.campaign(&row.campaign)?;
            let tz = schedule::zone(campaign, row.timezone);
            let country = holidays::country_of(row.country.as_deref(), row.timezone);
            // Why the message it stands at is due when it is, by the rule that set it.
            let why = schedule::upcoming(campaign, row.churned_at, &row.history, tz)
                .into_iter()
                .find(|u| (u.step, u.occurrence) == (row.next_step, row.occurrence))
                .map_or(
                    if row.next_step == 1 {
                        Why::Survey
                    } else {
                        Why::After {
                            step: row.next_step - 1,
                            days: campaign.step(row.next_step).map_or(0, |s| s.after_days),
                        }
                    },
                    |u| u.why,
                );
            Some(PlanItem {
                email: row.email,
                client_key: row.client_id,
                timezone: row.timezone,
                churned_at: row.churned_at,
                campaign,
                next_step: row.next_step,
                occurrence: row.occurrence,
                due: row.due,
                not_before: row.not_before,
                why,
                history: row.history,
                account: row.account,
                country,
            })
        })
        .collect();
    let limits = plan::RateLimits {
        per_minute: config.smtp.max_per_minute,
        per_day: config.smtp.max_per_day,
        recent: store.claim_times_since(now - Duration::days(1))?,
    };
    // Which of each person's recent messages were a recurring step's: they keep
    // `min_gap_days` from any other.
    let busy: std::collections::HashMap<i64, Vec<schedule::Busy>> = data
        .busy
        .into_iter()
        .map(|(client, sends)| {
            let sends = sends
                .into_iter()
                .map(|(at, campaign, step)| schedule::Busy {
                    at,
                    recurring: schedule::recurs(config.campaign(&campaign), step),
                })
                .collect();
            (client, sends)
        })
        .collect();
    Ok(plan::plan_all(
        items,
        &busy,
        &data.accounts,
        &limits,
        now,
        until,
    ))
}
