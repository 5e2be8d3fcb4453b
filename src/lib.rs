//! winback: wins former B2B clients back by email, slowly and politely.
//!
//! The flow, module by module:
//! [`config`] (TOML → validated campaigns) → [`store`] (SQLite: clients, enrollments,
//! the outbox) → [`schedule`] (pure decisions: who is due, when, what next) →
//! [`render`] (handlebars → a MIME message) → [`mailer`] (SMTP or `.eml` files),
//! driven by [`deliver`] (one pass) and [`daemon`] (the loop). [`http`] feeds opt-outs
//! and survey answers back into the store. [`cli`] is the operator's edge.
//!
//! Architecture invariant: [`schedule`] knows nothing about I/O; the wall clock is read
//! only in [`clock`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod fitness;
pub mod http;
pub mod import;
pub mod links;
pub mod mailer;
pub mod model;
pub mod render;
pub mod schedule;
pub mod store;
pub mod suppression;
pub mod sync;
pub mod template_blocks;
pub mod token;

#[cfg(test)]
mod test_support;
