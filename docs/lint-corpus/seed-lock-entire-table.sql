-- lint corpus, from the seeds: anti_patterns.lock_entire_table: wrong
UPDATE users SET status = phone;
