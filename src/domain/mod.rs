//! The rules of winback as plain functions over data: who is due, when, for what, and what
//! a suppression, a retry or a return means. A `now` is always passed in.
//!
//! Must not touch the database, SMTP, HTTP, templates, files or the clock, nor import the
//! modules and crates that do (ARCHITECTURE.md gives the one `grep` that checks this).

pub(crate) mod accounts;
pub(crate) mod audience;
pub(crate) mod calendar;
pub(crate) mod campaign;
pub(crate) mod changes;
pub(crate) mod country;
pub(crate) mod date_format;
pub(crate) mod holidays;
pub(crate) mod inbound;
pub(crate) mod lifecycle;
pub(crate) mod model;
pub(crate) mod notice;
pub(crate) mod plan;
pub(crate) mod report_period;
pub(crate) mod retry;
pub(crate) mod schedule;
pub(crate) mod send_at;
pub(crate) mod suppression;
pub(crate) mod survey;
