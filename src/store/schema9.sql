-- Version 9. How far each mailbox folder has been read: its UIDVALIDITY and the highest
-- UID handed on and processed, so a restart neither misses nor repeats a message. A new
-- UIDVALIDITY means the folder's UIDs were renumbered: reading starts again from 0.
CREATE TABLE inbound_mailboxes (
    mailbox     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
