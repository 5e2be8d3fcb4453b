//! The long-running process: one per database, a deadline loop around delivery passes.
//!
//! It sleeps until the next due moment or shutdown, never longer than `MAX_SLEEP_SECONDS`,
//! so imports and opt-out undos by other processes are seen soon. Shutdown is a parameter
//! (a future), so tests pass their own; on it, the daemon stops claiming, starts no new
//! SMTP transaction, lets the open ones finish, puts claimed messages back in the queue,
//! and returns.

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
use crate::http::HttpState;
use crate::model::{SyncOutcome, SyncReport};
use crate::render::Renderer;
use crate::store::Store;
use crate::sync::{Look, SyncWatch};
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
    /// Refuses if another daemon holds the lock on the same database.
    pub fn acquire(database: &Path) -> anyhow::Result<DaemonLock> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        // The database (and so its folder) may not exist yet on a first run.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
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

/// The link secret: `WINBACK_SECRET` if set, else the one kept in the database.
pub fn load_secret(store: &mut Store) -> anyhow::Result<Secret> {
    match std::env::var("WINBACK_SECRET") {
        Ok(text) if !text.is_empty() => Ok(Secret::from_text(&text)),
        _ => Ok(store.secret()?),
    }
}

/// Builds everything from the configuration and runs until SIGINT/SIGTERM (or one pass).
pub fn start(config: Config, clock: Clock, once: bool) -> anyhow::Result<()> {
    let renderer = Renderer::load(&config).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow!(
            "the templates have problems (run `winback check`):\n{}",
            list.join("\n")
        )
    })?;
    for problem in renderer.placeholders() {
        tracing::warn!(%problem, "a template still holds a placeholder: its messages are held, not sent");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let lock = DaemonLock::acquire(&config.database_path)?;
        let mut store = Store::open(&config.database_path)?;
        let secret = Arc::new(load_secret(&mut store)?);
        let password = std::env::var("WINBACK_SMTP_PASSWORD").ok();
        let mailer = crate::mailer::from_url(
            &config.smtp.url,
            crate::mailer::SmtpOptions {
                connections: config.smtp.connections,
                timeout: config.smtp.timeout,
                password,
                hello_name: None,
            },
        )
        .map_err(|e| anyhow!("smtp.url: {e}"))?;
        let config = Arc::new(config);

        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        });

        let http = if once {
            None
        } else {
            let listen = config.http.listen;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen} (is another program using it? change [http] listen)"))?;
            let state = HttpState {
                config: config.clone(),
                store: Arc::new(Mutex::new(Store::open(&config.database_path)?)),
                secret: secret.clone(),
                clock,
            };
            // Fail now, not on the first click, if the page templates are broken.
            let app = crate::http::router(state).map_err(|e| anyhow!("{e}"))?;
            tracing::info!(%listen, public_url = %config.http.public_url, "serving recipients' links");
            Some(tokio::spawn(crate::http::serve_router(listener, app, stopped(stop_rx.clone()))))
        };

        let deliverer = Deliverer {
            config,
            renderer: Arc::new(renderer),
            mailer,
            secret,
            clock,
            store: Arc::new(Mutex::new(store)),
        };
        let result = run(deliverer, once, stopped(stop_rx)).await;
        if let Some(http) = http {
            match http.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server stopped with an error"),
                Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
            }
        }
        drop(lock);
        result
    })
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
pub async fn run(
    deliverer: Deliverer,
    once: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
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
    let mut first = true;
    loop {
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
    tokio::time::sleep(crate::sync::SETTLE).await;
    if crate::sync::stamp(&path).ok() != Some(stamp) {
        tracing::info!(file = %shown, "the client sync file is still being written; it is read once it stops changing");
        return Ok(());
    }
    watch.read(stamp);
    let config = deliverer.config.clone();
    let now = deliverer.clock.now();
    let result = deliverer
        .with_store(move |store| {
            match crate::sync::import_file(store, &config, now, &path, false, &mut |_| {}) {
                Ok(outcome) => Ok(Ok(outcome)),
                Err(crate::sync::SyncError::Store(e)) => Err(e),
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
                tracing::error!(file = %shown, line = e.line, reason = %e.reason, "bad row");
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
                crate::sync::SyncError::Read { .. } => SyncOutcome::Unreadable,
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
