-- CREATE UNIQUE INDEX CONCURRENTLY cannot run in a transaction: migrate.apply() records the
-- version as 'applying' and a background worker builds the index after the commit. The next
-- migration waits for it; the previous one's down waits for the rollback (DROP INDEX
-- CONCURRENTLY, a job too).
-- migrate:up
SELECT migrate.apply('20240102000001',
    $up$CREATE UNIQUE INDEX CONCURRENTLY orders_reference_key ON orders (reference);$up$,
    $down$DROP INDEX CONCURRENTLY IF EXISTS orders_reference_key;$down$,
    'orders_reference_key');

-- migrate:down
SELECT migrate.rollback('20240102000001');
