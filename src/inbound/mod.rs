//! Mail that comes back: bounces, feedback reports and replies, read from files, standard
//! input or mailboxes, classified by `domain::inbound`, and applied to the store once.

// Wired into `winback inbound` and the daemon next; until then only tests use it.
#![allow(dead_code)]

pub(crate) mod imap;
pub(crate) mod parse;
