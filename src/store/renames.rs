//! Campaign names in the database: which names have people (for the rename check in
//! `config`), and moving a renamed campaign's people to its new name.
//!
//! Decides nothing itself: whether a change of names is a rename is
//! [`crate::config::unconfirmed_renames`]; this only reads and writes.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, params};

use super::{Result, Store, StoreError, log_event};
use crate::config::{Config, StoredCampaign, unconfirmed_renames};

const STORED_CAMPAIGNS: &str = "SELECT name, SUM(enrolled), MAX(configured) FROM (
        SELECT campaign AS name, COUNT(*) AS enrolled, 0 AS configured FROM enrollments GROUP BY campaign
        UNION ALL SELECT name, 0, 1 FROM campaigns
    ) GROUP BY name ORDER BY name";

const STORED_REASONS: &str = "SELECT DISTINCT e.campaign, c.churn_reason FROM enrollments e
     JOIN clients c ON c.id = e.client_id ORDER BY e.campaign, c.churn_reason";

fn stored_campaigns(conn: &Connection) -> Result<Vec<StoredCampaign>> {
    let mut campaigns: Vec<StoredCampaign> = conn
        .prepare(STORED_CAMPAIGNS)?
        .query_map([], |r| {
            Ok(StoredCampaign {
                name: r.get(0)?,
                enrolled: r.get::<_, i64>(1)?.max(0) as u64,
                configured: r.get::<_, i64>(2)? == 1,
                reasons: Vec::new(),
            })
        })?
        .collect::<std::result::Result<_, _>>()?;
    let reasons: Vec<(String, Option<String>)> = conn
        .prepare(STORED_REASONS)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    for (name, reason) in reasons {
        if let Some(c) = campaigns.iter_mut().find(|c| c.name == name) {
            c.reasons.push(reason);
        }
    }
    Ok(campaigns)
}

impl Store {
    /// Every campaign name with people enrolled or that the daemon last ran with.
    pub(crate) fn stored_campaigns(&self) -> Result<Vec<StoredCampaign>> {
        stored_campaigns(&self.conn)
    }

    /// The same, read from the file at `path` without creating, migrating or changing
    /// it (for `check`); None when there is no database yet.
    pub(crate) fn stored_campaigns_at(path: &Path) -> Result<Option<Vec<StoredCampaign>>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        stored_campaigns(&conn).map(Some)
    }
}

/// Refuses to go on while a campaign seems renamed without `renamed_from`; then moves
/// the people of each campaign named in a `renamed_from` to its new name (their messages
/// and survey answers too), so nobody starts again at the survey. Inside the caller's
/// transaction.
pub(crate) fn carry_over(conn: &Connection, config: &Config, now: DateTime<Utc>) -> Result<()> {
    // The census reads every enrollment: only when a campaign has left the configuration.
    let known: Vec<String> = conn
        .prepare_cached("SELECT name FROM campaigns")?
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    if known.iter().any(|name| config.campaign(name).is_none()) {
        let suspects = unconfirmed_renames(config, &stored_campaigns(conn)?);
        if let Some(first) = suspects.first() {
            return Err(StoreError::UnconfirmedRename(first.explain()));
        }
    }
    for campaign in &config.campaigns {
        let Some(old) = &campaign.renamed_from else {
            continue;
        };
        let new = &campaign.name;
        // An enrollment under the new name that nothing happened to yet (an import made
        // it before the rename was confirmed) gives way to the old one.
        let fresh = "SELECT n.id FROM enrollments n
             WHERE n.campaign = ?2
               AND n.client_id IN (SELECT client_id FROM enrollments WHERE campaign = ?1)
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.enrollment_id = n.id)
               AND NOT EXISTS (SELECT 1 FROM survey_answers a WHERE a.enrollment_id = n.id)";
        conn.execute(
            &format!("DELETE FROM legacy_links WHERE enrollment_id IN ({fresh})"),
            params![old, new],
        )?;
        conn.execute(
            &format!("DELETE FROM enrollments WHERE id IN ({fresh})"),
            params![old, new],
        )?;
        let moved = conn.execute(
            "UPDATE enrollments SET campaign = ?2 WHERE campaign = ?1
               AND client_id NOT IN (SELECT client_id FROM enrollments WHERE campaign = ?2)",
            params![old, new],
        )?;
        for table in ["messages", "survey_answers"] {
            conn.execute(
                &format!(
                    "UPDATE {table} SET campaign = ?2 WHERE campaign = ?1
                       AND enrollment_id IN (SELECT id FROM enrollments WHERE campaign = ?2)"
                ),
                params![old, new],
            )?;
        }
        conn.execute("DELETE FROM campaigns WHERE name = ?1", params![old])?;
        if moved > 0 {
            log_event(
                conn,
                now,
                None,
                "campaign_renamed",
                &format!("{old} -> {new}: {moved} enrollments carried over"),
            )?;
        }
    }
    Ok(())
}
