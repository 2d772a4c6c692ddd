-- lint corpus: breaks truncate
TRUNCATE audit_log;
