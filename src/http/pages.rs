//! What a refused request gets: each [`Failure`] with its status and its page, and any
//! page rendered into a response. Which page a route answers with is the route's; the
//! templates themselves are `mail::pages`'.

use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::App;
use crate::mail::pages::Page;

/// Why a request is refused. Each maps to one status and one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
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
    pub(super) fn status(self) -> StatusCode {
        match self {
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Failure::NotUndoable => StatusCode::CONFLICT,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn page(self) -> Page {
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
}
