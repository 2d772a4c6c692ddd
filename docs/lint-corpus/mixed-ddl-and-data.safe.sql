-- lint corpus: safe twin of mixed-ddl-and-data
-- Seed rows of a table the same migration creates are not a data migration.
CREATE TABLE plans (name text PRIMARY KEY);
INSERT INTO plans VALUES ('free'), ('pro');
