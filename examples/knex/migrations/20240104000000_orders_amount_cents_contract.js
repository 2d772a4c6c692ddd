// Contract: once the backfill is done, drop amount and give amount_cents its NOT NULL, default,
// CHECK and index (rebuilt concurrently by a job). Both waits must run outside a transaction,
// hence transaction: false. In a real deploy this migration ships with the application version
// that no longer uses amount; when it runs in the same `knex migrate:latest` as the expand, it
// simply waits for the backfill first.
const { sql, openChange } = require('../pg_migrate');

exports.config = { transaction: false };

exports.up = async (knex) => {
  const change = await openChange(knex, 'orders', 'amount');
  await sql(knex, 'CALL migrate.wait_change(?)', [change]); // the backfill
  const [{ job }] = await sql(knex, 'SELECT migrate.contract(?) AS job', [change]);
  await sql(knex, 'CALL migrate.wait(?)', [job]); // index build, validation, then the swap
};

exports.down = () => {
  throw new Error(
    'contract dropped orders.amount and cannot be undone: undo it with a new migration',
  );
};
