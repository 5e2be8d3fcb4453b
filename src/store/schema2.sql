-- Version 2. Link tokens carry the enrollment id, encrypted (see token.rs), instead of a
-- random `public_id`: one index fewer to write per enrollment. The random ids already
-- sent in links move to `legacy_links`, so those links keep working.
-- Runs with foreign keys off (the table is rebuilt, as SQLite's ALTER TABLE guide says).

CREATE TABLE legacy_links (
    public_id     BLOB PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO legacy_links (public_id, enrollment_id) SELECT public_id, id FROM enrollments;
CREATE INDEX legacy_links_by_enrollment ON legacy_links(enrollment_id);

CREATE TABLE enrollments_v2 (
    id           INTEGER PRIMARY KEY,
    client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    campaign     TEXT NOT NULL,
    cycle        INTEGER NOT NULL DEFAULT 1, -- a new sequence after a return and a new churn
    state        TEXT NOT NULL,             -- active | completed | opted_out | bounced | returned
    next_step    INTEGER NOT NULL,          -- 1-based
    due_at       TEXT,                      -- when next_step is due (before snapping to send_at)
    send_at      TEXT,                      -- next moment to consider it; NULL while a message is out
    last_sent_at TEXT,
    stopped_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (client_id, campaign)
);
INSERT INTO enrollments_v2 (id, client_id, campaign, cycle, state, next_step, due_at, send_at,
                            last_sent_at, stopped_at, created_at, updated_at)
    SELECT id, client_id, campaign, cycle, state, next_step, due_at, send_at,
           last_sent_at, stopped_at, created_at, updated_at
    FROM enrollments;
DROP TABLE enrollments;
ALTER TABLE enrollments_v2 RENAME TO enrollments;
CREATE INDEX enrollments_waiting ON enrollments(send_at) WHERE state = 'active' AND send_at IS NOT NULL;
