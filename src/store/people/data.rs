//! What people may ask of their data, keyed by address: everything stored about them as
//! one document (`export_person`), and erasing them (`forget_person`) so that only the
//! hash of their address remains, which keeps it unmailed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::domain::model::normalize_email;
use crate::store::clients::id_by_email;
use crate::store::{Result, Store, email_hash, fmt_time, from_moment, log_event, write_tx};

/// What `forget_person` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ForgetReport {
    /// A former-client row existed and was deleted.
    pub client: bool,
    pub enrollments: u64,
    pub messages: u64,
    pub survey_answers: u64,
    pub events: u64,
    /// The address was already suppressed (opt-out, bounce or forgotten) before.
    pub was_suppressed: bool,
}

impl ForgetReport {
    #[cfg(test)]
    /// Whether anything at all was stored about the person.
    pub(crate) fn knew_person(&self) -> bool {
        self.client || self.was_suppressed
    }
}

impl Store {
    /// `None` if nothing is. A forgotten person shows only their hashed suppression.
    pub(crate) fn export_person(&self, email: &str) -> Result<Option<Value>> {
        let email = normalize_email(email);
        let conn = &self.conn;
        let client = rows_as_json(conn, "SELECT * FROM clients WHERE email = ?1", &email)?
            .into_iter()
            .next();
        let suppression = rows_as_json(
            conn,
            "SELECT * FROM suppressions WHERE email_hash = ?1",
            &email_hash(&email),
        )?
        .into_iter()
        .next();
        if client.is_none() && suppression.is_none() {
            return Ok(None);
        }
        let by_client = |sql: &str| -> Result<Vec<Value>> {
            match client
                .as_ref()
                .and_then(|c| c.get("id"))
                .and_then(Value::as_i64)
            {
                Some(id) => rows_as_json(conn, sql, &id),
                None => Ok(Vec::new()),
            }
        };
        Ok(Some(json!({
            "email": email,
            "client": client,
            "enrollments": by_client("SELECT * FROM enrollments WHERE client_id = ?1 ORDER BY id")?,
            "messages": by_client("SELECT * FROM messages WHERE client_id = ?1 ORDER BY id")?,
            "survey_answers": by_client("SELECT * FROM survey_answers WHERE client_id = ?1 ORDER BY enrollment_id")?,
            "suppression": suppression,
            "events": by_client("SELECT * FROM events WHERE client_id = ?1 ORDER BY id")?,
            "inbound_messages": rows_as_json(conn, "SELECT * FROM inbound_messages WHERE email = ?1 ORDER BY id", &email)?,
        })))
    }

    /// Erases a person: their client row (and with it their enrollments, messages and
    /// survey answers) and their events. What remains is a suppression keyed by the hash
    /// of the address, with no address, so that a later import of it is never mailed.
    pub(crate) fn forget_person(
        &mut self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<ForgetReport> {
        let email = normalize_email(email);
        let hash = email_hash(&email);
        // Deleted content is overwritten in the file, not merely unlinked.
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let result = forget(&mut self.conn, &email, &hash, now);
        self.conn.pragma_update(None, "secure_delete", "OFF")?;
        let report = result?;
        // Copy the WAL (which still holds the old pages) into the main file and empty it.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(report)
    }
}

fn forget(
    conn: &mut Connection,
    email: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<ForgetReport> {
    let tx = write_tx(conn)?;
    let mut report = ForgetReport::default();
    if let Some(id) = id_by_email(&tx, email)? {
        let count = |table: &str| -> Result<u64> {
            let n: i64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE client_id = ?1"),
                params![id],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        };
        report.enrollments = count("enrollments")?;
        report.messages = count("messages")?;
        report.survey_answers = count("survey_answers")?;
        report.events = tx.execute("DELETE FROM events WHERE client_id = ?1", params![id])? as u64;
        tx.execute("DELETE FROM clients WHERE id = ?1", params![id])?;
        report.client = true;
    }
    // Mail that came back from or about them: what it says goes, its key stays (read
    // again, it is not recorded again).
    tx.execute(
        "UPDATE inbound_messages SET email = NULL, client_id = NULL, excerpt = NULL, why = 'erased: the person was forgotten'
         WHERE email = ?1",
        params![email],
    )?;
    // Events not tied to the client row that still name the address.
    report.events += tx.execute(
        "DELETE FROM events WHERE instr(lower(detail), ?1) > 0",
        params![email],
    )? as u64;
    report.was_suppressed = forget_suppression(&tx, hash, now)?;
    log_event(
        &tx,
        now,
        None,
        "forget",
        "a person's data was erased on request",
    )?;
    tx.commit()?;
    Ok(report)
}

/// Turns the address's suppression (or none) into a hashed-only `forgotten` entry.
fn forget_suppression(tx: &Transaction<'_>, hash: &str, now: DateTime<Utc>) -> Result<bool> {
    let existed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ?1)",
        params![hash],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO suppressions (email_hash, email, reason, source, created_at) VALUES (?1, NULL, 'forgotten', 'forget', ?2)
         ON CONFLICT (email_hash) DO UPDATE SET email = NULL, reason = 'forgotten', source = 'forget', created_at = ?2",
        params![hash, fmt_time(now)],
    )?;
    Ok(existed)
}

/// Every row `sql` returns (with `param` as ?1), as JSON objects by column name. Blobs are
/// hex; a `fields` column (JSON text) is inlined as an object.
fn rows_as_json(conn: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut rows = stmt.query([param])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut object = Map::new();
        for (index, name) in names.iter().enumerate() {
            let value = match row.get_ref(index)? {
                ValueRef::Null => Value::Null,
                // The one time stored as a number (see store::moment) reads as the others do.
                ValueRef::Integer(i) if name == "send_at" => {
                    Value::String(fmt_time(from_moment(i)?))
                }
                ValueRef::Integer(i) => json!(i),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(bytes) => {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    match name.as_str() {
                        "fields" => serde_json::from_str::<BTreeMap<String, String>>(&text)
                            .map(|m| json!(m))
                            .unwrap_or(Value::String(text)),
                        _ => Value::String(text),
                    }
                }
                ValueRef::Blob(bytes) => {
                    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
                }
            };
            object.insert(name.clone(), value);
        }
        out.push(Value::Object(object));
    }
    Ok(out)
}
