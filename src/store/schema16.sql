-- Version 16. The report's figures over time count per day in SQL: each count reads a
-- range of one of these indexes instead of the whole table. The one on messages holds
-- only sent ones and every column the count groups by, so the table is never read.
CREATE INDEX messages_sent ON messages(sent_at, campaign, step, kind) WHERE state = 'sent';
CREATE INDEX survey_answers_by_time ON survey_answers(created_at);
CREATE INDEX suppressions_by_time ON suppressions(created_at);
CREATE INDEX clients_returned ON clients(returned_at) WHERE returned_at IS NOT NULL;
