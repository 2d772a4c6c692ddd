// A small migration runner on the plain pg driver, with pg_migrate doing the work:
//   node migrate.js up       apply migrations/<version>.up.sql (with <version>.down.sql) in order
//   node migrate.js down     roll back the latest applied version
//   node migrate.js status   what pg_migrate has recorded
// DATABASE_URL names the database. On an error it prints the server's SQLSTATE, message, DETAIL
// and HINT and exits 1.
const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

const DIR = path.join(__dirname, 'migrations');

function read(version, direction) {
  const file = path.join(DIR, `${version}.${direction}.sql`);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
}

async function up(client) {
  const versions = fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith('.up.sql'))
    .map((f) => f.slice(0, -'.up.sql'.length))
    .sort(); // pg_migrate orders versions by byte order too
  for (const version of versions) {
    // Autocommit: no BEGIN around it. An applied version with the same SQL is a NOTICE and no-op;
    // an edited one is ERROR 55000.
    const { rows } = await client.query('SELECT migrate.apply($1, $2, $3) AS state', [
      version,
      read(version, 'up'),
      read(version, 'down'),
    ]);
    // 'applying': part of the up SQL (CREATE INDEX CONCURRENTLY, ...) runs in a background job now
    // that apply() has committed. Wait for it before the next version (pg_migrate would refuse that
    // one with 55006 meanwhile); a job that fails raises its failed statement's SQLSTATE here (23505 for a duplicate key).
    if (rows[0].state === 'applying') {
      await client.query('CALL migrate.wait_version($1)', [version]);
    }
  }
}

async function down(client) {
  const { rows } = await client.query(
    `SELECT version FROM migrate.status() WHERE state IN ('applied', 'failed')
      ORDER BY version COLLATE "C" DESC LIMIT 1`,
  );
  if (rows.length === 0) return console.log('nothing to roll back');
  const { version } = rows[0];
  const res = await client.query('SELECT migrate.rollback($1) AS state', [version]);
  if (res.rows[0].state === 'rolling_back') {
    await client.query('CALL migrate.wait_version($1)', [version]);
  }
}

async function status(client) {
  const { rows } = await client.query('SELECT version, state FROM migrate.status()');
  for (const r of rows) console.log(`${r.version}  ${r.state}`);
}

async function main() {
  const command = { up, down, status }[process.argv[2] ?? 'up'];
  if (!command) throw new Error('usage: node migrate.js up|down|status');
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  // pg_migrate reports progress in NOTICEs; the driver drops them unless someone listens
  client.on('notice', (n) => console.log(`${n.severity}: ${n.message}`));
  await client.connect();
  try {
    await command(client);
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  // err is the driver's DatabaseError: the server's fields are properties of it
  console.error(`${err.severity ?? 'ERROR'} ${err.code ?? ''}: ${err.message}`);
  if (err.detail) console.error(`DETAIL: ${err.detail}`);
  if (err.hint) console.error(`HINT: ${err.hint}`);
  process.exitCode = 1;
});
