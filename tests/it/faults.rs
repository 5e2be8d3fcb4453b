//! The daemon under an operator's worst day, through the real binary: logs that cannot be
//! written (stderr closed, a pipe nobody reads), SIGHUP with a good and a bad new config,
//! a thousand idle HTTP connections, and the database's disk filling up mid-send (a tmpfs
//! the test mounts, so only as root).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::delivery::{Env, counts};
use crate::support::{Project, wait_until};

const NOW: &str = "2026-06-02T14:00:00Z";
const WAIT: Duration = Duration::from_secs(30);

/// The configuration of `project`, with the survey's subject and the HTTP listener given.
fn config(subject: &str, port: u16) -> String {
    format!(
        r#"{settings}
[[campaign]]
name = "former-clients"
send_at = "* * * * *"

  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "{subject}"
"#,
        settings = crate::support::settings("file://outbox", &format!("127.0.0.1:{port}")),
    )
}

/// A project whose `clients` former clients are all due for the survey at `NOW`, mailed
/// to `outbox/`, logging at debug level (many lines).
fn project(clients: usize, port: u16) -> Project {
    let mut project = Project::new();
    project.write_config(&config("May we ask why you left?", port));
    let mut csv = String::from("email,name,churned_at\n");
    for i in 0..clients {
        csv.push_str(&format!("client{i}@example.com,Client {i},2025-11-01\n"));
    }
    project.write_file("clients.csv", &csv);
    project
        .winback(&["--now", NOW, "import", "clients.csv"])
        .assert_success();
    project.set_env("WINBACK_LOG", "debug");
    project
}

/// The `.eml` files written so far.
fn sent(project: &Project) -> Vec<String> {
    let Ok(entries) = fs::read_dir(project.path("outbox")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

/// Waits for the child to exit, at most `WAIT`; kills it and fails the test if it does not.
#[track_caller]
fn exits(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(WAIT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: winback did not exit within {WAIT:?}");
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

#[test]
fn a_closed_stderr_neither_panics_nor_stops_sending() {
    let project = project(20, 0);
    let mut command = project.command(&["--now", NOW, "run", "--once"]);
    command.stdout(Stdio::null()).stderr(Stdio::inherit());
    // SAFETY: close(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::close(2);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("start winback");
    let status = exits(&mut child, "stderr closed");
    assert!(status.success(), "exit status with stderr closed: {status}");
    assert_eq!(sent(&project).len(), 20, "every due survey still went out");
}

#[test]
fn a_log_on_a_full_disk_neither_panics_nor_stops_sending() {
    let project = project(20, 0);
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let mut command = project.command(&["--now", NOW, "run", "--once"]);
    command.stdout(Stdio::null()).stderr(full);
    let mut child = command.spawn().expect("start winback");
    let status = exits(&mut child, "stderr on a full disk");
    assert!(
        status.success(),
        "exit status with a full log disk: {status}"
    );
    assert_eq!(sent(&project).len(), 20, "every due survey still went out");
}

#[test]
fn a_pipe_whose_reader_is_gone_neither_panics_nor_stops_sending() {
    let project = project(20, 0);
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    let mut command = project.command(&["--now", NOW, "run", "--once"]);
    command.stdout(Stdio::null()).stderr(writer);
    let mut child = command.spawn().expect("start winback");
    let status = exits(&mut child, "stderr a pipe without reader");
    assert!(status.success(), "exit status with a closed pipe: {status}");
    assert_eq!(sent(&project).len(), 20, "every due survey still went out");
}

#[test]
fn a_full_pipe_nobody_reads_never_blocks_sending() {
    let project = project(20, 0);
    let (reader, mut writer) = std::io::pipe().expect("create a pipe");
    // Fill the pipe before the daemon starts, then hand it over blocking as usual: its
    // first log line finds no room, and nobody ever reads.
    let fd = writer.as_raw_fd();
    // SAFETY: fcntl on a descriptor this test owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let chunk = [b'x'; 4096];
    let mut filled = 0usize;
    while let Ok(n) = writer.write(&chunk) {
        filled += n;
        assert!(filled < 64 << 20, "the pipe never filled");
    }
    // SAFETY: as above.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    let mut command = project.command(&["--now", NOW, "run", "--once"]);
    command.stdout(Stdio::null()).stderr(writer);
    let mut child = command.spawn().expect("start winback");
    let status = exits(&mut child, "stderr a full pipe");
    assert!(status.success(), "exit status with a full pipe: {status}");
    assert_eq!(sent(&project).len(), 20, "every due survey still went out");
    drop(reader);
}

/// The message sent to `email`, once there is one.
fn message_to(project: &Project, email: &str) -> Option<String> {
    sent(project)
        .into_iter()
        .find(|m| m.contains(&format!("To: {email}")) || m.contains(&format!("<{email}>")))
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_running_one_when_the_new_one_is_bad() {
    let port = crate::support::free_port();
    let project = project(1, port);
    let mut daemon = project.spawn_winback(&["--now", NOW, "run"]);
    assert!(
        wait_until(WAIT, || message_to(&project, "client0@example.com")
            .is_some()),
        "the first survey never went out:\n{}",
        daemon.stderr_so_far()
    );

    // A valid new subject, applied (the pages show it), then a new client: the pass that
    // mails them uses the new subject. The client comes after the reload, or a pass
    // between the import and the signal could mail them under the old one.
    let page = |path: &str| {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}{path}"))
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    assert!(page("/nope").contains("Acme Corp"), "{}", page("/nope"));
    project.write_config(
        &config("A new subject after SIGHUP", port).replace("Acme Corp", "Acme Reloaded"),
    );
    signal(daemon.child(), "HUP");
    // The routes are rebuilt beside the pass, for the connections after it.
    assert!(
        wait_until(WAIT, || page("/nope").contains("Acme Reloaded")),
        "the pages were not reloaded:\n{}",
        page("/nope")
    );
    project.write_file(
        "more.csv",
        "email,name,churned_at\nlate@example.com,Late,2025-11-01\n",
    );
    project
        .winback(&["--now", NOW, "import", "more.csv"])
        .assert_success();
    assert!(
        wait_until(WAIT, || message_to(&project, "late@example.com").is_some()),
        "no survey after SIGHUP:\n{}",
        daemon.stderr_so_far()
    );
    assert!(daemon.is_running(), "SIGHUP ended the daemon");
    let late = message_to(&project, "late@example.com").unwrap_or_default();
    assert!(
        late.contains("Subject: A new subject after SIGHUP"),
        "the reloaded subject was not used:\n{late}"
    );

    // A config that fails validation: logged, the running one kept.
    project.write_file(
        "last.csv",
        "email,name,churned_at\nlast@example.com,Last,2025-11-01\n",
    );
    project
        .winback(&["--now", NOW, "import", "last.csv"])
        .assert_success();
    project
        .write_config(&config("Never used", port).replace("[sender]", "[sender]\nnot_a_key = 1"));
    signal(daemon.child(), "HUP");
    assert!(
        wait_until(WAIT, || message_to(&project, "last@example.com").is_some()),
        "no survey after a SIGHUP with a bad config:\n{}",
        daemon.stderr_so_far()
    );
    assert!(
        daemon.is_running(),
        "a bad config on SIGHUP ended the daemon"
    );
    assert!(page("/nope").contains("Acme Reloaded"), "{}", page("/nope"));
    let last = message_to(&project, "last@example.com").unwrap_or_default();
    assert!(
        last.contains("Subject: A new subject after SIGHUP"),
        "the running config was not kept:\n{last}"
    );
    // The survey may go in a pass that started before the signal was read: wait for the
    // reload's own line rather than expect it by then.
    assert!(
        wait_until(WAIT, || {
            let log = daemon.stderr_so_far();
            log.contains("not applied") && log.contains("not_a_key")
        }),
        "the refused config was not logged:\n{}",
        daemon.stderr_so_far()
    );
    let out = daemon.stop(WAIT);
    out.assert_success();
}

/// Raises this test process's own soft limit on open files to at least `wanted` (within
/// its hard limit); returns whether it now has that many.
fn allow_open_files(wanted: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process, with a struct this test owns.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return false;
        }
        if limit.rlim_cur >= wanted {
            return true;
        }
        limit.rlim_cur = wanted.min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur >= wanted
    }
}

#[test]
fn a_thousand_idle_connections_neither_stop_healthz_nor_delivery() {
    const IDLE: usize = 1100;
    assert!(
        allow_open_files(IDLE as u64 + 256),
        "this test needs {} open files (raise the hard limit: ulimit -Hn)",
        IDLE + 256
    );
    let port = crate::support::free_port();
    let project = project(0, port);
    let mut project = project;
    project.set_env("WINBACK_LOG", "info");
    let mut command = project.command(&["--now", NOW, "run"]);
    let stderr_path = project.path("daemon.stderr");
    let stderr = fs::File::create(&stderr_path).expect("create the daemon's stderr file");
    command.stdout(Stdio::null()).stderr(stderr);
    // The usual limit of a service started without LimitNOFILE.
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut daemon = command.spawn().expect("start winback");
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let healthy = || {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()
            .and_then(|c| c.get(&healthz).send().ok())
            .is_some_and(|r| r.status().is_success())
    };
    assert!(
        wait_until(WAIT, healthy),
        "the daemon never answered /healthz"
    );

    // Connections that never send a byte; bounded: IDLE of them, each at once or never.
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => idle.push(stream),
            Err(error) => panic!("connection {} refused: {error}", idle.len() + 1),
        }
    }

    // Forty clients become due; SIGHUP starts a pass at once.
    let mut csv = String::from("email,name,churned_at\n");
    for i in 0..40 {
        csv.push_str(&format!("due{i}@example.com,Due {i},2025-11-01\n"));
    }
    project.write_file("due.csv", &csv);
    project
        .winback(&["--now", NOW, "import", "due.csv"])
        .assert_success();
    signal(&daemon, "HUP");

    let log = || fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(60), || sent(&project).len() == 40),
        "{} of 40 due surveys went out with {IDLE} idle connections open:\n{}",
        sent(&project).len(),
        log()
    );
    assert!(
        wait_until(Duration::from_secs(60), healthy),
        "/healthz stopped answering with {IDLE} idle connections open:\n{}",
        log()
    );
    assert!(
        !log().contains("unable to open database file"),
        "the database ran out of file descriptors:\n{}",
        log()
    );
    drop(idle);
    signal(&daemon, "TERM");
    let status = exits(&mut daemon, "SIGTERM after the idle connections");
    assert!(status.success(), "exit status: {status}\n{}", log());
}

#[test]
fn a_step_held_by_a_placeholder_goes_once_the_template_is_fixed_and_reloaded() {
    let port = crate::support::free_port();
    let project = project(1, port);
    let survey = project.path("templates/survey.txt.hbs");
    let fixed = fs::read_to_string(&survey).expect("the shipped survey");
    fs::write(&survey, format!("[EDIT: a line for you]\n{fixed}")).expect("write the survey");
    let mut daemon = project.spawn_winback(&["--now", NOW, "run"]);
    assert!(
        wait_until(WAIT, || daemon.stderr_so_far().contains("held, not sent")),
        "the survey was not held:\n{}",
        daemon.stderr_so_far()
    );
    assert!(sent(&project).is_empty(), "a placeholder was mailed");

    fs::write(&survey, fixed).expect("fix the survey");
    signal(daemon.child(), "HUP");
    assert!(
        wait_until(WAIT, || message_to(&project, "client0@example.com")
            .is_some()),
        "the held survey did not go after the fix and SIGHUP:\n{}",
        daemon.stderr_so_far()
    );
    let survey = message_to(&project, "client0@example.com").unwrap_or_default();
    assert!(!survey.contains("[EDIT:"), "{survey}");
    daemon.stop(WAIT).assert_success();
}

/// A tmpfs mounted on a directory for one test; unmounted when dropped, even when the test
/// fails (lazily if something still holds a file open on it).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test runs as root but could not mount a tmpfs on {} ({}): {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills what is left of it with one file, written until the disk says it is full;
    /// returns the file's path and how many bytes it took.
    fn fill(&self) -> (PathBuf, u64) {
        let path = self.dir.join("filler");
        let mut file = fs::File::create(&path).expect("create the filler file");
        let chunk = [0u8; 64 << 10];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("write {}: {e}", path.display()),
            }
            assert!(written < 1 << 30, "the tmpfs never filled");
        }
        (path, written)
    }

    /// Bytes still free for an unprivileged writer.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
            .expect("a path without NUL");
        // SAFETY: statvfs writes into a struct this function owns.
        unsafe {
            let mut stats: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(path.as_ptr(), &mut stats), 0, "statvfs");
            stats.f_bavail as u64 * stats.f_frsize as u64
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = |lazy: bool| {
            let mut command = Command::new("umount");
            if lazy {
                command.arg("-l");
            }
            command
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !unmounted(false) && !unmounted(true) {
            eprintln!("could not unmount the tmpfs on {}", self.dir.display());
        }
    }
}

/// `winback_messages{state="STATE"}` from the daemon's `/metrics`, if it answered.
fn metric_messages(port: u16, state: &str) -> Option<u64> {
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .and_then(|r| r.text())
        .ok()?;
    let name = format!("winback_messages{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&name))
        .and_then(|n| n.trim().parse().ok())
}

/// Clients due for the survey in the full-disk tests.
const DISK_CLIENTS: usize = 12;
/// The survey moment of clients who churned on 2026-01-08 (10:00 New York, 90 days on).
const SURVEY_MOMENT: &str = "2026-04-08T14:00:05Z";

/// A project whose database lives on a 4 MiB tmpfs, `DISK_CLIENTS` clients due for the
/// survey at `SURVEY_MOMENT`, sent over two connections to a server that holds each
/// message 2 s before its reply (after saving it). Fields drop in order: the tmpfs is
/// unmounted before the project's directory goes.
struct FullDisk {
    disk: Tmpfs,
    env: Env,
    emails: Vec<String>,
}

impl FullDisk {
    /// The setup, or None (saying why on stderr) when this process cannot mount a tmpfs.
    fn start(test: &str) -> Option<FullDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "faults::{test}: SKIPPED: it needs root to mount a small tmpfs for the \
                 database (`bash .ci/run` runs as root)"
            );
            return None;
        }
        let env = Env::start(
            json!({"delay_ms": 2000}),
            "connections = 2",
            "0 10 * * *",
            &[("survey", 0)],
        );
        let disk = Tmpfs::mount(&env.project.path("disk"), "4m");
        let database = disk.dir.join("winback.db");
        let config = env.project.read_file("winback.toml");
        assert!(config.contains("path = \"winback.db\""), "{config}");
        env.project.write_config(&config.replace(
            "path = \"winback.db\"",
            &format!("path = \"{}\"", database.display()),
        ));
        let emails = crate::crash::import_clients(&env, DISK_CLIENTS);
        assert!(database.exists(), "the database is not on the tmpfs");
        Some(FullDisk { disk, env, emails })
    }

    /// Starts the daemon and fills the disk while both connections are inside an SMTP
    /// transaction whose start is on record (the server saves a message before its slow
    /// reply: two received means both are open); returns once the daemon has met the
    /// full disk. Returns the daemon and the filler file.
    fn fill_mid_send(&self) -> (crate::support::Daemon, PathBuf) {
        let env = &self.env;
        let daemon = env.project.spawn_winback(&["run", "--now", SURVEY_MOMENT]);
        assert!(
            wait_until(WAIT, || env.received_rcpts().len() >= 2),
            "nothing was sent:\n{}",
            daemon.stderr_so_far()
        );
        let (filler, filled) = self.disk.fill();
        assert_eq!(
            self.disk.free(),
            0,
            "the tmpfs is not full ({filled} bytes written)"
        );
        assert!(
            wait_until(WAIT, || daemon
                .stderr_so_far()
                .contains("database or disk is full")),
            "the daemon never met the full disk:\n{}",
            daemon.stderr_so_far()
        );
        (daemon, filler)
    }

    /// Every client got the survey once: by recipient and by Message-ID.
    #[track_caller]
    fn assert_everyone_once(&self) {
        let received = self.env.server.messages();
        let rcpts: Vec<String> = received
            .iter()
            .flat_map(|m| m.rcpt_tos.iter().map(|r| r.to_lowercase()))
            .collect();
        let distinct: BTreeSet<&String> = rcpts.iter().collect();
        assert_eq!(rcpts.len(), DISK_CLIENTS, "someone got two: {rcpts:?}");
        assert_eq!(distinct, self.emails.iter().collect::<BTreeSet<_>>());
        let ids: BTreeSet<String> = received
            .iter()
            .map(|m| m.header("Message-ID").expect("a Message-ID"))
            .collect();
        assert_eq!(ids.len(), DISK_CLIENTS, "a Message-ID went out twice");
    }

    /// How many messages `status` shows in each state.
    fn messages(&self) -> std::collections::BTreeMap<String, u64> {
        counts(&self.env.status(), "messages")
    }
}

/// The database on a small filesystem that fills up while two SMTP transactions are open:
/// their results (and the starts of the messages after them) cannot be written. The
/// daemon keeps running, sends nothing whose start is not on record, and shows the rows
/// it could not settle as `sending` in `status`, `outbox list` and `/metrics`; once space
/// returns, it writes the kept results (those two are `sent`, not `uncertain`) and sends
/// the rest: everyone once, no row left `sending`, and SIGTERM exits 0.
#[test]
fn a_full_disk_mid_send_keeps_the_results_until_they_are_written() {
    let Some(setup) =
        FullDisk::start("a_full_disk_mid_send_keeps_the_results_until_they_are_written")
    else {
        return;
    };
    let env = &setup.env;
    let (mut daemon, filler) = setup.fill_mid_send();

    // While the disk is full.
    assert!(daemon.is_running(), "the full disk ended the daemon");
    assert_eq!(
        env.received_rcpts().len(),
        2,
        "a message was sent while its start could not be recorded"
    );
    let status = env.status();
    let stuck = counts(&status, "messages")
        .get("sending")
        .copied()
        .unwrap_or(0);
    assert!(stuck >= 2, "status shows no message `sending`: {status:#}");
    let listed = env.project.winback(&["outbox", "list"]);
    listed.assert_success();
    let sending = listed
        .stdout
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some("sending"))
        .count();
    assert_eq!(
        sending as u64, stuck,
        "`outbox list` does not show what status counts as sending:\n{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.contains("nothing needs attention")
            && listed.stdout.contains("could not be written yet"),
        "{}",
        listed.stdout
    );
    assert_eq!(
        metric_messages(env.http_port, "sending"),
        Some(stuck),
        "/metrics does not count the rows `sending`"
    );
    assert!(daemon.is_running(), "the full disk ended the daemon");

    // Space comes back; the server answers at once from now on.
    env.server.set_rules(json!({}));
    fs::remove_file(&filler).expect("delete the filler file");
    let settled = wait_until(Duration::from_secs(60), || {
        counts(&env.status(), "messages") == [("sent".to_string(), DISK_CLIENTS as u64)].into()
    });
    assert!(
        settled,
        "the messages were not all recorded as sent once space returned: {:#}\n{}",
        env.status(),
        daemon.stderr_so_far()
    );
    let listed = env.project.winback(&["outbox", "list"]);
    assert!(
        listed.stdout.contains("nothing needs attention"),
        "{}",
        listed.stdout
    );
    assert_eq!(metric_messages(env.http_port, "sending"), Some(0));

    setup.assert_everyone_once();

    let log = daemon.stderr_so_far();
    assert!(!log.contains("panicked"), "{log}");
    daemon.stop(WAIT).assert_success();
    let status = env.status();
    assert_eq!(
        counts(&status, "messages"),
        [("sent".to_string(), DISK_CLIENTS as u64)].into(),
        "after SIGTERM: {status:#}"
    );
}

/// SIGTERM while the disk is full and results wait to be written: the daemon stops as
/// asked (exit 0, saying what it left), and those rows stay `sending` in view. Once space
/// returns, the next start settles them: the two whose SMTP transaction had begun are
/// `uncertain` (the server has them; never sent again), the others go out; everyone once.
#[test]
fn a_stop_on_a_full_disk_leaves_nothing_to_send_twice() {
    let Some(setup) = FullDisk::start("a_stop_on_a_full_disk_leaves_nothing_to_send_twice") else {
        return;
    };
    let env = &setup.env;
    let (daemon, filler) = setup.fill_mid_send();
    assert!(
        wait_until(WAIT, || daemon
            .stderr_so_far()
            .contains("cannot record the results of sent messages")),
        "no results waiting to be written:\n{}",
        daemon.stderr_so_far()
    );
    let before: BTreeSet<String> = env.received_rcpts().into_iter().collect();
    assert_eq!(before.len(), 2, "{before:?}");

    let stopped = daemon.stop(WAIT);
    stopped.assert_success();
    assert!(
        stopped.stderr.contains("stopping with results not written"),
        "{}",
        stopped.stderr
    );
    assert_eq!(
        setup.messages(),
        [("sending".to_string(), DISK_CLIENTS as u64)].into(),
        "what the stop could not write is still in view"
    );

    fs::remove_file(&filler).expect("delete the filler file");
    env.server.set_rules(json!({}));
    let daemon = env.project.spawn_winback(&["run", "--now", SURVEY_MOMENT]);
    let settled = [
        ("sent".to_string(), DISK_CLIENTS as u64 - 2),
        ("uncertain".to_string(), 2),
    ]
    .into();
    assert!(
        wait_until(WAIT, || setup.messages() == settled),
        "the next start did not settle the rows: {:#}\n{}",
        env.status(),
        daemon.stderr_so_far()
    );
    let uncertain: BTreeSet<String> = env.status()["attention"]
        .as_array()
        .expect("attention is a list")
        .iter()
        .filter(|m| m["state"] == "uncertain")
        .filter_map(|m| m["email"].as_str().map(str::to_lowercase))
        .collect();
    assert_eq!(
        uncertain, before,
        "only the messages whose transaction had begun are uncertain"
    );
    setup.assert_everyone_once();
    daemon.stop(WAIT).assert_success();
}
