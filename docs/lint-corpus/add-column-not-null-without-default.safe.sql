-- lint corpus: safe twin of add-column-not-null-without-default
ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';
