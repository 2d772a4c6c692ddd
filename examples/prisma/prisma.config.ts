import { defineConfig, env } from 'prisma/config';

export default defineConfig({
  // initShadowDb needs it; no external tables are declared
  experimental: { externalTables: true },
  schema: 'prisma/schema.prisma',
  migrations: {
    path: 'prisma/migrations',
    // `migrate dev` replays the migrations into a fresh shadow database: they call pg_migrate
    initShadowDb: 'CREATE EXTENSION pg_migrate;',
  },
  datasource: { url: env('DATABASE_URL') },
});
