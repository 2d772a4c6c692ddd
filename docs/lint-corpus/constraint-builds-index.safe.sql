-- lint corpus: safe twin of constraint-builds-index
-- users_email_idx was built with CREATE UNIQUE INDEX CONCURRENTLY in an earlier migration.
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;
