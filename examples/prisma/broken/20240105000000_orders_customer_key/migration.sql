-- A job that fails: a unique index on customer while many orders share one.
SELECT migrate.apply('20240105000000_orders_customer_key',
    $up$CREATE UNIQUE INDEX CONCURRENTLY orders_customer_key ON orders (customer);$up$,
    $down$DROP INDEX CONCURRENTLY IF EXISTS orders_customer_key;$down$);
