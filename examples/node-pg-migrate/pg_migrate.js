// The pg_migrate calls of the migrations. pgm.sql() queues one statement; node-pg-migrate runs
// the queue in order, one query each, on its one connection. Its {name} placeholders quote
// identifiers, not values, so the SQL text is quoted here as a string literal.
const path = require('node:path');
const { escapeLiteral } = require('pg');

// migrations/20240101000000_create_orders.js -> 20240101000000_create_orders: the name
// node-pg-migrate records in pgmigrations, and pg_migrate's version.
exports.versionOf = (file) => path.basename(file, path.extname(file));

const lit = (s) => (s == null ? 'NULL' : escapeLiteral(s));

exports.apply = (pgm, version, up, down) =>
  pgm.sql(`SELECT migrate.apply(${lit(version)}, ${lit(up)}, ${lit(down)})`);

exports.rollback = (pgm, version) => pgm.sql(`SELECT migrate.rollback(${lit(version)})`);

// Only in a migration that called pgm.noTransaction(): the wait commits between its polls.
exports.waitVersion = (pgm, version) => pgm.sql(`CALL migrate.wait_version(${lit(version)})`);
