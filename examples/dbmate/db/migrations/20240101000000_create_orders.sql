-- A plain version: dbmate runs the section in a transaction, and migrate.apply() runs in it.
-- dbmate's version is the file name's number; pg_migrate gets the same one, and the rest of the
-- file name as the version's name.
-- migrate:up
SELECT migrate.apply('20240101000000', $up$
    CREATE TABLE orders (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        reference  text NOT NULL,
        amount     numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
        created_at timestamptz NOT NULL DEFAULT now());
$up$, $down$
    DROP TABLE orders;
$down$, 'create_orders');

-- migrate:down
SELECT migrate.rollback('20240101000000');
