//! The link-signing keys kept in the database: the first made on first use, more added
//! beside it (a changed `WINBACK_SECRET`, `winback secret rotate`), none ever replaced.

use rusqlite::params;

use super::{Result, Store, StoreError};
use crate::token::Secret;

impl Store {
    /// The link-signing keys: kept in the database (`meta` rows `secret`, key 1, and
    /// `secret.N`), the first generated on first use. The newest signs; all verify.
    pub(crate) fn secret(&mut self) -> Result<Secret> {
        let tx = self.write_tx()?;
        let mut keys = link_keys(&tx)?;
        if keys.is_empty() {
            let secret = Secret::generate();
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('secret', ?1)",
                params![secret.to_bytes().to_vec()],
            )?;
            keys.push((1, secret.to_bytes()));
        }
        tx.commit()?;
        Secret::ring(&keys).ok_or_else(|| StoreError::Corrupt("no link key".into()))
    }

    /// Keeps `key` as a link key unless it is one already: the next id (1 if there is
    /// none yet), or `None` when it was known. A key is never replaced or removed: the
    /// links it signed must keep working.
    pub(crate) fn add_link_key(&mut self, key: [u8; 32]) -> Result<Option<u32>> {
        let tx = self.write_tx()?;
        let keys = link_keys(&tx)?;
        if keys.iter().any(|(_, known)| *known == key) {
            return Ok(None);
        }
        let id = keys.iter().map(|(id, _)| *id).max().unwrap_or(0) + 1;
        let name = match id {
            1 => "secret".to_string(),
            id => format!("secret.{id}"),
        };
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![name, key.to_vec()],
        )?;
        tx.commit()?;
        Ok(Some(id))
    }
}

/// Every link key kept, by id: `secret` is key 1, `secret.N` key N.
fn link_keys(tx: &rusqlite::Transaction<'_>) -> Result<Vec<(u32, [u8; 32])>> {
    let mut statement =
        tx.prepare("SELECT key, value FROM meta WHERE key = 'secret' OR key LIKE 'secret.%'")?;
    let rows = statement.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut keys = Vec::new();
    for row in rows {
        let (name, value) = row?;
        let id = match name.strip_prefix("secret.") {
            None => Some(1),
            Some(number) => number.parse::<u32>().ok().filter(|id| *id > 1),
        };
        if let (Some(id), Ok(key)) = (id, <[u8; 32]>::try_from(value.as_slice())) {
            keys.push((id, key));
        }
    }
    Ok(keys)
}
