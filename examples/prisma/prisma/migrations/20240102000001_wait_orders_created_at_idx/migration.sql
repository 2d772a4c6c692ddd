-- The wait for the index build. The CALL must be this migration's only statement: with another
-- one beside it the script is a transaction block and the wait fails with 25001.
CALL migrate.wait_version('20240102000000_orders_created_at_idx');
