-- lint corpus, from the seeds: expand_contract, step 4: contract
DROP TRIGGER user_name_sync ON users;
DROP FUNCTION sync_user_name();
ALTER TABLE users DROP COLUMN old_name;
