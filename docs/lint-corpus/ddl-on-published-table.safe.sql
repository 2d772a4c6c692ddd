-- lint corpus: safe twin of ddl-on-published-table (the table is in no publication; a published
-- one takes the same change on every subscriber, in the order docs/ha.md gives)
SET lock_timeout = '2s';
ALTER TABLE shipments_staging ADD COLUMN tracking text;
