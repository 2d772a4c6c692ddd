#!/usr/bin/env bash
# Drizzle migrations that call pg_migrate: the migration drizzle-kit generated, a custom one that
# expands orders.amount into amount_cents and a later one that contracts it, applied deploy by
# deploy with drizzle-orm's migrator (migrate.mjs) against a throwaway server; the waits run in
# between, with psql, as a deploy pipeline would run them.
source "$(dirname "$0")/../lib.sh"
DIR=$EXAMPLES/drizzle
npm_install "$DIR"
start_example_db drizzle
cd "$DIR"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"; stop_scratch_cluster' EXIT

# folder_at N: drizzle/ as the Nth deploy shipped it (its first N migrations): the same SQL
# files, the journal cut after N entries. The migrator applies what the journal lists.
folder_at() {
    local dir=$SCRATCH/deploy$1
    mkdir -p "$dir/meta"
    cp drizzle/*.sql "$dir/"
    node -e '
        const fs = require("fs");
        const journal = JSON.parse(fs.readFileSync("drizzle/meta/_journal.json", "utf8"));
        journal.entries = journal.entries.slice(0, Number(process.argv[1]));
        fs.writeFileSync(process.argv[2] + "/meta/_journal.json", JSON.stringify(journal, null, 2));
    ' "$1" "$dir"
    echo "$dir"
}

say "drizzle-kit generate: the committed migrations are what src/schema.ts generates"
cp -r drizzle "$SCRATCH/generated"
# (drizzle-kit reads `out` relative to the project: "./" + out)
out=$(DRIZZLE_OUT=$(realpath --relative-to=. "$SCRATCH/generated") node_modules/.bin/drizzle-kit generate 2>&1)
printf '%s\n' "$out"
[[ $out == *"No schema changes, nothing to migrate"* ]] || { echo "FAILED: drizzle-kit generated a migration" >&2; exit 1; }
diff -r drizzle "$SCRATCH/generated"
echo "ok: drizzle-kit generate made no new migration"

say "deploy 1: 0000_create_orders (generated); the application writes 50,000 orders"
node migrate.mjs "$(folder_at 1)"
q "INSERT INTO orders (customer, amount, created_at)
   SELECT 'customer ' || (g % 1000), (g % 5000) * 0.25, now() - g * interval '1 minute'
     FROM generate_series(1, 50000) AS g"
expect "SELECT count(*) FROM orders" 50000

say "deploy 2: 0001_orders_amount_cents_expand (custom): amount_cents, a sync trigger, a backfill"
node migrate.mjs "$(folder_at 2)"
expect "SELECT version, state FROM migrate.status()" "0001_orders_amount_cents_expand|applied"
expect "SELECT \"column\", new_column FROM migrate.changes" "amount|amount_cents"
CHANGE=$(q "SELECT change FROM migrate.changes WHERE \"table\"::regclass = 'orders'::regclass AND \"column\" = 'amount'")
# The application of deploy 1 is still running: it knows only amount. Its writes reach amount_cents.
expect "INSERT INTO orders (customer, amount) VALUES ('old app', 12.34) RETURNING amount_cents" 1234
expect "UPDATE orders SET amount = 5.00 WHERE id = 7 RETURNING amount_cents" 500
# The application of deploy 2 may already write amount_cents; the old one still reads amount.
expect "INSERT INTO orders (customer, amount_cents) VALUES ('new app', 999) RETURNING amount" 9.99
# Between the deploys: wait for the backfill (CALL, outside a transaction, so not in a migration).
q "CALL migrate.wait_change($CHANGE)"
expect "SELECT phase FROM migrate.changes WHERE change = $CHANGE" "ready to contract"
expect "SELECT count(*) FROM orders WHERE amount_cents IS DISTINCT FROM round(amount * 100)" 0

say "deploy 3: 0002_orders_amount_cents_contract: drop amount once the job has rebuilt index and CHECK"
node migrate.mjs
q "CALL migrate.wait_change($CHANGE)"   # the contract job
expect "SELECT count(*) FROM migrate.changes" 0
expect "SELECT count(*) FROM drizzle.__drizzle_migrations" 3
# (the default moves as it was written for amount, numeric '0': see docs/expand.md, contract)
expect "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_name = 'orders' AND column_name LIKE 'amount%'" "amount_cents|bigint|NO|'0'::numeric"
expect "SELECT pg_get_indexdef('orders_amount_idx'::regclass)" \
    "CREATE INDEX orders_amount_idx ON public.orders USING btree (amount_cents)"
expect "SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'c'" orders_amount_check
expect "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal" 0
expect "SELECT amount_cents FROM orders WHERE customer IN ('old app', 'new app') OR id = 7 ORDER BY id" "500
1234
999"
expect "SELECT (SELECT sum(amount_cents) FROM orders WHERE customer LIKE 'customer %' AND id <> 7)
             = (SELECT sum((g % 5000) * 25) FROM generate_series(1, 50000) AS g WHERE g <> 7)" t

say "a fresh database gets expand and contract in one run: the table is empty, so the contract goes on"
psql -qX -d postgres -v ON_ERROR_STOP=1 -c 'CREATE DATABASE fresh'
PGDATABASE=fresh q 'CREATE EXTENSION pg_migrate'
FRESH_URL="postgres://postgres@127.0.0.1:$PGPORT/fresh"
out=$(DATABASE_URL=$FRESH_URL node migrate.mjs 2>&1) || { printf 'FAILED: the fresh run failed:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out"
for want in ' had no row to fill; it is done' 'pg_migrate: contracting change '; do
    [[ $out == *"$want"* ]] || { printf 'FAILED: migrate.mjs did not print: %s\n' "$want" >&2; exit 1; }
    echo "ok: printed: $want"
done
FRESH_CHANGE=$(PGDATABASE=fresh q "SELECT change FROM migrate.all_changes")
PGDATABASE=fresh q "CALL migrate.wait_change($FRESH_CHANGE)"
PGDATABASE=fresh expect "SELECT phase FROM migrate.all_changes WHERE change = $FRESH_CHANGE" contracted
PGDATABASE=fresh expect "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns
                          WHERE table_name = 'orders'" "id,customer,created_at,amount_cents"
