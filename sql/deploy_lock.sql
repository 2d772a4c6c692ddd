-- Deployers (apply, rollback, baseline, repair) take turns: pg_migrate locks this one row
-- FOR UPDATE, as the extension owner, until the deploying transaction ends. An advisory lock key
-- would serialise them as well, but any role can take any advisory lock and hold it for as long
-- as it likes, which would stop every deploy; locking this row needs UPDATE on the table, which
-- no role but its owner has.
CREATE TABLE migrate.deploy_lock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one)
);

INSERT INTO migrate.deploy_lock DEFAULT VALUES;

COMMENT ON TABLE migrate.deploy_lock IS
    'pg_migrate: the row a deploying transaction locks; nobody else may read or lock it';

REVOKE ALL ON migrate.deploy_lock FROM PUBLIC;
