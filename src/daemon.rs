//! The long-running process: one per database, a deadline loop around delivery passes.
//!
//! It sleeps until the next due moment or shutdown, never longer than `MAX_SLEEP_SECONDS`,
//! so imports and opt-out undos by other processes are seen soon. Shutdown is a parameter
//! (a future), so tests pass their own; on it, the daemon stops claiming, starts no new
//! SMTP transaction, lets the open ones finish, puts claimed messages back in the queue,
//! and returns. SIGHUP reads the configuration and templates again, checked as at start,
//! and applies them between passes; a file that fails keeps the running one.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::{Deliverer, PassReport};
use crate::domain::model::{SyncOutcome, SyncReport};
use crate::http::HttpState;
use crate::import::{Look, SyncWatch};
use crate::mail::Renderer;
use crate::store::Store;
use crate::token::Secret;

/// Even with nothing due, look again this often (imports by other processes, config-free
/// changes such as `winback resend`).
const MAX_SLEEP_SECONDS: i64 = 30;

/// Holds the database's daemon lock for as long as it lives.
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Refuses if another daemon holds the lock on the same database. The lock file sits
    /// beside the database's real file (symlinks and `..` resolved), so a second daemon
    /// reaching the same database by another name finds the same lock.
    pub fn acquire(database: &Path) -> anyhow::Result<DaemonLock> {
        // The database (and so its folder) may not exist yet on a first run.
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let real = real_path(database);
        let mut name = real.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DaemonLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(anyhow!(
                "another winback daemon is already running on {} (it holds {}); stop it first — one daemon per database",
                database.display(),
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `path` with symlinks and `..` resolved; for a file not created yet, its folder's real
/// path joined with its name.
fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(folder), Some(name)) if !folder.as_os_str().is_empty() => {
            real_path(folder).join(name)
        }
        _ => path.to_path_buf(),
    }
}

/// The link keys kept in the database. A `WINBACK_SECRET` they do not hold yet is added
/// beside them as the newest key (logged), never in place of one: links already sent
/// keep working, and new mail is signed with it.
pub fn load_secret(store: &mut Store) -> anyhow::Result<Secret> {
    if let Ok(text) = std::env::var("WINBACK_SECRET")
        && !text.is_empty()
        && let Some(id) = store.add_link_key(Secret::from_text(&text).to_bytes())?
        && id > 1
    {
        tracing::warn!(
            key_id = id,
            "WINBACK_SECRET is not one of the link keys in the database: it is kept as key {id} and signs new links; links signed by the earlier keys keep working"
        );
    }
    Ok(store.secret()?)
}

/// What `run` needs from its environment beyond the configuration file: a login named in
/// `[smtp] url` needs `WINBACK_SMTP_PASSWORD`, and a password needs a login. `check` asks
/// the same, so what it accepts, `run` runs.
pub fn smtp_login_problem(config: &Config) -> Option<String> {
    let password = std::env::var("WINBACK_SMTP_PASSWORD").ok();
    match (crate::mailer::smtp_user(&config.smtp.url), password) {
        (Some(user), None) => Some(format!(
            "smtp.url logs in as \"{user}\" but WINBACK_SMTP_PASSWORD is not set; set it in the environment winback runs in (e.g. /etc/winback/env), or remove \"{user}@\" from the url"
        )),
        (None, Some(_)) if !config.smtp.url.starts_with("file://") => Some(
            "WINBACK_SMTP_PASSWORD is set but smtp.url names no user to log in as; write url = \"smtp://USER@HOST:PORT\", or unset the variable".to_string(),
        ),
        _ => None,
    }
}

/// Builds everything from the configuration and runs until SIGINT/SIGTERM (or one pass).
/// Everything that can refuse the configuration (templates, pages, mail settings) runs
/// before the lock file or the database is created.
pub fn start(config: Config, clock: Clock, once: bool) -> anyhow::Result<()> {
    let (renderer, mailer) = prepare(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // First of all: until this is in place, SIGHUP (a closed terminal or SSH session)
        // is ignored (see main), and for a program started otherwise it ends the process.
        let reloads = reload_requests(once);
        let lock = DaemonLock::acquire(&config.database_path)?;
        // Before the database is created: a busy port leaves nothing behind but the lock.
        let listener = if once {
            None
        } else {
            let listen = config.http.listen;
            Some(
                tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen} (is another program using it? change [http] listen)"))?,
            )
        };
        let mut store = Store::open(&config.database_path)?;
        // Before anything is served or sent: a campaign renamed without a word would
        // survey everyone again under its new name.
        let renames = crate::config::unconfirmed_renames(&config, &store.stored_campaigns()?);
        if let Some(rename) = renames.first() {
            return Err(anyhow!("{}", rename.explain()));
        }
        let secret = Arc::new(load_secret(&mut store)?);
        let config = Arc::new(config);

        let (stop_tx, stop_rx) = watch::channel(false);
        let applied = watch::Sender::new(config.clone());
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });

        let http = if let Some(listener) = listener {
            let listen = config.http.listen;
            let state = HttpState {
                config: config.clone(),
                store: Arc::new(Mutex::new(Store::open(&config.database_path)?)),
                secret: secret.clone(),
                clock,
            };
            // Fail now, not on the first click, if the page templates are broken.
            let app = crate::http::router(state.clone()).map_err(|e| anyhow!("{e}"))?;
            tracing::info!(%listen, public_url = %config.http.public_url, "serving recipients' links");
            let (routes_tx, routes) = watch::channel(app);
            tokio::spawn(follow_reloads(applied.subscribe(), state, routes_tx));
            Some(tokio::spawn(crate::http::serve_routes(listener, routes, stopped(stop_rx.clone()))))
        } else {
            None
        };

        let deliverer = Deliverer {
            config,
            renderer: Arc::new(renderer),
            mailer,
            secret,
            clock,
            store: Arc::new(Mutex::new(store)),
        };
        let reloads = Reloads {
            requests: reloads,
            applied,
        };
        let result = run(deliverer, once, stopped(stop_rx), reloads).await;
        if let Some(http) = http {
            // A loop that failed must not leave the process serving links forever.
            if result.is_err() {
                http.abort();
            }
            match http.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server stopped with an error"),
                Err(e) if e.is_cancelled() => {}
                Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
            }
        }
        drop(lock);
        result
    })
}

/// Builds what a configuration needs to send, checking what `check` checks of it here
/// (page templates, mail templates, the SMTP login): at start and at every reload.
fn prepare(config: &Config) -> anyhow::Result<(Renderer, Arc<dyn crate::mailer::Mailer>)> {
    let page_problems = crate::http::check_pages(config);
    if !page_problems.is_empty() {
        return Err(anyhow!(
            "the page templates have problems (run `winback check`):\n{}",
            crate::mail::ProblemList(&page_problems)
        ));
    }
    let renderer = Renderer::load(config)
        .map_err(|problems| anyhow!(crate::mail::templates_refused(&problems)))?;
    for problem in renderer.placeholders() {
        tracing::warn!(%problem, "a template still holds a placeholder: its messages are held, not sent");
    }
    if let Some(problem) = smtp_login_problem(config) {
        return Err(anyhow!("{problem}"));
    }
    let mailer = crate::mailer::from_url(
        &config.smtp.url,
        crate::mailer::SmtpOptions {
            connections: config.smtp.connections,
            timeout: config.smtp.timeout,
            password: std::env::var("WINBACK_SMTP_PASSWORD").ok(),
            hello_name: None,
        },
    )
    .map_err(|e| anyhow!("smtp.url: {e}"))?;
    Ok((renderer, mailer))
}

/// Counts SIGHUPs: each one asks for the configuration and templates to be read again.
/// A one-pass run ignores them rather than die of one.
fn reload_requests(once: bool) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        if once {
                            continue;
                        }
                        tracing::info!(
                            "SIGHUP: reading the configuration and templates again before the next pass"
                        );
                        tx.send_modify(|n| *n += 1);
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; a reload needs a restart")
            }
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Reads the configuration file and its templates again and builds the next passes' deliverer,
/// validated as at start (and as `check` does). Settings that cannot change under a
/// running daemon ask for a restart instead. On any error the running one stays.
async fn reload(current: &Deliverer) -> anyhow::Result<Deliverer> {
    let file = current.config.file.clone();
    let config = Config::load(&file).map_err(|e| anyhow!("{e}"))?;
    if config.database_path != current.config.database_path {
        return Err(anyhow!(
            "{}: [database] path changed; a running daemon keeps its database: restart winback to use the new one",
            file.display()
        ));
    }
    if config.http.listen != current.config.http.listen {
        return Err(anyhow!(
            "{}: [http] listen changed; a running daemon keeps its address: restart winback to listen on the new one",
            file.display()
        ));
    }
    let (renderer, mailer) = prepare(&config)?;
    let stored = current.with_store(|store| store.stored_campaigns()).await?;
    if let Some(rename) = crate::config::unconfirmed_renames(&config, &stored).first() {
        return Err(anyhow!("{}", rename.explain()));
    }
    let config = Arc::new(config);
    {
        let config = config.clone();
        let now = current.clock.now();
        current
            .with_store(move |store| store.sync_campaigns(&config, now))
            .await?;
    }
    Ok(Deliverer {
        config,
        renderer: Arc::new(renderer),
        mailer,
        ..current.clone()
    })
}

/// SIGHUP requests, and where the loop announces each configuration it applied.
pub struct Reloads {
    pub requests: watch::Receiver<u64>,
    pub applied: watch::Sender<Arc<Config>>,
}

/// Rebuilds the recipients' routes for each configuration the loop applies; new
/// connections get them. Routes that cannot be built (the pages were checked, so only a
/// file changed since) keep the previous ones.
async fn follow_reloads(
    mut applied: watch::Receiver<Arc<Config>>,
    state: HttpState,
    routes: watch::Sender<axum::Router>,
) {
    while applied.changed().await.is_ok() {
        let config = applied.borrow_and_update().clone();
        match crate::http::router(HttpState {
            config,
            ..state.clone()
        }) {
            Ok(app) => {
                drop(routes.send_replace(app));
            }
            Err(error) => {
                tracing::error!(%error, "the recipients' pages were not reloaded; serving the previous ones")
            }
        }
    }
}

/// Resolves once the stop flag is raised (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The loop. Returns when `shutdown` resolves (after in-flight sends), or after one pass.
/// A change of `reloads` (SIGHUP) is applied between passes, never during one.
pub async fn run(
    mut deliverer: Deliverer,
    once: bool,
    shutdown: impl Future<Output = ()>,
    reloads: Reloads,
) -> anyhow::Result<()> {
    let Reloads {
        requests: mut reloads,
        applied,
    } = reloads;
    let config = deliverer.config.clone();
    let now = deliverer.clock.now();
    let recovered = {
        let config = config.clone();
        deliverer
            .with_store(move |store| store.recover_interrupted(&config, now))
            .await?
    };
    if recovered.uncertain > 0 {
        tracing::warn!(
            count = recovered.uncertain,
            "messages were caught mid-send by a stop; marked uncertain, not resent (see `winback outbox list`)"
        );
    }
    if recovered.returned > 0 {
        tracing::info!(
            count = recovered.returned,
            "messages claimed but never started before a stop are back in the queue"
        );
    }
    {
        let config = config.clone();
        deliverer
            .with_store(move |store| store.sync_campaigns(&config, now))
            .await?;
    }
    let mut watch = SyncWatch::default();
    let stopping = Arc::new(AtomicBool::new(false));
    tracing::info!(database = %config.database_path.display(), smtp = %redact(&config.smtp.url), once, "winback started");

    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    let mut reloads_open = true;
    let mut reloaded = None;
    let mut first = true;
    loop {
        if let Some(next) = reloaded.take() {
            deliverer = next;
            // The templates were read again: a held step may render now.
            let now = deliverer.clock.now();
            let held = deliverer
                .with_store(move |store| store.retry_held(now))
                .await?;
            if held > 0 {
                tracing::info!(
                    count = held,
                    "held messages are tried again with the reloaded templates"
                );
            }
        }
        sync_clients(&deliverer, &mut watch).await?;
        if !std::mem::take(&mut first) {
            settle_stuck(&deliverer).await;
        }
        // The pass runs to the end of its batch even when shutdown arrives: dropping it
        // would abort sends mid-transaction.
        let pass = deliverer.pass(stopping.clone());
        tokio::pin!(pass);
        let result = loop {
            tokio::select! {
                result = &mut pass => break result,
                _ = &mut shutdown, if !shutdown_seen => {
                    shutdown_seen = true;
                    stopping.store(true, Ordering::SeqCst);
                    tracing::info!("stopping: finishing the SMTP transactions already begun; claimed messages go back to the queue");
                }
            }
        };
        let report = match result {
            Ok(report) => report,
            Err(error) if !once && !shutdown_seen => {
                // E.g. the database stayed locked by a very long import. Nothing is lost: a
                // claim is all or nothing, and a send whose result could not be recorded
                // stays `sending` (uncertain at the next start), never sent again.
                tracing::error!(%error, "the delivery pass failed; trying again shortly");
                PassReport {
                    setup_error: true,
                    ..PassReport::default()
                }
            }
            Err(error) => return Err(error.into()),
        };
        if report.sent + report.retried + report.failed + report.uncertain > 0 {
            tracing::info!(
                sent = report.sent,
                retry = report.retried,
                failed = report.failed,
                uncertain = report.uncertain,
                blocked = report.blocked,
                returned = report.returned,
                "pass done"
            );
        }
        if once || shutdown_seen {
            tracing::info!("stopped");
            return Ok(());
        }
        let next = deliverer.with_store(|store| store.next_wake()).await?;
        let now = deliverer.clock.now();
        let cap = now + chrono::Duration::seconds(MAX_SLEEP_SECONDS);
        let until = if report.setup_error {
            now + chrono::Duration::seconds(MAX_SLEEP_SECONDS)
        } else if report.throttled {
            now + chrono::Duration::seconds(5)
        } else {
            next.map_or(cap, |t| t.min(cap))
        };
        let sleep = (until - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {},
            changed = reloads.changed(), if reloads_open => match changed {
                Ok(()) => match reload(&deliverer).await {
                    Ok(next) => {
                        tracing::info!(file = %next.config.file.display(), "configuration and templates reloaded");
                        applied.send_replace(next.config.clone());
                        reloaded = Some(next);
                    }
                    Err(error) => tracing::error!(%error, "the new configuration was not applied; running on with the previous one (run `winback check`)"),
                },
                Err(_) => reloads_open = false,
            },
            _ = &mut shutdown => {
                tracing::info!("stopped");
                return Ok(());
            }
        }
    }
}

/// Between passes nothing is in flight: a message still `sending` is one whose result a
/// pass could not write. It is settled now (uncertain if it had started, else back in the
/// queue), not left until the next start; failing that, it is tried again next time.
async fn settle_stuck(deliverer: &Deliverer) {
    let (config, now) = (deliverer.config.clone(), deliverer.clock.now());
    match deliverer
        .with_store(move |store| store.recover_stuck(&config, now))
        .await
    {
        Ok(settled) if settled.uncertain + settled.returned > 0 => {
            tracing::warn!(
                uncertain = settled.uncertain,
                returned = settled.returned,
                "messages whose results could not be written are settled: started ones are uncertain (see `winback outbox list`), the others back in the queue"
            );
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%error, "cannot settle messages left `sending`; trying again before the next pass");
        }
    }
}

/// Imports `[clients] sync_file` if it changed since the last look, once it has stopped
/// changing. A bad file is logged and changes nothing; a missing one is logged (at once,
/// then hourly). Each outcome is recorded for `status` and `/metrics`.
async fn sync_clients(deliverer: &Deliverer, watch: &mut SyncWatch) -> anyhow::Result<()> {
    let Some(path) = deliverer.config.sync_file.clone() else {
        return Ok(());
    };
    let shown = path.display().to_string();
    let report = |outcome, error: Option<String>| SyncReport {
        at: deliverer.clock.now(),
        file: shown.clone(),
        outcome,
        added: 0,
        updated: 0,
        unchanged: 0,
        bad_rows: 0,
        error,
        last_imported_at: None,
    };
    let stamp = match watch.look(&path, deliverer.clock.now()) {
        Look::Unchanged | Look::Missing { report: false, .. } => return Ok(()),
        Look::Missing { error, .. } => {
            let outcome = if error.kind() == std::io::ErrorKind::NotFound {
                SyncOutcome::Missing
            } else {
                SyncOutcome::Unreadable
            };
            tracing::error!(file = %shown, %error, "the client sync file cannot be read; nothing imported (check [clients] sync_file and the CRM export)");
            record_sync(deliverer, report(outcome, Some(error.to_string()))).await;
            return Ok(());
        }
        Look::Changed(stamp) => stamp,
    };
    // A file the CRM is still writing would be read cut short: wait, and read it only if
    // its size and modification time stayed the same.
    tokio::time::sleep(crate::import::SETTLE).await;
    if crate::import::stamp(&path).ok() != Some(stamp) {
        tracing::info!(file = %shown, "the client sync file is still being written; it is read once it stops changing");
        return Ok(());
    }
    watch.read(stamp);
    let config = deliverer.config.clone();
    let now = deliverer.clock.now();
    let result = deliverer
        .with_store(move |store| {
            match crate::import::import_file(store, &config, now, &path, false, &mut |_| {}) {
                Ok(outcome) => Ok(Ok(outcome)),
                Err(crate::import::SyncError::Store(e)) => Err(e),
                Err(other) => Ok(Err(other)),
            }
        })
        .await?;
    let done = match result {
        Ok(outcome) if outcome.applied => {
            let c = outcome.counts;
            tracing::info!(file = %shown, added = c.added, updated = c.updated, unchanged = c.unchanged, "clients synced");
            SyncReport {
                added: c.added,
                updated: c.updated,
                unchanged: c.unchanged,
                ..report(SyncOutcome::Imported, None)
            }
        }
        Ok(outcome) => {
            for e in &outcome.errors {
                tracing::error!(file = %shown, line = e.line, reason = %crate::domain::model::printable(&e.reason), "bad row");
            }
            tracing::error!(file = %shown, bad_rows = outcome.error_count, "client file not imported: fix the rows above; the database is unchanged");
            let first = outcome.errors.first().map(|e| e.to_string());
            SyncReport {
                bad_rows: outcome.error_count,
                ..report(SyncOutcome::Refused, first)
            }
        }
        Err(e) => {
            tracing::error!(file = %shown, error = %e, "client file not imported; the database is unchanged");
            let outcome = match e {
                crate::import::SyncError::Read { .. } => SyncOutcome::Unreadable,
                _ => SyncOutcome::Refused,
            };
            report(outcome, Some(e.to_string()))
        }
    };
    record_sync(deliverer, done).await;
    Ok(())
}

/// Keeps a sync's outcome for `status` and `/metrics`; failing to is logged, not fatal.
async fn record_sync(deliverer: &Deliverer, report: SyncReport) {
    if let Err(error) = deliverer
        .with_store(move |store| store.record_sync(&report))
        .await
    {
        tracing::error!(%error, "could not record the client sync's outcome");
    }
}

/// The SMTP URL without credentials, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_second_daemon_through_a_symlink_finds_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("winback.db");
        std::fs::write(&database, b"").unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let link = other.join("alias.db");
        std::os::unix::fs::symlink(&database, &link).unwrap();
        let first = DaemonLock::acquire(&database).unwrap();
        for second in [link.clone(), other.join("../winback.db")] {
            let refused = DaemonLock::acquire(&second).map(|_| ()).unwrap_err();
            assert!(
                refused.to_string().contains("already running"),
                "{second:?}: {refused}"
            );
        }
        drop(first);
        let again = DaemonLock::acquire(&link).unwrap();
        assert!(again.path().starts_with(dir.path().canonicalize().unwrap()));
        assert!(again.path().ends_with("winback.db.lock"));
    }
}
