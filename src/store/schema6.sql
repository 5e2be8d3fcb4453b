-- Version 6. Addresses in one form: the domain in its IDNA ASCII form (`xn--`), a Unicode
-- local part in NFC. No table changes: the rewriting needs IDNA, so it is a Rust step
-- (store::addresses::normalize_stored) run in this migration's transaction right after
-- this file. It respells non-ASCII clients and suppressions, rehashes the suppressions,
-- and merges two rows that turn out to be one mailbox.
SELECT 1;
