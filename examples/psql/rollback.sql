-- Rolls back the latest applied version and waits for its background job, if its down SQL
-- has one (DROP INDEX CONCURRENTLY):
--
--     psql -X -v ON_ERROR_STOP=1 -f rollback.sql
--
-- or rolls back every version after the one given, newest first, all or nothing:
--
--     psql -X -v ON_ERROR_STOP=1 -v to=001_create_accounts -f rollback.sql
--
-- Same rule as deploy.sql: autocommit, never -1 / --single-transaction.
\set ON_ERROR_STOP on
\set VERBOSITY verbose

\if :{?to}
    -- rollback_to returns the versions it rolled back (those with a background job are
    -- 'rolling_back' until it ends); \gexec then runs one CALL per version, each in its own
    -- transaction after the rollback has committed.
    SELECT format('CALL migrate.wait_version(%L)', version) FROM migrate.rollback_to(:'to') \gexec
\else
    -- The latest applied version in version (byte) order; a failed version counts as applied.
    SELECT count(*) = 1 AS have_target, max(version) AS target
      FROM (SELECT version FROM migrate.status() WHERE state IN ('applied', 'failed')
             ORDER BY version COLLATE "C" DESC LIMIT 1) latest \gset
    \if :have_target
        SELECT migrate.rollback(:'target');
        CALL migrate.wait_version(:'target');
    \else
        \echo 'nothing to roll back'
    \endif
\endif

SELECT version, state FROM migrate.status();
