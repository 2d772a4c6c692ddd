-- lint corpus: safe twin of reindex-not-concurrent
REINDEX INDEX CONCURRENTLY users_phone_idx;
