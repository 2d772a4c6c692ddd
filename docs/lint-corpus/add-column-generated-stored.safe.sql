-- lint corpus: safe twin of add-column-generated-stored
ALTER TABLE users ADD COLUMN email_lower text;
