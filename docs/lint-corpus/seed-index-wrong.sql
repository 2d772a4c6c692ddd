-- lint corpus, from the seeds: safe_index_creation: WRONG, blocks all writes
CREATE INDEX idx_users_email ON users(email);
