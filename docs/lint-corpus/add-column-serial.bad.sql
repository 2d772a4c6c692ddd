-- lint corpus: breaks add-column-serial
ALTER TABLE orders ADD COLUMN seq bigserial;
