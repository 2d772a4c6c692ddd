-- The wait for the contract's job (the same wait_version() covers it).
CALL migrate.wait_version('20240103000000_orders_amount_cents_expand');
