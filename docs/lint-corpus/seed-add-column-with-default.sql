-- lint corpus, from the seeds: zero_downtime_add_column: safe on Postgres 11+, constant default
ALTER TABLE users ADD COLUMN plan VARCHAR(20) DEFAULT 'active';
