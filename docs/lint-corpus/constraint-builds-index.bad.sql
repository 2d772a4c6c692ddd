-- lint corpus: breaks constraint-builds-index
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
