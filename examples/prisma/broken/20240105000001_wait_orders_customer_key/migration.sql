CALL migrate.wait_version('20240105000000_orders_customer_key');
