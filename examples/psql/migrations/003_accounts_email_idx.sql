-- An index built without blocking writes. CREATE INDEX CONCURRENTLY cannot run in a
-- transaction block, so migrate.apply() queues it as a background job that starts when this
-- statement's transaction commits, and returns 'applying'. The next CALL waits for it: the
-- next migration would otherwise meet ERROR 55006 (one version in flight).
SELECT migrate.apply('003_accounts_email_idx',
    $up$CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);$up$,
    $down$DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx;$down$);

-- Returns at once with a NOTICE when there is nothing to wait for (a re-run).
CALL migrate.wait_version('003_accounts_email_idx');
