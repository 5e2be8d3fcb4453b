-- Version 1. Times are UTC text in one fixed format (see store::time), so they sort.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE clients (
    id           INTEGER PRIMARY KEY,
    email        TEXT NOT NULL UNIQUE,      -- lower case
    email_hash   TEXT NOT NULL,             -- hex SHA-256 of email, joins suppressions
    name         TEXT,
    first_name   TEXT,
    company      TEXT,
    churned_at   TEXT NOT NULL,             -- as imported: YYYY-MM-DD or RFC 3339
    churn_reason TEXT,
    timezone     TEXT,
    fields       TEXT NOT NULL DEFAULT '{}', -- JSON object of custom columns
    returned_at  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Opt-outs, bounces and forgotten people, by address: permanent, and valid for addresses
-- never imported. `email` is NULL once a person is forgotten.
CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    email      TEXT,
    reason     TEXT NOT NULL,               -- opt_out | bounce | forgotten
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE enrollments (
    id           INTEGER PRIMARY KEY,
    client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    campaign     TEXT NOT NULL,
    public_id    BLOB NOT NULL UNIQUE,      -- random; what link tokens carry
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
CREATE INDEX enrollments_waiting ON enrollments(send_at) WHERE state = 'active' AND send_at IS NOT NULL;

-- The outbox. A row exists, in state `sending`, before its SMTP transaction starts.
CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    enrollment_id    INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    client_id        INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    campaign         TEXT NOT NULL,
    cycle            INTEGER NOT NULL,
    step             INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,         -- sending | sent | retry | failed | uncertain | cancelled
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
    UNIQUE (enrollment_id, cycle, step)     -- the schema itself refuses a second copy
);
CREATE INDEX messages_retry ON messages(next_attempt_at) WHERE state = 'retry';
CREATE INDEX messages_by_client ON messages(client_id, claimed_at);
CREATE INDEX messages_by_state ON messages(state, updated_at);
CREATE INDEX messages_by_claim ON messages(claimed_at);

CREATE TABLE survey_answers (
    enrollment_id   INTEGER PRIMARY KEY REFERENCES enrollments(id) ON DELETE CASCADE,
    client_id       INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    campaign        TEXT NOT NULL,
    reason          TEXT,
    better          TEXT,
    would_return    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- What happened, for status and the report. Forgetting a person deletes their rows.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    client_id INTEGER,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_client ON events(client_id);

-- Which campaign definitions the enrollments were computed for.
CREATE TABLE campaigns (
    name        TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    synced_at   TEXT NOT NULL
);
