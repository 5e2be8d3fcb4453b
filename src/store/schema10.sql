-- Version 10. Notices to the team ([inbound] notify): one row per event that deserves a
-- person's attention (a human reply, a contact who left, a survey answer), written in the
-- event's own transaction and sent once by the daemon. The text is read from the event's
-- rows when it goes, so forgetting a person (which deletes their client row) takes their
-- notices with it.
CREATE TABLE notices (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,             -- reply | left_company | survey_answer
    created_at       TEXT NOT NULL,
    client_id        INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    inbound_id       INTEGER REFERENCES inbound_messages(id) ON DELETE CASCADE,
    enrollment_id    INTEGER REFERENCES enrollments(id) ON DELETE CASCADE,
    state            TEXT NOT NULL DEFAULT 'pending', -- pending | sending | sent | failed | uncertain
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_attempt_at TEXT,
    next_attempt_at  TEXT NOT NULL,
    message_id       TEXT,
    sent_at          TEXT,
    error            TEXT
);
CREATE INDEX notices_due ON notices(state, next_attempt_at);
CREATE INDEX notices_by_client ON notices(client_id);
