--liquibase formatted sql

-- CREATE INDEX CONCURRENTLY cannot run in a transaction: migrate.apply() records the version as
-- 'applying' and a background worker builds the index once the apply has committed. The changeset
-- runs outside a transaction (runInTransaction:false: Liquibase runs each statement in autocommit),
-- so CALL migrate.wait_version() can commit between its polls; it returns when the index is built
-- and raises the failed statement's own error if the build fails. The rollback is the same shape:
-- migrate.rollback() starts DROP INDEX CONCURRENTLY in a job, and the wait ends with it.
-- The statements are split on semicolons: the arguments are plain quoted strings, no dollar quotes.
--changeset pg_migrate:20240102000000_orders_created_at_idx runInTransaction:false
SELECT migrate.apply('20240102000000_orders_created_at_idx',
    'CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);',
    'DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;');
CALL migrate.wait_version('20240102000000_orders_created_at_idx');
--rollback SELECT migrate.rollback('20240102000000_orders_created_at_idx');
--rollback CALL migrate.wait_version('20240102000000_orders_created_at_idx');
