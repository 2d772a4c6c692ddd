-- The wait for the previous migration's index build, a section of its own outside a transaction.
-- If the build fails (duplicate references), the wait raises the failed statement's SQLSTATE
-- (23505) and dbmate stops, this migration not recorded.
-- migrate:up transaction:false
CALL migrate.wait_version('20240102000001');

-- migrate:down
