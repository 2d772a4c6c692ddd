-- lint corpus: safe twin of validate-in-same-migration
-- The NOT VALID add was an earlier migration.
ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;
