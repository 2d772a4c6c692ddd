-- Deploy accounts:0003_accounts_plan to pg
-- requires: 0001_accounts
--
-- No BEGIN/COMMIT: Sqitch runs this file with psql in autocommit mode. migrate.apply() is atomic
-- by itself, and CALL migrate.wait_version() must run outside a transaction block.
-- The version is the change name: pg_migrate rolls back in version (byte) order, Sqitch reverts
-- in plan order, so change names carry a sortable prefix (0001_, 0002_, ...).

SELECT migrate.apply('0003_accounts_plan',
    $up$
    ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';
    $up$,
    $down$
    ALTER TABLE accounts DROP COLUMN plan;
    $down$);

-- Waits for the version's background job (CREATE INDEX CONCURRENTLY, ...); returns at once when
-- it has none.
CALL migrate.wait_version('0003_accounts_plan');
