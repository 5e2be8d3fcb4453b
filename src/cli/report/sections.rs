//! The report's sections, one function each: the funnel, why clients left (the CRM's
//! reasons and the survey's answers), where sequences stop, and the upcoming sends. Each
//! lays out figures it is given as HTML and charts; none reads the store.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::chart::{Row, Segment, bar_chart, esc, legend, percent, plural};
use crate::config::Config;
use crate::domain::model::StepKind;
use crate::domain::survey::{SURVEY_REASONS, WOULD_RETURN};
use crate::store::{Funnel, ReportData, UpcomingCount};

/// How far ahead the upcoming sends are charted.
pub(super) const WEEKS_AHEAD: usize = 12;

pub(super) fn funnel(f: &Funnel) -> String {
    let stages: [(&str, &str, u64, &str); 5] = [
        ("left", "Left us", f.left, "every former client imported"),
        (
            "enrolled",
            "Enrolled",
            f.enrolled,
            "in a campaign's audience (never those we let go)",
        ),
        (
            "surveyed",
            "Surveyed",
            f.surveyed,
            "the survey was accepted by the mail server",
        ),
        (
            "answered",
            "Answered",
            f.answered,
            "answered the feedback survey",
        ),
        (
            "came_back",
            "Came back",
            f.came_back,
            "enrolled, and a client again (winback returned)",
        ),
    ];
    let rows: Vec<Row> = stages
        .iter()
        .map(|(_, label, n, _)| Row {
            label: label.to_string(),
            segments: vec![Segment {
                value: *n,
                class: "c-funnel",
                label: plural(*n, "person", "people"),
            }],
            note: format!("{n} ({} of those who left)", percent(*n, f.left)),
        })
        .collect();
    let table: Vec<String> = stages
        .iter()
        .map(|(key, label, n, meaning)| {
            format!(
                r#"<tr data-stage="{key}" data-count="{n}"><th>{label}</th><td class="n">{n}</td><td class="n">{}</td><td>{}</td></tr>"#,
                percent(*n, f.left),
                esc(meaning)
            )
        })
        .collect();
    format!(
        r#"<section id="funnel">
<h2>The funnel</h2>
<p class="note">People at each stage, across all campaigns.</p>
{chart}
<table><thead><tr><th>Stage</th><th>People</th><th>Of those who left</th><th>Meaning</th></tr></thead><tbody>
{table}
</tbody></table>
</section>"#,
        chart = bar_chart("The funnel: people at each stage", &rows),
        table = table.join("\n")
    )
}

fn reason_label(reason: Option<&str>, none: &str) -> String {
    reason
        .map(|r| r.replace('_', " "))
        .unwrap_or_else(|| none.to_string())
}

pub(super) fn reasons(config: &Config, data: &ReportData) -> String {
    let crm_rows: Vec<Row> = data
        .churn_reasons
        .iter()
        .map(|(reason, n)| Row {
            label: {
                let label = reason_label(reason.as_deref(), "(not given)");
                // Clients no campaign admits (those we let go) are never contacted.
                if config
                    .campaigns
                    .iter()
                    .any(|c| c.admits_reason(reason.as_deref()))
                {
                    label
                } else {
                    format!("{label} (never contacted)")
                }
            },
            segments: vec![Segment {
                value: *n,
                class: "c-clients",
                label: plural(*n, "former client", "former clients"),
            }],
            note: String::new(),
        })
        .collect();

    // Survey answers: reason → would-return → answers, offered reasons first.
    let mut by_reason: BTreeMap<Option<&str>, BTreeMap<Option<&str>, u64>> = BTreeMap::new();
    for (reason, again, n) in &data.answers {
        *by_reason
            .entry(reason.as_deref())
            .or_default()
            .entry(again.as_deref())
            .or_default() += n;
    }
    let mut order: Vec<Option<&str>> = SURVEY_REASONS.iter().map(|r| Some(*r)).collect();
    order.extend(
        by_reason
            .keys()
            .copied()
            .filter(|r| !matches!(r, Some(r) if SURVEY_REASONS.contains(r))),
    );
    let total_answers: u64 = data.answers.iter().map(|(_, _, n)| n).sum();
    let stack: [(Option<&str>, &'static str); 4] = [
        (Some(WOULD_RETURN[0]), "c-yes"),
        (Some(WOULD_RETURN[1]), "c-maybe"),
        (Some(WOULD_RETURN[2]), "c-no"),
        (None, "c-none"),
    ];
    let mut answer_rows = Vec::new();
    let mut answer_table = Vec::new();
    for reason in order {
        let counts = by_reason.get(&reason);
        let count = |again: Option<&str>| counts.and_then(|c| c.get(&again)).copied().unwrap_or(0);
        let segments: Vec<Segment> = stack
            .iter()
            .map(|(again, class)| Segment {
                value: count(*again),
                class,
                label: format!(
                    "{} would work with us again: {}",
                    plural(count(*again), "answer", "answers"),
                    again.unwrap_or("no answer")
                ),
            })
            .collect();
        let label = reason_label(reason, "(no reason chosen)");
        let total: u64 = segments.iter().map(|s| s.value).sum();
        answer_table.push(format!(
            r#"<tr data-reason="{key}"><th>{label}</th><td class="n">{total}</td>{cells}</tr>"#,
            key = esc(reason.unwrap_or("none")),
            label = esc(&label),
            cells = stack
                .iter()
                .map(|(again, _)| format!(r#"<td class="n">{}</td>"#, count(*again)))
                .collect::<String>()
        ));
        answer_rows.push(Row {
            label,
            segments,
            note: String::new(),
        });
    }
    let answers = if total_answers == 0 {
        r#"<p class="note">No survey answers yet.</p>"#.to_string()
    } else {
        format!(
            "{legend}{chart}<details><summary>The numbers</summary><table><thead><tr><th>Reason given</th><th>Answers</th><th>Yes</th><th>Maybe</th><th>No</th><th>No answer</th></tr></thead><tbody>{rows}</tbody></table></details>",
            legend = legend(&[
                ("c-yes", "would work with us again: yes"),
                ("c-maybe", "maybe"),
                ("c-no", "no"),
                ("c-none", "no answer")
            ]),
            chart = bar_chart("Survey answers by the reason given", &answer_rows),
            rows = answer_table.join("")
        )
    };
    format!(
        r#"<section id="reasons">
<h2>Why they left</h2>
<p class="note">What the CRM says, for every former client:</p>
{crm}
<h2 style="margin-top:18px">What they told us</h2>
<p class="note">{answered}, by the reason they chose, and whether they would work with us again. The full answers: <code>winback survey</code>.</p>
{answers}
</section>"#,
        crm = bar_chart("Former clients by churn reason (CRM)", &crm_rows),
        answered = plural(total_answers, "survey answer", "survey answers"),
    )
}

pub(super) fn stops(config: &Config, data: &ReportData) -> String {
    // Every configured step (zeros included), then whatever the database adds (a step
    // or campaign no longer configured).
    let mut cells: BTreeMap<(String, u32), (u64, u64)> = BTreeMap::new();
    for campaign in &config.campaigns {
        for number in 0..=campaign.steps.len() as u32 {
            cells.insert((campaign.name.clone(), number), (0, 0));
        }
    }
    for stop in &data.stops {
        let cell = cells.entry((stop.campaign.clone(), stop.step)).or_default();
        cell.0 += stop.opt_outs;
        cell.1 += stop.bounces;
    }
    let mut blocks = Vec::new();
    let mut campaigns: Vec<&str> = cells.keys().map(|(c, _)| c.as_str()).collect();
    campaigns.dedup();
    for name in campaigns {
        let campaign = config.campaign(name);
        let mut rows = Vec::new();
        let mut table = Vec::new();
        for ((_, number), (opt_outs, bounces)) in
            cells.range((name.to_string(), 0)..=(name.to_string(), u32::MAX))
        {
            let label = match (number, campaign.and_then(|c| c.step(*number))) {
                (0, _) => "before the first message".to_string(),
                (n, Some(step)) => format!("after step {n} ({})", step.kind),
                (n, None) => format!("after step {n}"),
            };
            table.push(format!(
                r#"<tr data-campaign="{campaign}" data-step="{number}" data-opt-outs="{opt_outs}" data-bounces="{bounces}"><th>{label}</th><td class="n">{opt_outs}</td><td class="n">{bounces}</td></tr>"#,
                campaign = esc(name),
                label = esc(&label)
            ));
            rows.push(Row {
                label,
                segments: vec![
                    Segment {
                        value: *opt_outs,
                        class: "c-optout",
                        label: plural(*opt_outs, "opt-out", "opt-outs"),
                    },
                    Segment {
                        value: *bounces,
                        class: "c-bounce",
                        label: plural(*bounces, "bounce", "bounces"),
                    },
                ],
                note: format!(
                    "{}, {}",
                    plural(*opt_outs, "opt-out", "opt-outs"),
                    plural(*bounces, "bounce", "bounces")
                ),
            });
        }
        blocks.push(format!(
            r#"<h3>{title}</h3>{chart}<details><summary>The numbers</summary><table><thead><tr><th>Stopped</th><th>Opt-outs</th><th>Bounces</th></tr></thead><tbody>{table}</tbody></table></details>"#,
            title = esc(&format!("Campaign \"{name}\"{}", if campaign.is_none() { " (no longer configured)" } else { "" })),
            chart = bar_chart(&format!("Opt-outs and bounces per step, campaign {name}"), &rows),
            table = table.join("")
        ));
    }
    format!(
        r#"<section id="stops">
<h2>Where sequences stop</h2>
<p class="note">An opt-out is counted at the last step its person was sent; a bounce at the step whose message was refused. A step that loses many people is the one to reread.</p>
{legend}
{blocks}
</section>"#,
        legend = legend(&[("c-optout", "opt-outs"), ("c-bounce", "bounces")]),
        blocks = blocks.join("\n")
    )
}

fn kind_class(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Survey => "c-survey",
        StepKind::Newsletter => "c-newsletter",
        StepKind::Article => "c-article",
        StepKind::Whitepaper => "c-whitepaper",
        StepKind::Greeting => "c-greeting",
    }
}

/// The store's counts in weeks of seven days from `now`, by step kind. `step_kind`
/// gives the kind of a campaign's step, `None` for a campaign that sends nothing (paused,
/// or no longer configured): its counts are left out.
pub(super) fn weekly(
    counts: &[UpcomingCount],
    step_kind: impl Fn(&str, u32) -> Option<StepKind>,
) -> Vec<BTreeMap<&'static str, u64>> {
    let mut weeks = vec![BTreeMap::new(); WEEKS_AHEAD];
    for c in counts {
        let Some(configured) = step_kind(&c.campaign, c.step) else {
            continue;
        };
        // A retry keeps the kind it was written with.
        let kind = c
            .kind
            .as_deref()
            .and_then(StepKind::parse)
            .unwrap_or(configured);
        if let Some(week) = weeks.get_mut(c.week as usize) {
            *week.entry(kind.as_str()).or_insert(0) += c.messages;
        }
    }
    weeks
}

/// The kind of `step` of `campaign`, if that campaign is configured and not paused.
pub(super) fn sending_step_kind(config: &Config, campaign: &str, step: u32) -> Option<StepKind> {
    config
        .campaigns
        .iter()
        .find(|c| c.name == campaign && !c.paused)
        .and_then(|c| c.step(step))
        .map(|s| s.kind)
}

pub(super) fn upcoming(weeks: &[BTreeMap<&'static str, u64>], now: DateTime<Utc>) -> String {
    let mut total = 0;
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (index, counts) in weeks.iter().enumerate() {
        let start = now + Duration::weeks(index as i64);
        let end = start + Duration::days(6);
        let label = format!("{} – {}", start.format("%a %b %-d"), end.format("%b %-d"));
        let week_total: u64 = counts.values().sum();
        total += week_total;
        table.push(format!(
            r#"<tr data-week="{week}" data-count="{week_total}"><th>{label}</th><td class="n">{week_total}</td><td>{detail}</td></tr>"#,
            week = index + 1,
            label = esc(&label),
            detail = esc(&counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "))
        ));
        rows.push(Row {
            label,
            segments: StepKind::ALL
                .iter()
                .map(|kind| {
                    let n = counts.get(kind.as_str()).copied().unwrap_or(0);
                    Segment {
                        value: n,
                        class: kind_class(*kind),
                        label: format!("{n} {kind}"),
                    }
                })
                .collect(),
            note: String::new(),
        });
    }
    let kinds: Vec<(&str, &str)> = StepKind::ALL
        .iter()
        .map(|k| (kind_class(*k), k.as_str()))
        .collect();
    format!(
        r#"<section id="upcoming">
<h2>Upcoming sends</h2>
<p class="note">{total} in the next {WEEKS_AHEAD} weeks (weeks start {start}): the next message of each running sequence, in the week of the <code>send_at</code> moment it waits for (what is already due in the first), and the messages to be tried again. Paused campaigns send nothing. Every message, later steps and the rate limits included: <code>winback plan</code>.</p>
{legend}
{chart}
<details><summary>The numbers</summary><table><thead><tr><th>Week</th><th>Messages</th><th>By step kind</th></tr></thead><tbody>{table}</tbody></table></details>
</section>"#,
        total = plural(total, "message", "messages"),
        start = now.format("%A %H:%M UTC"),
        legend = legend(&kinds),
        chart = bar_chart("Upcoming sends per week", &rows),
        table = table.join("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upcoming_counts_fall_into_weeks_by_kind_and_paused_campaigns_are_left_out() {
        let count = UpcomingCount::of;
        let kinds = |campaign: &str, step: u32| match (campaign, step) {
            ("c", 1) => Some(StepKind::Survey),
            ("c", 2) => Some(StepKind::Article),
            _ => None,
        };
        let weeks = weekly(
            &[
                count("c", 1, None, 0, 2),
                count("c", 2, None, 1, 3),
                count("c", 1, Some("survey"), 1, 1),
                count("c", 2, None, WEEKS_AHEAD as u32 - 1, 4),
                count("paused", 1, None, 0, 100),
            ],
            kinds,
        );
        assert_eq!(weeks.len(), WEEKS_AHEAD);
        assert_eq!(weeks[0], BTreeMap::from([("survey", 2)]));
        assert_eq!(weeks[1], BTreeMap::from([("article", 3), ("survey", 1)]));
        assert_eq!(weeks[WEEKS_AHEAD - 1].get("article"), Some(&4));
    }
}
