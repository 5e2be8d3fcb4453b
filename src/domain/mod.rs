//! The rules of winback as plain functions over data: who is due, when, for what, and what
//! a suppression, a retry or a return means. A `now` is always passed in.
//!
//! Must not touch SQLite, SMTP, HTTP, templates, files or the clock: nothing under
//! `domain/` imports rusqlite, tokio, lettre, handlebars, axum, `crate::store`,
//! `crate::mailer`, `crate::http` or `crate::clock`.

pub(crate) mod calendar;
pub(crate) mod campaign;
pub(crate) mod lifecycle;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod retry;
pub(crate) mod schedule;
pub(crate) mod send_at;
pub(crate) mod suppression;
pub(crate) mod survey;
