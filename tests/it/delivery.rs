//! Delivery, end to end: the built `winback` binary, driven pass by pass with `--now`,
//! sending to a real SMTP server (aiosmtpd, see `support`). These tests prove that the
//! sequence goes out in order, at the `send_at` moment in each recipient's own zone,
//! never inside the quiet period, once and only once, and never after a stop; and that
//! every message is a well-formed, single-recipient email.
//!
//! Also home of `Env`, the small campaign harness `crash.rs` shares.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::support::{Captured, Output, Project, SmtpServer, free_port, wait_until};

/// The one campaign every test configures.
pub(crate) const CAMPAIGN: &str = "former-clients";
/// The base of every link in the emails (nothing listens there: links are checked by
/// shape, or sent to the daemon's `[http] listen` address instead).
pub(crate) const PUBLIC_URL: &str = "https://winback.test.example";
/// The CSV columns `csv` writes unless a test names its own.
pub(crate) const COLUMNS: &str = "email,name,company,churned_at,churn_reason,timezone";
/// How far the `Date` header may be behind the end of a `--once` pass's clock: the pass
/// starts at `--now` and the clock runs on in real time while it works.
const PASS_SLACK: Duration = Duration::from_secs(60);

/// A project (config, templates, database) wired to its own SMTP server.
pub(crate) struct Env {
    pub(crate) project: Project,
    pub(crate) server: SmtpServer,
    /// The daemon's `[http] listen` port on 127.0.0.1.
    pub(crate) http_port: u16,
}

impl Env {
    /// Starts an SMTP server with `rules`, writes a config for one campaign with `steps`
    /// (`(kind, after_days)`, the first a survey; each step uses the shipped template of
    /// its kind and the subject "KIND for {{first_name}} at {{company}}"), and checks it.
    /// `smtp_extra` is added to `[smtp]` (e.g. `connections = 4`).
    pub(crate) fn start(
        rules: Value,
        smtp_extra: &str,
        send_at: &str,
        steps: &[(&str, u32)],
    ) -> Env {
        let server = SmtpServer::start(rules);
        let project = Project::new();
        let http_port = free_port();
        let mut toml = format!(
            r#"[database]
path = "winback.db"

[smtp]
url = "{url}"
from = "Acme Customer Success <success@acme.example>"
reply_to = "success@acme.example"
{smtp_extra}

[http]
listen = "127.0.0.1:{http_port}"
public_url = "{PUBLIC_URL}"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[templates]
dir = "templates"

[[campaign]]
name = "{CAMPAIGN}"
quiet_days = 90
send_at = "{send_at}"
timezone = "America/New_York"
exclude_reasons = ["we_ended"]
"#,
            url = server.url(),
        );
        for (index, (kind, after_days)) in steps.iter().enumerate() {
            toml.push_str(&format!("\n[[campaign.step]]\nkind = \"{kind}\"\n"));
            if index > 0 {
                toml.push_str(&format!("after_days = {after_days}\n"));
            }
            toml.push_str(&format!(
                "template = \"{kind}\"\nsubject = \"{kind} for {{{{first_name}}}} at {{{{company}}}}\"\n"
            ));
        }
        project.write_config(&toml);
        // As an operator would before mailing a real server (else those steps are held).
        project.fill_placeholders();
        project.winback(&["check"]).assert_success();
        Env {
            project,
            server,
            http_port,
        }
    }

    /// Writes `csv` as `clients.csv` and imports it with the clock at `now`.
    #[track_caller]
    pub(crate) fn import(&self, csv: &str, now: &str) -> Output {
        self.project.write_file("clients.csv", csv);
        let output = self
            .project
            .winback(&["import", "clients.csv", "--now", now]);
        output.assert_success();
        output
    }

    /// `winback ARGS… --now NOW`, which must succeed.
    #[track_caller]
    pub(crate) fn winback_at(&self, now: &str, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--now", now]);
        let output = self.project.winback(&all);
        output.assert_success();
        output
    }

    /// One `run --once` pass with the clock starting at `now`; returns the messages the
    /// SMTP server accepted during it. (The server logs a message before it answers the
    /// DATA, so everything sent is in the log once the pass has exited.)
    #[track_caller]
    pub(crate) fn pass(&self, now: &str) -> Vec<Captured> {
        let before = self.server.messages().len();
        self.winback_at(now, &["run", "--once"]);
        self.server.messages().split_off(before)
    }

    /// `winback status --format json`.
    #[track_caller]
    pub(crate) fn status(&self) -> Value {
        let output = self.project.winback(&["status", "--format", "json"]);
        output.assert_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("status --format json: {error}\n{}", output.stdout))
    }

    /// The envelope recipient of every message the server accepted, in order, read from
    /// its log alone (cheap enough to poll with thousands of messages).
    pub(crate) fn received_rcpts(&self) -> Vec<String> {
        let text = fs::read_to_string(self.server.maildir().join("log.jsonl")).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let entry: Value = serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("bad log line {line:?}: {error}"));
                let rcpts = entry["rcpt_tos"].as_array().expect("rcpt_tos is a list");
                assert_eq!(rcpts.len(), 1, "one recipient per message: {line}");
                rcpts[0].as_str().expect("a string").to_lowercase()
            })
            .collect()
    }
}

/// A CSV file: the header line, then each row with every field quoted (so commas, quotes
/// and line breaks inside a field stay in it).
pub(crate) fn csv(columns: &str, rows: &[&[&str]]) -> String {
    let mut text = format!("{columns}\r\n");
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .map(|field| format!("\"{}\"", field.replace('"', "\"\"")))
            .collect();
        text.push_str(&fields.join(","));
        text.push_str("\r\n");
    }
    text
}

/// `status[section][CAMPAIGN]` as state → count (`section`: "messages" or "enrollments").
pub(crate) fn counts(status: &Value, section: &str) -> BTreeMap<String, u64> {
    status[section][CAMPAIGN]
        .as_object()
        .map(|states| {
            states
                .iter()
                .map(|(state, n)| (state.clone(), n.as_u64().expect("a count")))
                .collect()
        })
        .unwrap_or_default()
}

/// `[("a", 1), …]` as the map `counts` returns.
pub(crate) fn states(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(state, n)| (state.to_string(), *n))
        .collect()
}

pub(crate) fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|error| panic!("{rfc3339}: {error}"))
        .with_timezone(&Utc)
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The one envelope recipient of a message.
fn rcpt(message: &Captured) -> String {
    assert_eq!(
        message.rcpt_tos.len(),
        1,
        "exactly one envelope recipient per message: {:?}",
        message.rcpt_tos
    );
    message.rcpt_tos[0].to_lowercase()
}

/// The step kind, from the subject "KIND for …" every test config uses.
fn kind(message: &Captured) -> String {
    let subject = message
        .header_decoded("Subject")
        .unwrap_or_else(|| panic!("no Subject in message #{}", message.seq));
    subject
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `(recipient, kind)` of each message, sorted.
fn sent(messages: &[Captured]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = messages.iter().map(|m| (rcpt(m), kind(m))).collect();
    pairs.sort();
    pairs
}

fn expected(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(r, k)| (r.to_string(), k.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// The `Date` header comes from the pass's clock (`--now`, running on), not the wall clock.
#[track_caller]
fn assert_date_from(message: &Captured, now: &str) {
    let header = message.header("Date").expect("a Date header");
    let date = DateTime::parse_from_rfc2822(&header)
        .unwrap_or_else(|error| panic!("Date {header:?}: {error}"))
        .with_timezone(&Utc);
    let start = instant(now);
    // RFC 5322 dates have whole seconds.
    let floor = start - chrono::Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
    assert!(
        date >= floor && date <= start + PASS_SLACK,
        "Date {header} is not the clock of the pass that started at {now}"
    );
}

/// One `--once` pass of a script: its `--now`, what that instant is for the recipients,
/// and the `(recipient, kind)` messages it must send, no more, no fewer.
type ScriptedPass = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Per recipient, how many messages of each kind arrived.
fn tally(messages: &[Captured]) -> BTreeMap<(String, String), usize> {
    let mut tally = BTreeMap::new();
    for message in messages {
        *tally.entry((rcpt(message), kind(message))).or_insert(0) += 1;
    }
    tally
}

/// A whole campaign, pass by pass: the quiet period holds to the day, the survey goes out
/// at 10:00 on the recipient's own wall clock (Tokyo and New York, nine hours apart on
/// the same Wednesday), later steps wait their gap and the next `send_at` moment, each
/// step exactly once and in order, and a `we_ended` client hears nothing.
#[test]
fn a_campaign_goes_out_in_order_at_each_recipients_send_moment() {
    let env = Env::start(
        json!({}),
        "",
        "0 10 * * Tue-Thu",
        &[("survey", 0), ("newsletter", 28), ("article", 7)],
    );
    // Churned Thursday 2026-01-08: churn + 90 days is Wednesday 2026-04-08 (EDT, UTC-4;
    // JST, UTC+9). Tuesday 2026-04-07 is a send day, but still inside the quiet period.
    env.import(
        &csv(
            COLUMNS,
            &[
                &[
                    "ny@client.example",
                    "Nora York",
                    "York Ltd",
                    "2026-01-08",
                    "competitor",
                    "America/New_York",
                ],
                &[
                    "tokyo@client.example",
                    "Taro Kato",
                    "Kato KK",
                    "2026-01-08",
                    "price",
                    "Asia/Tokyo",
                ],
                &[
                    "fired@client.example",
                    "Fred Ired",
                    "Bad Co",
                    "2026-01-08",
                    "we_ended",
                    "America/New_York",
                ],
            ],
        ),
        "2026-04-01T00:00:00Z",
    );

    const NY: &str = "ny@client.example";
    const TOKYO: &str = "tokyo@client.example";
    #[rustfmt::skip]
    let script: &[ScriptedPass] = &[
        ("2026-04-07T01:00:05Z", "Tokyo Tue 10:00, churn + 89 days", &[]),
        ("2026-04-07T14:00:05Z", "New York Tue 10:00, churn + 89 days", &[]),
        ("2026-04-08T00:59:55Z", "Tokyo Wed 09:59:55, churn + 90 days", &[]),
        ("2026-04-08T01:00:05Z", "Tokyo Wed 10:00:05", &[(TOKYO, "survey")]),
        ("2026-04-08T01:00:05Z", "the same pass again", &[]),
        ("2026-04-08T13:59:55Z", "New York Wed 09:59:55", &[]),
        ("2026-04-08T14:00:05Z", "New York Wed 10:00:05", &[(NY, "survey")]),
        ("2026-04-08T14:00:05Z", "the same pass again", &[]),
        // The newsletter is due 28 days after the survey, counted from the 10:00 moment
        // it went at (it went at 10:00:05): Wed 2026-05-06 at 10:00, the day plan shows.
        ("2026-05-06T00:59:55Z", "Tokyo Wed 09:59:55, newsletter day before its moment", &[]),
        ("2026-05-06T01:00:05Z", "Tokyo Wed 10:00:05", &[(TOKYO, "newsletter")]),
        ("2026-05-06T01:00:05Z", "the same pass again", &[]),
        ("2026-05-06T13:59:55Z", "New York Wed 09:59:55", &[]),
        ("2026-05-06T14:30:00Z", "New York Wed 10:30, catching up", &[(NY, "newsletter")]),
        // The article is due 7 days later, Wed 2026-05-13 at 10:00: New York's newsletter
        // went at 10:30, catching up, and still counts from its 10:00 moment.
        ("2026-05-13T00:59:55Z", "Tokyo Wed 09:59:55", &[]),
        ("2026-05-13T01:00:05Z", "Tokyo Wed 10:00:05", &[(TOKYO, "article")]),
        ("2026-05-13T13:59:55Z", "New York Wed 09:59:55", &[]),
        ("2026-05-13T14:00:05Z", "New York Wed 10:00:05", &[(NY, "article")]),
        ("2026-09-01T14:00:05Z", "months later: the sequence is over", &[]),
    ];
    for (now, what, wanted) in script {
        let arrived = env.pass(now);
        assert_eq!(sent(&arrived), expected(wanted), "pass at {now} ({what})");
        for message in &arrived {
            assert_date_from(message, now);
        }
    }

    let all = env.server.messages();
    let order =
        |who: &str| -> Vec<String> { all.iter().filter(|m| rcpt(m) == who).map(kind).collect() };
    assert_eq!(order(TOKYO), ["survey", "newsletter", "article"]);
    assert_eq!(order(NY), ["survey", "newsletter", "article"]);
    assert!(
        all.iter().all(|m| rcpt(m) != "fired@client.example"),
        "a client we let go was mailed"
    );
    let status = env.status();
    assert_eq!(status["clients"], 3);
    assert_eq!(
        counts(&status, "enrollments"),
        states(&[("completed", 2)]),
        "{status:#}"
    );
    assert_eq!(
        counts(&status, "messages"),
        states(&[("sent", 6)]),
        "{status:#}"
    );
}

/// `optout`, `returned`, the one-click link in `List-Unsubscribe`, and an opt-out of an
/// address never imported all stop the sequence for good; a later import changes nothing.
#[test]
fn optout_returned_and_the_unsubscribe_link_stop_the_sequence() {
    let env = Env::start(
        json!({}),
        "",
        "0 10 * * *",
        &[("survey", 0), ("newsletter", 2), ("article", 2)],
    );
    let never = "never@client.example";
    // Opted out before anyone imported the address.
    let output = env.winback_at("2026-04-01T00:00:00Z", &["optout", never]);
    assert!(output.stdout.contains("opted out"), "{}", output.stdout);
    let rows: &[&[&str]] = &[
        &[
            "optout@client.example",
            "Olga Out",
            "Out Co",
            "2026-01-08",
            "price",
            "",
        ],
        &[
            "returned@client.example",
            "Rita Back",
            "Back Co",
            "2026-01-08",
            "competitor",
            "",
        ],
        &[
            "link@client.example",
            "Lina Link",
            "Link Co",
            "2026-01-08",
            "other",
            "",
        ],
        &[
            "keep@client.example",
            "Kim Keep",
            "Keep Co",
            "2026-01-08",
            "needs_changed",
            "",
        ],
        &[never, "Nev Er", "Never Co", "2026-01-08", "price", ""],
    ];
    env.import(&csv(COLUMNS, rows), "2026-04-01T00:00:01Z");

    // Survey moment: 10:00 EDT on churn + 90 days.
    let surveys = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(
        sent(&surveys),
        expected(&[
            ("keep@client.example", "survey"),
            ("link@client.example", "survey"),
            ("optout@client.example", "survey"),
            ("returned@client.example", "survey"),
        ]),
        "an address opted out before its import was mailed"
    );

    env.winback_at("2026-04-08T15:00:00Z", &["optout", "OptOut@Client.example"]);
    let output = env.winback_at(
        "2026-04-08T15:00:00Z",
        &["returned", "returned@client.example"],
    );
    assert!(output.stdout.contains("came back"), "{}", output.stdout);

    // The link in List-Unsubscribe, POSTed the way a mail client does (RFC 8058), to the
    // daemon's own listener.
    let to_link = surveys
        .iter()
        .find(|m| rcpt(m) == "link@client.example")
        .expect("link's survey");
    let header = to_link
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let path = header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("List-Unsubscribe {header} is not under {PUBLIC_URL}"))
        .to_string();
    let daemon = env
        .project
        .spawn_winback(&["run", "--now", "2026-04-08T15:00:00Z"]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let base = format!("http://127.0.0.1:{}", env.http_port);
    assert!(
        wait_until(Duration::from_secs(20), || {
            client
                .get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        }),
        "the daemon did not serve /healthz:\n{}",
        daemon.stderr_so_far()
    );
    let response = client
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .expect("POST the unsubscribe link");
    assert!(
        response.status().is_success(),
        "one-click unsubscribe answered {}",
        response.status()
    );
    daemon.stop(Duration::from_secs(10)).assert_success();

    // An import after the opt-out (new name, same address) does not undo it.
    let mut changed: Vec<Vec<&str>> = rows.iter().map(|row| row.to_vec()).collect();
    changed[0][1] = "Olga Renamed";
    changed[4][1] = "Nev Renamed";
    let changed: Vec<&[&str]> = changed.iter().map(|row| row.as_slice()).collect();
    env.import(&csv(COLUMNS, &changed), "2026-04-09T12:00:00Z");

    // Newsletter: 2 days after the survey, at the next 10:00; article 2 days after that.
    let newsletters = env.pass("2026-04-11T14:00:05Z");
    assert_eq!(
        sent(&newsletters),
        expected(&[("keep@client.example", "newsletter")])
    );
    let articles = env.pass("2026-04-14T14:00:05Z");
    assert_eq!(
        sent(&articles),
        expected(&[("keep@client.example", "article")])
    );
    assert!(env.pass("2026-06-02T14:00:05Z").is_empty());

    let status = env.status();
    assert_eq!(
        counts(&status, "enrollments"),
        states(&[("completed", 1), ("opted_out", 3), ("returned", 1)]),
        "{status:#}"
    );
    assert_eq!(status["suppressions"]["opt_out"], 3, "{status:#}");
}

/// A 550 for one recipient: the message is failed, `status` says so, the enrollment is
/// bounced, and no later step is ever attempted (even once the server would accept).
#[test]
fn a_550_bounces_the_address_and_stops_its_sequence() {
    let bounce = "bounce@client.example";
    let env = Env::start(
        json!({"rules": [{"rcpt": bounce, "code": 550}]}),
        "",
        "0 10 * * *",
        &[("survey", 0), ("newsletter", 2), ("article", 2)],
    );
    env.import(
        &csv(
            COLUMNS,
            &[
                &[bounce, "Bo Unce", "Bounce Co", "2026-01-08", "price", ""],
                &[
                    "fine@client.example",
                    "Fi Ne",
                    "Fine Co",
                    "2026-01-08",
                    "price",
                    "",
                ],
            ],
        ),
        "2026-04-01T00:00:00Z",
    );

    let surveys = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(
        sent(&surveys),
        expected(&[("fine@client.example", "survey")])
    );
    let rejects = env.server.rejects();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!((rejects[0].rcpt.as_str(), rejects[0].code), (bounce, 550));

    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        states(&[("failed", 1), ("sent", 1)]),
        "{status:#}"
    );
    assert_eq!(
        counts(&status, "enrollments"),
        states(&[("active", 1), ("bounced", 1)]),
        "{status:#}"
    );
    assert_eq!(status["suppressions"]["bounce"], 1, "{status:#}");
    let attention = status["attention"].as_array().expect("attention is a list");
    assert!(
        attention.iter().any(|m| m["email"] == bounce
            && m["state"] == "failed"
            && m["error"].as_str().is_some_and(|e| e.contains("550"))),
        "status does not show the failed message with its 550: {status:#}"
    );
    let table = env.project.winback(&["status"]);
    table.assert_success();
    assert!(
        table.stdout.contains(bounce) && table.stdout.contains("failed"),
        "{}",
        table.stdout
    );

    // The server would now accept it: still nothing may go to a bounced address.
    env.server.set_rules(json!({}));
    assert_eq!(
        sent(&env.pass("2026-04-11T14:00:05Z")),
        expected(&[("fine@client.example", "newsletter")])
    );
    assert_eq!(
        sent(&env.pass("2026-04-14T14:00:05Z")),
        expected(&[("fine@client.example", "article")])
    );
    assert!(env.server.messages().iter().all(|m| rcpt(m) != bounce));
    assert_eq!(
        env.server.rejects().len(),
        1,
        "a bounced address was tried again"
    );
}

/// A 451 once: the message waits for its backoff (`retry_first_minutes`, 5 by default),
/// is retried by a later pass, and arrives exactly once.
#[test]
fn a_451_is_retried_after_the_backoff_and_delivered_once() {
    let slow = "slow@client.example";
    let env = Env::start(
        json!({"rules": [{"rcpt": slow, "code": 451, "times": 1}]}),
        "",
        "0 10 * * *",
        &[("survey", 0), ("newsletter", 2)],
    );
    env.import(
        &csv(
            COLUMNS,
            &[
                &[slow, "Sam Low", "Slow Co", "2026-01-08", "price", ""],
                &[
                    "ok@client.example",
                    "Otto Kay",
                    "Ok Co",
                    "2026-01-08",
                    "price",
                    "",
                ],
            ],
        ),
        "2026-04-01T00:00:00Z",
    );

    let first = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(sent(&first), expected(&[("ok@client.example", "survey")]));
    assert_eq!(env.server.rejects().len(), 1);
    assert_eq!(env.server.rejects()[0].code, 451);
    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        states(&[("retry", 1), ("sent", 1)]),
        "{status:#}"
    );

    for (now, what) in [
        ("2026-04-08T14:00:05Z", "the same pass again"),
        (
            "2026-04-08T14:03:05Z",
            "3 minutes later, inside the backoff",
        ),
    ] {
        assert!(
            env.pass(now).is_empty(),
            "pass at {now} ({what}) sent something"
        );
        assert_eq!(
            env.server.rejects().len(),
            1,
            "pass at {now} ({what}) tried again"
        );
    }
    let retried = env.pass("2026-04-08T14:06:05Z");
    assert_eq!(sent(&retried), expected(&[(slow, "survey")]));
    assert_date_from(&retried[0], "2026-04-08T14:06:05Z");
    assert!(env.pass("2026-04-08T14:12:05Z").is_empty());
    assert!(env.pass("2026-04-08T14:30:05Z").is_empty());

    let all = env.server.messages();
    assert_eq!(
        tally(&all).get(&(slow.to_string(), "survey".to_string())),
        Some(&1)
    );
    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        states(&[("sent", 2)]),
        "{status:#}"
    );
    assert_eq!(
        counts(&status, "enrollments"),
        states(&[("active", 2)]),
        "{status:#}"
    );
}

/// Every message: multipart/alternative with a text and an HTML part, its own
/// Message-ID, RFC 8058 unsubscribe headers, a Date from `--now`, one recipient. Names
/// from the CSV are escaped in HTML, raw in text, and cannot add a header.
#[test]
fn messages_are_well_formed_escaped_and_have_one_recipient() {
    let env = Env::start(json!({}), "", "0 10 * * *", &[("survey", 0)]);
    let xss = "xss@client.example";
    let eve = "eve@client.example";
    env.import(
        &csv(
            "email,name,first_name,company,churned_at,churn_reason,timezone",
            &[
                &[
                    "plain@client.example",
                    "Pat Plain",
                    "",
                    "Plain Co",
                    "2026-01-08",
                    "price",
                    "",
                ],
                &[
                    xss,
                    "Ann <script>alert(1)</script> & Bob",
                    "<script>alert(1)</script>&Ann",
                    "Smith & <b>Sons</b>",
                    "2026-01-08",
                    "price",
                    "",
                ],
                &[
                    eve,
                    "Eve\r\nBcc: x@evil.example",
                    "",
                    "Evil\r\nCc: y@evil.example",
                    "2026-01-08",
                    "price",
                    "",
                ],
            ],
        ),
        "2026-04-01T00:00:00Z",
    );
    let now = "2026-04-08T14:00:05Z";
    let messages = env.pass(now);
    assert_eq!(
        sent(&messages),
        expected(&[
            (eve, "survey"),
            ("plain@client.example", "survey"),
            (xss, "survey")
        ])
    );
    assert!(
        env.server.rejects().is_empty(),
        "{:?}",
        env.server.rejects()
    );

    let mut ids = BTreeSet::new();
    let mut tokens = BTreeSet::new();
    for message in &messages {
        let who = rcpt(message);
        let headers = message.headers();
        let named = |name: &str| {
            headers
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .count()
        };
        assert_eq!(named("To"), 1, "{who}: {headers:?}");
        assert_eq!(named("Cc") + named("Bcc"), 0, "{who}: {headers:?}");
        assert_eq!(
            (
                named("From"),
                named("Subject"),
                named("Date"),
                named("Message-ID")
            ),
            (1, 1, 1, 1),
            "{who}"
        );
        assert!(
            message.header("To").is_some_and(|to| to.contains(&who)),
            "{who}: {headers:?}"
        );

        let content_type = message.header("Content-Type").expect("Content-Type");
        assert!(
            content_type.starts_with("multipart/alternative"),
            "{who}: {content_type}"
        );
        let text = message
            .text()
            .unwrap_or_else(|| panic!("{who}: no text/plain part"));
        let html = message
            .html()
            .unwrap_or_else(|| panic!("{who}: no text/html part"));

        let id = message.header("Message-ID").expect("Message-ID");
        assert!(
            id.starts_with('<') && id.ends_with('>') && id.contains('@'),
            "{id}"
        );
        assert!(ids.insert(id.clone()), "Message-ID {id} used twice");

        let unsubscribe = message
            .header("List-Unsubscribe")
            .expect("List-Unsubscribe");
        let url = unsubscribe
            .strip_prefix('<')
            .and_then(|u| u.strip_suffix('>'))
            .unwrap_or_else(|| panic!("List-Unsubscribe {unsubscribe} is not <URL>"));
        let token = url
            .strip_prefix(&format!("{PUBLIC_URL}/u/"))
            .unwrap_or_else(|| panic!("List-Unsubscribe {url} is not {PUBLIC_URL}/u/TOKEN"));
        assert!(!token.is_empty() && !token.contains(['/', ' ']), "{url}");
        assert!(
            tokens.insert(token.to_string()),
            "two recipients share {url}"
        );
        assert!(text.contains(url), "{who}: the text footer lacks {url}");
        assert!(html.contains(url), "{who}: the HTML footer lacks {url}");
        assert_eq!(
            message.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click"),
            "{who}"
        );
        assert_date_from(message, now);
        assert!(
            text.contains("1 Main Street, Springfield"),
            "{who}: no postal address"
        );

        if who == xss {
            assert!(!html.contains("<script") && !html.contains("<b>"), "{html}");
            assert!(
                html.contains("Hi &lt;script&gt;alert(1)&lt;/script&gt;&amp;Ann,"),
                "{html}"
            );
            assert!(
                html.contains("Smith &amp; &lt;b&gt;Sons&lt;/b&gt;"),
                "{html}"
            );
            assert!(text.contains("Hi <script>alert(1)</script>&Ann,"), "{text}");
            assert!(text.contains("Smith & <b>Sons</b> is no longer"), "{text}");
            let subject = message.header_decoded("Subject").expect("Subject");
            assert_eq!(
                subject,
                "survey for <script>alert(1)</script>&Ann at Smith & <b>Sons</b>"
            );
        }
        if who == eve {
            let subject = message.header_decoded("Subject").expect("Subject");
            assert!(!subject.contains(['\r', '\n']), "{subject:?}");
            let (head, _) = message.raw.split_once("\r\n\r\n").expect("a header block");
            for line in head.split("\r\n") {
                let lower = line.to_ascii_lowercase();
                assert!(
                    !lower.starts_with("bcc:") && !lower.starts_with("cc:"),
                    "injected header line {line:?}"
                );
            }
        }
    }
    let everyone: BTreeSet<String> = env.server.messages().iter().map(rcpt).collect();
    assert!(!everyone.iter().any(|r| r.contains("evil")), "{everyone:?}");
}

/// `max_per_minute` caps each pass; the rest goes in later passes, each message once.
#[test]
fn max_per_minute_limits_a_pass() {
    let env = Env::start(
        json!({}),
        "max_per_minute = 2",
        "0 10 * * *",
        &[("survey", 0)],
    );
    let emails: Vec<String> = (1..=5).map(|n| format!("rate{n}@client.example")).collect();
    let rows: Vec<Vec<&str>> = emails
        .iter()
        .map(|email| {
            vec![
                email.as_str(),
                "Ray Te",
                "Rate Co",
                "2026-01-08",
                "price",
                "",
            ]
        })
        .collect();
    let rows: Vec<&[&str]> = rows.iter().map(|row| row.as_slice()).collect();
    env.import(&csv(COLUMNS, &rows), "2026-04-01T00:00:00Z");

    let mut counts_per_pass = Vec::new();
    for now in [
        "2026-04-08T14:00:05Z",
        "2026-04-08T14:00:05Z",
        "2026-04-08T14:00:35Z",
        "2026-04-08T14:01:06Z",
        "2026-04-08T14:02:07Z",
        "2026-04-08T14:03:08Z",
    ] {
        counts_per_pass.push(env.pass(now).len());
    }
    assert_eq!(counts_per_pass, [2, 0, 0, 2, 1, 0], "messages per pass");
    let received: BTreeSet<String> = env.server.messages().iter().map(rcpt).collect();
    assert_eq!(received, emails.iter().cloned().collect::<BTreeSet<_>>());
}

/// One daemon per database: a second `run` names the lock and fails; SIGTERM stops the
/// first cleanly (exit 0) within seconds, and releases the lock.
#[test]
fn a_second_daemon_is_refused_and_sigterm_stops_the_first() {
    let env = Env::start(json!({}), "", "0 10 * * *", &[("survey", 0)]);
    env.import(
        &csv(
            COLUMNS,
            &[&[
                "solo@client.example",
                "So Lo",
                "Solo Co",
                "2026-01-08",
                "price",
                "",
            ]],
        ),
        "2026-04-01T00:00:00Z",
    );
    let mut daemon = env
        .project
        .spawn_winback(&["run", "--now", "2026-04-02T12:00:00Z"]);
    let base = format!("http://127.0.0.1:{}", env.http_port);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    assert!(
        wait_until(Duration::from_secs(20), || {
            client
                .get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        }),
        "the daemon did not serve /healthz:\n{}",
        daemon.stderr_so_far()
    );

    let second = env
        .project
        .winback(&["run", "--once", "--now", "2026-04-08T14:00:05Z"]);
    second.assert_failure();
    assert!(
        second
            .stderr
            .contains("another winback daemon is already running")
            && second.stderr.contains("winback.db.lock"),
        "the refusal does not name the lock:\n{}",
        second.stderr
    );
    assert!(
        env.server.messages().is_empty(),
        "the refused daemon sent mail"
    );
    assert!(
        daemon.is_running(),
        "the first daemon died:\n{}",
        daemon.stderr_so_far()
    );

    let asked = Instant::now();
    let output = daemon.stop(Duration::from_secs(5));
    output.assert_success();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        asked.elapsed()
    );

    // The lock went with it.
    let arrived = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(
        sent(&arrived),
        expected(&[("solo@client.example", "survey")])
    );
}

/// The daemon (not `--once`) sleeps until the next `send_at` moment and sends then: not
/// before, and not half a minute late.
#[test]
fn the_daemon_wakes_up_at_the_send_moment() {
    let env = Env::start(json!({}), "", "0 10 * * *", &[("survey", 0)]);
    env.import(
        &csv(
            COLUMNS,
            &[&[
                "early@client.example",
                "Ear Ly",
                "Early Co",
                "2026-01-08",
                "price",
                "",
            ]],
        ),
        "2026-04-01T00:00:00Z",
    );
    // Three seconds before 10:00 EDT on churn + 90 days.
    let daemon = env
        .project
        .spawn_winback(&["run", "--now", "2026-04-08T13:59:57Z"]);
    let messages = env.server.wait_for(1, Duration::from_secs(20));
    daemon.stop(Duration::from_secs(10)).assert_success();
    assert_eq!(
        sent(&messages),
        expected(&[("early@client.example", "survey")])
    );
    let header = messages[0].header("Date").expect("a Date header");
    let date = DateTime::parse_from_rfc2822(&header).expect("an RFC 5322 date");
    assert!(
        date >= instant("2026-04-08T14:00:00Z") && date <= instant("2026-04-08T14:00:10Z"),
        "sent at {header}, not at 10:00 EDT"
    );
}

/// A 1,200-character word in a name, and a name that looks like an encoded word: the
/// real server (aiosmtpd answers "500 Line too long" to any line over 1,000 octets)
/// takes both messages, the header lines stay short, the names display literally, and
/// no address is suppressed.
#[test]
fn a_giant_word_or_an_encoded_word_in_a_name_is_delivered_and_displayed_literally() {
    let env = Env::start(json!({}), "", "0 10 * * *", &[("survey", 0)]);
    let giant = "W".repeat(1200);
    let trap = "=?utf-8?q?Bob=0D=0ABcc=3A_x@evil.example?=";
    let long_name = format!("{giant} Smith");
    let trap_name = format!("{trap} Jones");
    env.import(
        &csv(
            COLUMNS,
            &[
                &[
                    "long@client.example",
                    &long_name,
                    &giant,
                    "2026-01-08",
                    "price",
                    "",
                ],
                &[
                    "trap@client.example",
                    &trap_name,
                    "Trap Co",
                    "2026-01-08",
                    "price",
                    "",
                ],
            ],
        ),
        "2026-04-01T00:00:00Z",
    );
    let arrived = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(arrived.len(), 2, "{:#}", env.status());
    for message in &arrived {
        let (head, _) = message.raw.split_once("\r\n\r\n").expect("a header block");
        for line in head.split("\r\n") {
            assert!(line.len() <= 998, "{} octets: {line:.100}", line.len());
            assert!(!line.contains(trap), "{line}");
        }
        let (name, first) = if rcpt(message) == "long@client.example" {
            (&long_name, &giant)
        } else {
            (&trap_name, &trap.to_string())
        };
        let to = message.header_decoded("To").expect("To");
        assert!(to.contains(name.as_str()), "{to:.200}");
        let subject = message.header_decoded("Subject").expect("Subject");
        assert!(
            subject.starts_with(&format!("survey for {first} at ")),
            "{subject:.200}"
        );
    }
    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        states(&[("sent", 2)]),
        "{status:#}"
    );
    assert_eq!(
        status["suppressions"]["bounce"].as_u64().unwrap_or(0),
        0,
        "{status:#}"
    );
}

/// DKIM through the binary: the signature's `t=` is the pass's clock (`--now`, the same
/// as `Date`), not the machine's, and every signed header is listed once more than it
/// appears.
#[test]
fn the_dkim_signature_takes_its_time_from_the_daemons_clock() {
    let keys = tempfile::tempdir().expect("a temporary directory");
    let key = keys.path().join("dkim.pem");
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\n\
         MC4CAQAwBQYDK2VwBCIEIAOVAvTMU5g0DEFlPgWYByuDrcR518gvxa/yP6S/X2aI\n\
         -----END PRIVATE KEY-----\n",
    )
    .expect("write the key");
    let dkim = format!(
        "\n[dkim]\nselector = \"winback\"\ndomain = \"acme.example\"\nkey_file = {:?}\n",
        key.display().to_string()
    );
    let env = Env::start(json!({}), &dkim, "0 10 * * *", &[("survey", 0)]);
    env.import(
        &csv(
            COLUMNS,
            &[&[
                "pat@client.example",
                "Pat Smith",
                "Globex",
                "2026-01-08",
                "price",
                "",
            ]],
        ),
        "2026-04-01T00:00:00Z",
    );
    let now = "2026-04-08T14:00:05Z";
    let arrived = env.pass(now);
    assert_eq!(arrived.len(), 1);
    let signature = arrived[0]
        .header("DKIM-Signature")
        .expect("a DKIM-Signature")
        .replace([' ', '\t'], "");
    let t: i64 = signature
        .split(';')
        .find_map(|tag| tag.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no t= in {signature}"));
    let start = instant(now).timestamp();
    assert!(
        (start..=start + PASS_SLACK.as_secs() as i64).contains(&t),
        "t={t} is not the clock of the pass that started at {now} ({start}): {signature}"
    );
    assert_date_from(&arrived[0], now);
    assert!(
        signature.contains("h=from:from:reply-to:reply-to:to:to:cc:subject:subject:"),
        "{signature}"
    );
}

/// A 554 5.7.1 policy refusal of one recipient at RCPT, among many: that recipient's, not
/// ours. The pass goes on and everyone else gets their survey in it; the refused one is
/// retried (`retry`, logged as blocked, not a bounce yet) and, since the give-up clock
/// runs from its first attempt and never restarts, given up after `retry_give_up_hours`.
#[test]
fn one_recipients_policy_refusal_never_pauses_the_others_and_is_given_up_in_time() {
    const OTHERS: usize = 40;
    let blocked = "blocked@client.example";
    let env = Env::start(
        json!({"rules": [{"rcpt": blocked, "code": 554, "text": "5.7.1 Message refused by policy"}]}),
        "connections = 2\nretry_give_up_hours = 2",
        "0 10 * * *",
        &[("survey", 0)],
    );
    let others: Vec<String> = (0..OTHERS)
        .map(|n| format!("fine{n:02}@client.example"))
        .collect();
    let mut rows: Vec<Vec<&str>> = vec![vec![
        blocked,
        "Bea Blocked",
        "Block Co",
        "2026-01-08",
        "price",
        "",
    ]];
    for email in &others {
        rows.push(vec![
            email.as_str(),
            "Fi Ne",
            "Fine Co",
            "2026-01-08",
            "price",
            "",
        ]);
    }
    let rows: Vec<&[&str]> = rows.iter().map(|row| row.as_slice()).collect();
    env.import(&csv(COLUMNS, &rows), "2026-04-01T00:00:00Z");

    let surveys = env.pass("2026-04-08T14:00:05Z");
    assert_eq!(
        surveys.len(),
        OTHERS,
        "one policy refusal paused the pass for everyone else"
    );
    assert_eq!(env.server.rejects().len(), 1);
    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        states(&[("retry", 1), ("sent", OTHERS as u64)]),
        "{status:#}"
    );
    let attention = status["attention"].as_array().expect("attention is a list");
    assert!(
        attention.iter().any(|m| m["email"] == blocked
            && m["state"] == "retry"
            && m["error"]
                .as_str()
                .is_some_and(|e| e.contains("blocked") && e.contains("5.7.1"))),
        "status does not show the blocked message: {status:#}"
    );
    assert!(status["suppressions"]["bounce"].is_null(), "{status:#}");

    // Retried with the usual back-off, until two hours after the first attempt.
    for now in [
        "2026-04-08T14:30:05Z",
        "2026-04-08T15:30:05Z",
        "2026-04-08T16:30:05Z",
        "2026-04-08T22:30:05Z",
    ] {
        assert!(env.pass(now).is_empty());
    }
    let attempts = env.server.rejects().len();
    assert!(attempts >= 3, "retried {attempts} times");
    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        states(&[("failed", 1), ("sent", OTHERS as u64)]),
        "given up {attempts} attempts later: {status:#}"
    );
    assert_eq!(status["suppressions"]["bounce"], 1, "{status:#}");
}
