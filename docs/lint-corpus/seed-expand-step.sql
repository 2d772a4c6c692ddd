-- lint corpus, from the seeds: expand_contract, step 1: expand, backfill and sync trigger in one file
ALTER TABLE users ADD COLUMN new_name VARCHAR(255);

UPDATE users SET new_name = old_name WHERE new_name IS NULL;

CREATE OR REPLACE FUNCTION sync_user_name()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.old_name IS DISTINCT FROM OLD.old_name THEN
    NEW.new_name = NEW.old_name;
  END IF;
  IF NEW.new_name IS DISTINCT FROM OLD.new_name THEN
    NEW.old_name = NEW.new_name;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER user_name_sync
  BEFORE UPDATE ON users
  FOR EACH ROW
  EXECUTE FUNCTION sync_user_name();
