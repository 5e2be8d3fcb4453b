//! What the routes share: the daemon's state ([`HttpState`]), the compiled pages and the
//! rate limiter, with the two things every route does with them: answer with a page or a
//! refusal, and call the store (a failure there is logged and answered 500). No route
//! and no SQL here.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::pages::Failure;
use super::rate_limit::RateLimiter;
use crate::clock::Clock;
use crate::config::Config;
use crate::mail::pages::{Page, Pages};
use crate::store::{SharedError, SharedStore, Store, StoreError};
use crate::token::Secret;

/// What the server needs from the daemon.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub config: Arc<Config>,
    /// The server's own connection.
    pub store: SharedStore,
    pub secret: Arc<Secret>,
    pub clock: Clock,
    /// Wakes the delivery loop: a survey answer queued a notice to the team.
    pub wake: Arc<tokio::sync::Notify>,
}

/// What every route shares: the daemon's state, the compiled pages and the rate limiter.
pub(super) struct App {
    pub(super) state: HttpState,
    pub(super) pages: Pages,
    pub(super) limiter: RateLimiter,
}

pub(super) type Shared = Arc<App>;

impl App {
    /// A rendered page. A template that fails at this point (it rendered at start-up) is
    /// logged and answered with a bare 500.
    pub(super) fn page(&self, status: StatusCode, page: &Page) -> Response {
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

    pub(super) fn failure(&self, failure: Failure) -> Response {
        let mut response = self.page(failure.status(), &failure.page());
        if let Failure::TooManyRequests { retry_after } = failure
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    pub(super) fn respond(&self, result: Result<(StatusCode, Page), Failure>) -> Response {
        match result {
            Ok((status, page)) => self.page(status, &page),
            Err(failure) => self.failure(failure),
        }
    }

    /// Runs `f` on the server's store connection (see [`SharedStore::call`]); a failure
    /// is logged here and answered as [`Failure::Internal`].
    pub(super) async fn store<T, F>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        match self.state.store.call(f).await {
            Ok(value) => Ok(value),
            Err(SharedError::Join(error)) => {
                tracing::error!(%error, "a recipient request's database task failed");
                Err(Failure::Internal)
            }
            Err(error) => {
                tracing::error!(%error, "a recipient request failed in the database");
                Err(Failure::Internal)
            }
        }
    }
}
