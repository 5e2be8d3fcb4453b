-- Version 19. `plan` reads the enrollments not yet claimable in `send_at` order, through the
-- claim's own index (`enrollments_waiting`): the index of their due times is not needed,
-- and every import and send no longer pays for keeping it.
DROP INDEX IF EXISTS enrollments_due;
