-- lint corpus, from the seeds: zero_downtime_add_column: the three steps written as one migration
ALTER TABLE users ADD COLUMN plan VARCHAR(20);

UPDATE users SET plan = 'active'
WHERE plan IS NULL
AND id IN (SELECT id FROM users WHERE plan IS NULL LIMIT 10000);

ALTER TABLE users ALTER COLUMN plan SET NOT NULL;
