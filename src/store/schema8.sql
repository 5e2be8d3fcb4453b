-- Version 8. Mail that came back (bounces, feedback reports, replies), one row per inbound
-- message, keyed by its Message-ID (else a hash of its content) so it is applied once
-- however often it is read. `effect` says what it changed, for `winback inbox undo`.
-- Forgetting a person erases what their rows say (address, text, why) but keeps the key,
-- so their message read again is not recorded again.
CREATE TABLE inbound_messages (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,     -- 'id:' || Message-ID, or 'sha256:' || content hash
    received_at   TEXT NOT NULL,
    outcome       TEXT NOT NULL,            -- bounce | soft_bounce | ... | unrelated
    email         TEXT,                     -- the address it is about, if one was found
    client_id     INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    message_row   INTEGER REFERENCES messages(id) ON DELETE SET NULL, -- our message it answers
    campaign      TEXT,
    step          INTEGER,
    status        TEXT,                     -- an enhanced status code, e.g. 5.1.1
    why           TEXT NOT NULL DEFAULT '',
    applied       INTEGER NOT NULL DEFAULT 0, -- 1 when it changed something
    effect        TEXT NOT NULL DEFAULT 'none', -- none | counted | bounce | opt_out | left | replied
    before_reason TEXT,                     -- the suppression it replaced, restored by undo
    before_source TEXT,
    undone_at     TEXT,
    excerpt       TEXT                      -- the start of a reply's text, for the team
);
CREATE INDEX inbound_by_client ON inbound_messages(client_id, outcome);
CREATE INDEX inbound_by_time ON inbound_messages(received_at);
