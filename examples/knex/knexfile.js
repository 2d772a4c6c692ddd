// Knex configuration: the database comes from DATABASE_URL (test.sh points it at a throwaway
// server with pg_migrate installed).
module.exports = {
  client: 'pg',
  connection: process.env.DATABASE_URL,
  pool: {
    min: 0,
    max: 4,
    // pg_migrate reports progress with NOTICEs (a job queued, a backfill's progress, a lock
    // retry); the pg driver drops them unless someone listens.
    afterCreate(conn, done) {
      conn.on('notice', (n) => console.log(`${n.severity}: ${n.message}`));
      done(null, conn);
    },
  },
  // On an error Knex puts the failed statement in front of the server's message. With bindings
  // left out that is "SELECT migrate.apply($1, $2, $3) - ..." instead of the whole migration.
  compileSqlOnError: false,
  migrations: { directory: './migrations' },
  seeds: { directory: './seeds' },
};
