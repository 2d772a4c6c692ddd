// A plain migration: Knex runs up/down in a transaction, and migrate.apply() runs in it.
const { versionOf, apply, rollback } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.up = (knex) =>
  apply(
    knex,
    VERSION,
    `CREATE TABLE orders (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer   text NOT NULL,
        amount     numeric(12,2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
        created_at timestamptz NOT NULL DEFAULT now());
     CREATE INDEX orders_amount_idx ON orders (amount);`,
    `DROP TABLE orders;`,
  );

exports.down = (knex) => rollback(knex, VERSION);
