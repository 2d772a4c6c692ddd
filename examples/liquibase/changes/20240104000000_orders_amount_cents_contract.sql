--liquibase formatted sql

-- Contract (deploy 3, with the application release that no longer uses amount): wait for the
-- backfill, drop amount and give amount_cents its default, CHECK and index (rebuilt concurrently
-- by a job), and wait for that job. wait_version() of the expand's version covers both: it waits
-- for the jobs of the changes that version made, the backfill and then the contract. The change
-- is found by table and column (change ids differ between databases).
-- No --rollback: a contract dropped orders.amount and cannot be undone, so Liquibase refuses
-- to roll this changeset back (write a new changeset instead).
--changeset pg_migrate:20240104000000_orders_amount_cents_contract runInTransaction:false
CALL migrate.wait_version('20240103000000_orders_amount_cents_expand');
SELECT migrate.contract(change) FROM migrate.changes
 WHERE "table"::regclass = 'orders'::regclass AND "column" = 'amount';
CALL migrate.wait_version('20240103000000_orders_amount_cents_expand');
