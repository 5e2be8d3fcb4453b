//! The long-running process: one per database, a deadline loop around delivery passes.
//! It starts from a setup that has passed (`Setup::load`, what `check` runs) and takes
//! the lock (`daemon/lock.rs`); the client sync file is read by `daemon/sync.rs`.
//!
//! It sleeps until the next due moment or shutdown, never longer than `MAX_SLEEP_SECONDS`,
//! so imports and opt-out undos by other processes are seen soon. Shutdown is a parameter
//! (a future), so tests pass their own; on it, the daemon stops claiming, starts no new
//! SMTP transaction, lets the open ones finish, puts claimed messages back in the queue,
//! and returns. SIGHUP reads the configuration and templates again, checked as at start,
//! and applies them between passes; a file that fails keeps the running one.

mod customers;
mod lock;
mod mailboxes;
mod sync;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow};
use tokio::sync::watch;

use crate::config::Config;
use crate::deliver::{Deliverer, PassReport};
use crate::http::HttpState;
use crate::import::SyncWatch;
use crate::mail::Renderer;
use crate::setup::Setup;
use crate::store::{SharedStore, Store};
use customers::sync_customers;
use lock::DaemonLock;
use sync::sync_clients;

/// Even with nothing due, look again this often (imports by other processes, config-free
/// changes such as `winback resend`).
const MAX_SLEEP_SECONDS: i64 = 30;

/// Runs from a setup that has passed (`Setup::load`, as `check` does) until `shutdown`
/// resolves (SIGINT/SIGTERM from the command line), or for one pass. The lock file and
/// the database are created only now; only a lock held elsewhere, a busy port or a
/// mailer that cannot be built (TLS roots, the `.eml` folder) can still refuse.
pub(crate) fn start(
    setup: Setup,
    once: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mailer = mailer_for(&setup)?;
    warn_of_placeholders(&setup.renderer);
    let Setup {
        config,
        clock,
        secrets,
        renderer,
        ..
    } = setup;
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
        // Again, now under the lock (the setup looked read-only): before anything is
        // served or sent, as a campaign renamed without a word would survey everyone
        // again under its new name.
        let renames = crate::config::unconfirmed_renames(&config, &store.stored_campaigns()?);
        if let Some(rename) = renames.first() {
            return Err(anyhow!("{}", rename.explain()));
        }
        let secret = Arc::new(crate::setup::load_secret(&mut store, &secrets)?);
        let config = Arc::new(config);

        let (stop_tx, stop_rx) = watch::channel(false);
        // Rung by the HTTP server and the mailbox readers when they queue a notice to the
        // team, so that it goes now rather than at the loop's next wake.
        let wake = Arc::new(tokio::sync::Notify::new());
        let applied = watch::Sender::new(config.clone());
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let http = if let Some(listener) = listener {
            let listen = config.http.listen;
            let state = HttpState {
                config: config.clone(),
                store: SharedStore::new(Store::open(&config.database_path)?),
                secret: secret.clone(),
                clock,
                wake: wake.clone(),
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

        let checks = SharedStore::new(store.open_for_checks()?);
        store.keep_temporary_in_memory()?;
        let store = SharedStore::new(store);
        if !once {
            mailboxes::start(
                &config,
                secrets.imap_password.as_deref(),
                &store,
                &secret,
                clock,
                &wake,
            );
        }
        let deliverer = Deliverer {
            config,
            renderer: Arc::new(renderer),
            mailer,
            secret,
            clock,
            store,
            checks,
        };
        let reloads = Reloads {
            requests: reloads,
            applied,
        };
        let result = run(deliverer, once, stopped(stop_rx), reloads, wake).await;
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

/// The mailer for the setup's `[smtp] url`, read once by the configuration. For
/// `file://`, its folder is created here.
fn mailer_for(setup: &Setup) -> anyhow::Result<Arc<dyn crate::mailer::Mailer>> {
    let smtp = &setup.config.smtp;
    crate::mailer::from_endpoint(
        &smtp.endpoint,
        crate::mailer::SmtpOptions {
            connections: smtp.connections,
            timeout: smtp.timeout,
            password: setup.secrets.smtp_password.clone(),
            hello_name: None,
        },
    )
    .map_err(|e| anyhow!("smtp.url: {e}"))
}

fn warn_of_placeholders(renderer: &Renderer) {
    for problem in renderer.placeholders() {
        tracing::warn!(%problem, "a template still holds a placeholder: its messages are held, not sent");
    }
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

/// Reads the configuration file and its templates again and builds the next passes'
/// deliverer, through the same setup stage as at start (and as `check`). Settings that
/// cannot change under a running daemon ask for a restart instead. On any error the
/// running one stays.
async fn reload(current: &Deliverer) -> anyhow::Result<Deliverer> {
    let file = current.config.file.clone();
    let setup = Setup::load(&file, current.clock).map_err(|e| anyhow!("{e}"))?;
    if setup.config.database_path != current.config.database_path {
        return Err(anyhow!(
            "{}: [database] path changed; a running daemon keeps its database: restart winback to use the new one",
            file.display()
        ));
    }
    if setup.config.http.listen != current.config.http.listen {
        return Err(anyhow!(
            "{}: [http] listen changed; a running daemon keeps its address: restart winback to listen on the new one",
            file.display()
        ));
    }
    let mailer = mailer_for(&setup)?;
    warn_of_placeholders(&setup.renderer);
    let Setup {
        config, renderer, ..
    } = setup;
    let stored = current.store.call(|store| store.stored_campaigns()).await?;
    if let Some(rename) = crate::config::unconfirmed_renames(&config, &stored).first() {
        return Err(anyhow!("{}", rename.explain()));
    }
    let config = Arc::new(config);
    {
        let config = config.clone();
        let now = current.clock.now();
        current
            .store
            .call(move |store| store.sync_campaigns(&config, now))
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
pub(crate) struct Reloads {
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
pub(crate) async fn shutdown_signal() {
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
/// A change of `reloads` (SIGHUP) is applied between passes, never during one; `wake`
/// ends its wait early (a notice to the team was queued).
pub(crate) async fn run(
    mut deliverer: Deliverer,
    once: bool,
    shutdown: impl Future<Output = ()>,
    reloads: Reloads,
    wake: Arc<tokio::sync::Notify>,
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
            .store
            .call(move |store| store.recover_interrupted(&config, now))
            .await?
    };
    if recovered.uncertain > 0 {
        tracing::warn!(
            count = recovered.uncertain,
            "messages were caught mid-send by a stop; marked uncertain, not resent (see `winback outbox list`)"
        );
    }
    let notices = deliverer
        .store
        .call(|store| store.recover_notices())
        .await?;
    if notices > 0 {
        tracing::warn!(
            count = notices,
            "notices to the team were caught mid-send by a stop; marked uncertain, not sent again"
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
            .store
            .call(move |store| store.sync_campaigns(&config, now))
            .await?;
    }
    let mut watch = SyncWatch::default();
    let mut customers_watch = SyncWatch::default();
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
                .store
                .call(move |store| store.retry_held(now))
                .await?;
            if held > 0 {
                tracing::info!(
                    count = held,
                    "held messages are tried again with the reloaded templates"
                );
            }
        }
        // Clients first, then who among them is a customer again: both before the pass.
        sync_clients(&deliverer, &mut watch).await?;
        sync_customers(&deliverer, &mut customers_watch).await?;
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
            Err(error) if shutdown_seen => {
                // A stop gave up on results it could not write (a full disk): the stop
                // itself went as asked, and the next start settles those rows.
                tracing::error!(%error, "stopping with results not written: the next start settles those messages (the ones already started become uncertain: see `winback outbox list`)");
                PassReport::default()
            }
            Err(error) => return Err(error.into()),
        };
        if !shutdown_seen && !report.setup_error {
            // Between passes nothing is in flight; a notice waits behind a stop request
            // no longer than its own send.
            if let Err(error) = deliverer.send_notices(&stopping).await {
                tracing::error!(%error, "notices to the team could not be sent; trying again shortly");
            }
        }
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
        let notify = deliverer.config.inbound.notify.is_some();
        let next = deliverer
            .store
            .call(move |store| {
                let notice = match notify {
                    true => store.next_notice_at()?,
                    false => None,
                };
                Ok(store.next_wake()?.into_iter().chain(notice).min())
            })
            .await?;
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
        tracing::debug!(
            seconds = sleep.as_secs_f64(),
            "idle until the next thing is due"
        );
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {},
            _ = wake.notified() => {},
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
        .store
        .call(move |store| store.recover_stuck(&config, now))
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

/// The SMTP URL without credentials, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
