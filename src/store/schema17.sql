-- Version 17. Operator commands stream or count over indexes instead of whole tables.
-- `winback survey` lists every answer newest first: read backwards along this index, the
-- answers come out one at a time instead of being sorted in memory first.
CREATE INDEX survey_answers_by_update ON survey_answers(updated_at);
-- One person's answers (`export`, `forget`), and the report's count of people who answered,
-- without reading every answer.
CREATE INDEX survey_answers_by_client ON survey_answers(client_id);
-- The report counts the people surveyed from the index of sent messages alone: it holds
-- the client too (the same entries as before, one column wider).
DROP INDEX messages_sent;
CREATE INDEX messages_sent ON messages(sent_at, campaign, step, kind, client_id) WHERE state = 'sent';
