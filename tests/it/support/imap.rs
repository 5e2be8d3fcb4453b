//! A real IMAP server for one test: Debian's Dovecot, started as its own process with a
//! config file in a temporary directory (127.0.0.1 on a free port, one user from a
//! password file, Maildir storage in the same directory, log to `dovecot.log` there),
//! and a tiny blocking IMAP client that APPENDs raw messages and reads a folder back.
//! Stopped (SIGTERM, then killed) when dropped.
//!
//! Self-contained (std and tempfile only), so the library's own tests can include it too.
//! Run as root, Dovecot's processes and the mail files belong to `nobody`, since Dovecot
//! refuses mail access as root; run as anyone else, everything is that user's.
//! A machine without Dovecot fails the test saying what to install; it never skips.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test user and password in every server's password file.
pub const IMAP_USER: &str = "winback";
pub const IMAP_PASSWORD: &str = "imap-test-password";

/// How long `Dovecot::start` waits for the server's greeting.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the tiny client waits for one answer.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

const INSTALL: &str = "install dovecot-imapd (bash .ci/run --deps-only)";

/// One running Dovecot.
pub struct Dovecot {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    imaps_port: Option<u16>,
}

/// The test certificate (for 127.0.0.1 and localhost) and the CA that issued it.
const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");

impl Dovecot {
    /// Starts a server without TLS and waits until it greets. Panics, saying why, when it
    /// cannot.
    pub fn start() -> Dovecot {
        Dovecot::start_with(false, "")
    }

    /// Starts a server that also offers TLS: STARTTLS on [`Dovecot::port`], implicit TLS
    /// on [`Dovecot::imaps_port`], with the certificate in tests/tls (its CA: [`ca_pem`]).
    pub fn start_tls() -> Dovecot {
        Dovecot::start_with(true, "")
    }

    /// Starts a server that offers neither IDLE nor MOVE, as older or smaller servers.
    pub fn start_without_idle_or_move() -> Dovecot {
        Dovecot::start_with(
            false,
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS\n",
        )
    }

    /// `extra` is more configuration, one setting a line.
    fn start_with(tls: bool, extra: &str) -> Dovecot {
        let binary = dovecot_binary();
        let mut dir = tempfile::Builder::new()
            .prefix("winback-dovecot")
            .tempdir()
            .expect("a temporary directory for Dovecot");
        let (user, group) = run_as();
        for sub in ["run", "state", "mail"] {
            fs::create_dir_all(dir.path().join(sub)).expect("Dovecot's directories");
        }
        if is_root() {
            // `nobody` must reach its mail through the temporary directory.
            chmod(dir.path(), 0o755);
            let status = Command::new("chown")
                .args([
                    &format!("{user}:{group}"),
                    &path_str(&dir.path().join("mail")),
                ])
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of Dovecot's mail directory failed");
        }
        fs::write(
            dir.path().join("passwd"),
            format!("{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}::::::\n"),
        )
        .expect("Dovecot's password file");

        // A free port can be taken by another process before Dovecot binds it: then
        // Dovecot exits at once, and starting again on other ports is the cure.
        let mut attempt = 1;
        loop {
            let port = free_port();
            let imaps_port = tls.then(free_port);
            let config = dir.path().join("dovecot.conf");
            fs::write(
                &config,
                config_text(dir.path(), port, imaps_port, &user, &group) + extra,
            )
            .expect("Dovecot's config file");
            let _ = fs::remove_file(dir.path().join("dovecot.log"));

            let child = Command::new(&binary)
                .arg("-F")
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.path().join("stderr.log")).expect("a log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", binary.display()));
            let mut server = Dovecot {
                child: Some(child),
                dir,
                port,
                imaps_port,
            };
            match server.wait_for_greeting() {
                Ok(()) => return server,
                Err(why) if attempt < 3 && why.contains("in use") => {
                    attempt += 1;
                    dir = server.stop_and_keep_dir();
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The implicit-TLS port, on 127.0.0.1 (a server from [`Dovecot::start_tls`] only).
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port.expect("a server started with start_tls")
    }

    /// `imap://USER@127.0.0.1:PORT/FOLDER`.
    pub fn url(&self, folder: &str) -> String {
        format!("imap://{IMAP_USER}@127.0.0.1:{}/{folder}", self.port)
    }

    /// Dovecot's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for name in ["dovecot.log", "stderr.log"] {
            if let Ok(part) = fs::read_to_string(self.dir.path().join(name)) {
                text.push_str(&part);
            }
        }
        text
    }

    /// A logged-in client.
    pub fn client(&self) -> TinyClient {
        let mut client = TinyClient::connect(self.port);
        client.ok(&format!("LOGIN {IMAP_USER} {IMAP_PASSWORD}"));
        client
    }

    /// Appends `raw` to `folder` (created if missing) with IMAP APPEND; its UID.
    pub fn append(&self, folder: &str, raw: &[u8]) -> u32 {
        let mut client = self.client();
        client.create(folder);
        client.append(folder, raw)
    }

    /// Every message in `folder`: (UID, raw bytes), by UID.
    pub fn messages(&self, folder: &str) -> Vec<(u32, Vec<u8>)> {
        self.client().messages(folder)
    }

    /// Deletes `folder` and creates it again: it gets a new UIDVALIDITY and no messages.
    pub fn recreate(&self, folder: &str) {
        let mut client = self.client();
        client.command(&format!("DELETE {}", quote(folder)));
        client.create(folder);
    }

    /// Whether `folder` has `\Seen` on any message.
    pub fn any_seen(&self, folder: &str) -> bool {
        let mut client = self.client();
        client.ok(&format!("EXAMINE {}", quote(folder)));
        let (lines, _) = client.command("UID SEARCH SEEN");
        lines.iter().any(|line| {
            let text = String::from_utf8_lossy(line);
            text.starts_with("* SEARCH") && text.trim_end().len() > "* SEARCH".len()
        })
    }

    /// Waits until this server (not another on the same port) greets; why not, with its log.
    fn wait_for_greeting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                return Err(format!(
                    "Dovecot exited at start ({status}):\n{}",
                    self.log()
                ));
            }
            let imaps_up = self
                .imaps_port
                .is_none_or(|port| TcpStream::connect(("127.0.0.1", port)).is_ok());
            if imaps_up && let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok()
                    && line.starts_with("* OK")
                    && self.log().contains("starting up")
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "Dovecot did not greet on 127.0.0.1:{} within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Stops this server and hands back its directory, for another start.
    fn stop_and_keep_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let dir = tempfile::Builder::new()
            .prefix("winback-dovecot")
            .tempdir()
            .expect("a temporary directory");
        std::mem::replace(&mut self.dir, dir)
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The CA that issued the TLS server's certificate, as PEM.
pub fn ca_pem() -> String {
    fs::read_to_string(format!("{TLS_DIR}/ca.pem")).expect("tests/tls/ca.pem")
}

fn config_text(dir: &Path, port: u16, imaps: Option<u16>, user: &str, group: &str) -> String {
    let d = path_str(dir);
    let (ssl, imaps_port) = match imaps {
        Some(imaps) => (
            format!(
                "ssl = yes\nssl_cert = <{TLS_DIR}/server.pem\nssl_key = <{TLS_DIR}/server.key\n"
            ),
            format!("address = 127.0.0.1\n    port = {imaps}"),
        ),
        None => ("ssl = no\n".to_string(), "port = 0".to_string()),
    };
    // Each instance is fully its own: base_dir, state and log under `dir`, every service
    // unchrooted and run as `user`, no listener but one plain IMAP port on 127.0.0.1.
    format!(
        r#"base_dir = {d}/run
state_dir = {d}/state
instance_name = winback-test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
last_valid_uid = 0
first_valid_gid = 1
mail_location = maildir:{d}/mail/%u
mail_uid = {user}
mail_gid = {group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    {imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
service stats {{
  unix_listener stats-reader {{
    user = {user}
  }}
  unix_listener stats-writer {{
    user = {user}
  }}
}}
"#
    )
}

fn dovecot_binary() -> PathBuf {
    for candidate in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("Dovecot is not installed: {INSTALL}");
}

fn is_root() -> bool {
    id("-u") == "0"
}

/// The user and group Dovecot's processes and mail run as.
fn run_as() -> (String, String) {
    if is_root() {
        ("nobody".to_string(), "nogroup".to_string())
    } else {
        (id("-un"), id("-gn"))
    }
}

fn id(flag: &str) -> String {
    let output = Command::new("id").arg(flag).output().expect("run id");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temporary path").to_string()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A blocking IMAP client that knows just enough: tagged commands, literals in answers,
/// APPEND with a synchronizing literal.
pub struct TinyClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl TinyClient {
    /// Connected and greeted, not logged in.
    pub fn connect(port: u16) -> TinyClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Dovecot");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("a read timeout");
        let writer = stream.try_clone().expect("a second handle on the socket");
        let mut client = TinyClient {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = client.line();
        assert!(greeting.starts_with(b"* OK"), "no IMAP greeting");
        client
    }

    /// Sends `command`; the untagged answers (each with its literals inlined) and the
    /// tagged status line.
    pub fn command(&mut self, command: &str) -> (Vec<Vec<u8>>, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("send an IMAP command");
        self.answers(&tag)
    }

    /// Sends `command` and panics unless the server answers OK.
    pub fn ok(&mut self, command: &str) -> Vec<Vec<u8>> {
        let (lines, status) = self.command(command);
        assert!(status.starts_with("OK"), "{command}: {status}");
        lines
    }

    /// Creates `folder` unless it exists.
    pub fn create(&mut self, folder: &str) {
        let (_, status) = self.command(&format!("CREATE {}", quote(folder)));
        assert!(
            status.starts_with("OK") || status.contains("ALREADYEXISTS"),
            "CREATE {folder}: {status}"
        );
    }

    /// Appends `raw` to `folder`; the UID it got (APPENDUID).
    pub fn append(&mut self, folder: &str, raw: &[u8]) -> u32 {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.writer
            .write_all(format!("{tag} APPEND {} {{{}}}\r\n", quote(folder), raw.len()).as_bytes())
            .expect("send APPEND");
        let go_ahead = self.line();
        assert!(
            go_ahead.starts_with(b"+"),
            "APPEND refused: {}",
            String::from_utf8_lossy(&go_ahead)
        );
        self.writer.write_all(raw).expect("send the message");
        self.writer.write_all(b"\r\n").expect("end APPEND");
        let (_, status) = self.answers(&tag);
        assert!(status.starts_with("OK"), "APPEND to {folder}: {status}");
        // OK [APPENDUID <uidvalidity> <uid>] Append completed.
        status
            .split_once("APPENDUID ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|uid| uid.trim_end_matches(']').parse().ok())
            .unwrap_or_else(|| panic!("no APPENDUID in {status}"))
    }

    /// Every message in `folder`: (UID, raw bytes), by UID, without marking them read.
    pub fn messages(&mut self, folder: &str) -> Vec<(u32, Vec<u8>)> {
        self.ok(&format!("EXAMINE {}", quote(folder)));
        let lines = self.ok("UID FETCH 1:* (UID BODY.PEEK[])");
        let mut found = Vec::new();
        for line in lines {
            let text = String::from_utf8_lossy(&line).to_string();
            if !text.contains(" FETCH ") {
                continue;
            }
            let uid = text
                .split_once("UID ")
                .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .expect("a UID in a FETCH answer");
            let start = find(&line, b"}\r\n").expect("a literal in a FETCH answer") + 3;
            let size: usize = text
                [text[..start].rfind('{').expect("a literal size") + 1..start - 3]
                .parse()
                .expect("a literal size");
            found.push((uid, line[start..start + size].to_vec()));
        }
        found.sort_by_key(|(uid, _)| *uid);
        found
    }

    fn answers(&mut self, tag: &str) -> (Vec<Vec<u8>>, String) {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if let Some(rest) = line.strip_prefix(format!("{tag} ").as_bytes()) {
                return (lines, String::from_utf8_lossy(rest).trim_end().to_string());
            }
            lines.push(line);
        }
    }

    /// One answer line with any literals it announces read into it.
    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        loop {
            let before = line.len();
            self.reader
                .read_until(b'\n', &mut line)
                .expect("read from Dovecot");
            assert!(line.len() > before, "Dovecot closed the connection");
            let Some(size) = literal_size(&line) else {
                return line;
            };
            let mut literal = vec![0; size];
            self.reader
                .read_exact(&mut literal)
                .expect("read a literal from Dovecot");
            line.extend_from_slice(&literal);
        }
    }
}

/// The size of the literal a line announces at its end (`{123}\r\n`).
fn literal_size(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
