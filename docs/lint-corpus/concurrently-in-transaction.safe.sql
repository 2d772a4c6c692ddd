-- lint corpus: safe twin of concurrently-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);
