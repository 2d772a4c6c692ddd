-- lint corpus: breaks drop-schema
DROP SCHEMA reporting CASCADE;
