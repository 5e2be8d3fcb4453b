//! Headless Chromium for the browser tests, driven over chromedriver's W3C WebDriver HTTP
//! API with a blocking HTTP client (no WebDriver crate). `Browser::start` runs
//! chromedriver on a free 127.0.0.1 port and opens one session with its own profile
//! directory; dropping the `Browser` ends the session and kills chromedriver.
//!
//! It needs Debian's `chromium` and `chromium-driver` (`bash .ci/run` installs them), or
//! `WINBACK_TEST_CHROMIUM` / `WINBACK_TEST_CHROMEDRIVER`; without them the tests fail
//! saying so, never skip. Every wait has a deadline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{free_port, wait_until};

/// How long chromedriver may take to answer `/status`, and a page to show what is waited for.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// One WebDriver command (creating a session starts the browser, so it is generous).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key of an element reference in WebDriver answers (W3C WebDriver, "web element
/// identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `$VARIABLE` if set, else `default`; panics, saying what to install, if it is missing.
fn program(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: the browser tests run headless Chromium through chromedriver. \
         Install them with `apt-get install chromium chromium-driver` (Debian), or run \
         `bash .ci/run`, which installs everything the tests need; or set {variable}.",
        path.display()
    );
    path
}

/// One element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    http: Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: Option<String>,
    /// The browser profile and chromedriver's log.
    dir: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (bounded by `WAIT_TIMEOUT`
    /// and `COMMAND_TIMEOUT`).
    pub fn start() -> Browser {
        let chromium = program("WINBACK_TEST_CHROMIUM", CHROMIUM);
        let chromedriver = program("WINBACK_TEST_CHROMEDRIVER", CHROMEDRIVER);
        let dir = tempfile::Builder::new()
            .prefix("winback-browser-")
            .tempdir()
            .expect("create a temporary directory for the browser");
        let profile = dir.path().join("profile");
        fs::create_dir(&profile).expect("create the browser profile directory");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {}: {error}", chromedriver.display()));
        let http = Client::builder()
            .no_proxy()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("build an HTTP client");
        let mut browser = Browser {
            driver,
            http,
            session: None,
            dir,
        };
        let base = format!("http://127.0.0.1:{port}");

        let status_url = format!("{base}/status");
        let mut exited = None;
        let ready = wait_until(WAIT_TIMEOUT, || {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                exited = Some(status);
                return true;
            }
            browser
                .http
                .get(&status_url)
                .timeout(Duration::from_secs(2))
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        if let Some(status) = exited {
            panic!(
                "chromedriver exited before it was ready ({status}). Its log:\n{}",
                browser.driver_log()
            );
        }
        assert!(
            ready,
            "chromedriver was not ready within {WAIT_TIMEOUT:?}. Its log:\n{}",
            browser.driver_log()
        );

        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {"pageLoad": WAIT_TIMEOUT.as_millis() as u64, "script": 5000, "implicit": 0},
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--no-proxy-server",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            "--window-size=1024,900",
                            format!("--user-data-dir={}", profile.display()),
                        ]
                    }
                }
            }
        });
        let created = browser.call("POST", &format!("{base}/session"), Some(capabilities));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in the new session's answer: {created}"));
        browser.session = Some(format!("{base}/session/{id}"));
        browser
    }

    /// The temporary directory this browser owns (for screenshots and such).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What chromedriver logged, for failure messages.
    pub fn driver_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// One WebDriver command; returns its `value`, or panics with the WebDriver error.
    fn call(&self, method: &str, url: &str, body: Option<Value>) -> Value {
        let request = match method {
            "GET" => self.http.get(url),
            "POST" => self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.unwrap_or_else(|| json!({})).to_string()),
            "DELETE" => self.http.delete(url),
            other => panic!("unsupported method {other}"),
        };
        let response = request
            .send()
            .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
        let status = response.status();
        let text = response
            .text()
            .unwrap_or_else(|error| panic!("{method} {url}: reading the answer: {error}"));
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{method} {url} answered non-JSON ({error}): {text}"));
        assert!(
            status.is_success(),
            "{method} {url} failed ({status}): {:#}",
            answer["value"]
        );
        answer["value"].clone()
    }

    fn session(&self) -> &str {
        self.session.as_deref().expect("a WebDriver session")
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("{}{path}", self.session()), body)
    }

    /// Opens `url` and waits for it to load.
    pub fn navigate(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the current page; returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    pub fn title(&self) -> String {
        self.command("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn current_url(&self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The current page's HTML, as the browser holds it.
    pub fn source(&self) -> String {
        self.command("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector, if any.
    pub fn try_find(&self, selector: &str) -> Option<Element> {
        let found = self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": selector})),
        );
        found.as_array()?.first().map(|reference| {
            let id = reference[ELEMENT_KEY]
                .as_str()
                .or_else(|| reference.as_object()?.values().next()?.as_str())
                .unwrap_or_else(|| panic!("an element reference without an id: {reference}"));
            Element(id.to_string())
        })
    }

    /// The first element matching a CSS selector; panics, showing the page, if none does.
    pub fn find(&self, selector: &str) -> Element {
        self.try_find(selector).unwrap_or_else(|| {
            panic!(
                "no element matches {selector:?} on {}:\n{}",
                self.current_url(),
                self.source()
            )
        })
    }

    pub fn click(&self, element: &Element) {
        self.command("POST", &format!("/element/{}/click", element.0), None);
    }

    /// Types `text` into an input or textarea.
    pub fn type_text(&self, element: &Element, text: &str) {
        self.command(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        );
    }

    pub fn is_selected(&self, element: &Element) -> bool {
        self.command("GET", &format!("/element/{}/selected", element.0), None)
            .as_bool()
            .unwrap_or(false)
    }

    /// The element's `value` property (what a textarea holds now).
    pub fn value(&self, element: &Element) -> String {
        self.command(
            "GET",
            &format!("/element/{}/property/value", element.0),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The element's rendered text.
    pub fn text(&self, element: &Element) -> String {
        self.command("GET", &format!("/element/{}/text", element.0), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (at most `WAIT_TIMEOUT`) until the page's title contains `wanted`.
    pub fn wait_for_title(&self, wanted: &str) {
        let mut title = String::new();
        let found = wait_until(WAIT_TIMEOUT, || {
            title = self.title();
            title.contains(wanted)
        });
        assert!(
            found,
            "the page title did not come to contain {wanted:?} within {WAIT_TIMEOUT:?} \
             (last: {title:?}); the page:\n{}",
            self.source()
        );
    }

    /// A screenshot of the viewport, as PNG bytes, also written to `path`.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let encoded = self.command("GET", "/screenshot", None);
        let encoded = encoded
            .as_str()
            .unwrap_or_else(|| panic!("a screenshot that is not a string: {encoded:.200}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|error| panic!("a screenshot that is not base64: {error}"));
        fs::write(path, &png).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        png
    }

    /// Ends the session (the browser exits); chromedriver is killed on drop.
    pub fn quit(&mut self) {
        if let Some(session) = self.session.take() {
            self.call("DELETE", &session, None);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Best effort: a failing test must still clean up.
            let _ = self
                .http
                .delete(&session)
                .timeout(Duration::from_secs(5))
                .send();
        }
        if let Ok(None) = self.driver.try_wait() {
            let _ = self.driver.kill();
        }
        let _ = self.driver.wait();
    }
}
