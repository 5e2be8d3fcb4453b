//! First run and daily operation, through the built binary: `preview` (one step, and the
//! gallery), `report` (its numbers against `status --format json`, and a headless
//! Chromium rendering it), `GET /metrics` against the outbox, `backup`, shell
//! `completions`, and the operator's safety: no command writes over the database or the
//! config, one daemon per database by any name, no server's escape sequence printed raw.
//!
//! Mail goes to a `file://` outbox, so counting messages is counting `.eml` files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Output, Project, free_port, wait_until};

const CAMPAIGN: &str = "former-clients";
/// A Tuesday afternoon: every client who left before early March 2026 is due.
const NOW: &str = "2026-06-02T15:00:00Z";
/// How long the daemon gets to send what is due and record it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long headless Chromium may take to screenshot the report before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// Four clients are due at `NOW` (Zoë's name is not ASCII, so her message is encoded);
/// Priya's survey falls inside the next twelve weeks; Liam is never contacted.
const CLIENTS: &str = "\
email,name,company,churned_at,churn_reason,timezone
maria.garcia@northwind.example,Maria Garcia,Northwind Traders,2025-03-14,competitor,America/Chicago
kenji.tanaka@sakura-logistics.example,Kenji Tanaka,Sakura Logistics,2025-06-02,acquisition,Asia/Tokyo
olivia.brown@brightlane.example,Olivia Brown,Brightlane Media,2025-09-20,price,Europe/London
zoe.muller@alpenwerk.example,Zoë Müller,Alpenwerk GmbH,2025-11-05,needs_changed,Europe/Berlin
priya.patel@lotus-health.example,Priya Patel,Lotus Health,2026-04-18,contact_left,Asia/Kolkata
liam.oconnor@emerald-ag.example,Liam O'Connor,Emerald Agriculture,2025-08-11,we_ended,Europe/Dublin
";
const DUE_NOW: usize = 4;

/// Each step's subject as rendered for the sample client (Jordan Rivera, Northwind).
const SAMPLE_SUBJECTS: [&str; 3] = [
    "Jordan, may we ask why you left?",
    "News from Acme Corp",
    "An article for Northwind Traders",
];

/// A project with the shipped templates, a `file://` outbox and three steps.
struct Ops {
    project: Project,
    port: u16,
}

impl Ops {
    fn new() -> Ops {
        let project = Project::new();
        let port = free_port();
        let outbox = project.path("outbox");
        project.write_config(&format!(
            r#"[database]
path = "winback.db"

[smtp]
url = "file://{outbox}"
from = "Acme Customer Success <success@acme.example>"
reply_to = "success@acme.example"

[http]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield, IL 62701, USA"

[templates]
dir = "templates"

[[campaign]]
name = "{CAMPAIGN}"
quiet_days = 90
send_at = "* * * * *"
timezone = "America/New_York"
exclude_reasons = ["we_ended"]

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{{{{#if first_name}}}}{{{{first_name}}}}, may{{{{else}}}}May{{{{/if}}}} we ask why you left?"

  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "News from {{{{sender.company}}}}"

  [[campaign.step]]
  kind = "article"
  after_days = 45
  template = "article"
  subject = "An article for {{{{company}}}}"
"#,
            outbox = outbox.display(),
        ));
        project.write_file("clients.csv", CLIENTS);
        let ops = Ops { project, port };
        ops.winback(&["check"]);
        ops.winback(&["import", "clients.csv"]);
        ops
    }

    /// `winback --now NOW ARGS…`, which must succeed.
    #[track_caller]
    fn winback(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        output.assert_success();
        output
    }

    /// `winback --now NOW ARGS…`, whatever its outcome.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--now", NOW];
        all.extend_from_slice(args);
        self.project.winback(&all)
    }

    /// One delivery pass at `NOW`: the due surveys go to the outbox.
    fn send_due(&self) {
        self.winback(&["run", "--once"]);
        assert_eq!(
            self.eml_files().len(),
            DUE_NOW,
            "surveys in the outbox after one pass"
        );
    }

    fn eml_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.project.path("outbox")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
    }

    /// The `.eml` addressed to `email`.
    fn eml_to(&self, email: &str) -> String {
        self.eml_files()
            .iter()
            .map(|p| fs::read_to_string(p).expect("read an .eml file"))
            .find(|text| header(text, "To").is_some_and(|to| to.contains(email)))
            .unwrap_or_else(|| panic!("no message to {email} in the outbox"))
    }

    fn status(&self) -> Value {
        let output = self.winback(&["status", "--format", "json"]);
        serde_json::from_str(&output.stdout).expect("status --format json prints JSON")
    }
}

/// A header of a message file, unfolded (as on the wire: encoded words stay encoded).
fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or(message);
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((key, rest)) = line.split_once(':')
            && key.eq_ignore_ascii_case(name)
        {
            value = Some(rest.trim().to_string());
        }
    }
    value
}

/// The line of `text` that starts with `prefix`.
#[track_caller]
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

/// The number in `data-ATTR="N"` right after `anchor` in `html`.
#[track_caller]
pub(crate) fn number_after(html: &str, anchor: &str, attribute: &str) -> u64 {
    let at = html
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor:?} is not in the report"));
    let rest = &html[at..];
    let key = format!("{attribute}=\"");
    let start = rest
        .find(&key)
        .unwrap_or_else(|| panic!("no {attribute} after {anchor:?}"))
        + key.len();
    let digits: String = rest[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{attribute} after {anchor:?} is not a number"))
}

fn count(value: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(value, |v, key| &v[*key])
        .as_u64()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// preview
// ---------------------------------------------------------------------------------------

#[test]
fn preview_shows_the_message_a_client_gets_decoded_with_the_daemons_links() {
    let ops = Ops::new();
    ops.send_due();
    let zoe = "zoe.muller@alpenwerk.example";
    let html_path = ops.project.path("zoe.html");
    let html_arg = html_path.to_string_lossy().to_string();
    let output = ops.winback(&[
        "preview",
        "--campaign",
        CAMPAIGN,
        "--step",
        "1",
        "--email",
        zoe,
        "--html",
        &html_arg,
    ]);
    let out = &output.stdout;

    assert_eq!(
        line_starting(out, "Subject: "),
        "Subject: Zoë, may we ask why you left?"
    );
    let from = line_starting(out, "From: ");
    assert!(
        from.contains("Acme Customer Success") && from.ends_with("<success@acme.example>"),
        "{from}"
    );
    let to = line_starting(out, "To: ");
    assert!(to.contains("Zoë Müller") && to.contains(zoe), "{to}");
    assert!(
        out.contains("\nHi Zoë,"),
        "the text part greets her by name:\n{out}"
    );
    assert!(
        out.contains("Alpenwerk GmbH is no longer a client of Acme Corp"),
        "{out}"
    );
    for soup in ["=20", "=3D", "=C3", "=\n", "=?utf-8?"] {
        assert!(
            !out.contains(soup),
            "quoted-printable or encoded-word residue {soup:?} in:\n{out}"
        );
    }
    assert_eq!(
        line_starting(out, "List-Unsubscribe-Post: "),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    );

    // The same link the daemon put in the message it sent her.
    let sent = ops.eml_to(zoe);
    let sent_link =
        header(&sent, "List-Unsubscribe").expect("the sent message has List-Unsubscribe");
    let preview_link =
        line_starting(out, "List-Unsubscribe: ").trim_start_matches("List-Unsubscribe: ");
    assert_eq!(preview_link, sent_link);
    assert!(
        sent_link.starts_with(&format!("<http://127.0.0.1:{}/u/", ops.port)),
        "{sent_link}"
    );
    let url = sent_link.trim_start_matches('<').trim_end_matches('>');
    let html = fs::read_to_string(&html_path).expect("--html writes the HTML part");
    assert!(html.contains(url), "the HTML part links {url}");
    assert!(
        html.contains("Zo&#xEB;") || html.contains("Zoë"),
        "the HTML part greets her"
    );
    assert!(
        out.contains(&format!("{}", html_path.display())),
        "says where the HTML went:\n{out}"
    );
}

#[test]
fn preview_without_email_uses_the_sample_client_and_an_unknown_one_is_refused() {
    let mut ops = Ops::new();
    let output = ops.winback(&["preview", "--campaign", CAMPAIGN, "--step", "2"]);
    assert_eq!(
        line_starting(&output.stdout, "Subject: "),
        "Subject: News from Acme Corp"
    );
    assert!(output.stdout.contains("sample client"), "{}", output.stdout);
    assert!(
        line_starting(&output.stdout, "List-Unsubscribe: ").contains("/u/PREVIEW-NOT-A-REAL-LINK"),
        "a sample's links are clearly fake:\n{}",
        output.stdout
    );

    let unknown = ops.run(&[
        "preview",
        "--campaign",
        CAMPAIGN,
        "--step",
        "1",
        "--email",
        "nobody@example.com",
    ]);
    unknown.assert_failure();
    assert!(
        unknown
            .stderr
            .contains("nobody@example.com is not a known former client"),
        "{}",
        unknown.stderr
    );

    let maria = "maria.garcia@northwind.example";
    ops.winback(&["optout", maria]);
    let opted = ops.winback(&[
        "preview",
        "--campaign",
        CAMPAIGN,
        "--step",
        "1",
        "--email",
        maria,
    ]);
    assert!(
        opted
            .stdout
            .contains("they opted out, so nothing more will be sent to them"),
        "{}",
        opted.stdout
    );

    let no_step = ops.run(&["preview", "--campaign", CAMPAIGN, "--step", "9"]);
    no_step.assert_failure();
    assert!(no_step.stderr.contains("has 3 steps"), "{}", no_step.stderr);
    let no_campaign = ops.run(&["preview", "--campaign", "nope", "--step", "1"]);
    no_campaign.assert_failure();
    assert!(
        no_campaign.stderr.contains(CAMPAIGN),
        "names the campaigns there are: {}",
        no_campaign.stderr
    );

    // No browser launcher: a warning, and the HTML is still written.
    let empty_path = ops.project.path("no-programs");
    fs::create_dir_all(&empty_path).unwrap();
    ops.project.set_env("PATH", &empty_path.to_string_lossy());
    let html = ops.project.path("step1.html");
    let opened = ops.run(&[
        "preview",
        "--campaign",
        CAMPAIGN,
        "--step",
        "1",
        "--html",
        &html.to_string_lossy(),
        "--open",
    ]);
    ops.project.unset_env("PATH");
    opened.assert_success();
    assert!(
        opened.stderr.contains("warning: could not start"),
        "{}",
        opened.stderr
    );
    assert!(html.exists());
}

#[test]
fn gallery_shows_every_step_with_its_timing() {
    let ops = Ops::new();
    let output = ops.winback(&["preview", "--campaign", CAMPAIGN, "--gallery", "gallery"]);
    assert!(output.stdout.contains("index.html"), "{}", output.stdout);
    let page = ops.project.read_file("gallery/index.html");
    for subject in SAMPLE_SUBJECTS {
        assert!(page.contains(subject), "the gallery shows {subject:?}");
    }
    for timing in [
        "90 quiet days after the client left",
        "+30 days after step 1",
        "+45 days after step 2",
    ] {
        assert!(page.contains(timing), "the gallery says {timing:?}");
    }
    assert!(
        page.contains("<code>* * * * *</code>"),
        "the send_at expression"
    );
    assert!(page.contains("America/New_York"), "the campaign's zone");
    assert_eq!(page.matches("<iframe").count(), 3, "one frame per step");
    assert!(!page.contains("allow-scripts"), "the frames run no scripts");
    // Each step's HTML sits escaped inside its srcdoc attribute, which ends at the frame.
    for frame in page.split("srcdoc=\"").skip(1) {
        let end = frame.find('"').expect("srcdoc ends");
        let inside = &frame[..end];
        assert!(
            inside.contains("&lt;") && !inside.contains('<'),
            "escaped markup in srcdoc"
        );
        assert!(
            frame[end..].starts_with("\"></iframe>"),
            "the attribute closes where the frame does"
        );
    }
    assert!(!page.contains("<script"), "no scripts");
    assert!(
        !page.contains("<link "),
        "self-contained: no stylesheets from elsewhere"
    );
}

// ---------------------------------------------------------------------------------------
// report
// ---------------------------------------------------------------------------------------

/// Sends the due surveys, opts Kenji out, records Olivia's return, writes the report.
fn reported() -> (Ops, String, PathBuf) {
    let ops = Ops::new();
    ops.send_due();
    ops.winback(&["optout", "kenji.tanaka@sakura-logistics.example"]);
    ops.winback(&["returned", "olivia.brown@brightlane.example"]);
    let path = ops.project.path("report.html");
    let output = ops.winback(&["report", "--html", &path.to_string_lossy()]);
    assert!(output.stdout.contains("report.html"), "{}", output.stdout);
    let html = fs::read_to_string(&path).expect("report --html writes the page");
    (ops, html, path)
}

#[test]
fn report_numbers_match_the_database() {
    let (ops, html, _) = reported();
    let status = ops.status();
    let enrollments = &status["enrollments"][CAMPAIGN];
    let enrolled: u64 = enrollments
        .as_object()
        .expect("enrollments by state")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let stage = |key: &str| number_after(&html, &format!("data-stage=\"{key}\""), "data-count");

    assert_eq!(stage("left"), count(&status, &["clients"]));
    assert_eq!(stage("enrolled"), enrolled);
    assert_eq!(
        stage("surveyed"),
        count(&status, &["messages", CAMPAIGN, "sent"]),
        "only surveys are out"
    );
    assert_eq!(stage("answered"), count(&status, &["survey_answers"]));
    assert_eq!(stage("came_back"), count(enrollments, &["returned"]));
    // And what those are, here.
    assert_eq!(
        (
            stage("left"),
            stage("enrolled"),
            stage("surveyed"),
            stage("came_back")
        ),
        (6, 5, 4, 1)
    );

    let step1 = format!("data-campaign=\"{CAMPAIGN}\" data-step=\"1\"");
    assert_eq!(
        number_after(&html, &step1, "data-opt-outs"),
        count(enrollments, &["opted_out"])
    );
    assert_eq!(number_after(&html, &step1, "data-bounces"), 0);

    // The next twelve weeks: the next message of each sequence `plan` lists, Maria's and
    // Zoë's newsletter (Kenji opted out, Olivia came back) and Priya's survey.
    let plan = ops.winback(&["plan", "--days", "84", "--format", "json"]);
    let planned: Vec<Value> = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let sequences: std::collections::BTreeSet<(&str, &str)> = planned
        .iter()
        .filter_map(|p| Some((p["email"].as_str()?, p["campaign"].as_str()?)))
        .collect();
    let weekly: u64 = (1..=12)
        .map(|w| number_after(&html, &format!("data-week=\"{w}\""), "data-count"))
        .sum();
    assert_eq!(weekly, sequences.len() as u64, "{planned:?}");
    assert_eq!(weekly, 3);

    assert!(html.contains("<svg"), "inline SVG charts");
    for outside in [
        "<script",
        "<link ",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(
            !html.contains(outside),
            "self-contained, but found {outside:?}"
        );
    }
}

#[test]
fn report_renders_in_headless_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: install the `chromium` package (apt-get install chromium), or run `bash .ci/run`, which installs it"
    );
    let (ops, _, report) = reported();
    let profile = tempfile::tempdir().expect("a temporary Chromium profile");
    let png = ops.project.path("report.png");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,2000")
        .arg(format!("file://{}", report.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut status = None;
    let finished = wait_until(CHROMIUM_TIMEOUT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("chromium did not finish the screenshot within {CHROMIUM_TIMEOUT:?}; killed it");
    }
    let status = status.expect("an exit status");
    assert!(status.success(), "chromium failed: {status}");
    let bytes = fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a screenshot of a page with charts, not a blank one ({} bytes)",
        bytes.len()
    );
}

// ---------------------------------------------------------------------------------------
// metrics, backup, completions
// ---------------------------------------------------------------------------------------

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_the_outbox_while_the_daemon_runs_and_backup_copies_it_live() {
    let ops = Ops::new();
    let daemon = ops.project.spawn_winback(&["--now", NOW, "run"]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/metrics", ops.port);
    let mut scrape = String::new();
    let mut content_type = String::new();
    let settled = wait_until(DELIVERY_TIMEOUT, || {
        let Ok(response) = client.get(&url).send() else {
            return false;
        };
        content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        scrape = response.text().unwrap_or_default();
        sample(&scrape, "winback_messages{state=\"sent\"}") == Some(DUE_NOW as f64)
    });
    assert!(
        settled,
        "the daemon did not record {DUE_NOW} sends; last scrape:\n{scrape}\n{}",
        daemon.stderr_so_far()
    );

    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert_eq!(
        sample(&scrape, "winback_messages{state=\"sent\"}"),
        Some(ops.eml_files().len() as f64)
    );
    assert_eq!(
        sample(&scrape, "winback_messages{state=\"uncertain\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&scrape, "winback_opt_outs_total"), Some(0.0));
    assert_eq!(
        sample(&scrape, "winback_suppressions{reason=\"bounce\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&scrape, "winback_queue_depth"),
        Some(0.0),
        "nothing left due:\n{scrape}"
    );
    assert_eq!(sample(&scrape, "winback_oldest_due_seconds"), Some(0.0));
    assert!(
        scrape.contains("# TYPE winback_queue_depth gauge"),
        "{scrape}"
    );

    ops.winback(&["optout", "maria.garcia@northwind.example"]);
    let opted = client.get(&url).send().unwrap().text().unwrap();
    assert_eq!(
        sample(&opted, "winback_opt_outs_total"),
        Some(1.0),
        "{opted}"
    );
    assert_eq!(
        sample(&opted, "winback_suppressions{reason=\"opt_out\"}"),
        Some(1.0),
        "{opted}"
    );

    // Not for the outside world: a request relayed by a proxy is not answered.
    let relayed = client
        .get(&url)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .unwrap();
    assert_eq!(relayed.status().as_u16(), 404);
    // Not rate-limited like the recipients' routes (30 a minute).
    for _ in 0..40 {
        assert_eq!(client.get(&url).send().unwrap().status().as_u16(), 200);
    }

    // A backup of the live database, while the daemon holds it.
    let backup = ops.project.path("live-backup.db");
    let output = ops.winback(&["backup", &backup.to_string_lossy()]);
    assert!(
        output.stdout.contains("live-backup.db") && output.stdout.contains("bytes"),
        "{}",
        output.stdout
    );
    let copy = rusqlite::Connection::open(&backup).expect("the backup opens");
    let sent: i64 = copy
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE state = 'sent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sent as usize, DUE_NOW);

    daemon.stop(Duration::from_secs(10)).assert_success();
}

#[test]
fn backup_is_a_private_copy_that_never_overwrites_by_accident() {
    let ops = Ops::new();
    let clients = count(&ops.status(), &["clients"]);
    let backup = ops.project.path("backup.db");
    let target = backup.to_string_lossy().to_string();
    let output = ops.winback(&["backup", &target]);
    assert!(
        output.stdout.contains(&target),
        "prints the path: {}",
        output.stdout
    );
    let size = fs::metadata(&backup).expect("the backup exists").len();
    assert!(
        output.stdout.contains(&format!("{size} bytes")),
        "prints the size: {}",
        output.stdout
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the owner may read a backup");
    }
    let copy = rusqlite::Connection::open(&backup).expect("the backup opens");
    let copied: i64 = copy
        .query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(copied as u64, clients);
    drop(copy);

    let again = ops.run(&["backup", &target]);
    again.assert_failure();
    assert!(
        again.stderr.contains("already exists") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    ops.winback(&["backup", &target, "--force"]);

    let database = ops.project.path("winback.db");
    let onto_itself = ops.run(&["backup", &database.to_string_lossy(), "--force"]);
    onto_itself.assert_failure();
    assert!(
        onto_itself.stderr.contains("live database itself"),
        "{}",
        onto_itself.stderr
    );
    let leftovers: Vec<String> = fs::read_dir(ops.project.root())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n.contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "no partial files left: {leftovers:?}");
}

/// A typo must not cost the database or the configuration: `report --html` and `preview
/// --html` refuse them (by any name, even with --force) and refuse any existing file
/// without --force.
#[test]
fn report_and_preview_never_write_over_the_database_or_the_config() {
    let ops = Ops::new();
    ops.send_due();
    let database = ops.project.path("winback.db");
    let config = ops.project.config_path();
    let config_before = fs::read(&config).unwrap();
    let sent_before = ops.winback(&["status", "--format", "json"]).stdout;
    let link = ops.project.path("link-to.db");
    std::os::unix::fs::symlink(&database, &link).unwrap();
    for target in [&database, &link] {
        for force in [false, true] {
            let target = target.to_string_lossy();
            let mut args = vec!["report", "--html", &target];
            if force {
                args.push("--force");
            }
            let refused = ops.run(&args);
            refused.assert_failure();
            assert!(
                refused.stderr.contains("live database itself")
                    && refused.stderr.contains("never writes over it"),
                "{}",
                refused.stderr
            );
        }
    }
    let preview = ops.run(&[
        "preview",
        "--campaign",
        CAMPAIGN,
        "--step",
        "1",
        "--html",
        &config.to_string_lossy(),
        "--force",
    ]);
    preview.assert_failure();
    assert!(
        preview.stderr.contains("the configuration"),
        "{}",
        preview.stderr
    );
    assert_eq!(fs::read(&config).unwrap(), config_before);
    // The database is whole: the same figures as before.
    assert_eq!(
        ops.winback(&["status", "--format", "json"]).stdout,
        sent_before
    );

    // An ordinary file: refused without --force, replaced with it.
    let page = ops.project.write_file("page.html", "mine");
    let refused = ops.run(&["report", "--html", &page.to_string_lossy()]);
    refused.assert_failure();
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(fs::read_to_string(&page).unwrap(), "mine");
    ops.winback(&["report", "--html", &page.to_string_lossy(), "--force"]);
    assert!(
        fs::read_to_string(&page)
            .unwrap()
            .contains("<!DOCTYPE html>")
    );
}

/// One daemon per database, whatever name leads to it: a second daemon whose config
/// reaches the live database through a symlink is refused and sends nothing.
#[test]
fn a_second_daemon_through_a_symlink_to_the_database_is_refused() {
    let ops = Ops::new();
    let daemon = ops.project.spawn_winback(&["--now", NOW, "run"]);
    assert!(
        wait_until(DELIVERY_TIMEOUT, || ops.eml_files().len() == DUE_NOW),
        "the daemon did not send:\n{}",
        daemon.stderr_so_far()
    );
    let other = Project::new();
    std::os::unix::fs::symlink(ops.project.path("winback.db"), other.path("alias.db")).unwrap();
    let config = fs::read_to_string(ops.project.config_path())
        .unwrap()
        .replace("path = \"winback.db\"", "path = \"alias.db\"")
        .replace(&format!(":{}", ops.port), &format!(":{}", free_port()));
    assert!(config.contains("alias.db"));
    other.write_config(&config);
    let second = other.winback(&["--now", NOW, "run", "--once"]);
    second.assert_failure();
    assert!(
        second
            .stderr
            .contains("another winback daemon is already running"),
        "{}",
        second.stderr
    );
    assert_eq!(
        ops.eml_files().len(),
        DUE_NOW,
        "the second daemon sent mail"
    );
    daemon.stop(Duration::from_secs(10)).assert_success();
}

/// The reply every recipient gets from [`hostile_smtp_server`]: a temporary refusal whose
/// text clears the screen, retitles the terminal and turns what follows red.
const HOSTILE_REPLY: &str = "451 4.7.1 \x1b[2J\x1b]0;owned\x07Try again later\x1b[31m";

/// A minimal SMTP server on 127.0.0.1 that refuses every recipient with
/// [`HOSTILE_REPLY`]; its port.
fn hostile_smtp_server() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("a local address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let Ok(reader) = stream.try_clone() else {
                    return;
                };
                let _ = stream.write_all(b"220 hostile.example ESMTP\r\n");
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { return };
                    let command = line.to_ascii_uppercase();
                    let reply = match command.get(..4).unwrap_or("") {
                        "EHLO" | "HELO" => "250 hostile.example",
                        "MAIL" | "RSET" | "NOOP" => "250 2.0.0 Ok",
                        "RCPT" => HOSTILE_REPLY,
                        "QUIT" => {
                            let _ = stream.write_all(b"221 2.0.0 Bye\r\n");
                            return;
                        }
                        _ => "502 5.5.2 Not implemented",
                    };
                    if stream.write_all(format!("{reply}\r\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Nothing a mail server sends reaches the operator's terminal raw: a reply full of
/// escape sequences is shown by the log, `status` and `outbox list` without them.
#[test]
fn escape_sequences_in_a_servers_reply_never_reach_the_terminal() {
    let ops = Ops::new();
    ops.project.fill_placeholders();
    let config = fs::read_to_string(ops.project.config_path()).unwrap();
    let url_line = config
        .lines()
        .find(|l| l.starts_with("url = \"file://"))
        .expect("the file:// url line")
        .to_string();
    let port = hostile_smtp_server();
    let public_url_line = config
        .lines()
        .find(|l| l.starts_with("public_url = "))
        .expect("the public_url line")
        .to_string();
    // Mail to a server needs links recipients can open.
    ops.project.write_config(
        &config
            .replace(
                &url_line,
                &format!("url = \"smtp://127.0.0.1:{port}\"\nconnections = 1"),
            )
            .replace(
                &public_url_line,
                "public_url = \"https://winback.acme.example\"",
            ),
    );
    let pass = ops.winback(&["run", "--once"]);
    let list = ops.winback(&["outbox", "list"]);
    let status = ops.winback(&["status"]);
    for (what, text) in [
        ("the log", &pass.stderr),
        ("outbox list", &list.stdout),
        ("status", &status.stdout),
    ] {
        assert!(
            text.contains("Try again later"),
            "{what} does not show the reply:\n{text}"
        );
        // The log may colour its own fields; the server's sequences must be gone.
        for sequence in ["\x1b[2J", "\x1b]0;", "\x07", "\x1b[31m"] {
            assert!(
                !text.contains(sequence),
                "{what} prints the server's {sequence:?}: {text:?}"
            );
        }
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    let project = Project::new();
    for shell in ["bash", "zsh", "fish"] {
        let output = project.winback(&["completions", shell]);
        output.assert_success();
        assert!(!output.stdout.trim().is_empty(), "{shell}: empty script");
        assert!(
            output.stdout.contains("import"),
            "{shell}: the script knows `import`"
        );
        assert!(output.stdout.contains("preview"), "{shell}: and `preview`");
    }
    let output = project.winback(&["completions", "tcsh"]);
    output.assert_failure();
}
