//! Bringing a database file up to this build's schema: one transaction per step, checked
//! for dangling references before it commits, and a refusal of a file from a newer build.
//!
//! Must not hold queries of the running daemon; a step that needs Rust (not only SQL)
//! calls into the module that owns those rows.

use rusqlite::{Connection, OptionalExtension};

use super::{Result, Store, StoreError, addresses};

/// The schema versions this build knows, in order. Index + 1 is the version number.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema2.sql"),
    include_str!("schema3.sql"),
    include_str!("schema4.sql"),
    include_str!("schema5.sql"),
    SCHEMA6,
    include_str!("schema7.sql"),
    include_str!("schema8.sql"),
    include_str!("schema9.sql"),
    include_str!("schema10.sql"),
    include_str!("schema11.sql"),
    include_str!("schema12.sql"),
    include_str!("schema13.sql"),
    include_str!("schema14.sql"),
    include_str!("schema15.sql"),
    include_str!("schema16.sql"),
    include_str!("schema17.sql"),
    include_str!("schema18.sql"),
    include_str!("schema19.sql"),
    include_str!("schema20.sql"),
];

/// The migration whose SQL is followed by a Rust step, [`addresses::normalize_stored`].
const SCHEMA6: &str = include_str!("schema6.sql");

impl Store {
    /// Runs every migration the file has not had yet.
    pub(super) fn migrate(&mut self) -> Result<()> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
                known,
            });
        }
        if found == known {
            return Ok(());
        }
        // A migration may rebuild a table others refer to: with foreign keys on, dropping
        // the old one would delete (cascade) its children. Off for the migration (it can
        // only be switched outside a transaction), then checked, then on again.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let migrated = self.run_migrations(found as usize);
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        migrated
    }

    fn run_migrations(&mut self, from: usize) -> Result<()> {
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(from) {
            // Read again under the write lock: another process opening the same file at
            // the same moment may have migrated it while this one waited for the lock.
            let tx = self.write_tx()?;
            let now_at: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now_at > index as i64 {
                continue;
            }
            tx.execute_batch(sql)?;
            if *sql == SCHEMA6 {
                addresses::normalize_stored(&tx)?;
            }
            if let Some(table) = dangling_reference(&tx)? {
                return Err(StoreError::Corrupt(format!(
                    "migration to schema version {} left a dangling reference in {table}",
                    index + 1
                )));
            }
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }
}

/// The first table holding a reference to a row that is gone, if any.
pub(super) fn dangling_reference(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests;
