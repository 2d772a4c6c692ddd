-- lint corpus: breaks drop-table
DROP TABLE audit_log;
