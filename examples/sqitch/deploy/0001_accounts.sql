-- Deploy accounts:0001_accounts to pg
--
-- No BEGIN/COMMIT: Sqitch runs this file with psql in autocommit mode. migrate.apply() is atomic
-- by itself, and CALL migrate.wait_version() must run outside a transaction block.
-- The version is the change name: pg_migrate rolls back in version (byte) order, Sqitch reverts
-- in plan order, so change names carry a sortable prefix (0001_, 0002_, ...).

SELECT migrate.apply('0001_accounts',
    $up$
    CREATE TABLE accounts (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email      text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO accounts (email)
    SELECT 'user' || g || '@example.com' FROM generate_series(1, 50000) g;
    $up$,
    $down$
    DROP TABLE accounts;
    $down$);

-- Waits for the version's background job (CREATE INDEX CONCURRENTLY, ...); returns at once when
-- it has none.
CALL migrate.wait_version('0001_accounts');
