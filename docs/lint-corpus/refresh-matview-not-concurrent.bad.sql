-- lint corpus: breaks refresh-matview-not-concurrent
REFRESH MATERIALIZED VIEW order_totals;
