--liquibase formatted sql

-- Expand (deploy 2): orders.amount (numeric, in dollars) becomes amount_cents (bigint). pg_migrate
-- adds the column, a trigger that keeps the two in step while the running application still
-- writes amount, and a backfill job that fills amount_cents for the existing rows after the
-- commit. Without down SQL, pg_migrate records "SELECT migrate.abort(<change>)" as the version's
-- down SQL: the rollback removes the new column and the trigger.
--changeset pg_migrate:20240103000000_orders_amount_cents_expand splitStatements:false
SELECT migrate.apply('20240103000000_orders_amount_cents_expand', $up$
    SELECT migrate.expand_column('orders', 'amount',
        new_name => 'amount_cents', new_type => 'bigint',
        up => 'round(amount * 100)::bigint', down => 'amount_cents / 100.0');
$up$);
--rollback SELECT migrate.rollback('20240103000000_orders_amount_cents_expand');
