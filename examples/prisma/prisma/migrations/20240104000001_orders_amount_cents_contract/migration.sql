-- Contract: drop amount, give amount_cents its default, CHECK and index (rebuilt concurrently by
-- a job). The change is found by table and column (change ids differ between databases).
SELECT migrate.contract(change) FROM migrate.changes
 WHERE "table"::regclass = 'orders'::regclass AND "column" = 'amount';
