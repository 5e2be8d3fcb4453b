-- Version 4. `enrollments.send_at`, the next moment to consider an enrollment, is a number
-- (microseconds since 1970-01-01 UTC, see store::moment) instead of time text: the index
-- of waiting enrollments, which every imported client adds to, holds an 8-byte integer
-- instead of a 27-character text, and compares it in one step.

DROP INDEX enrollments_waiting;
ALTER TABLE enrollments ADD COLUMN send_at_micros INTEGER;
UPDATE enrollments
   SET send_at_micros = unixepoch(substr(send_at, 1, 19)) * 1000000 + CAST(substr(send_at, 21, 6) AS INTEGER)
 WHERE send_at IS NOT NULL;
ALTER TABLE enrollments DROP COLUMN send_at;
ALTER TABLE enrollments RENAME COLUMN send_at_micros TO send_at;
CREATE INDEX enrollments_waiting ON enrollments(send_at) WHERE state = 'active' AND send_at IS NOT NULL;
