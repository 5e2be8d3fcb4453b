//! The recipients' side of the daemon: one-click unsubscribe (RFC 8058) and its undo,
//! the feedback survey, and a liveness probe, over HTTP.
//!
//! Every recipient route starts from a signed token (see [`crate::token`]): a token that
//! does not verify gets the same 404 page as an unknown one and changes nothing. A `GET`
//! never changes anything (mail scanners prefetch links). Page views and tokens that do
//! not verify are limited per client address; a POST through a valid link never is.
//! Store calls run on blocking threads; this module holds no SQL and reads the time only
//! from the daemon's clock.

mod metrics;
mod pages;
#[cfg(test)]
mod proptests;
mod rate_limit;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, ExtensionRejection, FormRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Path, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::clock::Clock;
use crate::config::{Config, Problem};
use crate::store::{OptOutOutcome, Store, StoreError, SurveyAnswer, SurveyOutcome, UndoOutcome};
use crate::token::{self, Purpose, Secret, Target};
use pages::{Page, Pages};
use rate_limit::RateLimiter;

pub use pages::check_pages;

/// The largest request body accepted on the unsubscribe routes (RFC 8058 bodies are a
/// few dozen bytes).
pub const BODY_LIMIT: usize = 16 * 1024;
/// The largest survey answer body: room for [`MAX_TEXT_CHARS`] characters of any script,
/// percent-encoded.
pub const SURVEY_BODY_LIMIT: usize = 64 * 1024;
/// The longest free-text answer, in characters.
pub const MAX_TEXT_CHARS: usize = 5000;
/// Requests per minute one client address may make to the recipient routes (page views
/// and tokens that do not verify; see [`rate_limit`]).
pub const REQUESTS_PER_MINUTE: u32 = 30;
/// Client addresses the rate limiter remembers at most.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The survey's "why did you leave" choices: the churn reasons a person can pick.
pub const SURVEY_REASONS: [&str; 6] = [
    "competitor",
    "acquisition",
    "contact_left",
    "price",
    "needs_changed",
    "other",
];
/// The survey's "would you work with us again" choices.
pub const WOULD_RETURN: [&str; 3] = ["yes", "maybe", "no"];

/// What the server needs from the daemon.
#[derive(Clone)]
pub struct HttpState {
    pub config: Arc<Config>,
    /// Locked only on blocking threads, never across an `.await`.
    pub store: Arc<Mutex<Store>>,
    pub secret: Arc<Secret>,
    pub clock: Clock,
}

/// The page templates have problems; the server cannot start.
#[derive(Debug, thiserror::Error)]
#[error("the recipient page templates have problems (run `winback check`):\n{}", crate::mail::ProblemList(.0))]
pub struct PagesError(pub Vec<Problem>);

/// Serves `state` on `listener` until `shutdown` resolves, then lets open requests
/// finish. Fails at once if the page templates do not compile.
pub async fn serve(
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
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take from its head to the response, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// File descriptors kept out of the HTTP server's reach: the database (two connections,
/// each with its WAL and shared-memory files), up to 64 SMTP connections, the lock file,
/// `.eml` files, the client sync file and logs.
const RESERVED_FDS: u64 = 192;
/// Open connections at most, whatever the file-descriptor limit.
const MAX_CONNECTIONS: u64 = 4096;

/// [`serve`] for routes already built (the daemon builds them before it starts, so a
/// broken page template stops it at once). Connections are capped by the process's
/// file-descriptor limit (see [`connection_cap`]), so HTTP load never takes the
/// descriptors that delivery needs; beyond the cap, new connections wait in the kernel's
/// queue until one closes. On `shutdown`, no connection is accepted and open ones finish
/// their request.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (_, routes) = tokio::sync::watch::channel(app);
    serve_routes(listener, routes, shutdown).await
}

/// [`serve_router`] with routes that can change while it runs (a reloaded configuration):
/// each new connection gets the latest; open ones keep theirs.
pub async fn serve_routes(
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

/// A request that takes longer than [`REQUEST_TIMEOUT`] (a body sent a byte at a time,
/// say) gets 408 and its connection back.
async fn request_deadline(request: Request, next: Next) -> Response {
    within(REQUEST_TIMEOUT, next.run(request)).await
}

/// The response, or 408 (closing the connection) if it is not ready within `limit`.
async fn within(limit: Duration, response: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, response).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = StatusCode::REQUEST_TIMEOUT.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
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
pub fn router(state: HttpState) -> Result<Router, PagesError> {
    let pages = Pages::load(&state.config).map_err(PagesError)?;
    let public_url = state.config.http.public_url.clone();
    let app = Arc::new(App {
        state,
        pages,
        limiter: RateLimiter::new(REQUESTS_PER_MINUTE, MAX_TRACKED_CLIENTS),
    });
    let recipient_routes = Router::new()
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/u/{token}/undo", post(undo))
        .route(
            "/s/{token}",
            get(survey_form)
                .post(survey_answer)
                .layer(DefaultBodyLimit::max(SURVEY_BODY_LIMIT)),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), rate_limit));
    Ok(Router::new()
        .merge(recipient_routes)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(request_deadline))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::map_response(security_headers(&public_url)))
        .with_state(app))
}

struct App {
    state: HttpState,
    pages: Pages,
    limiter: RateLimiter,
}

type Shared = Arc<App>;

/// Why a request is refused. Each maps to one status and one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// An unknown, forged, altered or wrong-purpose token; an unknown path; a survey
    /// served elsewhere.
    NotFound,
    /// A malformed request or an answer outside the offered choices.
    BadRequest,
    TooLarge,
    TooManyRequests {
        retry_after: Duration,
    },
    /// The opt-out was recorded by someone else (an operator, a bounce): a link may not
    /// undo it.
    NotUndoable,
    /// Ours: the database failed. Logged where it happens.
    Internal,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Failure::NotUndoable => StatusCode::CONFLICT,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn page(self) -> Page {
        let (kind, title, message) = match self {
            Failure::NotFound => (
                "not_found",
                "This link is not valid",
                "The link may be incomplete or out of date. Please copy the whole link from the email, or reply to the email and we will help.",
            ),
            Failure::BadRequest => (
                "bad_request",
                "We could not read that",
                "Something in the request was not as expected, so nothing was changed. Please go back and try again.",
            ),
            Failure::TooLarge => (
                "too_large",
                "That was too long",
                "The request was larger than we accept, so nothing was changed. Please shorten your answer and try again.",
            ),
            Failure::TooManyRequests { .. } => (
                "too_many_requests",
                "Too many requests",
                "Please wait a minute and try again.",
            ),
            Failure::NotUndoable => (
                "not_undoable",
                "We cannot undo this here",
                "Your address was unsubscribed by our team or after a delivery problem, so this link cannot subscribe it again. Reply to any of our emails if you would like to hear from us.",
            ),
            Failure::Internal => (
                "server_error",
                "Something went wrong on our side",
                "Nothing was lost on your side. Please try again in a few minutes.",
            ),
        };
        Page::Error {
            status: self.status().as_u16(),
            kind,
            title,
            message,
        }
    }
}

impl App {
    /// A rendered page. A template that fails at this point (it rendered at start-up) is
    /// logged and answered with a bare 500.
    fn page(&self, status: StatusCode, page: &Page) -> Response {
        match self.pages.render(page) {
            Ok(html) => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                html,
            )
                .into_response(),
            Err(error) => {
                tracing::error!(template = page.template(), %error, "cannot render a recipient page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Please try again later.\n",
                )
                    .into_response()
            }
        }
    }

    fn failure(&self, failure: Failure) -> Response {
        let mut response = self.page(failure.status(), &failure.page());
        if let Failure::TooManyRequests { retry_after } = failure
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    fn respond(&self, result: Result<(StatusCode, Page), Failure>) -> Response {
        match result {
            Ok((status, page)) => self.page(status, &page),
            Err(failure) => self.failure(failure),
        }
    }

    /// What a token of `purpose` points at; anything else is "not found".
    fn verify(
        &self,
        purpose: Purpose,
        token: Result<Path<String>, PathRejection>,
    ) -> Result<Target, Failure> {
        let Path(token) = token.map_err(|_| Failure::NotFound)?;
        token::verify(&self.state.secret, purpose, &token).ok_or(Failure::NotFound)
    }

    /// Runs `f` on the store on a blocking thread.
    async fn with_store<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.state.store.clone();
        let joined = tokio::task::spawn_blocking(move || match store.lock() {
            Ok(mut guard) => f(&mut guard).map_err(|e| e.to_string()),
            Err(_) => Err("the database lock was poisoned by a crash in another task".to_string()),
        })
        .await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::error!(%error, "a recipient request failed in the database");
                Err(Failure::Internal)
            }
            Err(error) => {
                tracing::error!(%error, "a recipient request's database task failed");
                Err(Failure::Internal)
            }
        }
    }

    fn unsubscribe_url(&self, id: &Target) -> String {
        crate::links::unsubscribe_url(&self.state.config, &self.state.secret, *id)
    }

    fn undo_url(&self, id: &Target) -> String {
        format!("{}/undo", self.unsubscribe_url(id))
    }

    /// The survey's address as the emails give it: the built-in form, or the external one.
    fn survey_url(&self, id: &Target) -> String {
        crate::links::survey_url(&self.state.config, &self.state.secret, *id)
    }

    fn survey_served_here(&self) -> bool {
        self.state.config.survey_external_url.is_none()
    }
}

/// The body of a POST, read within the body limit (to refuse what is too large); its
/// content does not matter.
fn check_body(body: Result<Bytes, BytesRejection>) -> Result<(), Failure> {
    match body {
        Ok(_) => Ok(()),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Failure::TooLarge)
        }
        Err(_) => Err(Failure::BadRequest),
    }
}

/// `GET /u/{token}`: a page with the button. Changes nothing.
async fn unsubscribe_page(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let id = app.verify(Purpose::Unsubscribe, token)?;
        let view = app
            .with_store(move |store| store.enrollment_by_link(&id))
            .await?;
        let view = view.ok_or(Failure::NotFound)?;
        Ok((
            StatusCode::OK,
            Page::Unsubscribe {
                first_name: view.greeting_name(),
                already_unsubscribed: view.opted_out,
                unsubscribe_url: app.unsubscribe_url(&id),
                undo_url: app.undo_url(&id),
            },
        ))
    }
    .await;
    app.respond(result)
}

/// `POST /u/{token}`: one-click unsubscribe (RFC 8058). Any POST to the link counts,
/// whatever its body (`List-Unsubscribe=One-Click`, urlencoded or multipart, or the
/// page's button). Answers 200 with a page, never a redirect; idempotent.
async fn unsubscribe(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        check_body(body)?;
        let id = app.verify(Purpose::Unsubscribe, token)?;
        let now = app.state.clock.now();
        let (outcome, view) = app
            .with_store(move |store| {
                let outcome = store.opt_out_enrollment(&id, "link", now)?;
                Ok((outcome, store.enrollment_by_link(&id)?))
            })
            .await?;
        let view = view.ok_or(Failure::NotFound)?;
        match outcome {
            OptOutOutcome::Unknown => return Err(Failure::NotFound),
            OptOutOutcome::OptedOut => {
                tracing::info!(
                    client = view.client_id,
                    "opted out through an unsubscribe link"
                );
            }
            OptOutOutcome::AlreadyOptedOut => {}
        }
        Ok((
            StatusCode::OK,
            Page::Unsubscribed {
                first_name: view.greeting_name(),
                undo_url: app.undo_url(&id),
                survey_url: app.survey_served_here().then(|| app.survey_url(&id)),
            },
        ))
    }
    .await;
    app.respond(result)
}

/// `POST /u/{token}/undo`: the person changed their mind right after unsubscribing.
async fn undo(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        check_body(body)?;
        let id = app.verify(Purpose::Unsubscribe, token)?;
        let now = app.state.clock.now();
        let config = app.state.config.clone();
        let (outcome, view) = app
            .with_store(move |store| {
                let outcome = store.undo_opt_out(&id, now, &config)?;
                Ok((outcome, store.enrollment_by_link(&id)?))
            })
            .await?;
        let view = view.ok_or(Failure::NotFound)?;
        match outcome {
            UndoOutcome::Unknown => return Err(Failure::NotFound),
            UndoOutcome::NotUndoable => return Err(Failure::NotUndoable),
            UndoOutcome::Resubscribed { reactivated } => {
                tracing::info!(
                    client = view.client_id,
                    reactivated,
                    "opt-out undone through an unsubscribe link"
                );
            }
            UndoOutcome::NotOptedOut => {}
        }
        Ok((
            StatusCode::OK,
            Page::Resubscribed {
                first_name: view.greeting_name(),
                unsubscribe_url: app.unsubscribe_url(&id),
            },
        ))
    }
    .await;
    app.respond(result)
}

/// `GET /s/{token}`: the survey form, filled with the earlier answer if there is one.
async fn survey_form(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        if !app.survey_served_here() {
            return Err(Failure::NotFound);
        }
        let id = app.verify(Purpose::Survey, token)?;
        let (view, answer) = app
            .with_store(move |store| {
                let view = store.enrollment_by_link(&id)?;
                let answer = store.survey_answer(&id)?;
                Ok((view, answer))
            })
            .await?;
        let view = view.ok_or(Failure::NotFound)?;
        let page = Page::survey(
            view.greeting_name(),
            app.survey_url(&id),
            answer.unwrap_or_default(),
            false,
            None,
        );
        Ok((StatusCode::OK, page))
    }
    .await;
    app.respond(result)
}

/// The survey form as posted. Every field is optional; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
struct SurveyForm {
    reason: Option<String>,
    better: Option<String>,
    would_return: Option<String>,
    stop: Option<String>,
}

/// Why an answer was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Invalid {
    /// A value no form offers (a forged request): 400, nothing stored.
    Choice,
    /// Something a person can fix: the form again, with this sentence.
    Fixable(String),
}

/// Checks a posted answer: choices against the lists, text within the limit.
fn validate(form: SurveyForm) -> Result<(SurveyAnswer, bool), (Invalid, SurveyAnswer, bool)> {
    let choice = |value: Option<String>, allowed: &[&str]| -> Result<Option<String>, Invalid> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
            Some(_) => Err(Invalid::Choice),
        }
    };
    let stop = match form.stop.as_deref() {
        None => false,
        Some("yes") | Some("on") => true,
        Some(_) => return Err((Invalid::Choice, SurveyAnswer::default(), false)),
    };
    let better = form
        .better
        .as_deref()
        .map(clean_text)
        .filter(|t| !t.is_empty());
    let partial = SurveyAnswer {
        reason: None,
        better: better.clone(),
        would_return: None,
    };
    let reason = choice(form.reason, &SURVEY_REASONS).map_err(|e| (e, partial.clone(), stop))?;
    let would_return =
        choice(form.would_return, &WOULD_RETURN).map_err(|e| (e, partial.clone(), stop))?;
    let answer = SurveyAnswer {
        reason,
        better,
        would_return,
    };
    if let Some(text) = &answer.better {
        let length = text.chars().count();
        if length > MAX_TEXT_CHARS {
            let message = format!(
                "Your answer to \"What could we have done better?\" is {length} characters long; please shorten it to {MAX_TEXT_CHARS} or fewer."
            );
            return Err((Invalid::Fixable(message), answer, stop));
        }
    }
    if answer == SurveyAnswer::default() && !stop {
        let message = "Please answer at least one question before sending.".to_string();
        return Err((Invalid::Fixable(message), answer, stop));
    }
    Ok((answer, stop))
}

/// Trimmed, with CRLF as LF, and without control characters other than line breaks and
/// tabs.
fn clean_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_string()
}

/// `POST /s/{token}`: stores the answer (replacing an earlier one).
async fn survey_answer(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
    form: Result<Form<SurveyForm>, FormRejection>,
) -> Response {
    let result = async {
        if !app.survey_served_here() {
            return Err(Failure::NotFound);
        }
        let form = match form {
            Ok(Form(form)) => form,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(Failure::TooLarge);
            }
            Err(_) => return Err(Failure::BadRequest),
        };
        let id = app.verify(Purpose::Survey, token)?;
        let (answer, stop) = match validate(form) {
            Ok(valid) => valid,
            Err((Invalid::Choice, _, _)) => return Err(Failure::BadRequest),
            Err((Invalid::Fixable(message), answer, stop)) => {
                let view = app
                    .with_store(move |store| store.enrollment_by_link(&id))
                    .await?;
                let view = view.ok_or(Failure::NotFound)?;
                let page = Page::survey(
                    view.greeting_name(),
                    app.survey_url(&id),
                    answer,
                    stop,
                    Some(message),
                );
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, page));
            }
        };
        let now = app.state.clock.now();
        let outcome = app
            .with_store(move |store| {
                let outcome = store.save_survey_answer(&id, &answer, stop, now)?;
                let view = store.enrollment_by_link(&id)?;
                Ok((outcome, view))
            })
            .await?;
        match outcome {
            (SurveyOutcome::Unknown, _) | (_, None) => Err(Failure::NotFound),
            (SurveyOutcome::Saved { first, opted_out }, Some(view)) => {
                tracing::info!(
                    client = view.client_id,
                    first,
                    opted_out,
                    "survey answer recorded"
                );
                Ok((
                    StatusCode::OK,
                    Page::SurveyThanks {
                        first_name: view.greeting_name(),
                        opted_out,
                        survey_url: app.survey_url(&id),
                    },
                ))
            }
        }
    }
    .await;
    app.respond(result)
}

async fn not_found(State(app): State<Shared>) -> Response {
    app.failure(Failure::NotFound)
}

/// Refuses a client over [`REQUESTS_PER_MINUTE`] on the recipient routes, except for a
/// POST whose token verifies: the one-click unsubscribes of a mailbox provider all come
/// from a few shared servers, and a person's wish must never be refused. What the limit
/// slows down is guessing tokens and fetching pages, where nothing is recorded.
async fn rate_limit(
    State(app): State<Shared>,
    connect_info: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    token: Result<Path<String>, PathRejection>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST
        && let Ok(Path(token)) = token
        && token::verify(
            &app.state.secret,
            route_purpose(request.uri().path()),
            &token,
        )
        .is_some()
    {
        return next.run(request).await;
    }
    let peer = connect_info.ok().map(|ConnectInfo(addr)| addr.ip());
    let client = client_address(peer, request.headers());
    match app.limiter.check(client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::warn!(%client, "too many requests; refused");
            app.failure(Failure::TooManyRequests { retry_after })
        }
    }
}

/// What the tokens of a recipient route's path are for: `/s/…` is the survey, `/u/…`
/// unsubscribes.
fn route_purpose(path: &str) -> Purpose {
    if path.starts_with("/s/") {
        Purpose::Survey
    } else {
        Purpose::Unsubscribe
    }
}

/// The address a request came from. Behind a reverse proxy on the same host or network
/// (a loopback or private peer), that is the last address the proxy appended to
/// `X-Forwarded-For` (or its `X-Real-IP`); a direct client cannot choose it.
fn client_address(peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let Some(peer) = peer else {
        return IpAddr::from([0, 0, 0, 0]);
    };
    let trusted = match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if !trusted {
        return peer;
    }
    let forwarded = headers
        .get_all(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .map(rate_limit::forwarded_hop);
    let real_ip = || {
        headers
            .get(HeaderName::from_static("x-real-ip"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    };
    match forwarded {
        // The proxy's own entry; one it wrote in a form we cannot read trusts nothing
        // before it (those entries are the client's to choose).
        Some(hop) => hop.unwrap_or(peer),
        None => real_ip().unwrap_or(peer),
    }
}

/// Headers on every answer: nothing cached or framed, the token never sent on as a
/// referrer, no scripts, forms posted only here (or to `public_url`, the same server
/// behind a proxy). Styles and images may come from any https address, for restyling.
fn security_headers(
    public_url: &str,
) -> impl Fn(Response) -> std::future::Ready<Response> + Clone + Send + 'static {
    let origin = match public_url.find("://") {
        Some(scheme) => match public_url[scheme + 3..].find('/') {
            Some(path) => &public_url[..scheme + 3 + path],
            None => public_url,
        },
        None => "",
    };
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline' https:; img-src https: data:; font-src https: data:; \
         form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let policy = HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    move |mut response: Response| {
        let headers = response.headers_mut();
        let mut set = |name: HeaderName, value: HeaderValue| {
            headers.insert(name, value);
        };
        set(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        set(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        set(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        set(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        set(
            HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex, nofollow"),
        );
        set(header::CONTENT_SECURITY_POLICY, policy.clone());
        std::future::ready(response)
    }
}
