import { sql } from 'drizzle-orm';
import { bigint, check, index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const orders = pgTable(
  'orders',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    customer: text('customer').notNull(),
    // was amount numeric(12, 2) in dollars: see drizzle/0001 (expand) and drizzle/0002 (contract)
    amountCents: bigint('amount_cents', { mode: 'number' }).notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('orders_amount_idx').on(t.amountCents),
    check('orders_amount_check', sql`${t.amountCents} >= 0`),
  ],
);
