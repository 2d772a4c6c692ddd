-- lint corpus: safe twin of prefer-jsonb
ALTER TABLE audit_log ADD COLUMN context jsonb;
