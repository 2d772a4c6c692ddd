// Contract, shipped with the application release that no longer uses amount: wait for the
// backfill, drop amount and give amount_cents its default, CHECK and index (rebuilt concurrently
// by a job), and wait for that job. wait_version() of the expand's version covers both: it waits
// for the jobs of the changes that version made. The change is found by table and column
// (change ids differ between databases).
const { waitVersion } = require('../pg_migrate');

const EXPAND = '20240103000000_orders_amount_cents_expand';

exports.up = (pgm) => {
  pgm.noTransaction();
  waitVersion(pgm, EXPAND); // the backfill
  pgm.sql(`SELECT migrate.contract(change) FROM migrate.changes
            WHERE "table"::regclass = 'orders'::regclass AND "column" = 'amount'`);
  waitVersion(pgm, EXPAND); // the contract's job
};

// A contract dropped orders.amount and cannot be undone: node-pg-migrate refuses to run down.
exports.down = false;
