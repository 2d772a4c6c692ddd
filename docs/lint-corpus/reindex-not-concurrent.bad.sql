-- lint corpus: breaks reindex-not-concurrent
REINDEX INDEX users_phone_idx;
