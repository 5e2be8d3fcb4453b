-- Version 14. The account a client belongs to ([clients] account: the company, the
-- email's domain or a column), lower case; NULL when accounts are not configured or the
-- row has none. Contacts of one account are one relationship.
ALTER TABLE clients ADD COLUMN account_key TEXT;
CREATE INDEX clients_by_account ON clients(account_key) WHERE account_key IS NOT NULL;
