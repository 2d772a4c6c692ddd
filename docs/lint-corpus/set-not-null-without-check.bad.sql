-- lint corpus: breaks set-not-null-without-check
ALTER TABLE users ALTER COLUMN status SET NOT NULL;
