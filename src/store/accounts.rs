//! Accounts: the contacts grouped by `[clients] account` (`clients.account_key`), the
//! keys derived again when the rule changes, when the other contacts of an account were
//! mailed, one contact's return or reply stopping the others (those already enrolled,
//! and those enrolled later), and the accounts too large to be one company.
//!
//! Must not decide anything: the key and what a return or reply means for the account
//! are `domain::accounts`'s, the account gap is `domain::schedule`'s; this reads and
//! writes rows only.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::enroll::stop_client;
use super::{Result, fmt_time, log_event, parse_time};
use crate::config::Config;
use crate::domain::accounts::{
    AccountKey, AccountStanding, AccountStop, LARGE_ACCOUNT, account_key, is_placeholder, stop_for,
};

/// When messages to `client_id`'s account went (or may have gone, or are about to go
/// again) out since `since`, for the account gap: sent, uncertain, being sent, or waiting
/// for another try; to any of its contacts, the client included (the account hears from
/// us at most once per gap), except the message row `except` being decided. Empty when the
/// client has no account.
pub(crate) fn account_busy(
    conn: &Connection,
    client_id: i64,
    since: DateTime<Utc>,
    except: Option<i64>,
) -> Result<Vec<DateTime<Utc>>> {
    let Some(key) = account_of(conn, client_id)? else {
        return Ok(Vec::new());
    };
    // A message is claimed before it is sent: one sent since `since` was claimed at
    // most a day earlier (a long retry is claimed again each time).
    let claimed_since = fmt_time(since - chrono::Duration::days(1));
    let times: Vec<String> = conn
        .prepare_cached(
            "SELECT COALESCE(m.sent_at, m.claimed_at) FROM clients c
               JOIN messages m ON m.client_id = c.id
             WHERE c.account_key = ?1 AND m.id IS NOT ?2 AND m.claimed_at >= ?3
               AND m.state IN ('sending', 'sent', 'uncertain', 'retry')",
        )?
        .query_map(params![key, except, claimed_since], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    let mut busy = times
        .iter()
        .map(|t| parse_time(t))
        .collect::<Result<Vec<_>>>()?;
    busy.retain(|at| *at >= since);
    busy.sort();
    Ok(busy)
}

/// The account of client `client_id`, if they have one.
pub(crate) fn account_of(conn: &Connection, client_id: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT account_key FROM clients WHERE id = ?1")?
        .query_row(params![client_id], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// The address of another contact of `client_id`'s account recorded as returned, if
/// there is one: the account is a client again.
pub(crate) fn returned_contact(conn: &Connection, client_id: i64) -> Result<Option<String>> {
    let Some(key) = account_of(conn, client_id)? else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(
            "SELECT email FROM clients WHERE account_key = ?1 AND id <> ?2 AND returned_at IS NOT NULL
             ORDER BY returned_at, id LIMIT 1",
        )?
        .query_row(params![key, client_id], |r| r.get(0))
        .optional()?)
}

/// What of account `key` stops its contact `client_id`: another contact recorded as
/// returned, and whether a reply of another contact still stands (applied, not undone;
/// `replies` is 0 or 1). The contact's own replies do not count: theirs stopped their
/// own sequence when it came, and a sequence started after it (they came back and left
/// again) was started on purpose. One statement on the account's index: the claim and
/// the check before each send ask it of every contact with an account, an import of
/// each new row in one.
pub(crate) fn hold(conn: &Connection, key: &str, client_id: i64) -> Result<AccountStanding> {
    let (returned, replied): (bool, bool) = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM clients WHERE account_key = ?1 AND id <> ?2 AND returned_at IS NOT NULL),
                    EXISTS (SELECT 1 FROM clients c JOIN inbound_messages i ON i.client_id = c.id
                            WHERE c.account_key = ?1 AND c.id <> ?2 AND i.effect = 'replied' AND i.applied = 1
                              AND i.undone_at IS NULL)",
        )?
        .query_row(params![key, client_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(AccountStanding {
        returned,
        replies: usize::from(replied),
    })
}

/// [`hold`] for client `client_id`, whatever their account: nothing without one.
pub(crate) fn hold_of(conn: &Connection, client_id: i64) -> Result<AccountStanding> {
    match account_of(conn, client_id)? {
        Some(key) => hold(conn, &key, client_id),
        None => Ok(AccountStanding::default()),
    }
}

/// The address of another contact of account `key` whose reply still stands, if any.
fn replied_contact(conn: &Connection, key: &str, client_id: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.email FROM clients c JOIN inbound_messages i ON i.client_id = c.id
             WHERE c.account_key = ?1 AND c.id <> ?2 AND i.effect = 'replied' AND i.applied = 1
               AND i.undone_at IS NULL
             ORDER BY i.id LIMIT 1",
        )?
        .query_row(params![key, client_id], |r| r.get(0))
        .optional()?)
}

/// What else of `client_id`'s account stops them: another contact's return, and the
/// replies of its contacts (theirs included) that still stand, `except_reply` (the one
/// being undone) left out. Nothing without an account.
pub(crate) fn standing(
    conn: &Connection,
    client_id: i64,
    except_reply: Option<i64>,
) -> Result<AccountStanding> {
    let Some(key) = account_of(conn, client_id)? else {
        return Ok(AccountStanding::default());
    };
    let replies: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM clients c JOIN inbound_messages i ON i.client_id = c.id
             WHERE c.account_key = ?1 AND i.effect = 'replied' AND i.applied = 1
               AND i.undone_at IS NULL AND i.id IS NOT ?2",
        )?
        .query_row(params![key, except_reply], |r| r.get(0))?;
    Ok(AccountStanding {
        returned: returned_contact(conn, client_id)?.is_some(),
        replies: usize::try_from(replies).unwrap_or(usize::MAX),
    })
}

/// The other contacts of `client_id`'s account: (id, address).
pub(crate) fn colleagues(conn: &Connection, client_id: i64) -> Result<Vec<(i64, String)>> {
    let Some(key) = account_of(conn, client_id)? else {
        return Ok(Vec::new());
    };
    Ok(conn
        .prepare_cached(
            "SELECT id, email FROM clients WHERE account_key = ?1 AND id <> ?2 ORDER BY id",
        )?
        .query_map(params![key, client_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?)
}

/// Stops the active sequences of the other contacts of `client_id`'s account, as `stop`
/// says, each with an event naming `client_id`'s address. Returns how many sequences
/// stopped.
pub(crate) fn stop_account(
    conn: &Connection,
    client_id: i64,
    stop: AccountStop,
    now: DateTime<Utc>,
) -> Result<usize> {
    let others = colleagues(conn, client_id)?;
    if others.is_empty() {
        return Ok(0);
    }
    let by: String = conn
        .prepare_cached("SELECT email FROM clients WHERE id = ?1")?
        .query_row(params![client_id], |r| r.get(0))?;
    let mut stopped = 0;
    for (id, _) in others {
        let n = stop_client(conn, id, stop.state(), now)?;
        if n > 0 {
            log_event(conn, now, Some(id), stop.event(), &stop.detail(&by))?;
            stopped += n;
        }
    }
    Ok(stopped)
}

/// Stops at once the active sequences of `client_id` when their account stops them (see
/// [`stop_for`]): as `returned` when another contact of it came back, as `replied`
/// while another contact's reply stands (undoing that reply resumes them). For a contact
/// new to the account, moved into it, or placed in a campaign later. Returns how many
/// sequences stopped, and why.
pub(crate) fn stop_if_account_stops(
    conn: &Connection,
    client_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<(AccountStop, usize)>> {
    let Some(key) = account_of(conn, client_id)? else {
        return Ok(None);
    };
    let Some(stop) = stop_for(hold(conn, &key, client_id)?) else {
        return Ok(None);
    };
    let by = match stop {
        AccountStop::Returned => returned_contact(conn, client_id)?,
        AccountStop::Replied => replied_contact(conn, &key, client_id)?,
    };
    let n = stop_client(conn, client_id, stop.state(), now)?;
    if n > 0 {
        let by = by.unwrap_or_else(|| "a contact".to_string());
        log_event(conn, now, Some(client_id), stop.event(), &stop.detail(&by))?;
    }
    Ok(Some((stop, n)))
}

/// A client's id, address, company, fields (JSON) and stored key.
type KeyRow = (i64, String, Option<String>, String, Option<String>);

/// The `meta` key the account rule the keys were derived by is kept under.
const RULE_KEY: &str = "account_rule";

/// Derives every client's account key again when `[clients] account` changed since the
/// keys were written (or was set for the first time), in the caller's transaction; the
/// contacts of an account that already returned then stop, as a new contact of it would.
/// Returns how many clients moved into an account (a new key or another one).
pub(crate) fn sync_accounts(
    conn: &Connection,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<usize> {
    let rule = config.clients.account.as_ref();
    let print = AccountKey::fingerprint(rule);
    let stored: Option<String> = conn
        .query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
            params![RULE_KEY],
            |r| r.get(0),
        )
        .optional()?;
    if stored.as_deref().unwrap_or(&AccountKey::fingerprint(None)) == print {
        return Ok(0);
    }
    let rows: Vec<KeyRow> = conn
        .prepare("SELECT id, email, company, fields, account_key FROM clients")?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<std::result::Result<_, _>>()?;
    let mut changed = Vec::new();
    for (id, email, company, fields, before) in rows {
        let key = match rule {
            None => None,
            Some(rule) => {
                let fields: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&fields)
                        .map_err(|e| super::StoreError::Corrupt(format!("fields: {e}")))?;
                account_key(rule, &email, company.as_deref(), &fields)
            }
        };
        if key != before {
            conn.prepare_cached("UPDATE clients SET account_key = ?2 WHERE id = ?1")?
                .execute(params![id, key])?;
            if key.is_some() {
                changed.push(id);
            }
        }
    }
    let mut stopped = 0;
    for id in &changed {
        stopped += stop_if_account_stops(conn, *id, now)?.map_or(0, |(_, n)| n);
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![RULE_KEY, print],
    )?;
    log_event(
        conn,
        now,
        None,
        "accounts",
        &format!(
            "[clients] account is now {}: {} client(s) moved into an account, {stopped} sequence(s) of accounts that came back or replied stopped",
            AccountKey::describe(rule),
            changed.len()
        ),
    )?;
    Ok(changed.len())
}

/// Accounts of many contacts: (key, contacts) of the largest, and how many there are.
pub(crate) type LargeAccounts = (Vec<(String, u64)>, usize);

/// The accounts with more than [`LARGE_ACCOUNT`] contacts, the largest first, at most
/// `limit` of them, and how many there are in all. A stored key that is a placeholder
/// (derived before placeholders gave none; the next start derives it again) is left out.
pub(crate) fn large_accounts(conn: &Connection, limit: usize) -> Result<LargeAccounts> {
    let rows: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT account_key, COUNT(*) AS n FROM clients WHERE account_key IS NOT NULL
             GROUP BY account_key HAVING n > ?1 ORDER BY n DESC, account_key",
        )?
        .query_map(
            params![i64::try_from(LARGE_ACCOUNT).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<std::result::Result<_, _>>()?;
    let large: Vec<(String, u64)> = rows
        .into_iter()
        .filter(|(key, _)| !is_placeholder(key))
        .map(|(key, n)| (key, u64::try_from(n).unwrap_or(0)))
        .collect();
    let total = large.len();
    Ok((large.into_iter().take(limit).collect(), total))
}

impl super::Store {
    /// [`large_accounts`] of this database (after an import, or a dry run's copy).
    pub(crate) fn large_accounts(&self, limit: usize) -> Result<LargeAccounts> {
        large_accounts(&self.conn, limit)
    }

    /// [`large_accounts`] of the database at `path`, read without changing or creating
    /// anything (for `check`); None when there is no database yet.
    pub(crate) fn large_accounts_at(
        path: &std::path::Path,
        limit: usize,
    ) -> Result<Option<LargeAccounts>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| super::StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let has_keys = conn
            .query_row(
                "SELECT 1 FROM pragma_table_info('clients') WHERE name = 'account_key'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !has_keys {
            return Ok(None);
        }
        Ok(Some(large_accounts(&conn, limit)?))
    }
}

#[cfg(test)]
mod tests;
