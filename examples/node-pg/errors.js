// What a pg_migrate error looks like to a pg client: three errors triggered on purpose, with the
// fields the driver hands over (err.code is the SQLSTATE; err.detail and err.hint are where
// pg_migrate says why and what to do). Run it after `node migrate.js up`. It exits 1 unless each
// error arrives with the expected SQLSTATE, a DETAIL and a HINT, and leaves nothing behind.
const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');

const CREATE_USERS = '20240101000000_create_users';
const upSql = fs.readFileSync(path.join(__dirname, 'migrations', `${CREATE_USERS}.up.sql`), 'utf8');

const cases = [
  {
    what: 'an applied migration whose SQL was edited afterwards',
    sqlstate: '55000', // object_not_in_prerequisite_state
    run: (c) =>
      c.query('SELECT migrate.apply($1, $2)', [CREATE_USERS, upSql.replace('name       text', 'name       varchar(200)')]),
  },
  {
    what: 'CALL migrate.wait_version() inside BEGIN',
    sqlstate: '25001', // active_sql_transaction: the wait commits between its polls
    run: async (c) => {
      await c.query('BEGIN');
      try {
        await c.query('CALL migrate.wait_version($1)', [CREATE_USERS]);
      } finally {
        await c.query('ROLLBACK');
      }
    },
  },
  {
    what: 'CREATE INDEX without CONCURRENTLY on an existing table',
    sqlstate: '42P17', // lint rule index-not-concurrent
    run: (c) =>
      c.query('SELECT migrate.apply($1, $2)', [
        '20240103000000_users_name_idx',
        'CREATE INDEX users_name_idx ON users (name);',
      ]),
  },
];

async function main() {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  let ok = true;
  try {
    for (const { what, sqlstate, run } of cases) {
      console.log(`\n-- ${what}`);
      try {
        await run(client);
        console.log(`FAILED: no error (expected SQLSTATE ${sqlstate})`);
        ok = false;
        continue;
      } catch (err) {
        console.log(`err.code:    ${err.code}`);
        console.log(`err.message: ${err.message}`);
        console.log(`err.detail:  ${err.detail}`);
        console.log(`err.hint:    ${err.hint}`);
        const missing = [
          err.code !== sqlstate && `SQLSTATE ${sqlstate}`,
          !err.detail && 'DETAIL',
          !err.hint && 'HINT',
        ].filter(Boolean);
        if (missing.length) {
          console.log(`FAILED: missing ${missing.join(', ')}`);
          ok = false;
        }
      }
    }
  } finally {
    await client.end();
  }
  if (!ok) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
