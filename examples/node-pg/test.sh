#!/usr/bin/env bash
# pg_migrate from the plain pg driver: migrate.js (a small runner: up, down, status) and
# errors.js (what a client receives when pg_migrate refuses), against a throwaway server.
source "$(dirname "$0")/../lib.sh"
DIR=$EXAMPLES/node-pg
npm_install "$DIR"
start_example_db node-pg
cd "$DIR"
V1=20240101000000_create_users
V2=20240102000000_users_email_key

say "node-pg: up applies both versions; the index is built by a worker and waited for"
node migrate.js up
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied"
expect "SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = 'users_email_key'::regclass" "t|t"
out=$(node migrate.js up 2>&1)
[[ $out == *"\"$V2\" is already applied; nothing to do"* ]] || { echo "FAILED: second up: $out" >&2; exit 1; }
echo "ok: a second up does nothing"

say "node-pg: down rolls the index back (in a job: DROP INDEX CONCURRENTLY)"
node migrate.js down
expect "SELECT state FROM migrate.status() WHERE version = '$V2'" rolled_back
expect "SELECT to_regclass('users_email_key') IS NULL" t

say "node-pg: up again, with duplicate emails: the index job fails and up exits 1"
q "INSERT INTO users (email) VALUES ('ann@example.com'), ('Ann@example.com'), ('bob@example.com')"
out=$(node migrate.js up 2>&1) && { printf 'FAILED: up succeeded:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out"
for want in 'ERROR 23505: pg_migrate: job ' \
            'could not create unique index "users_email_key" (Key (lower(email))=(ann@example.com) is duplicated.' \
            'HINT: See SELECT * FROM migrate.jobs WHERE job = '; do
    [[ $out == *"$want"* ]] || { printf 'FAILED: migrate.js did not print: %s\n%s\n' "$want" "$out" >&2; exit 1; }
    echo "ok: printed: $want"
done
expect "SELECT state FROM migrate.status() WHERE version = '$V2'" failed
expect "SELECT count(*) FROM pg_class WHERE relname = 'users_email_key'" 0   # no INVALID index left

say "node-pg: fix the data, up again: the job resumes"
q "DELETE FROM users WHERE email = 'Ann@example.com'"
node migrate.js up
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_key'::regclass" t

say "node-pg: errors reach the client with SQLSTATE, message, DETAIL and HINT"
node errors.js | tee "$WORK/errors.out"
for want in 'err.code:    55000' 'err.message: version "20240101000000_create_users" is already applied with a different checksum' \
            'err.hint:    An applied migration must not be edited' \
            'err.code:    25001' 'err.hint:    COMMIT first' \
            'err.code:    42P17' 'err.message: up SQL of version "20240103000000_users_name_idx" breaks lint rule index-not-concurrent' \
            'err.hint:    Build it with SELECT migrate.create_index(...)'; do
    grep -qF -- "$want" "$WORK/errors.out" || { echo "FAILED: errors.js did not print: $want" >&2; exit 1; }
    echo "ok: printed: $want"
done
# the refused calls changed nothing
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied"
expect "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'name'" text
expect "SELECT to_regclass('users_name_idx') IS NULL" t
