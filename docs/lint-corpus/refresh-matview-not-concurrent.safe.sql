-- lint corpus: safe twin of refresh-matview-not-concurrent
REFRESH MATERIALIZED VIEW CONCURRENTLY order_totals;
