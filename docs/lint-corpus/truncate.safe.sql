-- lint corpus: safe twin of truncate
DELETE FROM audit_log WHERE at < now() - interval '90 days';
