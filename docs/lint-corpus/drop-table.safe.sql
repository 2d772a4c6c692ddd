-- lint corpus: safe twin of drop-table
CREATE TABLE import_scratch (line text);
DROP TABLE import_scratch;
