//! Mail that comes back: bounces, feedback reports and replies, read from files, standard
//! input or mailboxes, classified by `domain::inbound`, and applied to the store once.

pub(crate) mod apply;
// The daemon does not start readers yet (`[inbound] mailboxes` is checked, not read).
#[allow(dead_code)]
pub(crate) mod imap;
pub(crate) mod parse;
pub(crate) mod source;
pub(crate) mod verp;
