-- lint corpus: breaks prefer-jsonb
ALTER TABLE audit_log ADD COLUMN context json;
