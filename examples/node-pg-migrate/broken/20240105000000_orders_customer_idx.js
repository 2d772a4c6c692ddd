// Refused by pg_migrate: CREATE INDEX without CONCURRENTLY blocks every write to orders while the
// index builds (lint rule index-not-concurrent, SQLSTATE 42P17). test.sh runs it from a scratch
// copy of migrations/ to show what node-pg-migrate prints.
const { versionOf, apply, rollback } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.up = (pgm) =>
  apply(pgm, VERSION, `CREATE INDEX orders_customer_idx ON orders (customer);`,
        `DROP INDEX orders_customer_idx;`);

exports.down = (pgm) => rollback(pgm, VERSION);
