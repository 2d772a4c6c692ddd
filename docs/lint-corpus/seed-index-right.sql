-- lint corpus, from the seeds: safe_index_creation: RIGHT, in a migration of its own
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email
ON users(email);
