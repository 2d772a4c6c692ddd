-- lint corpus, from the seeds: PostgreSQL Specific / Check Constraints, as one migration
ALTER TABLE users ADD CONSTRAINT users_age_positive
  CHECK (age >= 0) NOT VALID;

ALTER TABLE users VALIDATE CONSTRAINT users_age_positive;
