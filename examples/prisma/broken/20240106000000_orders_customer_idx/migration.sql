-- Refused by pg_migrate: CREATE INDEX without CONCURRENTLY (lint rule index-not-concurrent, 42P17).
SELECT migrate.apply('20240106000000_orders_customer_idx',
    $up$CREATE INDEX orders_customer_idx ON orders (customer);$up$,
    $down$DROP INDEX orders_customer_idx;$down$);
