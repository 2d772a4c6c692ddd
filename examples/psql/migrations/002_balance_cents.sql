-- Expand/contract: accounts.balance numeric(12,2) becomes accounts.balance_cents bigint while
-- the application keeps running. expand_column adds the new column, a sync trigger and a
-- backfill job; contract (later) swaps it in: indexes and constraints rebuilt concurrently,
-- the old column dropped in one short transaction.
--
-- expand_column is not idempotent by itself (a second call on the same table is ERROR 55006:
-- it already has an open change). Calling it inside migrate.apply() makes the version run it
-- exactly once, and records "SELECT migrate.abort(<change>);" as the version's down SQL.
SELECT migrate.apply('002_balance_cents',
    $up$SELECT migrate.expand_column('accounts', 'balance',
            new_name => 'balance_cents', new_type => 'bigint',
            up => 'round(balance * 100)::bigint', down => 'balance_cents / 100.0')$up$);

-- The change that version opened, if it is still open. On a re-run after the contract there
-- is none, so the block below is skipped; a deploy interrupted before the contract goes on here.
-- (\gset of a query returning no rows is an error under ON_ERROR_STOP, hence count/max.)
SELECT count(*) = 1 AS balance_open, max(change) AS balance_change
  FROM migrate.changes WHERE version = '002_balance_cents' \gset

\if :balance_open
    -- Progress lines until the backfill is done (commits between polls: autocommit only).
    CALL migrate.wait_change(:balance_change);

    -- In production this is a later deploy: once every application instance reads and writes
    -- balance_cents. It is the point of no return: after it, rolling 002 back fails (55000).
    SELECT migrate.contract(:balance_change) AS balance_job \gset
    CALL migrate.wait(:balance_job);
\endif
