-- lint corpus: breaks index-not-concurrent
CREATE INDEX users_email_idx ON users (email);
