-- Version 7. Claimed and started are two moments of a `sending` message: `started_at` is
-- committed just before its SMTP transaction begins. At start-up a `sending` row without
-- it was never handed to a server and goes back to the queue; one with it is `uncertain`.
ALTER TABLE messages ADD COLUMN started_at TEXT;
-- Rows caught `sending` by an older build may have started: treat them as started.
UPDATE messages SET started_at = claimed_at WHERE state = 'sending';
