//! Former clients' rows: their columns, decoding a row into a [`ClientRecord`], loading
//! one by id or by address, the facts enrolling a client needs, and the churn reasons
//! the clients have (for `check`).
//!
//! Reads only, and decides nothing: the import writes client rows (`import.rs`), `people`
//! records opt-outs and returns, `enroll` schedules their sequences.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{Result, Store, StoreError, parse_opt_time};
use crate::domain::audience::Person;
use crate::domain::model::{ChurnedAt, ClientRecord, normalize_email};

/// What enrolling a client in a campaign needs to know about them.
pub(crate) struct ClientFacts<'a> {
    pub id: i64,
    pub churned_at: ChurnedAt,
    pub churn_reason: Option<&'a str>,
    pub timezone: Option<Tz>,
    /// What campaigns' audiences look at.
    pub person: Person<'a>,
}

impl ClientFacts<'_> {
    /// The facts of client `id` with `record`.
    pub(crate) fn of(id: i64, record: &ClientRecord) -> ClientFacts<'_> {
        ClientFacts {
            id,
            churned_at: record.churned_at,
            churn_reason: record.churn_reason.as_deref(),
            timezone: record.timezone,
            person: Person::of(record),
        }
    }
}

/// A client row as stored.
pub(crate) struct StoredClient {
    pub id: i64,
    pub record: ClientRecord,
    pub returned_at: Option<DateTime<Utc>>,
}

impl StoredClient {
    pub(crate) fn facts(&self) -> ClientFacts<'_> {
        ClientFacts::of(self.id, &self.record)
    }
}

const CLIENT_COLUMNS: &str = "id, email, name, first_name, company, churned_at, churn_reason, timezone, fields, returned_at, country";

/// [`CLIENT_COLUMNS`] of `clients` aliased `c`, for queries that join it.
pub(crate) const JOINED_CLIENT_COLUMNS: &str = "c.id, c.email, c.name, c.first_name, c.company, c.churned_at, c.churn_reason, c.timezone, c.fields, c.returned_at, c.country";

pub(crate) fn client_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, [Option<String>; 10])> {
    client_from_row_at(r, 0)
}

/// The client columns of a row in which they start at column `first`.
pub(crate) fn client_from_row_at(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<(i64, [Option<String>; 10])> {
    let mut cols: [Option<String>; 10] = Default::default();
    for (i, col) in cols.iter_mut().enumerate() {
        *col = r.get(first + 1 + i)?;
    }
    Ok((r.get(first)?, cols))
}

pub(crate) fn decode_client(id: i64, cols: [Option<String>; 10]) -> Result<StoredClient> {
    let [
        email,
        name,
        first_name,
        company,
        churned_at,
        churn_reason,
        timezone,
        fields,
        returned_at,
        country,
    ] = cols;
    let churned_text = churned_at.unwrap_or_default();
    let churned_at = ChurnedAt::parse(&churned_text)
        .ok_or_else(|| StoreError::Corrupt(format!("churned_at {churned_text:?}")))?;
    let timezone = decode_timezone(timezone.as_deref())?;
    let fields: BTreeMap<String, String> = serde_json::from_str(fields.as_deref().unwrap_or("{}"))
        .map_err(|e| StoreError::Corrupt(format!("fields: {e}")))?;
    Ok(StoredClient {
        id,
        record: ClientRecord {
            email: email.unwrap_or_default(),
            name,
            first_name,
            company,
            churned_at,
            churn_reason,
            timezone,
            fields,
            country,
            returned_at: None,
            opted_out: false,
        },
        returned_at: parse_opt_time(returned_at)?,
    })
}

/// A client's stored time zone, if they have one of their own.
pub(crate) fn decode_timezone(text: Option<&str>) -> Result<Option<Tz>> {
    text.map(|t| {
        t.parse::<Tz>()
            .map_err(|_| StoreError::Corrupt(format!("timezone {t:?}")))
    })
    .transpose()
}

pub(crate) fn load_facts(conn: &Connection, id: i64) -> Result<Option<StoredClient>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1"
        ))?
        .query_row(params![id], client_from_row)
        .optional()?;
    row.map(|(id, cols)| decode_client(id, cols)).transpose()
}

/// The id of the client with this (already normalised) address, if there is one.
pub(crate) fn id_by_email(conn: &Connection, email: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM clients WHERE email = ?1")?
        .query_row(params![email], |r| r.get(0))
        .optional()?)
}

pub(crate) fn load_by_email(conn: &Connection, email: &str) -> Result<Option<StoredClient>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE email = ?1"
        ))?
        .query_row(params![normalize_email(email)], client_from_row)
        .optional()?;
    row.map(|(id, cols)| decode_client(id, cols)).transpose()
}

pub(crate) fn fields_json(fields: &BTreeMap<String, String>) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "{}".to_string())
}

impl Store {
    /// The churn reasons the clients in the database at `path` have, read without
    /// changing or creating anything; None when there is no database or no client yet.
    pub(crate) fn churn_reasons_at(
        path: &std::path::Path,
    ) -> Result<Option<std::collections::BTreeSet<String>>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = read_only(path)?;
        let has_clients = conn
            .query_row("SELECT 1 FROM clients LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some();
        if !has_clients {
            return Ok(None);
        }
        let reasons = conn
            .prepare("SELECT DISTINCT churn_reason FROM clients WHERE churn_reason IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(reasons))
    }

    /// The former client with address `email`, read from the database at `path` opened
    /// read-only (for `send-test`, which must change nothing): `None` when there is no
    /// database or no such client.
    pub(crate) fn client_at(path: &std::path::Path, email: &str) -> Result<Option<ClientRecord>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = read_only(path)?;
        Ok(load_by_email(&conn, email)?.map(|stored| stored.record))
    }
}

/// The database at `path`, read-only: nothing is created or migrated.
fn read_only(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}
