//! The report's "Returned mail" section: bounces, feedback reports and replies read by
//! `winback inbound` and the mailboxes, by outcome, then per campaign and step, with a
//! warning when receivers refused our sending itself. Lays out the counts it is given;
//! never reads the store or decides what an outcome does.

use std::collections::BTreeMap;

use super::chart::{Row, Segment, bar_chart, esc, legend, plural};
use crate::config::Config;
use crate::domain::inbound::Outcome;
use crate::store::InboundCount;

/// What each outcome is and what it did, in the order of the section's table.
fn meaning(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Bounce => "the address failed for good: suppressed, every sequence stopped",
        Outcome::SoftBounce => {
            "a temporary failure reported back: counted; repeated ones become a bounce"
        }
        Outcome::Delayed => "still being tried by a server on the way: nothing changed",
        Outcome::Blocked => {
            "the receiver refused us, not the address: nothing changed for the person"
        }
        Outcome::Complaint => "marked as spam (a feedback report): opted out",
        Outcome::Unsubscribe => "a reply asking to stop: opted out",
        Outcome::AutoReply => "out of office or another automatic reply: nothing changed",
        Outcome::LeftCompany => "the contact has left: their sequences stopped, not suppressed",
        Outcome::Reply => "a person wrote back: their sequences stopped for the team to answer",
        Outcome::Unrelated => "nothing of ours: nothing changed",
    }
}

/// The chart colour of an outcome: failures, our own refusals, requests to stop,
/// people writing back, and what changed nothing.
fn class(outcome: &str) -> &'static str {
    match Outcome::parse(outcome) {
        Some(Outcome::Bounce | Outcome::SoftBounce | Outcome::Delayed) => "c-bounce",
        Some(Outcome::Blocked) => "c-no",
        Some(Outcome::Complaint | Outcome::Unsubscribe) => "c-optout",
        Some(Outcome::Reply | Outcome::LeftCompany) => "c-yes",
        Some(Outcome::AutoReply | Outcome::Unrelated) | None => "c-none",
    }
}

fn label(outcome: &str) -> String {
    outcome.replace('_', " ")
}

/// Known outcomes in their usual order, then any other the database holds.
fn ordered(totals: &BTreeMap<&str, u64>) -> Vec<String> {
    let mut order: Vec<String> = Outcome::ALL
        .iter()
        .map(|o| o.as_str().to_string())
        .collect();
    order.extend(
        totals
            .keys()
            .filter(|k| Outcome::parse(k).is_none())
            .map(|k| k.to_string()),
    );
    order
}

pub(super) fn returned(config: &Config, counts: &[InboundCount]) -> String {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for c in counts {
        *totals.entry(c.outcome.as_str()).or_insert(0) += c.messages;
    }
    let total: u64 = totals.values().sum();
    if total == 0 {
        return r#"<section id="returned">
<h2>Returned mail</h2>
<p class="note">No returned mail read yet. Bounces, spam complaints and replies are counted here once <code>winback inbound</code> or <code>[inbound] mailboxes</code> read them.</p>
</section>"#
            .to_string();
    }
    let order = ordered(&totals);
    let total_of = |outcome: &str| totals.get(outcome).copied().unwrap_or(0);

    let blocked = total_of(Outcome::Blocked.as_str());
    let warning = if blocked > 0 {
        format!(
            r#"<p data-hint="blocked"><strong>{n} refused by receivers as coming from us</strong>: a sender problem, not a bad address. Check your sending reputation and DNS: the SPF, DKIM and DMARC records of the <code>from</code> domain, and whether the sending server is on a blocklist. The refusals and their reasons: <code>winback inbox</code>.</p>"#,
            n = plural(blocked, "message", "messages"),
        )
    } else {
        String::new()
    };

    let present: Vec<&String> = order.iter().filter(|o| total_of(o) > 0).collect();
    let rows: Vec<Row> = present
        .iter()
        .map(|outcome| {
            let n = total_of(outcome);
            Row {
                label: label(outcome),
                segments: vec![Segment {
                    value: n,
                    class: class(outcome),
                    label: plural(n, "message", "messages"),
                }],
                note: String::new(),
            }
        })
        .collect();
    let table: Vec<String> = order
        .iter()
        .map(|outcome| {
            format!(
                r#"<tr data-outcome="{key}" data-count="{n}"><th>{label}</th><td class="n">{n}</td><td>{meaning}</td></tr>"#,
                key = esc(outcome),
                n = total_of(outcome),
                label = esc(&label(outcome)),
                meaning = Outcome::parse(outcome).map(meaning).unwrap_or(""),
            )
        })
        .collect();

    format!(
        r#"<section id="returned">
<h2>Returned mail</h2>
<p class="note">{read} (bounces, spam complaints, replies), by what each turned out to be; those undone with <code>winback inbox undo</code> are left out.</p>
{warning}
{legend}
{chart}
<table><thead><tr><th>Outcome</th><th>Messages</th><th>What it is, what it did</th></tr></thead><tbody>
{table}
</tbody></table>
{campaigns}
</section>"#,
        read = plural(total, "message read", "messages read"),
        legend = legend(&[
            ("c-bounce", "failed delivery"),
            ("c-no", "refused as coming from us"),
            ("c-optout", "asked to stop"),
            ("c-yes", "wrote back"),
            ("c-none", "changed nothing"),
        ]),
        chart = bar_chart("Returned mail by outcome", &rows),
        table = table.join("\n"),
        campaigns = per_campaign(config, counts, &present),
    )
}

/// The campaign and step returned mail answered (`None`: no message of ours).
type Answering<'a> = (Option<&'a str>, Option<u32>);

/// One table per campaign (then mail tied to no message of ours): a row per step, a
/// column per outcome read anywhere.
fn per_campaign(config: &Config, counts: &[InboundCount], outcomes: &[&String]) -> String {
    let mut cells: BTreeMap<Answering<'_>, BTreeMap<&str, u64>> = BTreeMap::new();
    for c in counts {
        *cells
            .entry((c.campaign.as_deref(), c.step))
            .or_default()
            .entry(c.outcome.as_str())
            .or_insert(0) += c.messages;
    }
    // Campaigns by name, then what matched none (the map puts `None` first).
    let mut campaigns: Vec<Option<&str>> = cells.keys().map(|(c, _)| *c).collect();
    campaigns.dedup();
    let unmatched_first = campaigns.first() == Some(&None);
    campaigns.rotate_left(usize::from(unmatched_first));
    let header: String = outcomes
        .iter()
        .map(|o| format!("<th>{}</th>", esc(&label(o))))
        .collect();
    let mut blocks = Vec::new();
    for name in campaigns {
        let campaign = name.and_then(|n| config.campaign(n));
        let title = match name {
            Some(n) if campaign.is_some() => format!("Campaign \"{n}\""),
            Some(n) => format!("Campaign \"{n}\" (no longer configured)"),
            None => "Not tied to a message we sent".to_string(),
        };
        let mut rows = Vec::new();
        for ((_, step), by_outcome) in cells.iter().filter(|((c, _), _)| *c == name) {
            let label = match (step, campaign.and_then(|c| step.and_then(|n| c.step(n)))) {
                (Some(n), Some(s)) => format!("step {n} ({})", s.kind),
                (Some(n), None) => format!("step {n}"),
                (None, _) => "no step known".to_string(),
            };
            let row_cells: String = outcomes
                .iter()
                .map(|o| {
                    format!(
                        r#"<td class="n" data-returned="{campaign}" data-step="{step}" data-outcome="{key}" data-count="{n}">{n}</td>"#,
                        campaign = esc(name.unwrap_or("")),
                        step = step.map(|s| s.to_string()).unwrap_or_default(),
                        key = esc(o),
                        n = by_outcome.get(o.as_str()).copied().unwrap_or(0),
                    )
                })
                .collect();
            rows.push(format!("<tr><th>{}</th>{row_cells}</tr>", esc(&label)));
        }
        blocks.push(format!(
            r#"<h3>{title}</h3><table><thead><tr><th>Answering</th>{header}</tr></thead><tbody>{rows}</tbody></table>"#,
            title = esc(&title),
            rows = rows.join(""),
        ));
    }
    blocks.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_meaning_and_a_colour_and_unknown_ones_follow() {
        for outcome in Outcome::ALL {
            assert!(!meaning(outcome).is_empty());
        }
        assert_eq!(class("blocked"), "c-no", "a sender problem stands out");
        let totals = BTreeMap::from([("bounce", 1), ("from_a_newer_version", 2)]);
        let order = ordered(&totals);
        assert_eq!(order.len(), Outcome::ALL.len() + 1);
        assert_eq!(
            order.last().map(String::as_str),
            Some("from_a_newer_version")
        );
    }
}
