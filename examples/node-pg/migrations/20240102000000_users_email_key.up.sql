-- Built by a pg_migrate worker after apply() commits: migrate.js waits for it.
CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (lower(email));
