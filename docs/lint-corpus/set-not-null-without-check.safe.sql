-- lint corpus: safe twin of set-not-null-without-check
-- users_email_not_null, CHECK (email IS NOT NULL), was added NOT VALID and validated earlier.
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
