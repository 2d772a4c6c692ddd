// Expand: orders.amount (numeric, in dollars) becomes amount_cents (bigint). pg_migrate adds the
// column, a trigger that keeps the two in step (the running application still writes amount),
// and a backfill job that fills amount_cents for the existing rows after the commit.
// Without down SQL, pg_migrate records "SELECT migrate.abort(<change>)" as this version's down
// SQL: rolling back removes the new column and the trigger.
const { versionOf, apply, rollback } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.up = (knex) =>
  apply(
    knex,
    VERSION,
    `SELECT migrate.expand_column('orders', 'amount',
        new_name => 'amount_cents', new_type => 'bigint',
        up => 'round(amount * 100)::bigint', down => 'amount_cents / 100.0');`,
  );

exports.down = (knex) => rollback(knex, VERSION);
