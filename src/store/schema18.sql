-- Version 18. `plan` reads the waiting enrollments not yet due in the order of their due
-- time, one at a time (so that its memory does not grow with their number): this index
-- gives them in that order, and in id order within one due time.
CREATE INDEX enrollments_due ON enrollments(due_at) WHERE state = 'active' AND send_at IS NOT NULL;
