-- pg_migrate 0.2.0 -> 0.3.0 (ALTER EXTENSION pg_migrate UPDATE TO '0.3.0').
-- An upgrade script is frozen once released: it must take a 0.2.0 schema to exactly what a
-- fresh CREATE EXTENSION of 0.3.0 makes (pgrx-tests/tests/upgrade.rs compares the two).
-- 0.3.0 is the security release (issue 13): see docs/security.md.
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

-- == expressions, backfills, contract, verify ==

-- == jobs: liveness, cancellation, fairness ==

-- == versions: owners, rollback, repair, baseline ==
