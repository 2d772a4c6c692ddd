-- lint corpus: safe twin of missing-lock-timeout
SET lock_timeout = '2s';
ALTER TABLE users ADD COLUMN plan text;
