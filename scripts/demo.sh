#!/usr/bin/env bash
# A guided tour of pg_migrate on a scratch PostgreSQL cluster: 15 (Debian's) unless PG_MAJOR says
# 16, 17 or 18 (the project-owned installation scripts/setup.sh unpacks; see lib.sh):
#   bash scripts/demo.sh
#   PG_MAJOR=18 bash scripts/demo.sh
# Run it as is on a fresh Debian
# machine: it installs what is missing (scripts/setup.sh), builds and installs the extension, starts
# a throwaway cluster as the postgres user on a free port, tells a short migration story with psql
# (an index built concurrently and a backfill of a million rows, both by background workers), and always stops the cluster and
# removes its files on exit, also when something fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/setup.sh"

say "building and installing the extension into PostgreSQL $PG_MAJOR ($PG_BIN/..; cargo pgrx package, files renamed into place)"
install_extension

# ---------------------------------------------------------------------------------------------
# A scratch cluster that exists only while this script runs.
scratch_dir demo
LOCKER_PID=
WRITER_PID=

cleanup() {
    local rc=$?
    set +e
    cd /
    if [ -n "$LOCKER_PID" ] && kill -0 "$LOCKER_PID" 2>/dev/null; then
        kill "$LOCKER_PID" 2>/dev/null; wait "$LOCKER_PID" 2>/dev/null
    fi
    if [ -n "$WRITER_PID" ] && kill -0 "$WRITER_PID" 2>/dev/null; then
        kill "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null
    fi
    stop_scratch_cluster
    if [ "$rc" != 0 ]; then echo "demo failed (exit code $rc); the scratch cluster was stopped and removed" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$WORK"
say "starting a scratch PostgreSQL $PG_MAJOR cluster (data in $WORK)"
start_scratch_cluster
echo "listening on 127.0.0.1:$PORT"

export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=shop PGAPPNAME=pg_migrate_demo
unset PGSERVICE PGPASSWORD PGOPTIONS

# psql as a reader would type it: no psqlrc, stop at the first error, echo each query.
sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 --echo-queries "$@" 2>&1; }
explain() { printf '%s\n\n' "$*"; }

say "creating the database shop and the extension (schema migrate)"
sql -d postgres -c 'CREATE DATABASE shop'
sql -c 'CREATE EXTENSION pg_migrate'

# ---------------------------------------------------------------------------------------------
# The migrations of this story. Each is a version, up SQL and down SQL, as in any migration tool.
V1=20240115100000_create_users
V1_UP='CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);'
V1_DOWN='DROP TABLE users;'

V2=20240201090000_orders_and_display_name
V2_UP='ALTER TABLE users ADD COLUMN display_name text;
CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users,
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);'
V2_DOWN='DROP TABLE orders;
ALTER TABLE users DROP COLUMN display_name;'

V3=20240301120000_add_last_login
V3_UP='ALTER TABLE users ADD COLUMN last_login_at timestamptz;'
V3_DOWN='ALTER TABLE users DROP COLUMN last_login_at;'

# A soft-delete column and a partial index for the listing of active users. The index cannot be
# built inside a transaction, so the statement runs in a background job after the caller commits;
# its down SQL drops the index concurrently, in a job too.
V4=20240320090000_soft_delete_users
V4_UP='ALTER TABLE users ADD COLUMN deleted_at timestamptz;
CREATE INDEX CONCURRENTLY users_active_created_at_idx ON users (created_at) WHERE deleted_at IS NULL;'
V4_DOWN='DROP INDEX CONCURRENTLY IF EXISTS users_active_created_at_idx;
ALTER TABLE users DROP COLUMN deleted_at;'

# start_writer UPDATE UNTIL MINUTES MESSAGE: the application, a client in the background that runs
# UPDATE (on `target`, a random user id; `n` counts the statements) one transaction at a time with
# lock_timeout = 1s, until UNTIL holds (checked every 100 statements) or MINUTES have passed. A
# statement blocked for longer fails and stops the demo. Sets WRITER_PID.
start_writer() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 <<SQL &
SET lock_timeout = '1s';
DO \$\$
DECLARE
    n int := 0;
    started timestamptz := clock_timestamp();
    target bigint;
BEGIN
    LOOP
        target := 1 + (random() * 999999)::bigint;
        $1;
        n := n + 1;
        COMMIT;
        EXIT WHEN clock_timestamp() - started > interval '$3 minutes'
               OR (n % 100 = 0 AND $2);
    END LOOP;
    RAISE NOTICE 'client: % $4', n;
END \$\$;
SQL
    WRITER_PID=$!
}

# ---------------------------------------------------------------------------------------------
say "1. first migration: create the users table"
explain "migrate.apply(version, up, down) runs the up SQL in this transaction and records the version."
sql -v up="$V1_UP" -v down="$V1_DOWN" <<SQL
SELECT migrate.apply('$V1', up => :'up', down => :'down');
SQL

say "2. load 1,000,000 users (plain SQL, outside pg_migrate) so that users is a real table"
sql <<'SQL'
INSERT INTO users (email, created_at)
SELECT format('user%s@example.com', g), now() - g * interval '1 minute'
  FROM generate_series(1, 1000000) AS g;
ANALYZE users;
SELECT count(*) AS users, pg_size_pretty(pg_total_relation_size('users')) AS size FROM users;
SQL

say "3. second migration: a nullable column and a new table, in one version"
explain "Several statements are one migration: all of them are applied, or none."
sql -v up="$V2_UP" -v down="$V2_DOWN" <<SQL
SELECT migrate.apply('$V2', up => :'up', down => :'down');
SQL

say "4. what pg_migrate knows: migrate.status()"
sql -c 'SELECT * FROM migrate.status();'

say "5. applying the same version again is a no-op"
explain "A deploy that runs every migration file again changes nothing: same version, same checksum."
sql -v up="$V1_UP" -v down="$V1_DOWN" <<SQL
SELECT migrate.apply('$V1', up => :'up', down => :'down');
SQL

say "6. an applied migration that was edited afterwards is refused"
explain "Same version, different up SQL (email became varchar(320)): an ERROR with both checksums and a HINT."
V1_EDITED=${V1_UP/email      text/email      varchar(320)}
if sql -v up="$V1_EDITED" -v down="$V1_DOWN" <<SQL
SELECT migrate.apply('$V1', up => :'up', down => :'down');
SQL
then
    echo "expected a checksum mismatch error" >&2; exit 1
fi
echo
explain "Line endings and trailing whitespace do not count: the checksum of the original text with CRLF and trailing spaces is unchanged."
sql -v up="$V1_UP" -v crlf="${V1_UP//$'\n'/$' \r\n'}  " <<'SQL'
SELECT migrate.checksum(:'up') = migrate.checksum(:'crlf') AS same_checksum;
SQL

say "7. a migration is one atomic unit: transaction control inside it is refused before anything runs"
explain "A migration file copied from another tool often wraps itself in BEGIN/COMMIT; pg_migrate already runs it in your transaction."
if sql <<'SQL'
SELECT migrate.apply('20240215000000_add_users_note',
    $up$BEGIN;
ALTER TABLE users ADD COLUMN note text;
COMMIT;$up$);
SQL
then
    echo "expected transaction control to be refused" >&2; exit 1
fi

say "8. polite locking: a migration meets a long-running reader"
explain "Another session holds ACCESS SHARE on users for 3 s (a long report). ALTER TABLE needs ACCESS EXCLUSIVE."
explain "pg_migrate tries with a short lock_timeout (200 ms here) so that queries queued behind it are not stalled for long, backs off, names the blocking session, and tries again."
"$PG_BIN/psql" -X -q -d shop -c "BEGIN; LOCK TABLE users IN ACCESS SHARE MODE; SELECT pg_sleep(3); COMMIT;" >/dev/null &
LOCKER_PID=$!
for _ in $(seq 100); do
    held=$("$PG_BIN/psql" -X -tA -c "SELECT count(*) FROM pg_locks WHERE relation = 'users'::regclass
                            AND mode = 'AccessShareLock' AND granted AND pid <> pg_backend_pid()")
    [ "$held" = 1 ] && break
    sleep 0.05
done
sql -v up="$V3_UP" -v down="$V3_DOWN" <<SQL
SET migrate.lock_timeout = '200ms';
SELECT migrate.apply('$V3', up => :'up', down => :'down');
SQL
wait "$LOCKER_PID"
LOCKER_PID=

say "9. an index built concurrently on the 1,000,000-row users table: a background job"
explain "CREATE INDEX CONCURRENTLY cannot run inside a transaction block. ADD COLUMN runs now, in this transaction; the index build (and anything after it) becomes a job that a background worker runs as a top-level statement once this transaction commits. apply returns 'applying'."
sql -v up="$V4_UP" -v down="$V4_DOWN" <<SQL
SELECT migrate.apply('$V4', up => :'up', down => :'down');
SELECT version, state FROM migrate.status() WHERE version = '$V4';
SQL
echo
explain "CALL migrate.wait_version(version) follows the version's job until it ends (migrate.wait(job) does the same by job number). It commits between polls, because a transaction that waited holding a snapshot would make CREATE INDEX CONCURRENTLY wait for it forever; so it is CALLed on its own, outside BEGIN."
sql <<SQL
CALL migrate.wait_version('$V4');
SELECT job, version, state, steps_done, steps_total, worker_alive, finished_at - started_at AS took
  FROM migrate.jobs;
SELECT version, state FROM migrate.status() WHERE version = '$V4';
SELECT indexrelid::regclass AS index, indisvalid AS valid FROM pg_index WHERE indrelid = 'users'::regclass;
SQL

say "10. a backfill of a million rows while the application keeps writing"
explain "display_name (added by the second migration) is empty. One UPDATE over the table would lock every row until it commits. migrate.backfill_start queues a job that walks users by primary key in batches of about 200 ms, each its own transaction (row locks last one batch), with a pause between batches, slowing down when sessions queue behind its locks. It resumes from its last batch after a crash, a cancel or a pause."
sql <<'SQL'
SELECT migrate.backfill_start('users', $$display_name = initcap(split_part(email, '@', 1))$$,
                              'display_name IS NULL') AS job \gset
SQL
explain "Meanwhile a client updates random users, one transaction per statement, with lock_timeout = 1s: a statement blocked longer by the backfill would fail and stop the demo."
start_writer "UPDATE users SET last_login_at = clock_timestamp() WHERE id = target" \
    "NOT EXISTS (SELECT FROM migrate.progress WHERE state IN ('queued', 'running'))" 2 \
    "single-row updates during the backfill, none failed or waited more than 1 s"
explain "CALL migrate.wait(job) prints the progress (rows, percent, rate, time left, batch size) about once a second."
sql <<'SQL'
SELECT max(job) AS job FROM migrate.progress \gset
CALL migrate.wait(:job);
SELECT job, "table", state, rows_done, percent, batches, batch_size, rows_per_second FROM migrate.progress;
SELECT migrate.backfill_verify(:job) AS rows_still_differing;
SELECT id, email, display_name FROM users ORDER BY id LIMIT 3;
SQL
wait "$WRITER_PID"
WRITER_PID=

say "11. expand/contract: users.email from text to varchar(320) while the application keeps writing"
explain "migrate.expand_column adds email_new (no rewrite), a generated sync trigger that keeps both columns in step for every write, and a backfill job. The old application keeps writing email; a new one could write email_new. contract, once the backfill is done, rebuilds the UNIQUE constraint concurrently on the new column and swaps the columns in one short transaction: the column keeps its name."
sql <<'SQL'
SELECT migrate.expand_column('users', 'email', new_type => 'varchar(320)');
SQL
explain "Meanwhile a client changes the email of random users through the old column, with lock_timeout = 1s."
start_writer "UPDATE users SET email = format('user%s+%s@example.com', target, n) WHERE id = target" \
    "NOT EXISTS (SELECT FROM migrate.changes)" 3 \
    "email changes through the old column during expand, backfill and contract, none failed"
sql <<'SQL'
SELECT max(change) AS change FROM migrate.changes \gset
CALL migrate.wait_change(:change);
SELECT change, kind, "table", "column", new_column, phase, contract_will FROM migrate.changes;
SELECT count(*) AS rows_out_of_step FROM users WHERE email_new IS DISTINCT FROM email;
SELECT migrate.contract(:change) AS job \gset
CALL migrate.wait(:job);
\d users
SQL
wait "$WRITER_PID"
WRITER_PID=

say "12. roll back the latest version"
explain "migrate.rollback() runs the recorded down SQL of the latest applied version. Its DROP INDEX CONCURRENTLY runs in a job as well: the version is 'rolling_back' until the job ends."
sql <<'SQL'
SELECT migrate.rollback();
SELECT max(job) AS job FROM migrate.jobs \gset
CALL migrate.wait(:job);
SELECT version, state, applied_at, has_down FROM migrate.status();
SQL

say "13. roll back everything after the first version"
explain "migrate.rollback_to(version) keeps that version and rolls back every newer one, newest first."
sql <<SQL
SELECT * FROM migrate.rollback_to('$V1');
SELECT version, state, applied_at, has_down FROM migrate.status();
SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position;
SQL

say "14. the audit trail: migrate.events (append-only)"
sql -c 'SELECT version, action, from_state, to_state, actor, at FROM migrate.events ORDER BY id;'

say "done: the scratch cluster is stopped and removed on exit"
