// 50,000 orders, so that the expand/contract migrations have a table worth backfilling.
exports.seed = (knex) =>
  knex.raw(`
    INSERT INTO orders (customer, amount, created_at)
    SELECT 'customer ' || (g % 1000), (g % 5000) * 0.25, now() - g * interval '1 minute'
      FROM generate_series(1, 50000) AS g`);
