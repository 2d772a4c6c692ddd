-- lint corpus: breaks ddl-on-published-table
SET lock_timeout = '2s';
ALTER TABLE shipments ADD COLUMN tracking text;
