-- lint corpus: safe twin of drop-not-null
ALTER TABLE users ALTER COLUMN created_at SET DEFAULT now();
