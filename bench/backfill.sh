#!/usr/bin/env bash
# Benchmark of pg_migrate backfills on a scratch PostgreSQL 15 cluster (see bench/README.md), for
# issue 14 ("Backfills that production does not notice"). It measures the release build by
# default: the install step builds this checkout with PROFILE=release (scripts/lib.sh) unless
# SKIP_INSTALL=1.
#
# Part 1, throughput. For each table size N in ROWS, a narrow table
#     CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b int)
# of N rows (b NULL), VACUUM ANALYZEd, is set to b = a in three ways, each time on a table built
# afresh and after a CHECKPOINT:
#   (1) one plain UPDATE t SET b = a;
#   (2) the seeds' batch loop, UPDATE t SET b = a WHERE id IN (SELECT id FROM t WHERE b IS NULL
#       LIMIT 1000) until it updates 0 rows, driven by a PL/pgSQL procedure that COMMITs after
#       every batch (no client round trips);
#   (3) SELECT migrate.backfill_start('t', 'b = a', NULL, '{"sleep_ms": 0}') then
#       CALL migrate.wait(job), timed from before backfill_start to the return of migrate.wait.
# REPEAT rounds, the order of the methods rotated each round; the median is reported. Target:
# (3) >= 0.85x the rows/s of (1). The median rate of (3) at N = LAT_ROWS (else the largest N) is
# the "unthrottled rate" that Part 2 compares the backfill under load with.
#
# Part 2, latency under load. A fresh LAT_ROWS-row table with a counter column,
#     CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b int, n int NOT NULL DEFAULT 0)
# and the issue's writers: pgbench -c LAT_CLIENTS -j LAT_THREADS, each transaction
#     \set id random(1, LAT_ROWS)
#     UPDATE t SET a = a + 1 WHERE id = :id;
# First a closed-loop baseline run (BASE_SECONDS) gives the machine's capacity in TPS. Then for
# each load in LOADS ("closed" = closed loop, a number P = pgbench -R at P% of that capacity),
# ROUNDS rounds of two runs on fresh tables: one WITHOUT a backfill and one WITH
#     SELECT migrate.backfill_start('t', 'b = a, n = n + 1')      -- default settings, no options
# started LAT_DELAY s after pgbench; the order alternates between rounds (with/without, then
# without/with, ...). The window is the job's created_at .. finished_at; in the run without a
# backfill, the same offsets from the start of pgbench. Per run: p50/p99/max latency of the
# writers' transactions that ended in the window (pgbench -l logs; with -R latency counts from
# the scheduled start), TPS, failed transactions, lock waits (pg_stat_activity every 0.1 s:
# share of active pgbench sessions waiting on a lock), the backfill's rows/s over its window, and
# the counter check (n = 1 on every row, none left at 0 or updated twice, no b NULL).
# Each pgbench run lasts LAT_SECONDS; "auto" makes it long enough to contain the backfill: the
# first run with a backfill of a load lasts LAT_DELAY + 10x the backfill's unthrottled time +
# LAT_TAIL (at most LAT_MAX_SECONDS), later runs of that load LAT_DELAY + 1.3x the longest
# backfill seen + LAT_TAIL. A backfill that outlasts its pgbench run is reported as "clipped"
# (the window stops at pgbench's end) and waited for before the counter check.
# Then, unless TRADEOFF=0, the trade-off table at the 25% load: one run without a backfill, then
# for each batch_time_ms:sleep_ms pair of TRADEOFF_GRID one run with
# migrate.backfill_start('t', 'b = a, n = n + 1', NULL, '{"batch_time_ms": B, "sleep_ms": S}'),
# each TRADEOFF_SECONDS long: backfill rows/s under load and p99 ratio against the run without.
# A backfill that outlasts its run there is cancelled at pgbench's end; its rate is measured over
# the part that ran under load.
# Finally a PNG (unless PLOT=0): the writers' p99 per second over time, round 1 of each load,
# without and with the backfill, the window shaded; made with matplotlib from a venv the script
# creates in PLOT_VENV (pip install matplotlib from PyPI) by bench/plot_backfill.py.
#
# Environment: ROWS (default "1000000 3000000"), REPEAT (3), SEEDS_MAX_SECONDS (300: the seeds'
# loop stops then and reports a partial rate), LAT_ROWS (3000000), LOADS ("closed 25 50"),
# ROUNDS (3), BASE_SECONDS (20), LAT_SECONDS (auto, or a number of seconds), LAT_DELAY (2),
# LAT_TAIL (2), LAT_MAX_SECONDS (600), LAT_CLIENTS (4), LAT_THREADS (2), TRADEOFF (1; 0 skips it),
# TRADEOFF_GRID ("10:0 10:50 25:0 25:50 50:0 50:50 100:0 100:50 200:0 200:50", batch_time_ms:sleep_ms),
# TRADEOFF_SECONDS (auto: the 25% load's run length), PLOT (1), PLOT_VENV
# (~/.cache/pg_migrate-bench/venv), AUTOVACUUM (on|off, default on), RESULTS_DIR (bench/results),
# PROFILE (release), SKIP_INSTALL=1 (measure the library already installed instead of running
# scripts/setup.sh and installing this checkout's build first), PG_BIN (scripts/lib.sh).
# QUICK=1: everything small and short, to check the script (200k rows, 1 round, a 2-point grid).
# The cluster, its data and logs live in a temporary directory removed on exit, also on failure.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    ROWS=${ROWS:-200000}
    REPEAT=${REPEAT:-1}
    LAT_ROWS=${LAT_ROWS:-200000}
    ROUNDS=${ROUNDS:-1}
    BASE_SECONDS=${BASE_SECONDS:-5}
    TRADEOFF_GRID=${TRADEOFF_GRID:-"10:0 200:50"}
else
    ROWS=${ROWS:-"1000000 3000000"}
    REPEAT=${REPEAT:-3}
    LAT_ROWS=${LAT_ROWS:-3000000}
    ROUNDS=${ROUNDS:-3}
    BASE_SECONDS=${BASE_SECONDS:-20}
    TRADEOFF_GRID=${TRADEOFF_GRID:-"10:0 10:50 25:0 25:50 50:0 50:50 100:0 100:50 200:0 200:50"}
fi
LOADS=${LOADS:-"closed 25 50"}
LAT_SECONDS=${LAT_SECONDS:-auto}
LAT_DELAY=${LAT_DELAY:-2}
LAT_TAIL=${LAT_TAIL:-2}
LAT_MAX_SECONDS=${LAT_MAX_SECONDS:-600}
LAT_CLIENTS=${LAT_CLIENTS:-4}
LAT_THREADS=${LAT_THREADS:-2}
TRADEOFF=${TRADEOFF:-1}
TRADEOFF_SECONDS=${TRADEOFF_SECONDS:-auto}
PLOT=${PLOT:-1}
PLOT_VENV=${PLOT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pg_migrate-bench/venv}
SEEDS_MAX_SECONDS=${SEEDS_MAX_SECONDS:-300}
AUTOVACUUM=${AUTOVACUUM:-on}
export PROFILE=${PROFILE:-release}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$RESULTS_DIR/backfill-$STAMP.txt
PLOT_PNG=$RESULTS_DIR/backfill-$STAMP.png
PLOT_CSV=$RESULTS_DIR/backfill-$STAMP-p99.csv
START_EPOCH=$(date +%s)

[ -x "$PG_BIN/pgbench" ] || { echo "no pgbench in PG_BIN=$PG_BIN" >&2; exit 1; }
source "$REPO/bench/lib.sh"
bench_install

# The plot's matplotlib, in a venv of its own (made once, then reused). Not fatal: without it the
# benchmark still runs and says why there is no plot.
PLOT_STATUS=off
if [ "$PLOT" = 1 ]; then
    if "$PLOT_VENV/bin/python" -c 'import matplotlib' 2>/dev/null ||
        { say "creating $PLOT_VENV with matplotlib (for the plot)"
          mkdir -p "$(dirname "$PLOT_VENV")" && python3 -m venv "$PLOT_VENV" &&
          "$PLOT_VENV/bin/pip" install -q matplotlib && "$PLOT_VENV/bin/python" -c 'import matplotlib'; }; then
        PLOT_STATUS=ok
    else
        PLOT_STATUS="no matplotlib in $PLOT_VENV (python3 -m venv or pip install matplotlib failed)"
    fi
fi

# ---------------------------------------------------------------------------------------------
bench_start bench
log_file() { sed 's/^/    /' "$1" | tee -a "$RESULTS"; }
bench_cluster "ALTER SYSTEM SET log_autovacuum_min_duration = '0';"

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a" && a != "") printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | grep -v '^n/a$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { printf '%s\n' "$@" | grep -v '^n/a$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s-%s", lo, hi; else print "n/a" }'; }
wal_lsn() { q -c 'SELECT pg_current_wal_lsn()'; }
wal_mb() { q -c "SELECT round(pg_wal_lsn_diff('$2', '$1') / 1048576.0)"; }

log_machine
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    log "build:       PROFILE=$PROFILE (this checkout, built and installed by this run)"
else
    log "build:       unknown profile (SKIP_INSTALL=1: the library already installed; it has $(readelf -S "$WORK/lib/pg_migrate.so" 2>/dev/null | grep -c '\.debug_info') .debug_info section(s), a debug build has one)"
fi
log "settings:    $(q -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
                            WHERE name IN ('shared_buffers', 'max_wal_size', 'min_wal_size', 'checkpoint_timeout', 'fsync',
                                           'synchronous_commit', 'full_page_writes', 'wal_level', 'autovacuum', 'jit', 'work_mem',
                                           'maintenance_work_mem', 'max_worker_processes', 'synchronize_seqscans')")"
log "pg_migrate:  $(q <<'SQL'
LOAD 'pg_migrate';
SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name LIKE 'migrate.%';
SQL
)"
log "run:         ROWS='$ROWS' REPEAT=$REPEAT SEEDS_MAX_SECONDS=$SEEDS_MAX_SECONDS LAT_ROWS=$LAT_ROWS LOADS='$LOADS' ROUNDS=$ROUNDS BASE_SECONDS=$BASE_SECONDS LAT_SECONDS=$LAT_SECONDS LAT_DELAY=$LAT_DELAY LAT_TAIL=$LAT_TAIL LAT_MAX_SECONDS=$LAT_MAX_SECONDS LAT_CLIENTS=$LAT_CLIENTS LAT_THREADS=$LAT_THREADS TRADEOFF=$TRADEOFF TRADEOFF_GRID='$TRADEOFF_GRID' TRADEOFF_SECONDS=$TRADEOFF_SECONDS PLOT=$PLOT"
log "plot:        $PLOT_STATUS"

# A fresh table t of $1 rows, b NULL, VACUUM ANALYZEd, then a CHECKPOINT: every run starts here.
# With a second argument "counter", t also has the column n (0 on every row).
fresh_table() {
    local cols="id bigint PRIMARY KEY, a int NOT NULL, b int"
    [ "${2:-}" = counter ] && cols="$cols, n int NOT NULL DEFAULT 0"
    q <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS t;
CREATE TABLE t ($cols);
INSERT INTO t (id, a, b) SELECT g, (g % 100000)::int, NULL FROM generate_series(1, $1) AS g;
VACUUM ANALYZE t;
CHECKPOINT;
SQL
}
# Rows where b is not a: 0 after every method.
left_over() { q -c 'SELECT count(*) FROM t WHERE b IS DISTINCT FROM a'; }

# The seeds' loop, server side: a transaction per batch (COMMIT after each UPDATE), until an
# UPDATE finds no row, or until max_seconds have passed.
q <"$REPO/bench/seeds_loop.sql"

# ---------------------------------------------------------------------------------------------
# Part 1: throughput.
MAX_N=$(printf '%s\n' $ROWS | sort -g | tail -n 1)
section "warm-up (not timed): $MAX_N rows, one UPDATE (creates the WAL segments the runs recycle)"
fresh_table "$MAX_N"
t0=$(now); q -c 'UPDATE t SET b = a'; log "warm-up UPDATE took $(sub "$t0" "$(now)") s"

declare -A SECS RATE WAL METHOD_NAME
METHOD_NAME[1]="(1) one UPDATE t SET b = a"
METHOD_NAME[2]="(2) the seeds' loop (PL/pgSQL procedure, COMMIT per 1000-row batch)"
METHOD_NAME[3]="(3) migrate.backfill_start('t', 'b = a', NULL, '{\"sleep_ms\": 0}') + CALL migrate.wait"
SEEDS_CAPPED=()

# run_method N M R: one timed run of method M on a fresh N-row table (round R).
run_method() {
    local N=$1 m=$2 r=$3 w0 w1 t0 t1 rows=$1 job
    section "N = $N, round $r: ${METHOD_NAME[$m]}"
    fresh_table "$N"
    w0=$(wal_lsn); t0=$(now)
    case $m in
        1) q -c 'UPDATE t SET b = a' ;;
        2) IFS='|' read -r batches rows capped < <(q -c "CALL seeds_loop($SEEDS_MAX_SECONDS, NULL, NULL, NULL)") ;;
        3) q >"$WORK/wait.log" 2>&1 <<'SQL'
SELECT migrate.backfill_start('t', 'b = a', NULL, '{"sleep_ms": 0}') AS job \gset
CALL migrate.wait(:job);
SQL
           ;;
    esac
    t1=$(now); w1=$(wal_lsn)
    SECS[$N,$m,$r]=$(sub "$t0" "$t1"); RATE[$N,$m,$r]=$(div "$rows" "${SECS[$N,$m,$r]}"); WAL[$N,$m,$r]=$(wal_mb "$w0" "$w1")
    if [ "$m" = 2 ] && [ "$capped" = t ]; then
        SEEDS_CAPPED+=("N=$N round $r: stopped after ${SECS[$N,$m,$r]} s with $rows of $N rows in $batches batches")
        log "STOPPED at the SEEDS_MAX_SECONDS=$SEEDS_MAX_SECONDS limit: $rows of $N rows in ${SECS[$N,$m,$r]} s ($batches batches),"
        log "${RATE[$N,$m,$r]} rows/s over the part that ran"
        return
    fi
    log "$rows rows in ${SECS[$N,$m,$r]} s: ${RATE[$N,$m,$r]} rows/s, ${WAL[$N,$m,$r]} MB of WAL$([ "$m" = 2 ] && echo ", $batches batches"); rows left with b <> a: $(left_over)"
    if [ "$m" = 3 ]; then
        job=$(q -c 'SELECT max(job) FROM migrate.jobs')
        log "job $job: $(q -c "SELECT format('state %s; queued->finished %s s (the worker''s own time, without migrate.wait''s polling)',
                                        state, round(extract(epoch FROM finished_at - created_at), 3))
                                   FROM migrate.jobs WHERE job = $job")"
        log "progress: $(q -c "SELECT format('rows_done %s, batches %s, avg rows/batch %s, next batch_size %s, last batch %s ms, rows_per_second %s',
                                         p.rows_done, p.batches, round(p.rows_done::numeric / greatest(p.batches, 1)), p.batch_size,
                                         round(b.last_batch_ms::numeric, 1), p.rows_per_second)
                                    FROM migrate.progress p JOIN migrate.all_backfills b USING (job) WHERE p.job = $job")"
        log "migrate.wait output (at most a line a second):"
        log_file "$WORK/wait.log"
    fi
}

for N in $ROWS; do
    for r in $(seq 1 "$REPEAT"); do
        # Round r runs the methods in a rotated order: 1 2 3, 2 3 1, 3 1 2, ...
        for k in 0 1 2; do
            run_method "$N" $(( (r - 1 + k) % 3 + 1 )) "$r"
        done
    done
done

# ---------------------------------------------------------------------------------------------
# Part 2: the writers' latency under load, without and with a default-settings backfill.
# The unthrottled rate Part 2 compares with: (3) at N = LAT_ROWS, else at the largest N.
UNTHROTTLED_N=$LAT_ROWS
if ! printf '%s\n' $ROWS | grep -qx "$LAT_ROWS"; then UNTHROTTLED_N=$MAX_N; fi
urates=(); for r in $(seq 1 "$REPEAT"); do urates+=("${RATE[$UNTHROTTLED_N,3,$r]}"); done
UNTHROTTLED=$(median "${urates[@]}")
# Its time for LAT_ROWS rows, in seconds: what the first run of a load sizes its length from.
UNTHROTTLED_SECS=$(awk -v n="$LAT_ROWS" -v r="$UNTHROTTLED" 'BEGIN { printf "%.1f", n / r }')

cat >"$WORK/workload.sql" <<SQL
\set id random(1, $LAT_ROWS)
UPDATE t SET a = a + 1 WHERE id = :id;
SQL

# What the pgbench sessions and the backfill's worker are doing, every 0.1 s until the epoch in
# the psql variable deadline: epoch, pgbench sessions running a statement, those waiting for a
# lock, the job worker waiting for a lock, and which locks the pgbench sessions wait for:
# relation extension, or a row (transactionid, tuple).
{
    for _ in $(seq $(( LAT_MAX_SECONDS * 10 + 200 ))); do
        cat <<'SQL'
SELECT extract(epoch FROM clock_timestamp()),
       count(*) FILTER (WHERE application_name = 'pgbench_bench' AND state = 'active'),
       count(*) FILTER (WHERE application_name = 'pgbench_bench' AND state = 'active' AND wait_event_type = 'Lock'),
       count(*) FILTER (WHERE backend_type = 'pg_migrate job worker' AND wait_event_type = 'Lock'),
       count(*) FILTER (WHERE application_name = 'pgbench_bench' AND state = 'active' AND wait_event_type = 'Lock'
                          AND wait_event = 'extend'),
       count(*) FILTER (WHERE application_name = 'pgbench_bench' AND state = 'active' AND wait_event_type = 'Lock'
                          AND wait_event IN ('transactionid', 'tuple'))
  FROM pg_stat_activity;
SELECT pg_sleep(0.1), extract(epoch FROM clock_timestamp()) < :deadline AS go \gset
\if :go
\else
\q
\endif
SQL
    done
} >"$WORK/sampler.sql"

pgbench_failed() { sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/$1/pgbench.out"; }
pgbench_tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/$1/pgbench.out"; }

# The figures of every run, RUN[label,field]: t0 (epoch just before pgbench started), end (its
# last transaction's end), secs, rate, rc, failed, tps; with a backfill also job, lo and hi
# (window offsets from t0), clipped, rows, rps, check.
declare -A RUN

# run_one LABEL SECONDS RATE BACKFILL [OPTIONS] [ON_CLIP]: one pgbench run on a fresh table, with
# (BACKFILL=1) or without a backfill started LAT_DELAY s in, with OPTIONS or none. A backfill
# still running when pgbench ends is waited for (ON_CLIP=wait) or cancelled (ON_CLIP=cancel).
run_one() {
    local label=$1 secs=$2 rate=$3 bf=$4 options=${5:-} on_clip=${6:-wait} dir=$WORK/$1 t0 pid spid rc=0
    local job state rows_end t_end created finished rows
    rm -rf "$dir"; mkdir -p "$dir"
    for f in t0 end secs rate rc failed tps job lo hi clipped rows rps check full state bfsecs progress workerlock lockkinds; do
        unset "RUN[$label,$f]"
    done
    fresh_table "$LAT_ROWS" counter
    t0=$(now)
    RUN[$label,t0]=$t0; RUN[$label,secs]=$secs; RUN[$label,rate]=$rate
    { q -F ' ' -v deadline="$(awk -v t="$t0" -v s="$secs" 'BEGIN { printf "%.1f", t + s + 1 }')" -f "$WORK/sampler.sql" 2>/dev/null |
          grep --line-buffered -v '^$' >"$dir/samples"; } &
    spid=$!; BG_PIDS+=("$spid")
    PGAPPNAME=pgbench_bench "$PG_BIN/pgbench" -n -f "$WORK/workload.sql" -c "$LAT_CLIENTS" -j "$LAT_THREADS" \
        -T "$secs" -P 5 ${rate:+-R "$rate"} -l --log-prefix="$dir/tx" >"$dir/pgbench.out" 2>&1 &
    pid=$!; BG_PIDS+=("$pid")
    if [ "$bf" = 1 ]; then
        sleep "$LAT_DELAY"
        if [ -n "$options" ]; then
            job=$(q -c 'SET client_min_messages = warning' -c "SELECT migrate.backfill_start('t', 'b = a, n = n + 1', NULL, '$options')")
        else
            job=$(q -c 'SET client_min_messages = warning' -c "SELECT migrate.backfill_start('t', 'b = a, n = n + 1')")
        fi
        RUN[$label,job]=$job
    fi
    wait "$pid" || rc=$?
    t_end=$(now)
    RUN[$label,rc]=$rc
    RUN[$label,failed]=$(pgbench_failed "$label")
    RUN[$label,tps]=$(pgbench_tps "$label"); RUN[$label,tps]=$([ -n "${RUN[$label,tps]}" ] && printf '%.0f' "${RUN[$label,tps]}" || echo n/a)
    RUN[$label,end]=$(cat "$dir"/tx.* | awk '{ e = $5 + $6 / 1e6; if (e > m) m = e } END { printf "%.6f", m }')
    if [ "$bf" = 1 ]; then
        IFS='|' read -r state rows_end < <(q -c "SELECT state, rows_done FROM migrate.progress WHERE job = $job")
    fi
    wait "$spid" 2>/dev/null || true   # the sampler stops 1 s after pgbench's end
    if [ "$bf" = 1 ]; then
        RUN[$label,clipped]=no
        if [ "$state" != done ]; then
            RUN[$label,clipped]=yes
            if [ "$on_clip" = cancel ]; then
                q -c "SELECT migrate.cancel($job)" >/dev/null
            fi
            q -c "CALL migrate.wait($job, interval '$LAT_MAX_SECONDS s')" >"$dir/wait.log" 2>&1 || true
        fi
        IFS='|' read -r state created finished rows < <(q -c "SELECT j.state, extract(epoch FROM j.created_at), extract(epoch FROM j.finished_at), p.rows_done
                                                                FROM migrate.jobs j JOIN migrate.progress p USING (job) WHERE j.job = $job")
        RUN[$label,state]=$state
        RUN[$label,lo]=$(sub "$t0" "$created")
        if [ "${RUN[$label,clipped]}" = no ]; then
            RUN[$label,hi]=$(sub "$t0" "$finished"); RUN[$label,rows]=$rows
            RUN[$label,rps]=$(div "$rows" "$(sub "$created" "$finished")")
        else
            # The window stops where pgbench did; the rate is over the part under load.
            RUN[$label,hi]=$(sub "$t0" "${RUN[$label,end]}"); RUN[$label,rows]=$rows_end
            RUN[$label,rps]=$(div "$rows_end" "$(sub "$created" "$t_end")")
            RUN[$label,full]="the whole job: $state after $(sub "$created" "${finished:-$(now)}") s, $rows rows"
        fi
        RUN[$label,bfsecs]=$(sub "$created" "${finished:-$(now)}")
        # Every row existed when the job started: n = 1 on all of them once it is done.
        RUN[$label,check]=$(q -F ' ' -c "SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1),
                                                count(*) FILTER (WHERE b IS NULL) FROM t")
        RUN[$label,progress]=$(q -c "SELECT format('batches %s, avg rows/batch %s, last batch_size %s', batches,
                                            round(rows_done::numeric / greatest(batches, 1)), batch_size)
                                       FROM migrate.progress WHERE job = $job" 2>/dev/null || echo '?')
        RUN[$label,workerlock]=$(awk -v lo="$created" -v hi="${finished:-$t_end}" \
            '$1 >= lo && $1 <= hi { n++; w += ($4 > 0) } END { printf "%d of %d", w, n }' "$dir/samples")
        RUN[$label,lockkinds]=$(awk -v lo="$created" -v hi="${finished:-$t_end}" \
            '$1 >= lo && $1 <= hi { all += $3; ext += $5; row += $6 }
             END { printf "%d waiting session-samples: %d relation extension, %d row (transactionid, tuple), %d other", all, ext, row, all - ext - row }' "$dir/samples")
    fi
}

# win_stats LABEL LO HI (offsets from the run's t0, in s): over the transactions that ended in that
# part of the run: p50, p99 (nearest rank), mean, max in ms, how many took over 10 ms, TPS, failed
# transactions; then the share of sampled active pgbench sessions waiting for a lock.
win_stats() {
    local t0=${RUN[$1,t0]} lo hi stats locks
    lo=$(awk -v t="$t0" -v o="$2" 'BEGIN { printf "%.6f", t + o }')
    hi=$(awk -v t="$t0" -v o="$3" -v e="${RUN[$1,end]}" 'BEGIN { h = t + o; printf "%.6f", (h < e) ? h : e }')
    stats=$(cat "$WORK/$1"/tx.* | awk -v lo="$lo" -v hi="$hi" '
        { end = $5 + $6 / 1e6; if (end < lo || end > hi) next
          if ($3 ~ /^[0-9]+$/) print $3 / 1000.0; else print "failed" }' |
        sort -g | awk -v span="$(sub "$lo" "$hi")" '
        $1 == "failed" { f++; next }
        { v[++n] = $1; sum += $1; if ($1 > 10) slow++ }
        function pct(p,  i) { i = int(p * n); if (i < p * n) i++; if (i < 1) i = 1; return v[i] }
        END { if (n == 0) { printf "n/a n/a n/a n/a 0 0 %d\n", f; exit }
              printf "%.2f %.2f %.2f %.2f %d %.0f %d\n", pct(0.50), pct(0.99), sum / n, v[n], slow, (span > 0) ? n / span : 0, f }')
    locks=$(awk -v lo="$lo" -v hi="$hi" '$1 >= lo && $1 <= hi { a += $2; l += $3 }
                                         END { if (a > 0) printf "%.1f%%", 100 * l / a; else print "n/a" }' "$WORK/$1/samples")
    echo "$stats $locks"
}
field() { echo "$1" | awk -v i="$2" '{ print $i }'; }   # field "STATS" 2 = p99

# per_second LABEL LOAD ROUND KIND: the run's p99 for each second from its start, as CSV lines
# load,round,kind,second,p99_ms,transactions (for the plot).
per_second() {
    cat "$WORK/$1"/tx.* | awk -v t0="${RUN[$1,t0]}" '$3 ~ /^[0-9]+$/ { printf "%d %.3f\n", int($5 + $6 / 1e6 - t0), $3 / 1000.0 }' |
        sort -k1,1n -k2,2g |
        awk -v load="$2" -v round="$3" -v kind="$4" '
            function flush(  i) { i = int(0.99 * n); if (i < 0.99 * n) i++; if (i < 1) i = 1
                                  printf "%s,%s,%s,%d,%.3f,%d\n", load, round, kind, s, v[i], n; n = 0 }
            NR > 1 && $1 != s { flush() }
            { s = $1; v[++n] = $2 }
            END { if (n) flush() }'
}

# report_run LABEL STATS: the run's line in the results.
report_run() {
    local l=$1 s=$2
    local line="$l: p50 $(field "$s" 1) / p99 $(field "$s" 2) / max $(field "$s" 4) ms in the window, $(field "$s" 5) over 10 ms, TPS $(field "$s" 6) (whole run ${RUN[$l,tps]:-?}), failed $(field "$s" 7) in the window and ${RUN[$l,failed]:-?} in the run (pgbench exit ${RUN[$l,rc]}), lock waits $(field "$s" 8)"
    log "$line"
    if [ -n "${RUN[$l,job]:-}" ]; then
        local c=${RUN[$l,check]}
        log "    backfill job ${RUN[$l,job]} ${RUN[$l,state]}: window ${RUN[$l,lo]}-${RUN[$l,hi]} s of the run (${RUN[$l,secs]} s), clipped ${RUN[$l,clipped]}; ${RUN[$l,rows]} rows in the window, ${RUN[$l,rps]} rows/s; ${RUN[$l,progress]}${RUN[$l,full]:+; ${RUN[$l,full]}}"
        log "    counter: n=0 $(field "$c" 1), n=1 $(field "$c" 2), n>1 $(field "$c" 3), b NULL $(field "$c" 4); job worker waited for a lock in ${RUN[$l,workerlock]} samples; writers: ${RUN[$l,lockkinds]}"
    fi
}

# Closed-loop capacity: the rate-limited loads are percentages of it.
section "latency: closed-loop baseline, $BASE_SECONDS s, no backfill (the machine's capacity)"
run_one base "$BASE_SECONDS" "" 0
BASE_TPS=${RUN[base,tps]}
log "closed-loop baseline: $BASE_TPS TPS (pgbench exit ${RUN[base,rc]}, failed ${RUN[base,failed]})"
log_file "$WORK/base/pgbench.out"
log "unthrottled rate (Part 1, method (3), N = $UNTHROTTLED_N): $UNTHROTTLED rows/s, ${UNTHROTTLED_SECS} s for $LAT_ROWS rows"

load_rate() { [ "$1" = closed ] && echo "" || awk -v t="$BASE_TPS" -v p="$1" 'BEGIN { r = int(t * p / 100); print (r < 1) ? 1 : r }'; }
load_name() { [ "$1" = closed ] && echo "closed loop" || echo "$1% (-R $(load_rate "$1"))"; }
# The length of a run: LAT_SECONDS, or long enough for a backfill of BFSECS (the longest seen so far).
run_secs() {
    if [ "$LAT_SECONDS" != auto ]; then echo "$LAT_SECONDS"; return; fi
    awk -v d="$LAT_DELAY" -v t="$LAT_TAIL" -v b="$1" -v m="$LAT_MAX_SECONDS" 'BEGIN { s = int(d + b + t + 0.999); print (s > m) ? m : s }'
}

declare -A LOADSECS
PLOT_WINDOWS=()
: >"$WORK/p99.csv"
for load in $LOADS; do
    rate=$(load_rate "$load")
    longest=$(awk -v u="$UNTHROTTLED_SECS" 'BEGIN { print 10 * u }')   # a first guess: 10x the unthrottled time
    for r in $(seq 1 "$ROUNDS"); do
        # Odd rounds: with, then without; even rounds: without, then with.
        if [ $((r % 2)) = 1 ]; then order="with without"; else order="without with"; fi
        for kind in $order; do
            secs=$(run_secs "$longest")
            section "latency, load $(load_name "$load"), round $r: $kind backfill, pgbench $secs s on a fresh $LAT_ROWS-row table"
            if [ "$kind" = with ]; then
                run_one "$load-$r-with" "$secs" "$rate" 1
                # A backfill longer than the run (the first guess was short): once more, long enough.
                if [ "${RUN[$load-$r-with,clipped]}" = yes ] && [ "$LAT_SECONDS" = auto ] && [ "$secs" -lt "$LAT_MAX_SECONDS" ]; then
                    secs=$(run_secs "$(awk -v b="${RUN[$load-$r-with,bfsecs]}" 'BEGIN { print 1.3 * b }')")
                    log "the backfill took ${RUN[$load-$r-with,bfsecs]} s, longer than the run: this run is discarded and made again, $secs s long"
                    run_one "$load-$r-with" "$secs" "$rate" 1
                fi
                longest=$(awk -v a="$longest" -v b="${RUN[$load-$r-with,bfsecs]}" -v first="$r" \
                    'BEGIN { b *= 1.3; if (first == 1) print b; else print (b > a) ? b : a }')
            else
                run_one "$load-$r-without" "$secs" "$rate" 0
            fi
        done
        # The window: the backfill's, and the same offsets in the run without.
        lo=${RUN[$load-$r-with,lo]}; hi=${RUN[$load-$r-with,hi]}
        RUN[$load-$r-with,stats]=$(win_stats "$load-$r-with" "$lo" "$hi")
        RUN[$load-$r-without,stats]=$(win_stats "$load-$r-without" "$lo" "$hi")
        for kind in without with; do report_run "$load-$r-$kind" "${RUN[$load-$r-$kind,stats]}"; done
        RUN[$load-$r,ratio]=$(ratio "$(field "${RUN[$load-$r-with,stats]}" 2)" "$(field "${RUN[$load-$r-without,stats]}" 2)")
        log "round $r p99 ratio with/without in the window: ${RUN[$load-$r,ratio]}"
        if [ "$r" = 1 ]; then
            per_second "$load-1-without" "$(load_name "$load")" 1 without >>"$WORK/p99.csv"
            per_second "$load-1-with" "$(load_name "$load")" 1 with >>"$WORK/p99.csv"
            PLOT_WINDOWS+=("$(load_name "$load")=$lo:$hi")
        fi
    done
    LOADSECS[$load]=$(run_secs "$longest")
done

# ---------------------------------------------------------------------------------------------
# The trade-off table: at the 25% load, backfills with options.
TRADEOFF_RATE=$(load_rate 25)
if [ "$TRADEOFF" = 1 ]; then
    if [ "$TRADEOFF_SECONDS" = auto ]; then
        TRADEOFF_SECONDS=${LOADSECS[25]:-$(run_secs "$(awk -v u="$UNTHROTTLED_SECS" 'BEGIN { print 10 * u }')")}
    fi
    section "trade-off at 25% (-R $TRADEOFF_RATE): baseline without a backfill, $TRADEOFF_SECONDS s"
    run_one tradeoff-without "$TRADEOFF_SECONDS" "$TRADEOFF_RATE" 0
    for point in $TRADEOFF_GRID; do
        bt=${point%%:*}; sl=${point#*:}
        options="{\"batch_time_ms\": $bt, \"sleep_ms\": $sl}"
        section "trade-off at 25% (-R $TRADEOFF_RATE): backfill with $options, $TRADEOFF_SECONDS s"
        run_one "tradeoff-$bt-$sl" "$TRADEOFF_SECONDS" "$TRADEOFF_RATE" 1 "$options" cancel
        lo=${RUN[tradeoff-$bt-$sl,lo]}; hi=${RUN[tradeoff-$bt-$sl,hi]}
        RUN[tradeoff-$bt-$sl,stats]=$(win_stats "tradeoff-$bt-$sl" "$lo" "$hi")
        RUN[tradeoff-$bt-$sl,base]=$(win_stats tradeoff-without "$lo" "$hi")
        report_run "tradeoff-$bt-$sl" "${RUN[tradeoff-$bt-$sl,stats]}"
        log "    the run without a backfill, same offsets: p99 $(field "${RUN[tradeoff-$bt-$sl,base]}" 2) ms"
    done
fi

log "server log lines about pg_migrate, locks and autovacuum of t during the benchmark:"
grep -E 'pg_migrate|deadlock|lock timeout|automatic (vacuum|analyze) of table "bench.public.t"' "$WORK/server.log" |
    sed 's/^/    /' >>"$RESULTS" || true
echo "    (written to $RESULTS)"

# ---------------------------------------------------------------------------------------------
# The plot: writers' p99 per second, round 1 of each load, without and with the backfill.
if [ "$PLOT_STATUS" = ok ]; then
    cp "$WORK/p99.csv" "$PLOT_CSV"
    if "$PLOT_VENV/bin/python" "$REPO/bench/plot_backfill.py" "$PLOT_CSV" "$PLOT_PNG" \
        "pg_migrate backfill of $LAT_ROWS rows, default settings, $LAT_CLIENTS writers (pgbench -c $LAT_CLIENTS -j $LAT_THREADS), round 1" \
        "${PLOT_WINDOWS[@]}" >>"$RESULTS" 2>&1; then
        PLOT_STATUS="$PLOT_PNG (data: $PLOT_CSV)"
    else
        PLOT_STATUS="bench/plot_backfill.py failed (its output is in the results file)"
    fi
fi

# ---------------------------------------------------------------------------------------------
section "summary"
yes_no() { awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN { if (x == "n/a" || x == "") { print "n/a"; exit }
                                                        ok = (op == "<=") ? (x <= t) : (x >= t); print ok ? "met" : "MISSED" }'; }
{
    echo "Build: $(grep -m1 '^build:' "$RESULTS" | sed 's/^build: *//')"
    echo
    echo "Throughput: rows/s, median of $REPEAT run(s); each run on a fresh VACUUM ANALYZEd table after a CHECKPOINT."
    echo "Seconds of each run in brackets, in round order."
    printf '%-9s | %-30s | %-30s | %-30s | %-7s | %-7s\n' rows "(1) one UPDATE" "(2) seeds' loop" "(3) backfill, sleep_ms 0" "(3)/(1)" "(3)/(2)"
    printf '%s\n' "----------+--------------------------------+--------------------------------+--------------------------------+---------+--------"
    for N in $ROWS; do
        cells=()
        for m in 1 2 3; do
            rates=(); secs=()
            for r in $(seq 1 "$REPEAT"); do rates+=("${RATE[$N,$m,$r]}"); secs+=("${SECS[$N,$m,$r]}"); done
            RATE[$N,$m]=$(median "${rates[@]}")
            cells+=("${RATE[$N,$m]} [$(IFS=/; echo "${secs[*]}")]")
        done
        printf '%-9s | %-30s | %-30s | %-30s | %-7s | %-7s\n' "$N" "${cells[0]}" "${cells[1]}" "${cells[2]}" \
            "$(ratio "${RATE[$N,3]}" "${RATE[$N,1]}")" "$(ratio "${RATE[$N,3]}" "${RATE[$N,2]}")"
    done
    for c in "${SEEDS_CAPPED[@]}"; do echo "seeds' loop $c (the rate above is over that part only)"; done
    echo "WAL per run (MB), (1)/(2)/(3):$(for N in $ROWS; do printf ' N=%s: %s/%s/%s;' "$N" "${WAL[$N,1,1]}" "${WAL[$N,2,1]}" "${WAL[$N,3,1]}"; done)"

    echo
    echo "Latency: $LAT_ROWS rows, pgbench -c $LAT_CLIENTS -j $LAT_THREADS (UPDATE t SET a = a + 1 WHERE id = random), closed-loop capacity $BASE_TPS TPS;"
    echo "backfill migrate.backfill_start('t', 'b = a, n = n + 1') with default settings, started $LAT_DELAY s in. Window = the job's"
    echo "created_at..finished_at; without = the same offsets in the run without. ms from pgbench's per-transaction logs;"
    echo "lock waits = share of sampled (0.1 s) active pgbench sessions waiting for a lock. Unthrottled rate: $UNTHROTTLED rows/s."
    printf '%-22s | %-9s | %-7s | %-9s | %-7s | %-7s | %-8s | %-6s | %-6s | %-7s | %-9s | %-8s | %s\n' \
        load round "p50 ms" "p99 ms" "max ms" TPS "lock w." failed window "clipped" "rows/s" "p99 x" "n=0/n=1/n>1"
    printf '%s\n' "-----------------------+-----------+---------+-----------+---------+---------+----------+--------+--------+---------+-----------+----------+------------"
    for load in $LOADS; do
        ratios=(); rps=(); failed_all=0; counter_ok=1; clipped=0
        for r in $(seq 1 "$ROUNDS"); do
            for kind in without with; do
                l=$load-$r-$kind; s=${RUN[$l,stats]}
                f=$(( $(field "$s" 7) + ${RUN[$l,failed]:-1} ))
                [ "${RUN[$l,rc]}" = 0 ] || f=$((f + 1))
                failed_all=$((failed_all + f))
                if [ "$kind" = with ]; then
                    c=${RUN[$l,check]}
                    [ "$(field "$c" 1)" = 0 ] && [ "$(field "$c" 3)" = 0 ] && [ "$(field "$c" 4)" = 0 ] && [ "$(field "$c" 2)" = "$LAT_ROWS" ] || counter_ok=0
                    [ "${RUN[$l,clipped]}" = no ] || clipped=$((clipped + 1))
                    ratios+=("${RUN[$load-$r,ratio]}"); rps+=("${RUN[$l,rps]}")
                    extra=("$(sub "${RUN[$l,lo]}" "${RUN[$l,hi]}")s" "${RUN[$l,clipped]}" "${RUN[$l,rps]}" "${RUN[$load-$r,ratio]}" "$(field "$c" 1)/$(field "$c" 2)/$(field "$c" 3)")
                else
                    extra=("" "" "" "" "")
                fi
                printf '%-22s | %-9s | %-7s | %-9s | %-7s | %-7s | %-8s | %-6s | %-6s | %-7s | %-9s | %-8s | %s\n' \
                    "$(load_name "$load")" "$r $kind" "$(field "$s" 1)" "$(field "$s" 2)" "$(field "$s" 4)" "$(field "$s" 6)" "$(field "$s" 8)" "$f" "${extra[@]}"
            done
        done
        RUN[$load,ratio]=$(median "${ratios[@]}"); RUN[$load,spread]=$(minmax "${ratios[@]}")
        RUN[$load,rps]=$(median "${rps[@]}")
        RUN[$load,failed]=$failed_all; RUN[$load,counter]=$counter_ok; RUN[$load,clipped]=$clipped
    done
    echo "(failed = failed transactions in the window + in pgbench's count for the whole run, +1 if pgbench exited non-zero;"
    echo " window = the backfill's duration; clipped = the backfill outlasted pgbench and the window stops at pgbench's end)"

    echo
    echo "Targets (issue 14; default settings, $(grep -m1 '^build:' "$RESULTS" | sed 's/^build: *//; s/ (.*//')):"
    for N in $ROWS; do
        x=$(ratio "${RATE[$N,3]}" "${RATE[$N,1]}")
        echo "TARGET unthrottled backfill >= 0.85x one UPDATE, N=$N: $x $(yes_no "$x" '>=' 0.85)"
    done
    for load in $LOADS; do
        n=$(load_name "$load")
        echo "TARGET p99 ratio <= 1.25, $n: median ${RUN[$load,ratio]} (min-max ${RUN[$load,spread]} over $ROUNDS round(s)) $(yes_no "${RUN[$load,ratio]}" '<=' 1.25)$([ "${RUN[$load,clipped]}" = 0 ] || echo " (${RUN[$load,clipped]} clipped window(s))")"
        echo "TARGET 0 failed transactions, $n: ${RUN[$load,failed]} $([ "${RUN[$load,failed]}" = 0 ] && echo met || echo MISSED)"
        echo "TARGET every row updated exactly once (n = 1 on all $LAT_ROWS rows after each backfill), $n: $([ "${RUN[$load,counter]}" = 1 ] && echo met || echo MISSED)"
        f=$(ratio "${RUN[$load,rps]}" "$UNTHROTTLED")
        if [ "$load" = 25 ]; then
            echo "TARGET backfill rate at 25% load >= 0.30x unthrottled: ${RUN[$load,rps]} rows/s (median) / $UNTHROTTLED = $f $(yes_no "$f" '>=' 0.30)"
        else
            echo "info: backfill rate, $n: ${RUN[$load,rps]} rows/s (median) = $f x unthrottled"
        fi
    done

    if [ "$TRADEOFF" = 1 ]; then
        echo
        echo "Trade-off at 25% (-R $TRADEOFF_RATE), one run each, $TRADEOFF_SECONDS s: backfill options -> rows/s under load and p99 ratio"
        echo "(p99 of the window / p99 of one run without a backfill at the same offsets; a clipped backfill was cancelled at pgbench's end,"
        echo " its rate is over the part under load). The default settings (the 25% rows above): ${RUN[25,rps]:-n/a} rows/s, p99 ratio ${RUN[25,ratio]:-n/a}."
        printf '%-13s | %-8s | %-9s | %-7s | %-9s | %-9s | %-9s | %-6s | %-8s | %-7s\n' batch_time_ms sleep_ms "rows/s" "x unthr." "p99 ms" "base p99" "p99 x" failed "lock w." clipped
        printf '%s\n' "--------------+----------+-----------+---------+-----------+-----------+-----------+--------+----------+--------"
        for point in $TRADEOFF_GRID; do
            bt=${point%%:*}; sl=${point#*:}; l=tradeoff-$bt-$sl; s=${RUN[$l,stats]}; b=${RUN[$l,base]}
            f=$(( $(field "$s" 7) + ${RUN[$l,failed]:-1} )); [ "${RUN[$l,rc]}" = 0 ] || f=$((f + 1))
            printf '%-13s | %-8s | %-9s | %-7s | %-9s | %-9s | %-9s | %-6s | %-8s | %-7s\n' "$bt" "$sl" "${RUN[$l,rps]}" \
                "$(ratio "${RUN[$l,rps]}" "$UNTHROTTLED")" "$(field "$s" 2)" "$(field "$b" 2)" "$(ratio "$(field "$s" 2)" "$(field "$b" 2)")" \
                "$f" "$(field "$s" 8)" "${RUN[$l,clipped]}"
        done
    fi
    echo
    echo "plot: $PLOT_STATUS"
    so_replaced
    echo "the run took $(( ($(date +%s) - START_EPOCH) / 60 )) min $(( ($(date +%s) - START_EPOCH) % 60 )) s"
} | tee -a "$RESULTS"
echo
echo "results written to $RESULTS"
[ "$PLOT_STATUS" = "${PLOT_STATUS#"$PLOT_PNG"}" ] || echo "plot written to $PLOT_PNG"
