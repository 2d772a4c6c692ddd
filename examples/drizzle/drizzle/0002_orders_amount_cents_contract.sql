-- Contract (deploy N+1). `drizzle-kit generate` wrote this file (and meta/0002_snapshot.json)
-- from the new src/schema.ts as
--   ALTER TABLE "orders" RENAME COLUMN "amount" TO "amount_cents";
--   ALTER TABLE "orders" DROP CONSTRAINT "orders_amount_check";
--   DROP INDEX "orders_amount_idx";
--   CREATE INDEX "orders_amount_idx" ON "orders" USING btree ("amount_cents");
--   ALTER TABLE "orders" ADD CONSTRAINT "orders_amount_check" CHECK ("orders"."amount_cents" >= 0);
-- (a rename under the running application, and an index build that blocks every write); it was
-- replaced by hand with migrate.contract(). Contract refuses (55000) until the backfill of 0001
-- is done; it then queues a job, run after the commit, that builds the index and the CHECK on
-- amount_cents concurrently and swaps them in, dropping amount and the sync trigger, in one
-- short transaction. The subquery finds the change 0001 made (ids differ between databases);
-- without one it is NULL and contract fails (22004) rather than doing nothing.
SELECT migrate.contract((SELECT change FROM migrate.changes
                          WHERE "table"::regclass = 'orders'::regclass AND "column" = 'amount'));
