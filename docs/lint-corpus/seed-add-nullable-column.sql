-- lint corpus, from the seeds: zero_downtime_add_column: safe, nullable column
ALTER TABLE users ADD COLUMN mobile VARCHAR(50);
