-- lint corpus: breaks missing-lock-timeout
ALTER TABLE users ADD COLUMN plan text;
