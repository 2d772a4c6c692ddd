-- lint corpus: breaks drop-index-not-concurrent
DROP INDEX users_phone_idx;
