import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  // test.sh points DRIZZLE_OUT at a copy of this folder as it was at an earlier deploy
  out: process.env.DRIZZLE_OUT ?? './drizzle',
  dbCredentials: { url: process.env.DATABASE_URL! },
});
