//! Templates and messages, one job per file: `templates` compiles the handlebars files
//! the campaigns name and renders one step for one client; `lint` says in words what is
//! wrong with a template (and writes every list of template problems); `message` builds
//! the signed MIME message as the one `OutgoingMessage` a transport takes, and makes
//! Message-IDs; `notice` words and builds a notice to the team; `header` writes `To` and
//! `Subject`; `dkim` reads the keys and signs; `sample` is the client `check` and
//! `preview` render for; `reasons` the churn reasons a campaign can reach and those a
//! template compares with; `fitness` says whether a rendered message may go; `pages`
//! loads, checks and renders the recipients' pages.
//!
//! Never reads the clock and sends nothing; reads only the template files and DKIM keys.

mod dkim;
pub(crate) mod fitness;
mod header;
mod lint;
mod message;
mod notice;
pub(crate) mod pages;
mod reasons;
mod sample;
pub(crate) mod template_blocks;
mod templates;

pub(crate) use message::{Origin, new_message_id};
pub(crate) use sample::{sample_client, sample_client_for};
pub(crate) use templates::{Renderer, Vars};

pub(crate) use lint::{ProblemList, stack_risk_with, templates_refused};

#[cfg(test)]
mod tests;
