-- Deploy 2, expand: orders.amount (numeric, in dollars) becomes amount_cents (bigint): the
-- column, a trigger that keeps the two in step while the running application still writes
-- amount, and a backfill job.
SELECT migrate.apply('20240103000000_orders_amount_cents_expand', $up$
    SELECT migrate.expand_column('orders', 'amount',
        new_name => 'amount_cents', new_type => 'bigint',
        up => 'round(amount * 100)::bigint', down => 'amount_cents / 100.0');
$up$);
