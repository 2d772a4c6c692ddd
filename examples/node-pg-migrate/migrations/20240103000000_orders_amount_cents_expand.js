// Expand: orders.amount (numeric, in dollars) becomes amount_cents (bigint): the column, a
// trigger that keeps the two in step while the running application still writes amount, and a
// backfill job. Without down SQL, pg_migrate records "SELECT migrate.abort(<change>)" as the
// version's down SQL: rolling back removes the new column and the trigger.
const { versionOf, apply, rollback } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.up = (pgm) =>
  apply(
    pgm,
    VERSION,
    `SELECT migrate.expand_column('orders', 'amount',
        new_name => 'amount_cents', new_type => 'bigint',
        up => 'round(amount * 100)::bigint', down => 'amount_cents / 100.0');`,
  );

exports.down = (pgm) => rollback(pgm, VERSION);
