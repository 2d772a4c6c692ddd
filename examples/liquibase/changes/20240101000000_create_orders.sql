--liquibase formatted sql

-- A plain version: migrate.apply() runs in Liquibase's transaction for the changeset.
-- splitStatements:false sends the changeset as one statement: Liquibase's splitter does not know
-- dollar quotes and would cut the up SQL at its first semicolon.
--changeset pg_migrate:20240101000000_create_orders splitStatements:false
SELECT migrate.apply('20240101000000_create_orders', $up$
    CREATE TABLE orders (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer   text NOT NULL,
        amount     numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
        created_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX orders_amount_idx ON orders (amount);
$up$, $down$
    DROP TABLE orders;
$down$);
--rollback SELECT migrate.rollback('20240101000000_create_orders');
