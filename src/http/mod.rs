//! The recipients' side of the daemon: one-click unsubscribe (RFC 8058) and its undo,
//! the feedback survey, and a liveness probe, over HTTP.
//!
//! Every recipient route starts from a signed token (see [`crate::token`]): a token that
//! does not verify gets the same 404 page as an unknown one and changes nothing. A `GET`
//! never changes anything (mail scanners prefetch links). Page views and tokens that do
//! not verify are limited per client address; a POST through a valid link never is.
//! Store calls run on blocking threads; this module holds no SQL and reads the time only
//! from the daemon's clock.
//!
//! This file owns the server (connections capped below the open-file limit, the head
//! time limit) and the routing; the routes are in `unsubscribe.rs` and `survey.rs`, what
//! every request passes through in `guard.rs`, what the routes share in `app.rs`,
//! refusals and their pages in `pages.rs`.

mod app;
mod guard;
mod metrics;
mod pages;
mod rate_limit;
mod survey;
#[cfg(test)]
mod tests;
mod unsubscribe;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};

use crate::config::Problem;
use crate::mail::pages::Pages;
use app::{App, Shared};
use pages::Failure;
use rate_limit::RateLimiter;

pub(crate) use app::HttpState;

/// The largest request body accepted on the unsubscribe routes (RFC 8058 bodies are a
/// few dozen bytes).
pub(crate) const BODY_LIMIT: usize = 16 * 1024;
/// The largest survey answer body: room for the longest free-text answer
/// (`domain::survey::MAX_TEXT_CHARS` characters) of any script, percent-encoded.
pub(crate) const SURVEY_BODY_LIMIT: usize = 64 * 1024;
/// Requests per minute one client address may make to the recipient routes (page views
/// and tokens that do not verify; see [`rate_limit`]).
pub(crate) const REQUESTS_PER_MINUTE: u32 = 30;
/// Client addresses the rate limiter remembers at most.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The page templates have problems; the server cannot start.
#[derive(Debug, thiserror::Error)]
#[error("the recipient page templates have problems (run `winback check`):\n{}", crate::mail::ProblemList(.0))]
pub(crate) struct PagesError(pub Vec<Problem>);

#[cfg(test)]
/// Serves `state` on `listener` until `shutdown` resolves, then lets open requests
/// finish. Fails at once if the page templates do not compile.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving the recipients' links");
    }
    serve_router(listener, app, shutdown).await
}

/// How long a client may take to send a request's head, counted from when the server
/// starts waiting for it (a new connection, or a kept-alive one between requests): an idle
/// connection is closed after this.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept out of the HTTP server's reach: the database (two connections,
/// each with its WAL and shared-memory files), up to 64 SMTP connections, the lock file,
/// `.eml` files, the client sync file and logs.
const RESERVED_FDS: u64 = 192;
/// Open connections at most, whatever the file-descriptor limit.
const MAX_CONNECTIONS: u64 = 4096;

#[cfg(test)]
/// [`serve`] for routes already built (the daemon builds them before it starts, so a
/// broken page template stops it at once). Connections are capped by the process's
/// file-descriptor limit (see [`connection_cap`]), so HTTP load never takes the
/// descriptors that delivery needs; beyond the cap, new connections wait in the kernel's
/// queue until one closes. On `shutdown`, no connection is accepted and open ones finish
/// their request.
pub(crate) async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (_, routes) = tokio::sync::watch::channel(app);
    serve_routes(listener, routes, shutdown).await
}

/// [`serve_router`] with routes that can change while it runs (a reloaded configuration):
/// each new connection gets the latest; open ones keep theirs.
pub(crate) async fn serve_routes(
    listener: tokio::net::TcpListener,
    routes: tokio::sync::watch::Receiver<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::ServiceExt;

    let cap = connection_cap(file_limit());
    tracing::debug!(connections = cap, "HTTP connection cap");
    let permits = Arc::new(tokio::sync::Semaphore::new(cap));
    // Dropped on shutdown: every connection then finishes gracefully.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // Each connection holds a clone; `closed()` resolves when the last is gone.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors (or a connection reset before it was taken):
                    // wait a moment rather than spin.
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = routes.borrow().clone();
        let service = app.map_request(move |request: Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            request
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = &mut connection => break,
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
            drop(permit);
        });
    }
    drop(listener);
    drop(stop_tx);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// The soft limit on open files, if it can be read.
fn file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0).then_some(limit.rlim_cur)
}

/// How many HTTP connections may be open at once under a file-descriptor limit: all but
/// [`RESERVED_FDS`], at least 16, at most [`MAX_CONNECTIONS`].
fn connection_cap(file_limit: Option<u64>) -> usize {
    let limit = file_limit.unwrap_or(1024);
    limit
        .saturating_sub(RESERVED_FDS)
        .clamp(16, MAX_CONNECTIONS) as usize
}

/// The routes, for `serve` and for tests. Requests need a `ConnectInfo<SocketAddr>`
/// extension (what `serve` provides) for the rate limit; without one they share a bucket.
pub(crate) fn router(state: HttpState) -> Result<Router, PagesError> {
    let pages = Pages::load(&state.config).map_err(PagesError)?;
    let public_url = state.config.http.public_url.clone();
    let app = Arc::new(App {
        state,
        pages,
        limiter: RateLimiter::new(REQUESTS_PER_MINUTE, MAX_TRACKED_CLIENTS),
    });
    let recipient_routes = Router::new()
        .route(
            "/u/{token}",
            get(unsubscribe::unsubscribe_page).post(unsubscribe::unsubscribe),
        )
        .route("/u/{token}/undo", post(unsubscribe::undo))
        .route(
            "/s/{token}",
            get(survey::survey_form)
                .post(survey::survey_answer)
                .layer(DefaultBodyLimit::max(SURVEY_BODY_LIMIT)),
        )
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            guard::rate_limit,
        ));
    Ok(Router::new()
        .merge(recipient_routes)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(guard::request_deadline))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::map_response(guard::security_headers(
            &public_url,
        )))
        .with_state(app))
}

async fn not_found(State(app): State<Shared>) -> Response {
    app.failure(Failure::NotFound)
}
