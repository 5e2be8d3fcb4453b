//! Why a request is refused, and what each refusal gets: its status and its page, in
//! words a recipient understands. Which refusal a request gets is the route's and the
//! guards'; the page templates are `mail::pages`'.

use std::time::Duration;

use axum::http::StatusCode;

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
