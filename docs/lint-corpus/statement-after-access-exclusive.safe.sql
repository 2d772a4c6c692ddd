-- lint corpus: safe twin of statement-after-access-exclusive
ALTER TABLE users ADD COLUMN plan text, ADD COLUMN plan_since timestamptz;
