-- lint corpus: breaks mixed-ddl-and-data
ALTER TABLE users ADD COLUMN plan text;
UPDATE users SET plan = 'free' WHERE id < 1000;
