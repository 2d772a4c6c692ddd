-- lint corpus: breaks whole-table-write
UPDATE users SET status = 'active';
