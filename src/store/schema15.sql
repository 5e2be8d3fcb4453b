-- Version 15. A step may send more than one message (a recurring `every_days` step, a
-- seasonal `on` step each year): each is an occurrence of its step, 1 for the first. The
-- schema refuses a second copy of an occurrence as it refused one of a step. SQLite
-- cannot change a UNIQUE constraint in place: the table is rebuilt (foreign keys are off
-- during a migration) with every column and index it had. An enrollment's pointer gains
-- the occurrence it stands at.
CREATE TABLE messages_v15 (
    id               INTEGER PRIMARY KEY,
    enrollment_id    INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    client_id        INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    campaign         TEXT NOT NULL,
    cycle            INTEGER NOT NULL,
    step             INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,         -- sending | sent | retry | failed | uncertain | cancelled | held
    message_id       TEXT NOT NULL UNIQUE,
    due_at           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_claimed_at TEXT NOT NULL,
    claimed_at       TEXT NOT NULL,
    next_attempt_at  TEXT,
    sent_at          TEXT,
    smtp_reply       TEXT,
    last_error       TEXT,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    occurrence       INTEGER NOT NULL DEFAULT 1, -- 1-based, per step
    UNIQUE (enrollment_id, cycle, step, occurrence) -- the schema itself refuses a second copy
);
INSERT INTO messages_v15 (id, enrollment_id, client_id, campaign, cycle, step, kind, state, message_id,
                          due_at, attempts, first_claimed_at, claimed_at, next_attempt_at, sent_at,
                          smtp_reply, last_error, updated_at, started_at, occurrence)
    SELECT id, enrollment_id, client_id, campaign, cycle, step, kind, state, message_id,
           due_at, attempts, first_claimed_at, claimed_at, next_attempt_at, sent_at,
           smtp_reply, last_error, updated_at, started_at, 1
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v15 RENAME TO messages;
CREATE INDEX messages_retry ON messages(next_attempt_at) WHERE state = 'retry';
CREATE INDEX messages_by_client ON messages(client_id, claimed_at);
CREATE INDEX messages_by_state ON messages(state, updated_at);
CREATE INDEX messages_by_claim ON messages(claimed_at);

ALTER TABLE enrollments ADD COLUMN next_occurrence INTEGER NOT NULL DEFAULT 1;
