-- lint corpus: safe twin of vacuum-full
VACUUM (ANALYZE) users;
