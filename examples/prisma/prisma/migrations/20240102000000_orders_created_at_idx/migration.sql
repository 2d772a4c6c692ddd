-- CREATE INDEX CONCURRENTLY runs in a background job once this migration has committed.
SELECT migrate.apply('20240102000000_orders_created_at_idx',
    $up$CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);$up$,
    $down$DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;$down$);
