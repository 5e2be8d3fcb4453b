//! The unsubscribe link: `GET /u/{token}` (a page with the button, changing nothing),
//! `POST /u/{token}` (one-click, RFC 8058) and `POST /u/{token}/undo`. The opt-out itself
//! is the store's; this file turns a request into it and its outcome into a page.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::app::{App, Shared};
use super::guard::check_body;
use super::pages::Failure;
use crate::mail::pages::Page;
use crate::store::{EnrollmentView, OptOutOutcome, Store, StoreError, UndoOutcome};
use crate::token::{Purpose, Target};

/// `GET /u/{token}`: a page with the button. Changes nothing.
pub(super) async fn unsubscribe_page(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let id = app.verify(Purpose::Unsubscribe, token)?;
        let view = app
            .store(move |store| store.enrollment_by_link(&id))
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
pub(super) async fn unsubscribe(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let (id, outcome, view) = app
            .change_through_link(token, body, |store, id, now| {
                store.opt_out_enrollment(id, "link", now)
            })
            .await?;
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
pub(super) async fn undo(
    State(app): State<Shared>,
    token: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let config = app.state.config.clone();
        let (id, outcome, view) = app
            .change_through_link(token, body, move |store, id, now| {
                store.undo_opt_out(id, now, &config)
            })
            .await?;
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

impl App {
    /// A POST to an unsubscribe link: its body read within the limit, its token verified,
    /// `change` made to the store for the link's enrollment; then what the change
    /// answered and the enrollment as it is now.
    async fn change_through_link<T, F>(
        &self,
        token: Result<Path<String>, PathRejection>,
        body: Result<Bytes, BytesRejection>,
        change: F,
    ) -> Result<(Target, T, EnrollmentView), Failure>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Target, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        check_body(body)?;
        let id = self.verify(Purpose::Unsubscribe, token)?;
        let now = self.state.clock.now();
        let (outcome, view) = self
            .store(move |store| {
                let outcome = change(store, &id, now)?;
                Ok((outcome, store.enrollment_by_link(&id)?))
            })
            .await?;
        let view = view.ok_or(Failure::NotFound)?;
        Ok((id, outcome, view))
    }

    fn unsubscribe_url(&self, id: &Target) -> String {
        crate::links::unsubscribe_url(&self.state.config, &self.state.secret, *id)
    }

    fn undo_url(&self, id: &Target) -> String {
        crate::links::undo_url(&self.state.config, &self.state.secret, *id)
    }
}
