--liquibase formatted sql

-- Refused by pg_migrate: CREATE INDEX without CONCURRENTLY blocks every write to orders while the
-- index builds (lint rule index-not-concurrent, SQLSTATE 42P17). test.sh adds it to a scratch
-- changelog to show what Liquibase prints.
--changeset pg_migrate:20240105000000_orders_customer_idx
SELECT migrate.apply('20240105000000_orders_customer_idx',
    'CREATE INDEX orders_customer_idx ON orders (customer);',
    'DROP INDEX orders_customer_idx;');
--rollback SELECT migrate.rollback('20240105000000_orders_customer_idx');
