#!/usr/bin/env bash
# Side experiment for bench/README.md: why the seeds' batch loop (benchmark method 2) keeps up on
# the 10M-row table. Its subquery, SELECT id FROM t WHERE b IS NULL LIMIT 1000, is a sequential
# scan that stops after 1000 matching rows. On a table larger than a quarter of shared_buffers,
# PostgreSQL's synchronized sequential scans start each scan near where the previous one stopped,
# so a batch does not rescan the rows already updated. This runs the loop for RUN_SECONDS (default 60)
# on a fresh 10M-row table with synchronize_seqscans on, then off, and prints how far it got.
# Same scratch-cluster settings as bench/backfill.sh.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

ROWS=${ROWS:-10000000}
SECONDS_PER_RUN=${RUN_SECONDS:-60}

scratch_dir seeds
cleanup() {
    local rc=$?
    set +e
    cd /
    stop_scratch_cluster
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_scratch_cluster
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
unset PGSERVICE PGPASSWORD PGOPTIONS
q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -tA "$@"; }
q <<'SQL'
ALTER SYSTEM SET shared_buffers = '1GB';
ALTER SYSTEM SET max_wal_size = '20GB';
ALTER SYSTEM SET min_wal_size = '8GB';
ALTER SYSTEM SET checkpoint_timeout = '1h';
SQL
as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w -t 60 restart >/dev/null

q <"$REPO/bench/seeds_loop.sql"

for sync in on off; do
    q <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS t;
CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b int);
INSERT INTO t SELECT g, (g % 100000)::int, NULL FROM generate_series(1, $ROWS) AS g;
VACUUM ANALYZE t;
CHECKPOINT;
SQL
    if [ "$sync" = on ]; then
        echo "table t: $(q -c "SELECT pg_size_pretty(pg_relation_size('t'))"), shared_buffers $(q -c 'SHOW shared_buffers'); plan of a batch:"
        q -c 'EXPLAIN UPDATE t SET b = a WHERE id IN (SELECT id FROM t WHERE b IS NULL LIMIT 1000)' | sed 's/^/    /'
    fi
    start=$(date +%s.%N)
    IFS='|' read -r batches updated capped < <(PGOPTIONS="-c synchronize_seqscans=$sync" q -c "CALL seeds_loop($SECONDS_PER_RUN, NULL, NULL, NULL)")
    took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "synchronize_seqscans=$sync: $updated of $ROWS rows in $took s ($batches batches$([ "$capped" = t ] && echo ", stopped at the time limit")): $(awk -v n="$updated" -v s="$took" 'BEGIN { printf "%.0f", n / s }') rows/s"
done
