-- The schema the lint corpus runs against (tables the migrations alter already exist and have
-- rows in production). Loaded before linting by the #[pg_test]s and scripts/lint-compare.sh.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       varchar(100),
    name        varchar(50),
    status      text,
    phone       text,
    balance     numeric(10,2),
    legacy_flag boolean,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_phone_idx ON users (phone);
-- A validated check that proves email is never NULL (SET NOT NULL can use it).
ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric, note text);
CREATE TABLE audit_log (id bigint, at timestamptz, payload jsonb);
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;
CREATE UNIQUE INDEX order_totals_user_idx ON order_totals (user_id);
CREATE SCHEMA reporting;
-- A table that logical replication publishes, and its unpublished staging twin.
CREATE TABLE shipments (id bigint PRIMARY KEY, carrier text);
CREATE PUBLICATION shipments_pub FOR TABLE shipments;
CREATE TABLE shipments_staging (id bigint PRIMARY KEY, carrier text);
