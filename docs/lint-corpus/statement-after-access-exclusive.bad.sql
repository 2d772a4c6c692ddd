-- lint corpus: breaks statement-after-access-exclusive
ALTER TABLE users ADD COLUMN plan text;
ALTER TABLE orders ADD COLUMN coupon text;
