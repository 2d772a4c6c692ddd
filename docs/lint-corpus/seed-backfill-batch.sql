-- lint corpus, from the seeds: backfill_pattern: one batch
UPDATE users
SET status = 'active'
WHERE id IN (
  SELECT id FROM users
  WHERE status IS NULL
  LIMIT 10000
);
