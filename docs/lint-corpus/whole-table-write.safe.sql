-- lint corpus: safe twin of whole-table-write
UPDATE users SET status = 'active' WHERE id BETWEEN 1 AND 10000 AND status IS NULL;
