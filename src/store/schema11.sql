-- Version 11. The client's country, as an ISO 3166-1 alpha-2 code, from a CRM export's
-- country column (NULL when no export said).
ALTER TABLE clients ADD COLUMN country TEXT;
