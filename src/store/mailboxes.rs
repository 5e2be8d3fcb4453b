//! How far each IMAP folder has been read (`inbound_mailboxes`): the folder's UIDVALIDITY,
//! the last UID processed, and the last error met reading it. Decides nothing: the reader
//! says what it processed, this writes it down.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, fmt_time};

/// Where reading a folder stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailboxPosition {
    pub(crate) uidvalidity: u32,
    /// Every message up to this UID was processed; 0 when none was.
    pub(crate) last_uid: u32,
    pub(crate) last_error: Option<String>,
}

impl Store {
    /// Where reading `folder` of `mailbox` stands, if it was ever read.
    pub(crate) fn mailbox_position(
        &self,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<MailboxPosition>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT uidvalidity, last_uid, last_error FROM inbound_mailboxes
                 WHERE mailbox = ?1 AND folder = ?2",
            )?
            .query_row(params![mailbox, folder], |r| {
                Ok(MailboxPosition {
                    uidvalidity: r.get(0)?,
                    last_uid: r.get(1)?,
                    last_error: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Everything up to `last_uid` in `folder` (as numbered under `uidvalidity`) was
    /// processed; clears the last error. A smaller `last_uid` under the same UIDVALIDITY
    /// never moves the position back.
    pub(crate) fn record_mailbox_position(
        &mut self,
        mailbox: &str,
        folder: &str,
        uidvalidity: u32,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO inbound_mailboxes
                     (mailbox, folder, uidvalidity, last_uid, last_error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5)
                 ON CONFLICT (mailbox, folder) DO UPDATE SET
                     last_uid = CASE WHEN uidvalidity = excluded.uidvalidity
                                     THEN max(last_uid, excluded.last_uid)
                                     ELSE excluded.last_uid END,
                     uidvalidity = excluded.uidvalidity,
                     last_error = NULL,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                mailbox,
                folder,
                uidvalidity,
                last_uid,
                fmt_time(now)
            ])?;
        Ok(())
    }

    /// Reading `folder` failed with `error`: kept (and shown) until a read succeeds. The
    /// position is unchanged; a folder never read gets a row at UIDVALIDITY 0, UID 0.
    pub(crate) fn record_mailbox_error(
        &mut self,
        mailbox: &str,
        folder: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO inbound_mailboxes
                     (mailbox, folder, uidvalidity, last_uid, last_error, updated_at)
                 VALUES (?1, ?2, 0, 0, ?3, ?4)
                 ON CONFLICT (mailbox, folder) DO UPDATE SET
                     last_error = excluded.last_error,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![mailbox, folder, error, fmt_time(now)])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap()
    }

    #[test]
    fn a_position_is_kept_never_moves_back_and_restarts_with_a_new_uidvalidity() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("winback.db")).unwrap();
        let mb = "imap://winback@127.0.0.1/INBOX";
        assert_eq!(store.mailbox_position(mb, "INBOX").unwrap(), None);

        store
            .record_mailbox_position(mb, "INBOX", 7, 12, at(1))
            .unwrap();
        store
            .record_mailbox_position(mb, "INBOX", 7, 5, at(2))
            .unwrap();
        let position = store.mailbox_position(mb, "INBOX").unwrap().unwrap();
        assert_eq!((position.uidvalidity, position.last_uid), (7, 12));

        store
            .record_mailbox_error(mb, "INBOX", "connection refused", at(3))
            .unwrap();
        let position = store.mailbox_position(mb, "INBOX").unwrap().unwrap();
        assert_eq!(position.last_error.as_deref(), Some("connection refused"));
        assert_eq!(position.last_uid, 12, "an error keeps the position");

        store
            .record_mailbox_position(mb, "INBOX", 8, 2, at(4))
            .unwrap();
        let position = store.mailbox_position(mb, "INBOX").unwrap().unwrap();
        assert_eq!(
            position,
            MailboxPosition {
                uidvalidity: 8,
                last_uid: 2,
                last_error: None
            }
        );
        assert_eq!(store.mailbox_position(mb, "Bounces").unwrap(), None);
    }
}
