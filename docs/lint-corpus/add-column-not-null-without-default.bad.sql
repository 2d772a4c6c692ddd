-- lint corpus: breaks add-column-not-null-without-default
ALTER TABLE users ADD COLUMN plan text NOT NULL;
