-- lint corpus: breaks alter-column-type
ALTER TABLE users ALTER COLUMN balance TYPE numeric(12,4);
