--liquibase formatted sql

-- A job that fails: a unique index on customer, while many orders share a customer. The build
-- runs in a worker after the apply has committed; CALL migrate.wait_version() raises the failed
-- statement's own SQLSTATE (23505, unique_violation) with the duplicate key, and Liquibase stops.
--changeset pg_migrate:20240106000000_orders_customer_key runInTransaction:false
SELECT migrate.apply('20240106000000_orders_customer_key',
    'CREATE UNIQUE INDEX CONCURRENTLY orders_customer_key ON orders (customer);',
    'DROP INDEX CONCURRENTLY IF EXISTS orders_customer_key;');
CALL migrate.wait_version('20240106000000_orders_customer_key');
--rollback SELECT migrate.rollback('20240106000000_orders_customer_key');
--rollback CALL migrate.wait_version('20240106000000_orders_customer_key');
