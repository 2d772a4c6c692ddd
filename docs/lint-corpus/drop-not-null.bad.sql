-- lint corpus: breaks drop-not-null
ALTER TABLE users ALTER COLUMN created_at DROP NOT NULL;
