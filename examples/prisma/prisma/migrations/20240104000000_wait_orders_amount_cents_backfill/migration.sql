-- Deploy 3 (the application no longer uses amount): wait for the backfill. wait_version() of
-- the expand's version waits for the jobs of the changes it made.
CALL migrate.wait_version('20240103000000_orders_amount_cents_expand');
