// CREATE INDEX CONCURRENTLY runs in a background job once migrate.apply() has committed.
// pgm.noTransaction() runs this migration's statements in autocommit (node-pg-migrate commits
// the batch's transaction before it and begins a new one after it), so CALL
// migrate.wait_version() can commit between its polls. The rollback (DROP INDEX CONCURRENTLY)
// is a job too, waited for the same way before node-pg-migrate rolls back the next migration.
const { versionOf, apply, rollback, waitVersion } = require('../pg_migrate');

const VERSION = versionOf(__filename);

exports.up = (pgm) => {
  pgm.noTransaction();
  apply(
    pgm,
    VERSION,
    `CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);`,
    `DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;`,
  );
  waitVersion(pgm, VERSION);
};

exports.down = (pgm) => {
  pgm.noTransaction();
  rollback(pgm, VERSION);
  waitVersion(pgm, VERSION);
};
