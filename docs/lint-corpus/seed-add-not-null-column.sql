-- lint corpus, from the seeds: zero_downtime_add_column: DANGEROUS, NOT NULL without default
ALTER TABLE users ADD COLUMN plan VARCHAR(20) NOT NULL;
