//! Mail that comes back: bounces, feedback reports and replies, read from files, standard
//! input or mailboxes, classified by `domain::inbound`, and applied to the store once.

pub(crate) mod apply;
pub(crate) mod imap;
pub(crate) mod parse;
pub(crate) mod source;
pub(crate) mod verp;
