// Applies the pending migrations of drizzle/ (or of the folder given) with drizzle-orm's
// migrator, which is what `drizzle-kit migrate` runs: every pending migration in ONE transaction.
// Unlike drizzle-kit 0.31.10 and 0.31.11, whose `migrate` exits 1 without printing the error
// (drizzle-orm issues #5521, #5816), it prints the server's error with its SQLSTATE, DETAIL and
// HINT, where pg_migrate says what to do, and pg_migrate's NOTICEs.
//   node migrate.mjs [folder]      (DATABASE_URL names the database)
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';

const folder = process.argv[2] ?? './drizzle';
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
client.on('notice', (n) => {
  if (n.message.startsWith('pg_migrate')) console.log(`${n.severity}: ${n.message}`);
});
await client.connect();
try {
  await migrate(drizzle(client), { migrationsFolder: folder });
  console.log(`${folder}: migrations applied`);
} catch (err) {
  const e = err.cause ?? err; // drizzle-orm wraps the driver's error in a DrizzleQueryError
  console.error(`${e.severity ?? 'ERROR'} ${e.code ?? ''}: ${e.message}`);
  if (e.detail) console.error(`DETAIL: ${e.detail}`);
  if (e.hint) console.error(`HINT: ${e.hint}`);
  if (err.query) console.error(`STATEMENT: ${err.query.replace(/^\s*--.*\n/gm, '').trim()}`);
  console.error(`${folder}: nothing was applied (drizzle runs the pending migrations in one transaction)`);
  process.exitCode = 1;
} finally {
  await client.end();
}
