-- lint corpus: safe twin of drop-schema
CREATE SCHEMA staging;
DROP SCHEMA staging;
