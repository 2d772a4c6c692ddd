-- lint corpus: safe twin of rename-table
-- The new name as a view first; readers move over before the table is renamed.
CREATE VIEW purchases AS SELECT * FROM orders;
