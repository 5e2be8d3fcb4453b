-- Version 18. `winback survey` lists every answer newest first: read backwards along this
-- index, the answers stream out one at a time instead of being sorted in memory first.
CREATE INDEX survey_answers_by_update ON survey_answers(updated_at);
