//! Recipients over HTTP, end to end: the real daemon (`winback run --now …`) mails two
//! former clients their survey through the test SMTP server, and a real HTTP client
//! follows the links in those messages — one-click unsubscribe (RFC 8058), the survey
//! form, refused tokens — while `winback export`, `survey`, `status` and later
//! `run --once` passes show what the clicks changed. `Running` is shared with the
//! browser test.

use std::net::TcpStream;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::support::{Captured, Daemon, Output, Project, SmtpServer, free_port, wait_until};

/// The daemon's clock at start: both clients below are past their 90 quiet days.
pub(crate) const NOW: &str = "2026-06-02T14:00:00Z";
/// 31 days after `NOW`: the newsletter (30 days after the survey) is due.
pub(crate) const LATER: &str = "2026-07-03T14:00:00Z";
pub(crate) const ADA: &str = "ada@analytical.example";
pub(crate) const BOB: &str = "bob@builders.example";

const CLIENTS_CSV: &str = "email,name,company,churned_at,churn_reason\n\
    ada@analytical.example,Ada Lovelace,Analytical Engines Ltd,2026-01-05,competitor\n\
    bob@builders.example,Bob Builder,Builders Inc,2026-01-10,price\n";

const SURVEY_SUBJECT: &str = "{{first_name}}, may we ask why you left?";
const NEWSLETTER_SUBJECT: &str = "What we've been working on";

/// How long the daemon may take to answer `/healthz`, and a message to arrive.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const MAIL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The config's `public_url`, which starts every link in the emails: an https name, as
/// mail sent through a server requires. The tests play the reverse proxy: `Running::get`
/// and `post_form` send its links to the daemon's own address.
pub(crate) const PUBLIC_URL: &str = "https://links.winback.test";

fn config(smtp_url: &str, port: u16) -> String {
    format!(
        r#"[database]
path = "winback.db"

[smtp]
url = "{smtp_url}"
from = "Acme Customer Success <success@acme.example>"
connections = 1

[http]
listen = "127.0.0.1:{port}"
public_url = "{PUBLIC_URL}"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[templates]
dir = "templates"

[[campaign]]
name = "former-clients"
quiet_days = 90
send_at = "* * * * *"
timezone = "America/New_York"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{SURVEY_SUBJECT}"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "{NEWSLETTER_SUBJECT}"
"#
    )
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Answer {
    fn read(response: reqwest::blocking::Response) -> Answer {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let location = header(LOCATION);
        let content_type = header(CONTENT_TYPE);
        let status = response.status().as_u16();
        let body = response.text().expect("read an HTTP answer's body");
        Answer {
            status,
            location,
            content_type,
            body,
        }
    }
}

/// A project whose daemon runs on `NOW` with both clients imported and their surveys
/// sent to a real SMTP server; the daemon is stopped cleanly (and checked) or killed
/// when dropped.
pub(crate) struct Running {
    pub project: Project,
    pub smtp: SmtpServer,
    daemon: Option<Daemon>,
    /// `http://127.0.0.1:PORT`, where the daemon listens (links say [`PUBLIC_URL`]).
    pub base_url: String,
    http: Client,
}

impl Running {
    /// Imports the clients, starts `winback run --now NOW`, waits for `/healthz` and for
    /// both surveys.
    pub(crate) fn start() -> Running {
        Running::start_with(CLIENTS_CSV, 2, MAIL_TIMEOUT, "", "warn")
    }

    /// [`Running::start`] with `extra` TOML at the end of the configuration and the
    /// daemon's `WINBACK_LOG` set to `log`.
    pub(crate) fn start_configured(extra: &str, log: &str) -> Running {
        Running::start_with(CLIENTS_CSV, 2, MAIL_TIMEOUT, extra, log)
    }

    /// [`Running::start`] with other clients: waits for `surveys` messages (within
    /// `mail_timeout`).
    fn start_with(
        clients_csv: &str,
        surveys: usize,
        mail_timeout: Duration,
        extra: &str,
        log: &str,
    ) -> Running {
        let smtp = SmtpServer::start(Value::Null);
        let mut project = Project::new();
        project.set_env("WINBACK_LOG", log);
        let port = free_port();
        project.write_config(&format!("{}{extra}", config(&smtp.url(), port)));
        // As an operator would before mailing a real server (else those steps are held).
        project.fill_placeholders();
        project.write_file("clients.csv", clients_csv);
        project
            .winback(&["import", "clients.csv", "--now", NOW])
            .assert_success();
        let daemon = project.spawn_winback(&["run", "--now", NOW]);
        let http = Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build an HTTP client");
        let mut running = Running {
            project,
            smtp,
            daemon: Some(daemon),
            base_url: format!("http://127.0.0.1:{port}"),
            http,
        };
        running.wait_for_health();
        let messages = running.smtp.wait_for(surveys, mail_timeout);
        assert_eq!(
            messages.len(),
            surveys,
            "one survey per client: {messages:#?}"
        );
        running.wait_until_recorded_sent(surveys, mail_timeout);
        running
    }

    /// The SMTP server holds a message a moment before the daemon commits it as sent;
    /// tests that read the store wait for that commit through `GET /metrics`.
    fn wait_until_recorded_sent(&self, count: usize, timeout: Duration) {
        let url = format!("{}/metrics", self.base_url);
        let line = format!("winback_messages{{state=\"sent\"}} {count}");
        let mut last = String::new();
        let recorded = wait_until(timeout, || {
            last = self.get(&url).body;
            last.lines().any(|l| l == line)
        });
        assert!(recorded, "expected `{line}` within {timeout:?}:\n{last}");
    }

    fn wait_for_health(&mut self) {
        let url = format!("{}/healthz", self.base_url);
        let mut exited = false;
        let up = wait_until(START_TIMEOUT, || {
            if !self.daemon.as_mut().is_some_and(Daemon::is_running) {
                exited = true;
                return true;
            }
            self.http
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        let stderr = self.daemon_stderr();
        assert!(!exited, "`winback run` exited early:\n{stderr}");
        assert!(
            up,
            "`winback run` did not answer {url} within {START_TIMEOUT:?}:\n{stderr}"
        );
    }

    pub(crate) fn daemon_stderr(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::stderr_so_far)
            .unwrap_or_default()
    }

    /// The one message so far to `email`, of the `nth` (0-based) sent to them.
    pub(crate) fn message_to(&self, email: &str, nth: usize) -> Captured {
        let to_them: Vec<Captured> = self
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r.eq_ignore_ascii_case(email)))
            .collect();
        to_them.get(nth).cloned().unwrap_or_else(|| {
            panic!(
                "no message #{nth} to {email}; to them: {:#?}",
                to_them
                    .iter()
                    .map(|m| m.header("Subject"))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// The recipients of every message the SMTP server accepted, in order.
    pub(crate) fn recipients(&self) -> Vec<String> {
        self.smtp
            .messages()
            .iter()
            .flat_map(|m| m.rcpt_tos.clone())
            .collect()
    }

    /// `url` as the reverse proxy forwards it: under [`PUBLIC_URL`], to the daemon.
    pub(crate) fn local(&self, url: &str) -> String {
        match url.strip_prefix(PUBLIC_URL) {
            Some(path) => format!("{}{path}", self.base_url),
            None => url.to_string(),
        }
    }

    pub(crate) fn get(&self, url: &str) -> Answer {
        let url = &self.local(url);
        Answer::read(
            self.http
                .get(url)
                .send()
                .unwrap_or_else(|error| panic!("GET {url}: {error}")),
        )
    }

    /// A POST with an `application/x-www-form-urlencoded` body, as a form or a mail
    /// client's one-click unsubscribe sends it.
    pub(crate) fn post_form(&self, url: &str, body: &str) -> Answer {
        let url = &self.local(url);
        Answer::read(
            self.http
                .post(url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.to_string())
                .send()
                .unwrap_or_else(|error| panic!("POST {url}: {error}")),
        )
    }

    /// `winback ARGS…` against this project, to completion.
    pub(crate) fn winback(&self, args: &[&str]) -> Output {
        self.project.winback(args)
    }

    /// `winback export EMAIL`, parsed.
    pub(crate) fn export(&self, email: &str) -> Value {
        let output = self.winback(&["export", email]);
        output.assert_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("`winback export {email}` is not JSON: {error}"))
    }

    /// `winback survey --format json`, parsed.
    pub(crate) fn survey_report(&self) -> Value {
        let output = self.winback(&["survey", "--format", "json"]);
        output.assert_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("`winback survey --format json` is not JSON: {error}"))
    }

    /// `winback status --format json`, parsed.
    pub(crate) fn status(&self) -> Value {
        let output = self.winback(&["status", "--format", "json"]);
        output.assert_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("`winback status --format json` is not JSON: {error}"))
    }

    /// SIGTERM; the daemon must exit 0 within `STOP_TIMEOUT`, and its port close.
    pub(crate) fn stop_daemon(&mut self) -> Output {
        let daemon = self.daemon.take().expect("the daemon is running");
        let output = daemon.stop(STOP_TIMEOUT);
        assert_eq!(
            output.code(),
            Some(0),
            "`winback run` did not exit 0 on SIGTERM: {output:#?}"
        );
        let port: u16 = self
            .base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the base URL");
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts connections after the daemon exited"
        );
        output
    }

    /// One delivery pass at `now` (the daemon must be stopped: one per database).
    pub(crate) fn pass_at(&self, now: &str) {
        assert!(
            self.daemon.is_none(),
            "stop the daemon before a --once pass"
        );
        self.winback(&["run", "--once", "--now", now])
            .assert_success();
    }
}

/// The `http…` link in a `List-Unsubscribe` header (`<https://…>, <mailto:…>`).
pub(crate) fn list_unsubscribe_url(message: &Captured) -> String {
    let header = message
        .header("List-Unsubscribe")
        .unwrap_or_else(|| panic!("no List-Unsubscribe header in:\n{}", message.raw));
    header
        .split(',')
        .map(|part| part.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|url| url.starts_with("http"))
        .unwrap_or_else(|| panic!("no http link in List-Unsubscribe: {header}"))
        .to_string()
}

/// The first link in `text` that starts with `prefix`, up to the end of its token.
pub(crate) fn link_in(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no link starting {prefix} in:\n{text}"));
    let token: String = text[start + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(
        !token.is_empty(),
        "an empty token after {prefix} in:\n{text}"
    );
    format!("{prefix}{token}")
}

/// The survey link in the text part of a message.
pub(crate) fn survey_link(_running: &Running, message: &Captured) -> String {
    let text = message
        .text()
        .unwrap_or_else(|| panic!("no text part in:\n{}", message.raw));
    link_in(&text, &format!("{PUBLIC_URL}/s/"))
}

/// The token at the end of a link.
fn token_of(url: &str) -> &str {
    url.rsplit('/').next().expect("a link with a path")
}

/// Asserts that the export shows a person who may still be mailed.
#[track_caller]
fn assert_subscribed(export: &Value) {
    assert!(
        export["suppression"].is_null(),
        "{} is suppressed: {:#}",
        export["email"],
        export["suppression"]
    );
    let states = enrollment_states(export);
    assert!(
        !states.is_empty() && states.iter().all(|s| s == "active"),
        "{} has enrollments {states:?}",
        export["email"]
    );
}

/// Asserts that the export shows a person opted out by `source`, every sequence stopped.
#[track_caller]
fn assert_opted_out(export: &Value, source: &str) {
    assert_eq!(
        export["suppression"]["reason"], "opt_out",
        "{:#}",
        export["suppression"]
    );
    assert_eq!(export["suppression"]["source"], source);
    let states = enrollment_states(export);
    assert!(
        !states.is_empty() && states.iter().all(|s| s == "opted_out"),
        "{} has enrollments {states:?}",
        export["email"]
    );
}

fn enrollment_states(export: &Value) -> Vec<String> {
    export["enrollments"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| e["state"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The kinds of the events logged about a person.
fn event_kinds(export: &Value) -> Vec<String> {
    export["events"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| e["kind"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The messages a later pass sent: exactly one, the newsletter, to `to`.
#[track_caller]
fn assert_only_newsletter_to(running: &Running, before: usize, to: &str) {
    let messages = running.smtp.messages();
    let new: Vec<(Vec<String>, Option<String>)> = messages[before..]
        .iter()
        .map(|m| (m.rcpt_tos.clone(), m.header_decoded("Subject")))
        .collect();
    assert_eq!(
        new,
        vec![(vec![to.to_string()], Some(NEWSLETTER_SUBJECT.to_string()))],
        "the pass at {LATER} should mail only {to}'s newsletter"
    );
}

#[test]
fn one_click_unsubscribe_from_the_email_opts_out_for_good() {
    let mut running = Running::start();
    let ada_survey = running.message_to(ADA, 0);
    assert_eq!(
        ada_survey.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = list_unsubscribe_url(&ada_survey);
    assert!(
        unsubscribe.starts_with(&format!("{PUBLIC_URL}/u/")),
        "{unsubscribe}"
    );
    // The same link is in the footer of the text part.
    assert!(ada_survey.text().unwrap().contains(&unsubscribe));
    assert_subscribed(&running.export(ADA));

    // A GET (a mail scanner, or the person opening the link) shows a button, nothing more.
    for _ in 0..2 {
        let page = running.get(&unsubscribe);
        assert_eq!(page.status, 200, "{page:#?}");
        assert!(
            page.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("text/html")),
            "{page:#?}"
        );
        assert!(
            page.body.contains(&format!("action=\"{unsubscribe}\"")),
            "the page has no form posting to the link:\n{}",
            page.body
        );
        assert!(page.body.contains("Ada"), "{}", page.body);
    }
    let export = running.export(ADA);
    assert_subscribed(&export);
    assert!(!event_kinds(&export).contains(&"opt_out".to_string()));

    // The mail client's one-click POST (RFC 8058): 200, a page, no redirect.
    let done = running.post_form(&unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(done.status, 200, "{done:#?}");
    assert_eq!(done.location, None);
    assert!(done.body.contains("You are unsubscribed"), "{}", done.body);
    let export = running.export(ADA);
    assert_opted_out(&export, "link");
    assert_eq!(
        event_kinds(&export)
            .iter()
            .filter(|k| *k == "opt_out")
            .count(),
        1
    );
    // Bob is untouched.
    assert_subscribed(&running.export(BOB));

    // Idempotent: the second POST answers the same and records nothing new.
    let again = running.post_form(&unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(again.status, 200, "{again:#?}");
    assert_eq!(again.location, None);
    let export_again = running.export(ADA);
    assert_opted_out(&export_again, "link");
    assert_eq!(
        export_again["suppression"]["created_at"], export["suppression"]["created_at"],
        "a second POST changed the opt-out"
    );
    assert_eq!(event_kinds(&export_again), event_kinds(&export));
    // Now the GET page says so.
    let page = running.get(&unsubscribe);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are unsubscribed"), "{}", page.body);

    // A month later, Bob gets the newsletter; Ada gets nothing.
    running.stop_daemon();
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_only_newsletter_to(&running, before, BOB);
    assert_opted_out(&running.export(ADA), "link");
}

#[test]
fn the_persons_undo_never_lifts_an_opt_out_the_operator_recorded_too() {
    let mut running = Running::start();
    let unsubscribe = list_unsubscribe_url(&running.message_to(ADA, 0));
    let done = running.post_form(&unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(done.status, 200, "{done:#?}");
    assert_opted_out(&running.export(ADA), "link");

    // Ada also replied "please stop"; the operator records it.
    let optout = running.winback(&["optout", ADA, "--now", NOW]);
    optout.assert_success();
    assert!(
        optout.stdout.contains("was already opted out"),
        "{}",
        optout.stdout
    );
    assert_opted_out(&running.export(ADA), "cli");

    // The Undo button on the confirmation page no longer subscribes her again.
    let undo = running.post_form(&format!("{unsubscribe}/undo"), "");
    assert_eq!(undo.status, 409, "{undo:#?}");
    assert!(
        undo.body.contains("We cannot undo this here"),
        "{}",
        undo.body
    );
    assert_opted_out(&running.export(ADA), "cli");

    // A later one-click from her link changes nothing either.
    let again = running.post_form(&unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(again.status, 200, "{again:#?}");
    assert_opted_out(&running.export(ADA), "cli");

    running.stop_daemon();
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_only_newsletter_to(&running, before, BOB);
}

#[test]
fn forged_altered_truncated_and_cross_client_tokens_change_nothing() {
    let mut running = Running::start();
    let ada_unsubscribe = list_unsubscribe_url(&running.message_to(ADA, 0));
    let ada_survey = survey_link(&running, &running.message_to(ADA, 0));
    let bob_unsubscribe = list_unsubscribe_url(&running.message_to(BOB, 0));
    let token = token_of(&ada_unsubscribe).to_string();
    let base = running.base_url.clone();
    let ada_before = running.export(ADA);
    assert_subscribed(&ada_before);

    // Ada's own enrollment, signed with another secret: a forgery of her link.
    let public_id = winback::token::Target::Enrollment(
        ada_before["enrollments"][0]["id"]
            .as_i64()
            .expect("an enrollment id in the export"),
    );
    let forged = winback::token::issue(
        &winback::token::Secret::from_text("not-the-test-secret"),
        winback::token::Purpose::Unsubscribe,
        public_id,
    );
    // The right secret, but an id no enrollment has.
    let unknown = winback::token::issue(
        &winback::token::Secret::from_text("test-secret"),
        winback::token::Purpose::Unsubscribe,
        winback::token::Target::Enrollment(999_999),
    );
    // The control: the test's secret signs Ada's id into exactly the emailed token.
    assert_eq!(
        winback::token::issue(
            &winback::token::Secret::from_text("test-secret"),
            winback::token::Purpose::Unsubscribe,
            public_id,
        ),
        token
    );
    let altered = |position: usize| {
        let mut bytes = token.clone().into_bytes();
        bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let middle = token.len() / 2;
    let refused = [
        ("forged with another secret", format!("{base}/u/{forged}")),
        ("unknown id", format!("{base}/u/{unknown}")),
        (
            "first character altered",
            format!("{base}/u/{}", altered(0)),
        ),
        (
            "middle character altered",
            format!("{base}/u/{}", altered(middle)),
        ),
        (
            "last character altered",
            format!("{base}/u/{}", altered(token.len() - 1)),
        ),
        (
            "truncated",
            format!("{base}/u/{}", &token[..token.len() - 1]),
        ),
        ("extended", format!("{base}/u/{token}A")),
        ("garbage", format!("{base}/u/not-a-token")),
        (
            "Ada's survey token on the unsubscribe route",
            format!("{base}/u/{}", token_of(&ada_survey)),
        ),
    ];
    for (what, url) in &refused {
        let answer = running.post_form(url, "List-Unsubscribe=One-Click");
        assert!(
            (400..500).contains(&answer.status),
            "{what}: POST {url} answered {answer:#?}"
        );
        assert!(
            answer.body.contains("This link is not valid"),
            "{what}: {}",
            answer.body
        );
    }
    for (what, url) in &refused[..2] {
        let answer = running.get(url);
        assert_eq!(answer.status, 404, "{what}: GET {url} answered {answer:#?}");
    }
    // Ada's unsubscribe token on the survey route: no form, no answer stored.
    let crossed = format!("{base}/s/{token}");
    assert_eq!(running.get(&crossed).status, 404);
    let answer = running.post_form(&crossed, "reason=price&stop=yes");
    assert!((400..500).contains(&answer.status), "{answer:#?}");
    // And a forged survey token.
    let forged_survey = winback::token::issue(
        &winback::token::Secret::from_text("not-the-test-secret"),
        winback::token::Purpose::Survey,
        public_id,
    );
    let answer = running.post_form(&format!("{base}/s/{forged_survey}"), "reason=price");
    assert_eq!(answer.status, 404, "{answer:#?}");

    // Nothing changed for Ada: no opt-out, no answer, no event.
    let ada_after = running.export(ADA);
    assert_subscribed(&ada_after);
    assert_eq!(ada_after["survey_answers"], serde_json::json!([]));
    assert_eq!(ada_after["events"], ada_before["events"]);
    assert_eq!(running.survey_report()["total"], 0);

    // Bob's valid link opts out Bob, and only Bob.
    let bob = running.post_form(&bob_unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(bob.status, 200, "{bob:#?}");
    assert_opted_out(&running.export(BOB), "link");
    assert_subscribed(&running.export(ADA));
    let status = running.status();
    assert_eq!(status["suppressions"], serde_json::json!({"opt_out": 1}));

    running.stop_daemon();
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_only_newsletter_to(&running, before, ADA);
}

#[test]
fn the_survey_link_shows_the_form_and_stores_and_updates_the_answer() {
    let mut running = Running::start();
    let ada_link = survey_link(&running, &running.message_to(ADA, 0));
    let bob_link = survey_link(&running, &running.message_to(BOB, 0));
    assert_ne!(ada_link, bob_link);
    // The HTML part carries the same link.
    assert!(
        running
            .message_to(ADA, 0)
            .html()
            .is_some_and(|html| html.contains(&ada_link)),
        "the HTML part lacks {ada_link}"
    );

    let form = running.get(&ada_link);
    assert_eq!(form.status, 200, "{form:#?}");
    for needle in [
        format!("<form method=\"post\" action=\"{ada_link}\""),
        "name=\"reason\" value=\"price\"".to_string(),
        "name=\"would_return\" value=\"maybe\"".to_string(),
        "<textarea id=\"better\" name=\"better\"".to_string(),
        "name=\"stop\"".to_string(),
        "Ada".to_string(),
    ] {
        assert!(
            form.body.contains(&needle),
            "no {needle} in:\n{}",
            form.body
        );
    }
    assert!(!form.body.contains(" checked"), "{}", form.body);
    assert_eq!(running.survey_report()["total"], 0);

    // The first answer.
    let thanks = running.post_form(
        &ada_link,
        "reason=price&better=Answer+the+phone%2C+please.%0D%0AAnd+invoices+on+time.&would_return=maybe",
    );
    assert_eq!(thanks.status, 200, "{thanks:#?}");
    assert_eq!(thanks.location, None);
    assert!(thanks.body.contains("Thank you, Ada"), "{}", thanks.body);
    assert!(
        !thanks.body.contains("will not contact you"),
        "{}",
        thanks.body
    );
    let report = running.survey_report();
    assert_eq!(report["total"], 1, "{report:#}");
    let answer = &report["answers"][0];
    assert_eq!(answer["email"], ADA);
    assert_eq!(answer["campaign"], "former-clients");
    assert_eq!(answer["reason"], "price");
    assert_eq!(
        answer["better"],
        "Answer the phone, please.\nAnd invoices on time."
    );
    assert_eq!(answer["would_return"], "maybe");
    assert_eq!(report["by_reason"]["price"], 1);
    assert_eq!(answer["answered_at"], answer["updated_at"]);
    // Answering is not opting out.
    assert_subscribed(&running.export(ADA));

    // The form comes back filled in.
    let form = running.get(&ada_link);
    assert!(
        form.body.contains("value=\"price\" checked"),
        "{}",
        form.body
    );
    assert!(form.body.contains("And invoices on time."), "{}", form.body);

    // A second answer replaces the first.
    let thanks = running.post_form(
        &ada_link,
        "reason=competitor&better=Nothing%2C+really.&would_return=yes",
    );
    assert_eq!(thanks.status, 200, "{thanks:#?}");
    let report = running.survey_report();
    assert_eq!(report["total"], 1, "{report:#}");
    let answer = &report["answers"][0];
    assert_eq!(answer["reason"], "competitor");
    assert_eq!(answer["better"], "Nothing, really.");
    assert_eq!(answer["would_return"], "yes");
    assert_eq!(report["by_reason"]["price"], 0);

    // A choice no form offers is refused and stores nothing.
    let refused = running.post_form(&ada_link, "reason=free_money&would_return=yes");
    assert_eq!(refused.status, 400, "{refused:#?}");
    assert_eq!(
        running.survey_report()["answers"][0]["reason"],
        "competitor"
    );

    // Bob answers and asks not to be contacted again.
    let thanks = running.post_form(
        &bob_link,
        "reason=needs_changed&better=&would_return=no&stop=yes",
    );
    assert_eq!(thanks.status, 200, "{thanks:#?}");
    assert!(
        thanks.body.contains("we will not contact you again"),
        "{}",
        thanks.body
    );
    let report = running.survey_report();
    assert_eq!(report["total"], 2, "{report:#}");
    let bob_answer = report["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == BOB)
        .expect("Bob's answer")
        .clone();
    assert_eq!(bob_answer["reason"], "needs_changed");
    assert_eq!(bob_answer["better"], Value::Null);
    assert_eq!(bob_answer["would_return"], "no");
    assert_opted_out(&running.export(BOB), "survey");
    assert_subscribed(&running.export(ADA));

    // A month later, only Ada gets the newsletter.
    running.stop_daemon();
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_only_newsletter_to(&running, before, ADA);
}

#[test]
fn export_and_forget_and_a_forgotten_address_stays_unmailed_after_a_reimport() {
    let mut running = Running::start();
    let ada_survey_link = survey_link(&running, &running.message_to(ADA, 0));
    let ada_unsubscribe = list_unsubscribe_url(&running.message_to(ADA, 0));
    let thanks = running.post_form(&ada_survey_link, "reason=price&better=Ada%27s+own+words");
    assert_eq!(thanks.status, 200, "{thanks:#?}");

    // Export: everything stored about Ada, and nothing about Bob.
    let export = running.export("Ada@Analytical.example");
    assert_eq!(export["email"], ADA);
    assert_eq!(export["client"]["email"], ADA);
    assert_eq!(export["client"]["company"], "Analytical Engines Ltd");
    assert_eq!(export["enrollments"].as_array().map(Vec::len), Some(1));
    let messages = export["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["state"], "sent");
    assert_eq!(export["survey_answers"][0]["better"], "Ada's own words");
    assert!(event_kinds(&export).contains(&"survey_answer".to_string()));
    assert!(!export.to_string().contains(BOB));
    let nobody = running.winback(&["export", "nobody@nowhere.example"]);
    nobody.assert_failure();
    assert!(nobody.stderr.contains("nothing is stored"), "{nobody:#?}");

    // Forget: the person is gone; their links no longer work; the address stays blocked.
    let forget = running.winback(&["forget", ADA, "--now", NOW]);
    forget.assert_success();
    assert!(forget.stdout.contains("is forgotten"), "{}", forget.stdout);
    let export = running.export(ADA);
    assert_eq!(export["client"], Value::Null);
    assert_eq!(export["suppression"]["reason"], "forgotten");
    assert_eq!(export["suppression"]["email"], Value::Null);
    assert_eq!(export["messages"], serde_json::json!([]));
    assert!(!export.to_string().contains("own words"));
    assert_eq!(running.survey_report()["total"], 0);
    assert_eq!(running.get(&ada_unsubscribe).status, 404);
    assert_eq!(running.get(&ada_survey_link).status, 404);
    assert_subscribed(&running.export(BOB));

    // The CRM export still lists Ada: re-imported, enrolled, never mailed.
    running.stop_daemon();
    running
        .winback(&["import", "clients.csv", "--now", LATER])
        .assert_success();
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_only_newsletter_to(&running, before, BOB);
    let export = running.export(ADA);
    assert_eq!(export["client"]["email"], ADA);
    assert_eq!(export["suppression"]["reason"], "forgotten");
    assert_eq!(export["messages"], serde_json::json!([]));
    assert!(
        !running.recipients()[before..].contains(&ADA.to_string()),
        "{:?}",
        running.recipients()
    );
}

/// Links must work for years: a `WINBACK_SECRET` set after mail went out becomes a new
/// key beside the old one (logged), and `secret rotate` another; the links signed by each
/// earlier key keep working, and new mail names its key.
#[test]
fn links_sent_before_a_secret_change_or_a_rotation_keep_working() {
    let mut running = Running::start();
    let ada_unsubscribe = list_unsubscribe_url(&running.message_to(ADA, 0));
    let bob_survey_link = survey_link(&running, &running.message_to(BOB, 0));
    running.stop_daemon();

    running
        .project
        .set_env("WINBACK_SECRET", "a secret set once mail had gone out");
    running.daemon = Some(running.project.spawn_winback(&["run", "--now", NOW]));
    running.wait_for_health();
    let done = running.post_form(&ada_unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(done.status, 200, "{done:#?}");
    assert!(done.body.contains("You are unsubscribed"), "{}", done.body);
    assert_opted_out(&running.export(ADA), "link");
    let stderr = running.stop_daemon().stderr;
    assert!(
        stderr.contains("WINBACK_SECRET is not one of the link keys") && stderr.contains("key 2"),
        "the new key is not logged:\n{stderr}"
    );

    let rotated = running.winback(&["secret", "rotate"]);
    rotated.assert_success();
    assert!(
        rotated.stdout.contains("made link key 3"),
        "{}",
        rotated.stdout
    );
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_only_newsletter_to(&running, before, BOB);
    let newsletter = running.smtp.messages()[before].clone();
    let bob_unsubscribe = list_unsubscribe_url(&newsletter);
    assert!(
        token_of(&bob_unsubscribe).starts_with('3'),
        "new mail is not signed with key 3: {bob_unsubscribe}"
    );

    running.daemon = Some(running.project.spawn_winback(&["run", "--now", LATER]));
    running.wait_for_health();
    // Bob's survey link, signed with the first key, still opens his form.
    let form = running.get(&bob_survey_link);
    assert_eq!(form.status, 200, "{form:#?}");
    let done = running.post_form(&bob_unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!(done.status, 200, "{done:#?}");
    // His sequence had ended with the newsletter; the opt-out is recorded all the same.
    let export = running.export(BOB);
    assert_eq!(export["suppression"]["reason"], "opt_out", "{export:#}");
    assert_eq!(export["suppression"]["source"], "link");
    running.stop_daemon();
}

#[test]
fn a_forgotten_persons_old_links_never_reach_someone_imported_later() {
    let running = Running::start();
    let bob_unsubscribe = list_unsubscribe_url(&running.message_to(BOB, 0));
    let bob_survey = survey_link(&running, &running.message_to(BOB, 0));
    running
        .winback(&["forget", BOB, "--now", NOW])
        .assert_success();
    // The CRM adds a new former client after Bob was forgotten.
    running.project.write_file(
        "carol.csv",
        "email,name,company,churned_at,churn_reason\n\
         carol@carpenters.example,Carol Carpenter,Carpenters Co,2026-01-12,price\n",
    );
    running
        .winback(&["import", "carol.csv", "--now", NOW])
        .assert_success();
    let carol = "carol@carpenters.example";
    assert_subscribed(&running.export(carol));

    // Bob's links get the page a forged link gets, and do nothing to Carol.
    let forged = format!(
        "{}/u/{}",
        running.base_url,
        winback::token::issue(
            &winback::token::Secret::from_text("not-the-test-secret"),
            winback::token::Purpose::Unsubscribe,
            winback::token::Target::Enrollment(1),
        )
    );
    let not_valid = running.get(&forged);
    assert_eq!(not_valid.status, 404, "{not_valid:#?}");
    let title = |answer: &Answer| -> String {
        answer
            .body
            .split("<h1>")
            .nth(1)
            .and_then(|rest| rest.split("</h1>").next())
            .unwrap_or(&answer.body)
            .to_string()
    };
    for url in [&bob_unsubscribe, &bob_survey] {
        let page = running.get(url);
        assert_eq!(
            (page.status, title(&page)),
            (404, title(&not_valid)),
            "GET {url}"
        );
        assert_eq!(page.body, not_valid.body, "GET {url}");
    }
    let post = running.post_form(&bob_unsubscribe, "List-Unsubscribe=One-Click");
    assert_eq!((post.status, title(&post)), (404, title(&not_valid)));
    assert_eq!(post.body, not_valid.body);
    let undo = running.post_form(&format!("{bob_unsubscribe}/undo"), "");
    assert_eq!(undo.status, 404, "{undo:#?}");
    let answer = running.post_form(&bob_survey, "reason=price&stop=yes");
    assert_eq!(answer.status, 404, "{answer:#?}");
    let export = running.export(carol);
    assert_subscribed(&export);
    assert_eq!(export["survey_answers"], serde_json::json!([]));
    assert_eq!(running.survey_report()["total"], 0);
}

#[test]
fn healthz_answers_ok_and_sigterm_stops_the_daemon_with_exit_0() {
    let mut running = Running::start();
    let health = running.get(&format!("{}/healthz", running.base_url));
    assert_eq!(health.status, 200);
    assert_eq!(health.body.trim(), "ok");
    let unknown = running.get(&format!("{}/nothing-here", running.base_url));
    assert_eq!(unknown.status, 404, "{unknown:#?}");

    let output = running.stop_daemon();
    assert!(
        !output.stderr.contains("ERROR") && !output.stderr.contains("panicked"),
        "{}",
        output.stderr
    );
    // Stopped means stopped: a pass afterwards can take the database (no stale lock) and
    // has nothing to send today.
    let before = running.smtp.messages().len();
    running.pass_at(NOW);
    assert_eq!(running.smtp.messages().len(), before);
}

/// People in the one-click burst: far beyond any per-address limit.
const BURST: usize = 500;
/// How long the daemon may take to mail them all their survey.
const BURST_MAIL_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn a_burst_of_one_click_unsubscribes_from_one_address_is_all_taken() {
    let mut csv = String::from("email,name,company,churned_at,churn_reason\n");
    for i in 0..BURST {
        csv.push_str(&format!(
            "person{i}@burst.example,Person {i},Burst Inc,2026-01-05,price\n"
        ));
    }
    let mut running = Running::start_with(&csv, BURST, BURST_MAIL_TIMEOUT, "", "warn");
    let links: Vec<String> = running
        .smtp
        .messages()
        .iter()
        .map(list_unsubscribe_url)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = links.iter().collect();
    assert_eq!(distinct.len(), BURST, "one link per person");

    // A mailbox provider's unsubscribe server posts every one of them from one address.
    let refused: Vec<(String, u16)> = links
        .iter()
        .filter_map(|url| {
            let answer = running.post_form(url, "List-Unsubscribe=One-Click");
            (answer.status != 200).then(|| (url.clone(), answer.status))
        })
        .collect();
    assert_eq!(refused, Vec::new(), "one-click unsubscribes refused");
    assert_eq!(
        running.status()["suppressions"],
        serde_json::json!({ "opt_out": BURST })
    );

    // A month later, not one of them gets the newsletter.
    running.stop_daemon();
    let before = running.smtp.messages().len();
    running.pass_at(LATER);
    assert_eq!(running.recipients()[before..], [] as [String; 0]);
}
