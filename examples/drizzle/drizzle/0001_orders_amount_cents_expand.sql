-- Expand (deploy N), written by hand: `drizzle-kit generate --custom` made this file empty.
-- orders.amount (numeric dollars) becomes amount_cents (bigint cents). pg_migrate adds the new
-- column, a trigger that keeps the two in step while the running application still writes
-- amount, and a backfill job that fills amount_cents for the existing rows once the migrator
-- commits. Through migrate.apply the change is recorded as a version of its own, linted, and
-- SELECT migrate.rollback('0001_orders_amount_cents_expand') would undo it (migrate.abort).
SELECT migrate.apply('0001_orders_amount_cents_expand', $up$
SELECT migrate.expand_column('orders', 'amount',
    new_name => 'amount_cents', new_type => 'bigint',
    up => 'round(amount * 100)::bigint', down => 'amount_cents / 100.0');
$up$);
