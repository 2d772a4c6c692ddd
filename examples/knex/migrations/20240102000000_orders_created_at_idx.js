// CREATE INDEX CONCURRENTLY cannot run in a transaction: migrate.apply() returns 'applying' and a
// background worker builds the index after the commit. The migration waits for it (so that the
// next migration finds the index, and pg_migrate takes no other version while this one is in
// flight), and CALL migrate.wait_version() must run outside a transaction: hence
// transaction: false. Knex then runs each statement on its own, in autocommit.
const { versionOf, sql, apply, rollback } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.config = { transaction: false };

exports.up = async (knex) => {
  await apply(
    knex,
    VERSION,
    `CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);`,
    `DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;`,
  );
  await sql(knex, 'CALL migrate.wait_version(?)', [VERSION]);
};

exports.down = async (knex) => {
  await rollback(knex, VERSION); // 'rolling_back': the index is dropped concurrently by a worker
  await sql(knex, 'CALL migrate.wait_version(?)', [VERSION]);
};
