-- lint corpus: breaks add-column-generated-stored
ALTER TABLE users ADD COLUMN email_lower text GENERATED ALWAYS AS (lower(email)) STORED;
