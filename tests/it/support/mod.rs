//! Shared helpers for the integration tests: a real SMTP server (`SmtpServer`, a Python
//! aiosmtpd process from `smtp_server.py` beside this file), a temporary project directory
//! that runs the built `winback` binary against its own config (`Project`), and bounded
//! polling (`wait_until`). Every wait here has a deadline; nothing sleeps for a fixed time
//! to let something happen, and every server binds 127.0.0.1 only.
//!
//! The SMTP server needs a Python with aiosmtpd: Debian's `python3-aiosmtpd`
//! (`bash .ci/run` installs it), or `pip install aiosmtpd`, or `WINBACK_TEST_PYTHON`.
//! A machine without one fails the tests with that advice; they never skip silently.

// Each test module uses a different subset of these helpers.
#![allow(dead_code)]
pub mod imap;
pub mod wakeups;
pub mod webdriver;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

/// How long `SmtpServer::start` waits for the server to report its port.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `Project::winback` lets one command run before killing it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server gets to exit after SIGTERM (or the daemon in `Drop`).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

const SMTP_SERVER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/support/smtp_server.py"
);

// ---------------------------------------------------------------------------------------
// Polling and ports
// ---------------------------------------------------------------------------------------

/// Polls `condition` until it returns true or `timeout` has passed; returns whether it
/// became true. Polls often at first (every 5 ms), then at most every 100 ms.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The sections a test configuration starts with, `[database]` to `[templates]`: mail to
/// `smtp_url`, the HTTP listener on `listen`, links under `https://winback.acme.example`.
/// Campaigns (and any other section) follow.
pub fn settings(smtp_url: &str, listen: &str) -> String {
    format!(
        r#"[database]
path = "winback.db"

[smtp]
url = "{smtp_url}"
from = "Acme Customer Success <success@acme.example>"

[http]
listen = "{listen}"
public_url = "https://winback.acme.example"

[sender]
company = "Acme Corp"
postal_address = "1 Main Street, Springfield"

[templates]
dir = "templates"
"#
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
/// Another process can take it in between; tests use it for the daemon's HTTP listener.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

// ---------------------------------------------------------------------------------------
// Python with aiosmtpd
// ---------------------------------------------------------------------------------------

/// The Python interpreter that runs `smtp_server.py`: the first of `$WINBACK_TEST_PYTHON`,
/// `python3` on PATH and `/usr/bin/python3` that can `import aiosmtpd`. Panics, saying
/// what to install, when there is none. Looked up once per test binary.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_python) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

fn find_python() -> Result<PathBuf, String> {
    const INSTALL: &str = "The integration tests run a real SMTP server on Python's aiosmtpd. \
        Install it with `apt-get install python3-aiosmtpd` (Debian's /usr/bin/python3) or \
        `pip install aiosmtpd`, or run `bash .ci/run`, which installs everything the tests \
        need; or point WINBACK_TEST_PYTHON at a python that has aiosmtpd.";

    if let Some(chosen) = std::env::var_os("WINBACK_TEST_PYTHON").filter(|v| !v.is_empty()) {
        let chosen = PathBuf::from(chosen);
        return match can_import_aiosmtpd(&chosen) {
            Ok(()) => Ok(chosen),
            Err(why) => Err(format!(
                "WINBACK_TEST_PYTHON={} cannot import aiosmtpd: {why}. {INSTALL}",
                chosen.display()
            )),
        };
    }

    let mut tried = Vec::new();
    for candidate in ["python3", "/usr/bin/python3"] {
        let candidate = PathBuf::from(candidate);
        match can_import_aiosmtpd(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(why) => tried.push(format!("  {}: {why}", candidate.display())),
        }
    }
    Err(format!(
        "no python that can `import aiosmtpd` was found.\n{}\n{INSTALL}",
        tried.join("\n")
    ))
}

fn can_import_aiosmtpd(python: &Path) -> Result<(), String> {
    let output = Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("could not run it ({error})"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_line = stderr.lines().last().unwrap_or("").trim();
        Err(format!("`import aiosmtpd` failed ({last_line})"))
    }
}

// ---------------------------------------------------------------------------------------
// SMTP server
// ---------------------------------------------------------------------------------------

/// One message the SMTP server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// 1, 2, 3, … in the order the server accepted them.
    pub seq: u64,
    /// The envelope sender (MAIL FROM).
    pub mail_from: String,
    /// The envelope recipients the server accepted (RCPT TO).
    pub rcpt_tos: Vec<String>,
    /// The message as received (headers and body, CRLF line ends, dot-unstuffed).
    pub raw: String,
}

impl Captured {
    /// The first header called `name` (case-insensitive), unfolded, or None. The value is
    /// as on the wire: an encoded word (`=?utf-8?...?=`) stays encoded.
    pub fn header(&self, name: &str) -> Option<String> {
        find_header(&parse_headers(split_entity(&self.raw).0), name)
    }

    /// `header`, with RFC 2047 encoded words decoded (`=?utf-8?b?Wm/Dqw==?=` → `Zoë`).
    pub fn header_decoded(&self, name: &str) -> Option<String> {
        self.header(name).map(|value| decode_encoded_words(&value))
    }

    /// All header fields in order, each as (name, unfolded value).
    pub fn headers(&self) -> Vec<(String, String)> {
        parse_headers(split_entity(&self.raw).0)
    }

    /// Everything after the blank line that ends the headers, as on the wire.
    pub fn body(&self) -> &str {
        split_entity(&self.raw).1
    }

    /// The decoded `text/plain` part (or the whole body of a plain message).
    pub fn text(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The decoded `text/html` part.
    pub fn html(&self) -> Option<String> {
        self.part("text/html")
    }

    /// The first leaf part, at any depth of multipart nesting, whose content type starts
    /// with `content_type` (e.g. `text/html`), with its transfer encoding (quoted-printable,
    /// base64) undone and read as UTF-8.
    pub fn part(&self, content_type: &str) -> Option<String> {
        find_part(&self.raw, &content_type.to_ascii_lowercase())
    }
}

/// Splits a MIME entity into its header block and its body.
fn split_entity(raw: &str) -> (&str, &str) {
    if let Some(body) = raw.strip_prefix("\r\n").or_else(|| raw.strip_prefix('\n')) {
        return ("", body);
    }
    match (raw.find("\r\n\r\n"), raw.find("\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (&raw[..lf], &raw[lf + 2..]),
        (Some(crlf), _) => (&raw[..crlf], &raw[crlf + 4..]),
        (None, Some(lf)) => (&raw[..lf], &raw[lf + 2..]),
        (None, None) => (raw, ""),
    }
}

fn parse_headers(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

fn find_header(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone())
}

/// A parameter of a structured header value: `boundary` of `multipart/alternative;
/// boundary="abc"`.
fn header_parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|piece| {
        let (key, value) = piece.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

fn find_part(entity: &str, wanted: &str) -> Option<String> {
    let (block, body) = split_entity(entity);
    let fields = parse_headers(block);
    let content_type = find_header(&fields, "Content-Type").unwrap_or_else(|| "text/plain".into());
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = header_parameter(&content_type, "boundary")?;
        return multipart_bodies(body, &boundary)
            .into_iter()
            .find_map(|part| find_part(&part, wanted));
    }
    if !mime.starts_with(wanted) {
        return None;
    }
    let encoding = find_header(&fields, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.trim() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            use base64::Engine as _;
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_else(|error| panic!("bad base64 in a {mime} part: {error}"))
        }
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The entities between `--boundary` lines (the CRLF before each delimiter belongs to it).
fn multipart_bodies(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split('\n') {
        let bare = line.strip_suffix('\r').unwrap_or(line).trim_end();
        if bare == delimiter || bare == close {
            if let Some(lines) = current.take() {
                let joined = lines.join("\n");
                parts.push(joined.strip_suffix('\r').unwrap_or(&joined).to_string());
            }
            if bare == close {
                break;
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    parts
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' {
            let rest = &bytes[index + 1..];
            if rest.starts_with(b"\r\n") {
                index += 3; // soft line break
                continue;
            }
            if rest.starts_with(b"\n") {
                index += 2;
                continue;
            }
            if let (Some(high), Some(low)) = (
                rest.first().copied().and_then(hex_value),
                rest.get(1).copied().and_then(hex_value),
            ) {
                decoded.push(high * 16 + low);
                index += 3;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    decoded
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`), read as UTF-8; whitespace
/// between two encoded words is dropped, as the RFC says.
fn decode_encoded_words(value: &str) -> String {
    let mut decoded = String::new();
    let mut rest = value;
    let mut previous_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match decode_one_word(candidate) {
            Some((text, length)) => {
                if !(previous_was_word && before.trim().is_empty()) {
                    decoded.push_str(before);
                }
                decoded.push_str(&text);
                rest = &candidate[length..];
                previous_was_word = true;
            }
            None => {
                decoded.push_str(before);
                decoded.push_str("=?");
                rest = &candidate[2..];
                previous_was_word = false;
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// One encoded word at the start of `text`: its decoded text and its length.
fn decode_one_word(text: &str) -> Option<(String, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (_charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let payload = &inner[..end];
    if payload.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()?
        }
        "Q" | "q" => decode_quoted_printable(&payload.replace('_', " ")),
        _ => return None,
    };
    let length = text.len() - inner.len() + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), length))
}

/// One recipient the server refused because of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rejected {
    pub mail_from: String,
    pub rcpt: String,
    pub code: u16,
    pub peer: String,
}

#[derive(Deserialize)]
struct LogLine {
    seq: u64,
    mail_from: String,
    rcpt_tos: Vec<String>,
}

/// A real SMTP server on 127.0.0.1 (aiosmtpd, in a child process) that saves every message
/// it accepts. Rules (`{"delay_ms": N, "rules": [{"rcpt", "code", "times"}]}`, see
/// `smtp_server.py`) make it refuse recipients or answer slowly, and can change while it
/// runs. Killed when dropped.
pub struct SmtpServer {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl SmtpServer {
    /// Starts a server with these rules (`serde_json::json!({})` or `Value::Null` for none)
    /// and waits (at most 10 s) until it listens.
    pub fn start(rules: serde_json::Value) -> SmtpServer {
        let python = python();
        let dir = tempfile::Builder::new()
            .prefix("winback-smtp-")
            .tempdir()
            .expect("create a temporary directory for the SMTP server");
        let maildir = dir.path().join("mail");
        fs::create_dir(&maildir).expect("create the SMTP server's maildir");
        let rules_path = dir.path().join("rules.json");
        write_atomically(&rules_path, &rules_json(&rules));
        let port_file = dir.path().join("port");
        let server_log = fs::File::create(dir.path().join("server.log"))
            .expect("create the SMTP server's log file");

        let child = Command::new(python)
            .arg(SMTP_SERVER_SCRIPT)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--maildir")
            .arg(&maildir)
            .arg("--rules")
            .arg(&rules_path)
            .arg("--exit-on-stdin-eof")
            // The server exits when this pipe closes, so it cannot outlive a test binary
            // that was killed before `Drop` ran.
            .stdin(Stdio::piped())
            .stdout(server_log.try_clone().expect("clone a file handle"))
            .stderr(server_log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "could not start {} {SMTP_SERVER_SCRIPT}: {error}",
                    python.display()
                )
            });
        let mut server = SmtpServer {
            child,
            port: 0,
            dir,
        };

        let mut exited = None;
        let started = wait_until(SERVER_START_TIMEOUT, || {
            if let Ok(Some(status)) = server.child.try_wait() {
                exited = Some(status);
                return true;
            }
            fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.trim().parse::<u16>().ok())
                .map(|port| server.port = port)
                .is_some()
        });
        if let Some(status) = exited {
            panic!(
                "the test SMTP server exited before listening ({status}). Its output:\n{}",
                server.server_log()
            );
        }
        if !started {
            panic!(
                "the test SMTP server did not report its port within {SERVER_START_TIMEOUT:?}. \
                 Its output:\n{}",
                server.server_log()
            );
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, for `[smtp] url` in a test config.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Replaces the rules; the server uses them from its next transaction (MAIL FROM) on.
    /// `times` counts start afresh.
    pub fn set_rules(&self, rules: serde_json::Value) {
        write_atomically(&self.dir.path().join("rules.json"), &rules_json(&rules));
    }

    /// The directory holding `NNNNNN.eml`, `log.jsonl` and `rejects.jsonl`.
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Captured> {
        let maildir = self.maildir();
        let mut messages: Vec<Captured> = read_json_lines::<LogLine>(&maildir.join("log.jsonl"))
            .into_iter()
            .map(|line| {
                let path = maildir.join(format!("{:06}.eml", line.seq));
                let raw = fs::read(&path).unwrap_or_else(|error| {
                    panic!("read {} named in log.jsonl: {error}", path.display())
                });
                Captured {
                    seq: line.seq,
                    mail_from: line.mail_from,
                    rcpt_tos: line.rcpt_tos,
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                }
            })
            .collect();
        messages.sort_by_key(|message| message.seq);
        messages
    }

    /// Waits until at least `count` messages have arrived and returns them all; panics,
    /// listing what did arrive, if that takes longer than `timeout`.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Captured> {
        let mut messages = Vec::new();
        if wait_until(timeout, || {
            messages = self.messages();
            messages.len() >= count
        }) {
            return messages;
        }
        let summary: Vec<String> = messages
            .iter()
            .map(|m| format!("  #{} from {} to {:?}", m.seq, m.mail_from, m.rcpt_tos))
            .collect();
        panic!(
            "expected {count} message(s) within {timeout:?}, got {}:\n{}\nrejects: {:?}\n\
             server output:\n{}",
            messages.len(),
            summary.join("\n"),
            self.rejects(),
            self.server_log()
        );
    }

    /// Every recipient refused by a rule so far, in order.
    pub fn rejects(&self) -> Vec<Rejected> {
        read_json_lines(&self.maildir().join("rejects.jsonl"))
    }

    /// What the server printed (its stderr and stdout), for failure messages.
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits for it (bounded); asserts it exited cleanly.
    pub fn stop(mut self) {
        terminate(&self.child);
        let status = wait_bounded(&mut self.child, STOP_TIMEOUT);
        assert!(
            matches!(status, Some(status) if status.success()),
            "the test SMTP server did not exit cleanly on SIGTERM ({status:?}). Its output:\n{}",
            self.server_log()
        );
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn rules_json(rules: &serde_json::Value) -> String {
    match rules {
        serde_json::Value::Null => "{}".to_string(),
        other => serde_json::to_string_pretty(other).expect("serialize SMTP server rules"),
    }
}

/// Parses each complete line of a JSON-lines file; a missing file is empty. A last line
/// without its newline is still being written and is left for the next read.
fn read_json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => panic!("read {}: {error}", path.display()),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return Vec::new(),
    };
    complete
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("bad line in {}: {error}: {line}", path.display()))
        })
        .collect()
}

fn write_atomically(path: &Path, contents: &str) {
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary)
        .unwrap_or_else(|error| panic!("create {}: {error}", temporary.display()));
    file.write_all(contents.as_bytes())
        .unwrap_or_else(|error| panic!("write {}: {error}", temporary.display()));
    drop(file);
    fs::rename(&temporary, path)
        .unwrap_or_else(|error| panic!("rename to {}: {error}", path.display()));
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// Sends SIGTERM (through `sh`'s `kill`, as the tests have no libc dependency).
fn terminate(child: &Child) {
    let _ = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &child.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for the child at most `timeout`; None if it is still running then.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// What a finished `winback` command printed, and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The arguments after `--config PATH`, for failure messages.
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or None when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing the command, its stdout and stderr, unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "`winback {}` failed ({}).\n{}",
            self.args.join(" "),
            self.status,
            self.printed()
        );
        self
    }

    /// Panics, showing the command, its stdout and stderr, if it exited 0.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            !self.status.success(),
            "`winback {}` succeeded but was expected to fail.\n{}",
            self.args.join(" "),
            self.printed()
        );
        self
    }

    fn printed(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// A running `winback` (usually `run`, the daemon), its output going to files. Killed
/// when dropped unless `wait`/`stop` already collected it.
pub struct Daemon {
    child: Option<Child>,
    args: Vec<String>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Daemon {
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("daemon already collected").id()
    }

    /// The process, for anything the helpers here do not cover.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("daemon already collected")
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(
            self.child.as_mut().map(|child| child.try_wait()),
            Some(Ok(None))
        )
    }

    /// Sends SIGTERM (a clean shutdown request).
    pub fn terminate(&self) {
        terminate(self.child.as_ref().expect("daemon already collected"));
    }

    /// Everything it printed to stderr so far (its logs).
    pub fn stderr_so_far(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Everything it printed to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Waits for it to exit on its own, at most `timeout`; panics (after killing it,
    /// showing its stderr) if it does not.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("daemon already collected");
        match wait_bounded(&mut child, timeout) {
            Some(status) => self.output(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`winback {}` did not exit within {timeout:?}; killed it.\n--- stderr ---\n{}",
                    self.args.join(" "),
                    self.stderr_so_far()
                );
            }
        }
    }

    /// SIGTERM, then `wait(timeout)`.
    #[track_caller]
    pub fn stop(self, timeout: Duration) -> Output {
        self.terminate();
        self.wait(timeout)
    }

    fn output(&self, status: ExitStatus) -> Output {
        Output {
            args: self.args.clone(),
            status,
            stdout: self.stdout_so_far(),
            stderr: self.stderr_so_far(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Project: a temporary directory with a config, templates and the binary
// ---------------------------------------------------------------------------------------

/// A temporary directory holding `winback.toml`, a copy of the repository's `templates/`
/// (as `templates/`, so a config there says `[templates] dir = "templates"`), and whatever
/// else a test writes; plus the environment `winback` runs with.
pub struct Project {
    dir: TempDir,
    /// stdout and stderr of every process started, kept apart from the project's files.
    outputs: TempDir,
    env: BTreeMap<String, Option<String>>,
    spawned: Cell<usize>,
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("winback-it-")
            .tempdir()
            .expect("create a temporary project directory");
        let templates = dir.path().join("templates");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        if shipped.is_dir() {
            copy_dir(&shipped, &templates);
        } else {
            fs::create_dir(&templates).expect("create templates/");
        }
        let mut env = BTreeMap::new();
        env.insert(
            "WINBACK_SECRET".to_string(),
            Some("test-secret".to_string()),
        );
        env.insert("WINBACK_LOG".to_string(), Some("warn".to_string()));
        let outputs = tempfile::Builder::new()
            .prefix("winback-it-output-")
            .tempdir()
            .expect("create a temporary directory for command output");
        Project {
            dir,
            outputs,
            env,
            spawned: Cell::new(0),
        }
    }

    /// The project directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the project directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `<project>/winback.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.path("winback.toml")
    }

    /// Writes `winback.toml`; relative paths in it are relative to the project directory.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        self.write_file("winback.toml", toml)
    }

    /// Writes a file (creating its parent directories) and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|error| panic!("create {}: {error}", parent.display()));
        }
        fs::write(&path, contents)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        path
    }

    /// Replaces every `[EDIT: ...]` placeholder of the shipped templates in `templates/`
    /// with a link, as an operator does before mailing a real server.
    pub fn fill_placeholders(&self) {
        let dir = self.path("templates");
        for entry in fs::read_dir(&dir).expect("read templates/").flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "hbs") {
                continue;
            }
            let mut text = fs::read_to_string(&path).expect("read a template");
            while let Some(at) = text.find("[EDIT:") {
                let end = text[at..].find(']').map_or(text.len(), |end| at + end + 1);
                text.replace_range(at..end, "https://acme.example/news");
            }
            fs::write(&path, text).expect("write a template");
        }
    }

    /// Reads a file of the project as text.
    pub fn read_file(&self, name: &str) -> String {
        let path = self.path(name);
        fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
    }

    /// Sets an environment variable for every later `winback` run (overriding the
    /// defaults `WINBACK_SECRET=test-secret`, `WINBACK_LOG=warn`).
    pub fn set_env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_string(), Some(value.to_string()));
        self
    }

    /// Removes an environment variable from every later `winback` run.
    pub fn unset_env(&mut self, key: &str) -> &mut Self {
        self.env.insert(key.to_string(), None);
        self
    }

    /// `winback --config <project>/winback.toml ARGS…`, ready to run in the project
    /// directory with the project's environment (every inherited `WINBACK_*` variable
    /// removed, then the project's set); for cases the helpers below don't cover.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_winback"));
        command
            .current_dir(self.root())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null());
        // Hermetic: nothing set for winback in the developer's shell leaks into a test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WINBACK_") {
                command.env_remove(key);
            }
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }

    /// Runs `winback --config <project>/winback.toml ARGS…` to completion (at most
    /// `COMMAND_TIMEOUT`, then it is killed and the test fails) and returns what it printed.
    #[track_caller]
    pub fn winback(&self, args: &[&str]) -> Output {
        self.winback_within(args, COMMAND_TIMEOUT)
    }

    /// `winback` with a different time limit.
    #[track_caller]
    pub fn winback_within(&self, args: &[&str], timeout: Duration) -> Output {
        // Output goes to files, not pipes: nothing can block on a full pipe, and a
        // process that hangs can be killed and its output still shown.
        self.spawn_winback(args).wait(timeout)
    }

    /// Starts `winback --config <project>/winback.toml ARGS…` (e.g. `run`) and returns at
    /// once. The process is killed when the returned `Daemon` is dropped; `stop` asks it to
    /// shut down cleanly (SIGTERM) and collects its output.
    pub fn spawn_winback(&self, args: &[&str]) -> Daemon {
        let number = self.spawned.get() + 1;
        self.spawned.set(number);
        let stdout_path = self.outputs.path().join(format!("{number}.stdout"));
        let stderr_path = self.outputs.path().join(format!("{number}.stderr"));
        let stdout = fs::File::create(&stdout_path).expect("create a stdout file");
        let stderr = fs::File::create(&stderr_path).expect("create a stderr file");
        let child = self
            .command(args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("could not start {}: {error}", env!("CARGO_BIN_EXE_winback"))
            });
        Daemon {
            child: Some(child),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            stdout_path,
            stderr_path,
        }
    }
}

/// A temporary directory holding copies of the repository's shipped `config/` and
/// `templates/`, unedited, as a newcomer's checkout has them.
pub fn shipped_copy() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&repo.join("config"), &root.path().join("config"));
    copy_dir(&repo.join("templates"), &root.path().join("templates"));
    root
}

/// Copies the directory `from`, recursively, to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|error| panic!("create {}: {error}", to.display()));
    let entries =
        fs::read_dir(from).unwrap_or_else(|error| panic!("read {}: {error}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|error| panic!("read {}: {error}", from.display()));
        let source = entry.path();
        let target = to.join(entry.file_name());
        if source.is_dir() {
            copy_dir(&source, &target);
        } else {
            fs::copy(&source, &target).unwrap_or_else(|error| {
                panic!("copy {} to {}: {error}", source.display(), target.display())
            });
        }
    }
}
