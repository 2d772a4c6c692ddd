-- lint corpus: breaks rename-table
ALTER TABLE orders RENAME TO purchases;
