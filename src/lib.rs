//! winback: wins former B2B clients back by email, slowly and politely.
//!
//! The flow, module by module:
//! [`config`] (TOML → validated campaigns) → [`store`] (SQLite: clients, enrollments,
//! the outbox) → [`domain`] (pure decisions: who is due, when, what next) →
//! [`mail`] (handlebars → a MIME message) → [`mailer`] (SMTP or `.eml` files),
//! driven by [`deliver`] (one pass) and [`daemon`] (the loop). [`import`] reads CRM
//! exports; [`http`] feeds opt-outs and survey answers back into the store. [`cli`] is
//! the operator's edge.
//!
//! Architecture invariant: [`domain`] knows nothing about I/O; the wall clock is read
//! only in [`clock`].

#![warn(unreachable_pub)]

pub mod cli;
mod clock;
mod config;
mod daemon;
mod deliver;
mod domain;
mod http;
mod import;
mod inbound;
mod links;
mod mail;
mod mailer;
mod setup;
mod store;
pub mod token;

#[cfg(test)]
mod test_support;
