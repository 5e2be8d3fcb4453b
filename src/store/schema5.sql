-- Version 5. Enrollment ids are never used twice (AUTOINCREMENT): a link token carries the
-- id, so an id freed by forgetting a person must never name someone imported later.
-- Existing ids, and with them every link already sent, are kept. The table is rebuilt
-- (SQLite cannot add AUTOINCREMENT in place), with foreign keys off.

CREATE TABLE enrollments_v5 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    campaign     TEXT NOT NULL,
    cycle        INTEGER NOT NULL DEFAULT 1, -- a new sequence after a return and a new churn
    state        TEXT NOT NULL,             -- active | completed | opted_out | bounced | returned
    next_step    INTEGER NOT NULL,          -- 1-based
    due_at       TEXT,                      -- when next_step is due (before snapping to send_at)
    send_at      INTEGER,                   -- next moment to consider it (see store::moment); NULL while a message is out
    last_sent_at TEXT,
    stopped_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (client_id, campaign)
);
INSERT INTO enrollments_v5 (id, client_id, campaign, cycle, state, next_step, due_at, send_at,
                            last_sent_at, stopped_at, created_at, updated_at)
    SELECT id, client_id, campaign, cycle, state, next_step, due_at, send_at,
           last_sent_at, stopped_at, created_at, updated_at
    FROM enrollments;
DROP TABLE enrollments;
ALTER TABLE enrollments_v5 RENAME TO enrollments;
CREATE INDEX enrollments_waiting ON enrollments(send_at) WHERE state = 'active' AND send_at IS NOT NULL;

-- New ids start above every id ever issued. Without AUTOINCREMENT each new id was the
-- largest then stored plus one, so the ids ever issued above today's largest were all
-- freed by deleting enrollments: a forgotten person's (at most one per campaign), or one
-- an import dropped before it was ever mailed (an `excluded` event). Counting those
-- deletions bounds how far the freed ids reach.
DELETE FROM sqlite_sequence WHERE name = 'enrollments';
INSERT INTO sqlite_sequence (name, seq) SELECT 'enrollments',
    (SELECT max(id) FROM (
        SELECT coalesce(max(id), 0) AS id FROM enrollments
        UNION ALL SELECT coalesce(max(enrollment_id), 0) FROM messages
        UNION ALL SELECT coalesce(max(enrollment_id), 0) FROM legacy_links
        UNION ALL SELECT coalesce(max(enrollment_id), 0) FROM survey_answers))
    + (SELECT count(*) FROM events WHERE kind = 'forget')
      * (SELECT max(count(*), 1) FROM (
            SELECT name FROM campaigns
            UNION SELECT campaign FROM enrollments
            UNION SELECT campaign FROM messages
            UNION SELECT campaign FROM survey_answers))
    + (SELECT count(*) FROM events WHERE kind = 'excluded');
