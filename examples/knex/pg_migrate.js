// The few pg_migrate calls the migrations make. Each function takes the `knex` object Knex
// passes to exports.up/down: a transaction, or the plain pool for a migration with
// exports.config = { transaction: false }.
const path = require('node:path');

// A migration's pg_migrate version is its file name without ".js"
// (migrations/20240101000000_create_orders.js -> 20240101000000_create_orders).
const versionOf = (file) => path.basename(file, path.extname(file));

// Runs one statement and returns its rows. A server error is rethrown with its SQLSTATE, DETAIL
// and HINT: pg_migrate says in them what to do, and the Knex CLI prints only the message.
async function sql(knex, text, bindings = []) {
  try {
    return (await knex.raw(text, bindings)).rows;
  } catch (err) {
    throw explained(err);
  }
}

function explained(err) {
  if (!err.code || !err.severity) return err; // not an error from the server
  // Knex wrote "<statement> - <message>"; keep the message.
  const message = err.message.slice(err.message.indexOf(' - ') + 3);
  const lines = [`${err.severity} ${err.code}: ${message}`];
  if (err.detail) lines.push(`DETAIL: ${err.detail}`);
  if (err.hint) lines.push(`HINT: ${err.hint}`);
  const e = new Error(lines.join('\n'));
  e.stack = e.message; // the JavaScript stack would only show Knex's internals
  Object.assign(e, { code: err.code, detail: err.detail, hint: err.hint });
  return e;
}

// migrate.apply(): runs `up` in the caller's transaction and records the version; returns
// 'applied', or 'applying' when part of `up` runs in a background job after the commit.
// Without `down`, pg_migrate derives it for expand/contract calls (migrate.abort(change)).
async function apply(knex, version, up, down = null) {
  const [{ state }] = await sql(knex, 'SELECT migrate.apply(?, ?, ?) AS state', [version, up, down]);
  return state;
}

// migrate.rollback(): runs the recorded down SQL; 'rolled_back', or 'rolling_back' when it
// continues in a background job.
async function rollback(knex, version) {
  const [{ state }] = await sql(knex, 'SELECT migrate.rollback(?) AS state', [version]);
  return state;
}

// The open expand/contract change on a column: a later migration finds the change an earlier
// one made by table and column (change ids differ from one database to the next).
async function openChange(knex, table, column) {
  const rows = await sql(
    knex,
    'SELECT change FROM migrate.changes WHERE "table"::regclass = ?::regclass AND "column" = ?',
    [table, column],
  );
  if (rows.length !== 1) throw new Error(`no open pg_migrate change on ${table}.${column}`);
  return rows[0].change;
}

module.exports = { versionOf, sql, apply, rollback, openChange };
