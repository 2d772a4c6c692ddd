-- lint corpus: safe twin of index-not-concurrent
CREATE INDEX CONCURRENTLY users_email_idx ON users (email);
