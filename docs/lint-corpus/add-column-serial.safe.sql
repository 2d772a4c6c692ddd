-- lint corpus: safe twin of add-column-serial
ALTER TABLE orders ADD COLUMN seq bigint;
