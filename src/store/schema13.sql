-- Version 13. The CRM's latest list of current customers ([clients] customers_file), by
-- hashed address, replaced as a whole at each sync that reads it. An import checks each
-- row against it: a client on it is a customer again as of `seen_at` (never mailed),
-- even one the client file adds, or says left again, after the list was read.
CREATE TABLE customers (
    email_hash TEXT PRIMARY KEY,
    seen_at    TEXT NOT NULL
) WITHOUT ROWID;
