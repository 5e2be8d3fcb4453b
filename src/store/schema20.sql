-- Version 20. Why a claim moved an enrollment's `send_at` past the moment its due time
-- gave (the words `plan` gives that rule: "moved a day: one message per person per day",
-- a min gap, a date kept free, the account gap), written with that `send_at` and cleared
-- wherever `send_at` is written for another reason. `plan` starts the enrollment at its
-- `send_at` and would not find that move again; NULL when nothing moved it.
ALTER TABLE enrollments ADD COLUMN moved_reason TEXT;
