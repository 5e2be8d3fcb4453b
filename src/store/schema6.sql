-- Version 6. Addresses in one form: the domain in its IDNA ASCII form (`xn--`), a Unicode
-- local part in NFC. The rewriting needs IDNA, so it is a Rust step
-- (store::addresses::normalize_stored) run in this migration's transaction right after
-- this file. It respells non-ASCII clients and suppressions, rehashes the suppressions,
-- and merges two rows that turn out to be one mailbox.

-- An enrollment merged into another (two spellings of one person, both mailed): links
-- sent with its id reach the one that stays, so the person can still opt out from them.
CREATE TABLE merged_enrollments (
    id            INTEGER PRIMARY KEY,      -- the enrollment merged away, as links carry it
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE
);
CREATE INDEX merged_enrollments_by_enrollment ON merged_enrollments(enrollment_id);
