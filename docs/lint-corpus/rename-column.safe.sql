-- lint corpus: safe twin of rename-column
-- Expand: a new column, kept in sync and backfilled, replaces the old one later.
ALTER TABLE users ADD COLUMN full_name varchar(50);
