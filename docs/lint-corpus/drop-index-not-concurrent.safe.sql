-- lint corpus: safe twin of drop-index-not-concurrent
DROP INDEX CONCURRENTLY users_phone_idx;
