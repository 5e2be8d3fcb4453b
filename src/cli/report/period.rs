//! The report's figures over time (`winback report --since/--until`, `--format
//! table|json|csv`): lays the store's per-day counts out in the weeks or months
//! `domain::report_period` chooses, and prints or draws them. Computes no figure itself.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Serialize;

use super::super::csv_out::CsvOut;
use super::chart::esc;
use crate::config::Config;
use crate::domain::report_period::{self as rp, Attribution, Bucket, Credit, Grain};
use crate::store::{PeriodRows, Store};

/// One figure across the buckets.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    /// `sent`, `answers`, `opt_outs`, `bounces`, `replies`, `returns`.
    pub figure: String,
    /// What the figure is broken down by: `winback step 1 (survey)`, an opt-out's source…
    pub detail: String,
    pub counts: Vec<u64>,
    pub total: u64,
}

/// Everything the period part of the report shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Period {
    pub since: NaiveDate,
    pub until: NaiveDate,
    pub grain: Grain,
    /// The zone whose days are counted.
    pub zone: String,
    pub buckets: Vec<Bucket>,
    pub lines: Vec<Line>,
    /// People in the period.
    pub surveyed: u64,
    pub answered: u64,
    pub came_back: u64,
    /// (reason given, would work with us again) → answers given in the period.
    pub why_they_left: Vec<(Option<String>, Option<String>, u64)>,
    pub attribution_days: u32,
    /// "Came back after step N", per campaign.
    pub came_back_after: Vec<Credit>,
}

/// Reads and lays out the period `since..=until` (days of the campaigns' zone, see
/// `report_period::report_zone`).
pub(crate) fn period(
    config: &Config,
    store: &Store,
    since: NaiveDate,
    until: NaiveDate,
    attribution_days: u32,
) -> anyhow::Result<Period> {
    let zone = rp::report_zone(config.campaigns.iter().map(|c| c.timezone));
    let buckets = rp::buckets(since, until);
    let from = rp::day_start(since, zone);
    let to = rp::day_start(until.succ_opt().unwrap_or(until), zone);
    let rows = store.period_rows(from, to)?;
    let mut attribution = Attribution::new(attribution_days);
    store.for_each_return(from, to, |r| attribution.add(r))?;
    let inbound_on = config.inbound.return_path.is_some() || !config.inbound.mailboxes.is_empty();
    Ok(Period {
        since,
        until,
        grain: rp::grain(since, until),
        lines: lines(&buckets, &rows, inbound_on, zone),
        zone: zone.name().to_string(),
        buckets,
        surveyed: rows.surveyed,
        answered: rows.answered,
        came_back: rows.came_back,
        why_they_left: rows.reasons,
        attribution_days,
        came_back_after: attribution.credits(),
    })
}

fn lines(buckets: &[Bucket], rows: &PeriodRows, inbound_on: bool, zone: Tz) -> Vec<Line> {
    // (figure order, figure, detail) → counts
    let mut acc: BTreeMap<(u8, &str, String), Vec<u64>> = BTreeMap::new();
    let mut put = |order: u8, figure: &'static str, detail: String, hour: &str, n: u64| {
        let counts = acc
            .entry((order, figure, detail))
            .or_insert_with(|| vec![0; buckets.len()]);
        let at = rp::local_day(hour, zone).and_then(|d| rp::bucket_of(buckets, d));
        if let Some(i) = at {
            counts[i] += n;
        }
    };
    for (day, campaign, step, kind, n) in &rows.sent {
        put(
            0,
            "sent",
            format!("{campaign} step {step} ({kind})"),
            day,
            *n,
        );
    }
    for (day, campaign, n) in &rows.answers {
        put(1, "answers", campaign.clone(), day, *n);
    }
    for (day, reason, source, n) in &rows.suppressions {
        match reason.as_str() {
            "opt_out" => put(2, "opt_outs", source.clone(), day, *n),
            _ => put(3, "bounces", String::new(), day, *n),
        }
    }
    // Every figure has its line, zeros and all, so a quiet period still says so.
    if rows.answers.is_empty() {
        put(1, "answers", String::new(), "", 0);
    }
    if rows.suppressions.iter().all(|s| s.1 != "opt_out") {
        put(2, "opt_outs", String::new(), "", 0);
    }
    put(3, "bounces", String::new(), "", 0);
    if inbound_on || !rows.replies.is_empty() {
        put(4, "replies", String::new(), "", 0);
        for (day, n) in &rows.replies {
            put(4, "replies", String::new(), day, *n);
        }
    }
    put(5, "returns", String::new(), "", 0);
    for (day, n) in &rows.returns {
        put(5, "returns", String::new(), day, *n);
    }
    acc.into_iter()
        .map(|((_, figure, detail), counts)| Line {
            figure: figure.to_string(),
            detail,
            total: counts.iter().sum(),
            counts,
        })
        .collect()
}

fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn credit_name(c: &Credit) -> String {
    match (&c.campaign, c.step) {
        (Some(campaign), Some(step)) => format!("{campaign} step {step}"),
        _ => "no message within the window".to_string(),
    }
}

/// The period as plain text for a terminal or a mail.
pub(crate) fn table(p: &Period) -> String {
    let mut out = format!(
        "{} to {} ({}), by {}\n\n",
        p.since,
        p.until,
        p.zone,
        match p.grain {
            Grain::Week => "week",
            Grain::Month => "month",
        }
    );
    let names: Vec<String> = p
        .lines
        .iter()
        .map(|l| {
            if l.detail.is_empty() {
                l.figure.clone()
            } else {
                format!("{}: {}", l.figure, l.detail)
            }
        })
        .collect();
    let first = names.iter().map(|n| n.len()).max().unwrap_or(0).max(6);
    let width = |label: &str| label.len().max(5);
    out.push_str(&format!("{:first$}", "figure"));
    for b in &p.buckets {
        out.push_str(&format!("  {:>w$}", b.label, w = width(&b.label)));
    }
    out.push_str("  total\n");
    for (line, name) in p.lines.iter().zip(&names) {
        out.push_str(&format!("{name:first$}"));
        for (n, b) in line.counts.iter().zip(&p.buckets) {
            out.push_str(&format!("  {n:>w$}", w = width(&b.label)));
        }
        out.push_str(&format!("  {:>5}\n", line.total));
    }
    out.push_str(&format!(
        "\nPeople in the period: {} surveyed, {} answered, {} came back.\n",
        p.surveyed, p.answered, p.came_back
    ));
    if !p.why_they_left.is_empty() {
        out.push_str("\nWhy they left (survey answers in the period):\n");
        for (reason, again, n) in &p.why_they_left {
            out.push_str(&format!(
                "  {:<24} would work with us again: {:<8} {n}\n",
                reason.as_deref().unwrap_or("(not given)"),
                again.as_deref().unwrap_or("-"),
            ));
        }
    }
    out.push_str(&format!(
        "\nCame back after (last message within {} days):\n",
        p.attribution_days
    ));
    if p.came_back_after.is_empty() {
        out.push_str("  nobody came back in the period\n");
    }
    for c in &p.came_back_after {
        out.push_str(&format!(
            "  {:<32} {:>5}  {:>4}\n",
            credit_name(c),
            c.returns,
            pct(c.share)
        ));
    }
    out
}

/// The period as one CSV table (RFC 4180, a header row): one row per figure and bucket,
/// then the people, the reasons and the attribution with `period` = `all`.
pub(crate) fn csv(p: &Period, out: impl Write) -> anyhow::Result<()> {
    let mut w = CsvOut::new(
        out,
        &[
            "section", "figure", "detail", "period", "from", "to", "value", "share",
        ],
    )?;
    let mut row = |section: &str,
                   figure: &str,
                   detail: &str,
                   b: Option<&Bucket>,
                   value: u64,
                   share: Option<f64>| {
        let (period, from, to) = match b {
            Some(b) => (
                b.label.clone(),
                b.start.to_string(),
                b.end.pred_opt().unwrap_or(b.end).to_string(),
            ),
            None => ("all".to_string(), p.since.to_string(), p.until.to_string()),
        };
        let share = share.map(|s| format!("{s:.4}")).unwrap_or_default();
        let record = [
            section,
            figure,
            detail,
            &period,
            &from,
            &to,
            &value.to_string(),
            &share,
        ];
        w.row(record.iter().copied())
    };
    for l in &p.lines {
        for (n, b) in l.counts.iter().zip(&p.buckets) {
            row("period", &l.figure, &l.detail, Some(b), *n, None)?;
        }
    }
    row("people", "surveyed", "", None, p.surveyed, None)?;
    row("people", "answered", "", None, p.answered, None)?;
    row("people", "came_back", "", None, p.came_back, None)?;
    for (reason, again, n) in &p.why_they_left {
        let detail = format!(
            "{}; would work with us again: {}",
            reason.as_deref().unwrap_or("(not given)"),
            again.as_deref().unwrap_or("-")
        );
        row("why_they_left", "answers", &detail, None, *n, None)?;
    }
    for c in &p.came_back_after {
        row(
            "came_back_after",
            "returns",
            &credit_name(c),
            None,
            c.returns,
            Some(c.share),
        )?;
    }
    w.finish()
}

/// The period as a section of the HTML page.
pub(crate) fn section(p: &Period) -> String {
    let mut head = String::from("<th>figure</th>");
    for b in &p.buckets {
        head.push_str(&format!("<th>{}</th>", esc(&b.label)));
    }
    head.push_str("<th>total</th>");
    let mut body = String::new();
    for l in &p.lines {
        let name = if l.detail.is_empty() {
            l.figure.replace('_', "-")
        } else {
            format!("{}: {}", l.figure.replace('_', "-"), l.detail)
        };
        body.push_str(&format!("<tr><td>{}</td>", esc(&name)));
        for n in &l.counts {
            body.push_str(&format!("<td class=\"n\">{n}</td>"));
        }
        body.push_str(&format!("<td class=\"n\">{}</td></tr>\n", l.total));
    }
    let mut credits = String::new();
    for c in &p.came_back_after {
        credits.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            esc(&credit_name(c)),
            c.returns,
            pct(c.share)
        ));
    }
    let mut reasons = String::new();
    for (reason, again, n) in &p.why_they_left {
        reasons.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{n}</td></tr>\n",
            esc(reason.as_deref().unwrap_or("(not given)")),
            esc(again.as_deref().unwrap_or("-")),
        ));
    }
    format!(
        r#"<section id="period">
<h2>Over time: {since} to {until}</h2>
<p class="note">By {grain}, days in {zone}. People in the period: {surveyed} surveyed, {answered} answered, {came_back} came back.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}</tbody></table>
<h3>Came back after (the last message within {days} days)</h3>
<table><thead><tr><th>last message</th><th>returns</th><th>share</th></tr></thead><tbody>
{credits}</tbody></table>
<h3>Why they left (survey answers in the period)</h3>
<table><thead><tr><th>reason</th><th>would work with us again</th><th>answers</th></tr></thead><tbody>
{reasons}</tbody></table>
</section>"#,
        since = p.since,
        until = p.until,
        grain = match p.grain {
            Grain::Week => "week",
            Grain::Month => "month",
        },
        surveyed = p.surveyed,
        answered = p.answered,
        came_back = p.came_back,
        days = p.attribution_days,
        zone = esc(&p.zone),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Period {
        let since = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let until = NaiveDate::from_ymd_opt(2026, 6, 14).unwrap();
        Period {
            since,
            until,
            grain: Grain::Week,
            zone: "UTC".into(),
            buckets: rp::buckets(since, until),
            lines: vec![Line {
                figure: "opt_outs".into(),
                detail: "=HYPERLINK(\"x\"), \"quoted\"\nnext".into(),
                counts: vec![1, 2],
                total: 3,
            }],
            surveyed: 4,
            answered: 2,
            came_back: 1,
            why_they_left: vec![(Some("-price".into()), None, 2)],
            attribution_days: 90,
            came_back_after: vec![Credit {
                campaign: Some("@win".into()),
                step: Some(2),
                returns: 1,
                share: 1.0,
            }],
        }
    }

    #[test]
    fn csv_reads_back_with_formulas_neutralised_and_text_kept() {
        let mut out = Vec::new();
        csv(&sample(), &mut out).unwrap();
        let mut reader = ::csv::Reader::from_reader(out.as_slice());
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "period",
                "opt_outs",
                "'=HYPERLINK(\"x\"), \"quoted\"\nnext",
                "2026-W23",
                "2026-06-01",
                "2026-06-07",
                "1",
                ""
            ]
        );
        assert_eq!(rows[1][3..7], ["2026-W24", "2026-06-08", "2026-06-14", "2"]);
        assert!(
            rows.iter()
                .any(|r| r[0] == "why_they_left" && r[2] == "'-price; would work with us again: -")
        );
        let credit = rows.iter().find(|r| r[0] == "came_back_after").unwrap();
        assert_eq!(
            credit[2..],
            [
                "'@win step 2",
                "all",
                "2026-06-01",
                "2026-06-14",
                "1",
                "1.0000"
            ]
        );
    }

    #[test]
    fn the_page_section_escapes_what_it_shows() {
        let html = section(&sample());
        assert!(html.contains("<th>2026-W23</th><th>2026-W24</th><th>total</th>"));
        assert!(
            html.contains("<td>opt-outs: &#x3D;HYPERLINK(&quot;x&quot;), &quot;quoted&quot;"),
            "{html}"
        );
        assert!(html.contains("@win step 2</td><td class=\"n\">1</td><td class=\"n\">100%"));
    }
}
