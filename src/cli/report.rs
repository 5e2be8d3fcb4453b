//! `winback report --html FILE`: one self-contained page for the people who ask "is it
//! working?" — the funnel, why clients left, where sequences stop, what goes out next.
//!
//! The numbers come from `Store::report_data` and from the same simulation as `winback
//! plan` (`plan::simulate`); this file only lays them out. The page has inline CSS and
//! SVG, and no scripts, fonts or links to anything outside it, so it can be mailed or
//! archived as one file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use handlebars::html_escape;

use super::{Cli, load_config, open_store};
use crate::config::Config;
use crate::domain::model::StepKind;
use crate::domain::plan::Planned;
use crate::domain::survey::{SURVEY_REASONS, WOULD_RETURN};
use crate::store::{Funnel, ReportData};

/// How far ahead the upcoming sends are charted.
const WEEKS_AHEAD: usize = 12;

pub(super) fn run(cli: &Cli, html: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    // Refused before any work when the file may not be written.
    super::output::output_path(&setup.config, html, force)?;
    let mut store = open_store(&setup.config)?;
    let now = setup.clock.now();
    let data = store.report_data()?;
    let until = now + Duration::weeks(WEEKS_AHEAD as i64);
    let planned = super::plan::simulate(&setup.config, &mut store, now, until)?;
    let page = page(&setup.config, &data, &planned, now);
    super::output::write_output(&setup.config, html, page.as_bytes(), force)
        .context("the report was not written")?;
    let f = data.funnel;
    println!(
        "wrote {} ({} bytes): {} former clients, {} enrolled, {} surveyed, {} answered, {} came back; {} message{} planned in the next {WEEKS_AHEAD} weeks.",
        html.display(),
        page.len(),
        f.left,
        f.enrolled,
        f.surveyed,
        f.answered,
        f.came_back,
        planned.len(),
        if planned.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The whole page.
fn page(config: &Config, data: &ReportData, planned: &[Planned], now: DateTime<Utc>) -> String {
    let generated = now.format("%Y-%m-%d %H:%M UTC").to_string();
    let sent = data.messages.get("sent").copied().unwrap_or(0);
    let attention: u64 = crate::store::ATTENTION
        .iter()
        .map(|s| data.messages.get(*s).copied().unwrap_or(0))
        .sum();
    let sections = [
        funnel_section(&data.funnel),
        reasons_section(config, data),
        stops_section(config, data),
        upcoming_section(planned, now),
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
<footer><p class="note">Terminal summary: <code>winback status</code>. The plan behind the last chart, message by message: <code>winback plan --days {days}</code>.</p></footer>
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

fn esc(text: &str) -> String {
    html_escape(text)
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_string()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

// ---------------------------------------------------------------------------------------
// Charts: horizontal stacked bars, one row per label, drawn in SVG
// ---------------------------------------------------------------------------------------

/// One coloured piece of a bar.
struct Segment {
    value: u64,
    /// A `c-…` class from [`STYLE`].
    class: &'static str,
    /// What the piece is, for its tooltip ("3 opt-outs").
    label: String,
}

struct Row {
    label: String,
    segments: Vec<Segment>,
    /// The text after the bar; the total when empty.
    note: String,
}

impl Row {
    fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.value).sum()
    }
}

const CHART_WIDTH: u32 = 900;
const LABEL_WIDTH: u32 = 210;
const NOTE_WIDTH: u32 = 190;
const ROW_HEIGHT: u32 = 28;
const BAR_HEIGHT: u32 = 18;

/// A horizontal stacked bar chart; bars are scaled to the largest row total.
fn bar_chart(title: &str, rows: &[Row]) -> String {
    let bar_area = CHART_WIDTH - LABEL_WIDTH - NOTE_WIDTH;
    let max = rows.iter().map(Row::total).max().unwrap_or(0).max(1);
    let height = ROW_HEIGHT * rows.len().max(1) as u32 + 6;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" height="{height}" role="img" aria-label="{title}"><title>{title}</title>"#,
        title = esc(title)
    );
    if rows.is_empty() {
        svg.push_str(r#"<text x="0" y="20" class="value">Nothing yet.</text>"#);
    }
    for (index, row) in rows.iter().enumerate() {
        let y = ROW_HEIGHT * index as u32 + 4;
        let text_y = y + BAR_HEIGHT - 4;
        svg.push_str(&format!(
            r#"<text x="{x}" y="{text_y}" text-anchor="end">{label}</text>"#,
            x = LABEL_WIDTH - 10,
            label = esc(&row.label)
        ));
        let mut x = LABEL_WIDTH as f64;
        for segment in row.segments.iter().filter(|s| s.value > 0) {
            let width = segment.value as f64 * f64::from(bar_area) / max as f64;
            svg.push_str(&format!(
                r#"<rect x="{x:.1}" y="{y}" width="{width:.1}" height="{BAR_HEIGHT}" rx="2" class="{class}"><title>{tip}</title></rect>"#,
                class = segment.class,
                tip = esc(&format!("{}: {}", row.label, segment.label))
            ));
            x += width;
        }
        let note = if row.note.is_empty() {
            row.total().to_string()
        } else {
            row.note.clone()
        };
        svg.push_str(&format!(
            r#"<text x="{x:.1}" y="{text_y}" class="value">{note}</text>"#,
            x = x + 6.0,
            note = esc(&note)
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn legend(items: &[(&str, &str)]) -> String {
    let spans: Vec<String> = items
        .iter()
        .map(|(class, label)| format!(r#"<span class="{class}">{}</span>"#, esc(label)))
        .collect();
    format!(r#"<div class="legend">{}</div>"#, spans.join(""))
}

// ---------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------

fn funnel_section(f: &Funnel) -> String {
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

fn reasons_section(config: &Config, data: &ReportData) -> String {
    let crm_rows: Vec<Row> = data
        .churn_reasons
        .iter()
        .map(|(reason, n)| Row {
            label: {
                let label = reason_label(reason.as_deref(), "(not given)");
                // Clients no campaign admits (those we let go) are never contacted.
                if config.campaigns.iter().any(|c| c.admits(reason.as_deref())) {
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

fn stops_section(config: &Config, data: &ReportData) -> String {
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

/// Planned sends in weeks of seven days from `now` (the first week starts now).
fn weekly(planned: &[Planned], now: DateTime<Utc>) -> Vec<BTreeMap<&'static str, u64>> {
    let mut weeks = vec![BTreeMap::new(); WEEKS_AHEAD];
    for p in planned {
        let week = ((p.at - now).num_seconds().max(0) / Duration::weeks(1).num_seconds()) as usize;
        if let Some(counts) = weeks.get_mut(week.min(WEEKS_AHEAD - 1)) {
            *counts.entry(p.kind.as_str()).or_insert(0) += 1;
        }
    }
    weeks
}

fn upcoming_section(planned: &[Planned], now: DateTime<Utc>) -> String {
    let weeks = weekly(planned, now);
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (index, counts) in weeks.iter().enumerate() {
        let start = now + Duration::weeks(index as i64);
        let end = start + Duration::days(6);
        let label = format!("{} – {}", start.format("%a %b %-d"), end.format("%b %-d"));
        let total: u64 = counts.values().sum();
        table.push(format!(
            r#"<tr data-week="{week}" data-count="{total}"><th>{label}</th><td class="n">{total}</td><td>{detail}</td></tr>"#,
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
<p class="note">{total} in the next {WEEKS_AHEAD} weeks (weeks start {start}), as <code>winback plan</code> simulates them: each step at its first <code>send_at</code> moment, one message per person per day.</p>
{legend}
{chart}
<details><summary>The numbers</summary><table><thead><tr><th>Week</th><th>Messages</th><th>By step kind</th></tr></thead><tbody>{table}</tbody></table></details>
</section>"#,
        total = plural(planned.len() as u64, "message", "messages"),
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
    fn charts_escape_labels_and_scale_to_the_largest_row() {
        let rows = vec![
            Row {
                label: "<b>&".to_string(),
                segments: vec![Segment {
                    value: 4,
                    class: "c-funnel",
                    label: "4".to_string(),
                }],
                note: String::new(),
            },
            Row {
                label: "half".to_string(),
                segments: vec![Segment {
                    value: 2,
                    class: "c-funnel",
                    label: "2".to_string(),
                }],
                note: String::new(),
            },
        ];
        let svg = bar_chart("t", &rows);
        assert!(svg.contains("&lt;b&gt;&amp;"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        let full = CHART_WIDTH - LABEL_WIDTH - NOTE_WIDTH;
        assert!(svg.contains(&format!(r#"width="{full}.0""#)), "{svg}");
        assert!(svg.contains(&format!(r#"width="{}.0""#, full / 2)), "{svg}");
    }

    #[test]
    fn sends_fall_into_weeks_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-06-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let plan = |days: i64, kind: StepKind| Planned {
            at: now + Duration::days(days),
            local: String::new(),
            email: String::new(),
            campaign: String::new(),
            step: 1,
            kind,
            reason: String::new(),
        };
        let weeks = weekly(
            &[
                plan(0, StepKind::Survey),
                plan(6, StepKind::Survey),
                plan(7, StepKind::Article),
                plan(84, StepKind::Greeting),
            ],
            now,
        );
        assert_eq!(weeks[0].get("survey"), Some(&2));
        assert_eq!(weeks[1].get("article"), Some(&1));
        assert_eq!(
            weeks[WEEKS_AHEAD - 1].get("greeting"),
            Some(&1),
            "the window's last instant is in the last week"
        );
    }

    #[test]
    fn percentages_never_divide_by_zero() {
        assert_eq!(percent(1, 0), "–");
        assert_eq!(percent(1, 3), "33%");
    }
}
