// A plain version: migrate.apply() runs in node-pg-migrate's transaction.
const { versionOf, apply, rollback } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.up = (pgm) =>
  apply(
    pgm,
    VERSION,
    `CREATE TABLE orders (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer   text NOT NULL,
        amount     numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
        created_at timestamptz NOT NULL DEFAULT now());
     CREATE INDEX orders_amount_idx ON orders (amount);`,
    `DROP TABLE orders;`,
  );

exports.down = (pgm) => rollback(pgm, VERSION);
