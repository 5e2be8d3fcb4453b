//! `winback plan`: exactly what the daemon will send over the next days, and why then;
//! and the held steps, which it will not send until they are fixed.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};

use super::csv_out::CsvOut;
use super::{Cli, Format, load_config, open_store};
use crate::config::Config;
use crate::domain::holidays;
use crate::domain::plan::{self, PlanItem, Planned};
use crate::domain::schedule::{self, Why};
use crate::store::Store;
use crate::store::{PlanQuery, PlanRow};

pub(super) fn run(cli: &Cli, days: u32, format: Format) -> anyhow::Result<ExitCode> {
    let setup = load_config(cli)?;
    let mut store = open_store(&setup.config)?;
    let now = setup.clock.now();
    let until = now + Duration::days(i64::from(days));
    // The configuration as it is now first (a rename carries held messages over, a
    // changed audience cancels some): the held steps are read after it.
    store.small_cache()?;
    store.sync_campaigns(&setup.config, now)?;
    let held = held(&setup.config, &store, now)?;
    let out = std::io::stdout().lock();
    match format {
        Format::Json => {
            // The held steps follow the sends, each marked `"held": true`.
            let mut out = JsonArray::new(std::io::BufWriter::new(out));
            simulate_each(&setup.config, &store, now, until, |p| out.push_planned(&p))?;
            for (id, p) in &held {
                let mut line = serde_json::to_value(p)?;
                if let Some(fields) = line.as_object_mut() {
                    fields.insert("held".to_string(), true.into());
                    fields.insert("message".to_string(), (*id).into());
                }
                out.push(&line)?;
            }
            out.finish()?;
        }
        Format::Csv => {
            // The held steps follow the sends, as in JSON: `held` yes, with their message id.
            let mut table = CsvOut::new(
                out,
                &[
                    "at",
                    "recipient_time",
                    "email",
                    "campaign",
                    "step",
                    "kind",
                    "why",
                    "held",
                    "message",
                ],
            )?;
            let mut row = |p: &Planned, id: Option<i64>| {
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
                ])
            };
            simulate_each(&setup.config, &store, now, until, |p| row(&p, None))?;
            for (id, p) in &held {
                row(p, Some(*id))?;
            }
            table.finish()?;
        }
        _ => {
            let mut out = std::io::BufWriter::new(out);
            print_held(&mut out, &held)?;
            for c in setup.config.campaigns.iter().filter(|c| c.paused) {
                writeln!(
                    out,
                    "campaign {} is PAUSED: none of its messages is sent or listed here; its enrollments go on, and once paused is removed each waiting message goes at its next send_at moment.",
                    c.name
                )?;
            }
            // The header comes with the first message: none, and a sentence says so.
            let mut count: u64 = 0;
            simulate_each(&setup.config, &store, now, until, |p| {
                if count == 0 {
                    writeln!(
                        out,
                        "{:<17}  {:<34}  {:<38}  {:<16}  {:<14}  why",
                        "when (UTC)", "recipient's time", "email", "campaign", "step"
                    )?;
                }
                count += 1;
                writeln!(
                    out,
                    "{:<17}  {:<34}  {:<38}  {:<16}  {:<14}  {}",
                    p.at.format("%Y-%m-%d %H:%M"),
                    p.local,
                    p.email,
                    p.campaign,
                    format!("{} {}", p.step, p.kind),
                    p.reason
                )?;
                Ok(())
            })?;
            if count == 0 {
                writeln!(out, "nothing to send in the next {days} days.")?;
            } else {
                writeln!(
                    out,
                    "{count} message{} in the next {days} days.",
                    if count == 1 { "" } else { "s" }
                )?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON array written element by element, as `serde_json::to_string_pretty` writes a
/// whole array of `Value`s (their keys sorted), and a line end.
struct JsonArray<W: Write> {
    out: W,
    empty: bool,
    /// One element's text, kept between elements for its allocation.
    buf: Vec<u8>,
}

/// A [`Planned`] with its fields in the order a `Value` of it lists them (sorted): the
/// same text, without building the `Value`.
#[derive(serde::Serialize)]
struct SortedPlanned<'a> {
    at: &'a DateTime<Utc>,
    campaign: &'a str,
    email: &'a str,
    kind: crate::domain::model::StepKind,
    local: &'a str,
    reason: &'a str,
    step: u32,
}

impl<W: Write> JsonArray<W> {
    fn new(out: W) -> Self {
        JsonArray {
            out,
            empty: true,
            buf: Vec::new(),
        }
    }

    fn push_planned(&mut self, p: &Planned) -> anyhow::Result<()> {
        self.buf.clear();
        serde_json::to_writer_pretty(
            &mut self.buf,
            &SortedPlanned {
                at: &p.at,
                campaign: &p.campaign,
                email: &p.email,
                kind: p.kind,
                local: &p.local,
                reason: &p.reason,
                step: p.step,
            },
        )?;
        self.write_element()
    }

    fn push(&mut self, element: &serde_json::Value) -> anyhow::Result<()> {
        self.buf.clear();
        serde_json::to_writer_pretty(&mut self.buf, element)?;
        self.write_element()
    }

    /// The element in `buf`, one level in.
    fn write_element(&mut self) -> anyhow::Result<()> {
        self.out
            .write_all(if self.empty { b"[\n" } else { b",\n" })?;
        self.empty = false;
        // Strings escape their line ends: each line of the text is one of its layout.
        for (index, line) in self.buf.split(|b| *b == b'\n').enumerate() {
            if index > 0 {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(b"  ")?;
            self.out.write_all(line)?;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<W> {
        self.out
            .write_all(if self.empty { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()?;
        Ok(self.out)
    }
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
                local: plan::local_time(at, tz),
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

fn print_held(out: &mut impl Write, held: &[(i64, Planned)]) -> anyhow::Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "held, not sent until fixed ({} message{}; `winback outbox list` shows them):",
        held.len(),
        if held.len() == 1 { "" } else { "s" }
    )?;
    for (id, p) in held {
        writeln!(
            out,
            "  message {id}  {}  {}  step {} {}  {}",
            p.email, p.campaign, p.step, p.kind, p.reason
        )?;
    }
    Ok(())
}

/// Every message the daemon will send from `now` to `until`, in send order, each given to
/// `each` as soon as it is known: the store's waiting
/// enrollments and retries, read one at a time in the order of their earliest moment and
/// run forward by `plan::Simulator`, all from one snapshot of the file. Memory follows
/// what waits in the simulation, not the number of messages. The store's campaigns are
/// synced with `config` first, by the caller.
pub(super) fn simulate_each(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    each: impl FnMut(Planned) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let lookback = config
        .campaigns
        .iter()
        .map(schedule::lookback)
        .max()
        .unwrap_or_else(|| Duration::hours(schedule::BUSY_LOOKBACK_HOURS));
    let query = PlanQuery {
        now,
        until,
        lookback,
        accounts: config.campaigns.iter().any(|c| c.account_gap_days > 0),
    };
    store.read_snapshot(|| {
        let limits = plan::RateLimits {
            per_minute: config.smtp.max_per_minute,
            per_day: config.smtp.max_per_day,
            // Only a limit counts them (a day of them can be a million).
            recent: if config.smtp.max_per_minute.is_some() || config.smtp.max_per_day.is_some() {
                store.claim_times_since(now - Duration::days(1))?
            } else {
                Vec::new()
            },
        };
        let mut simulator = plan::Simulator::new(&limits, now, until, lookback, query.accounts);
        let mut source = StoreSource {
            config,
            store,
            query: &query,
            each,
        };
        store.plan_scan(&query, |row| match plan_row(config, row) {
            Some(row) => simulator.feed(row, &mut source),
            None => Ok(()),
        })?;
        simulator.finish(&mut source)
    })
}

/// The store, read again for a sequence's next step, and where planned messages go.
struct StoreSource<'c, F> {
    config: &'c Config,
    store: &'c Store,
    query: &'c PlanQuery,
    each: F,
}

impl<'c, F: FnMut(Planned) -> anyhow::Result<()>> plan::Source<'c> for StoreSource<'c, F> {
    type Error = anyhow::Error;

    fn fetch(&mut self, order: i64) -> anyhow::Result<Option<plan::Row<'c>>> {
        Ok(self
            .store
            .plan_row(self.query, order)?
            .and_then(|row| plan_row(self.config, row)))
    }

    fn emit(&mut self, planned: Planned) -> anyhow::Result<()> {
        (self.each)(planned)
    }
}

/// A stored row as the simulation takes it; None if its campaign is no longer configured.
fn plan_row(config: &Config, row: PlanRow) -> Option<plan::Row<'_>> {
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
    // Which of the person's recent messages were a recurring step's: they keep
    // `min_gap_days` from any other.
    let recent = row
        .recent
        .into_iter()
        .map(|(at, campaign, step)| schedule::Busy {
            at,
            recurring: schedule::recurs(config.campaign(&campaign), step),
        })
        .collect();
    Some(plan::Row {
        order: row.order,
        item: PlanItem {
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
            moved: row.moved,
        },
        recent,
        account_recent: row.account_recent,
        shared: row.shared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::StepKind;

    fn planned(reason: &str) -> Planned {
        Planned {
            at: DateTime::parse_from_rfc3339("2026-04-15T14:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            local: "2026-04-15 10:00 EDT (Wed)".to_string(),
            email: "zoë@example.com".to_string(),
            campaign: "former-clients".to_string(),
            step: 2,
            kind: StepKind::Newsletter,
            reason: reason.to_string(),
        }
    }

    /// A survey, then a newsletter three days after it; at 10:00 UTC every day.
    const SURVEY_THEN_NEWS: &str = r#"
[[campaign]]
name = "former-clients"
send_at = "0 10 * * *"
timezone = "UTC"

[[campaign.step]]
kind = "survey"
template = "survey"
subject = "Why?"

[[campaign.step]]
kind = "newsletter"
after_days = 3
template = "newsletter"
subject = "News"
"#;

    fn at(text: &str) -> DateTime<Utc> {
        crate::store::parse_time(text).unwrap()
    }

    /// Every message `plan` lists from `now` for the next `days`: (when, step, why).
    fn planned_from(
        config: &Config,
        store: &Store,
        now: DateTime<Utc>,
        days: i64,
    ) -> Vec<(DateTime<Utc>, u32, String)> {
        let mut out = Vec::new();
        simulate_each(config, store, now, now + Duration::days(days), |p| {
            out.push((p.at, p.step, p.reason));
            Ok(())
        })
        .unwrap();
        out
    }

    /// Pat's survey is due at 10:00 on 1 June, but Pat had a message at 08:00 that day:
    /// the claim moves it to the next day's moment. The store, the configuration and a
    /// second connection to the file, after that claim.
    fn moved_a_day(dir: &std::path::Path) -> (Config, Store, rusqlite::Connection) {
        let config = crate::test_support::config(dir, "", SURVEY_THEN_NEWS);
        let path = dir.join("winback.db");
        let mut store = Store::open(&path).unwrap();
        let now = at("2026-06-01T10:00:00.000000Z");
        let pat = crate::test_support::left_on_june_1("pat@client.example");
        assert!(
            store
                .import([Ok((2, pat))].into_iter(), &config, now, false, &mut |_| {})
                .unwrap()
                .applied
        );
        // Due now, and a message of another cycle went out this morning.
        let sql = rusqlite::Connection::open(&path).unwrap();
        sql.execute(
            "UPDATE enrollments SET due_at = ?1, send_at = ?2",
            rusqlite::params![crate::store::fmt_time(now), crate::store::moment(now)],
        )
        .unwrap();
        sql.execute(
            "INSERT INTO messages (enrollment_id, client_id, campaign, cycle, step, kind, state, message_id,
                                   due_at, first_claimed_at, claimed_at, sent_at, updated_at)
             SELECT id, client_id, campaign, 0, 1, 'survey', 'sent', '<earlier@x>', ?1, ?1, ?1, ?1, ?1
             FROM enrollments",
            ["2026-06-01T08:00:00.000000Z"],
        )
        .unwrap();
        assert!(store.claim_due(&config, now, 10).unwrap().is_empty());
        (config, store, sql)
    }

    const MOVED_A_DAY: &str = "moved a day: one message per person per day";

    /// `plan` lists the survey the claim moved on 2 June and says why, though from there
    /// nothing moves it (it starts at the stored `send_at`).
    #[test]
    fn plan_says_why_a_claim_moved_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let (config, store, _) = moved_a_day(dir.path());
        let plan = planned_from(&config, &store, at("2026-06-01T10:00:00.000000Z"), 2);
        assert_eq!(plan.len(), 1, "{plan:#?}");
        let (when, step, why) = &plan[0];
        assert_eq!((*when, *step), (at("2026-06-02T10:00:00.000000Z"), 1));
        assert_eq!(why.matches(MOVED_A_DAY).count(), 1, "{why}");
    }

    /// Once the moved survey went, its note is gone: the newsletter after it says
    /// nothing of that move.
    #[test]
    fn the_claims_note_goes_away_once_its_message_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (config, mut store, sql) = moved_a_day(dir.path());
        let note = || -> Option<String> {
            sql.query_row("SELECT moved_reason FROM enrollments", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(note().as_deref(), Some(MOVED_A_DAY));
        let next = at("2026-06-02T10:00:05.000000Z");
        let claimed = store.claim_due(&config, next, 10).unwrap();
        assert_eq!(claimed.len(), 1);
        let sent = crate::store::Outcome::Sent {
            reply: "250 ok".to_string(),
            at: next,
        };
        store
            .record_results(&config, &[(claimed[0].message_row, sent)])
            .unwrap();
        assert_eq!(note(), None);
        let plan = planned_from(&config, &store, next, 5);
        assert_eq!(plan.len(), 1, "{plan:#?}");
        let (when, step, why) = &plan[0];
        assert_eq!((*when, *step), (at("2026-06-05T10:00:00.000000Z"), 2));
        assert!(!why.contains("moved"), "{why}");
    }

    /// Written one element at a time, the array is the text `to_string_pretty` gives for
    /// the whole array of `Value`s, held steps included.
    #[test]
    fn the_streamed_json_is_the_whole_arrays_text() {
        let sends = [
            planned("due \"now\"\nand\tlater; ünïcode"),
            planned("plain"),
        ];
        let mut held = serde_json::to_value(planned("HELD")).unwrap_or_default();
        if let Some(fields) = held.as_object_mut() {
            fields.insert("held".to_string(), true.into());
            fields.insert("message".to_string(), 7.into());
        }
        for n in 0..=sends.len() {
            let mut whole: Vec<serde_json::Value> = sends[..n]
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect();
            let mut out = JsonArray::new(Vec::new());
            for p in &sends[..n] {
                out.push_planned(p).unwrap_or_default();
            }
            if n == 1 {
                whole.push(held.clone());
                out.push(&held).unwrap_or_default();
            }
            let expected = format!(
                "{}\n",
                serde_json::to_string_pretty(&whole).unwrap_or_default()
            );
            let got = out.finish().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&got), expected, "{n} sends");
        }
    }
}
