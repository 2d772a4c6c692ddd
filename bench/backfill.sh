#!/usr/bin/env bash
# Benchmark of pg_migrate backfills on a scratch PostgreSQL 15 cluster (see bench/README.md).
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
# REPEAT rounds, the order of the methods rotated each round; the median is reported.
#
# Part 2, latency. A pgbench custom script (random id: UPDATE t SET a = a + 1, then SELECT that
# row) on a fresh LAT_ROWS-row table for LAT_SECONDS: (a) alone, (b) with a default-settings
# (throttled) backfill b = a started one second into the run. p50/p99/TPS come from pgbench's
# per-transaction logs, over the whole run and over the window in which the backfill ran (and the
# same offsets in run a). Done twice: closed loop as fast as the clients go (the main figures), and
# rate-limited (-R LAT_RATE, default a quarter of the closed-loop baseline TPS) so that the machine is not
# saturated by the load generator itself; then once more rate-limited with a backfill started with
# LAT_TUNED_OPTIONS (default '{"batch_time_ms": 20}': shorter batches, so row locks are held for
# less time), a diagnostic beside the default settings. pg_stat_activity is sampled every 0.1 s.
#
# Environment: ROWS (default "1000000 10000000"), QUICK=1 (200000 rows, short runs, 1 round),
# REPEAT (default 3), SEEDS_MAX_SECONDS (the seeds' loop stops after this long and reports a
# partial rate), LAT_ROWS (1000000), LAT_SECONDS (60), LAT_CLIENTS (4), LAT_THREADS (2),
# LAT_RATE (auto; 0 skips the rate-limited runs), LAT_TUNED_OPTIONS (empty skips that run),
# AUTOVACUUM (on|off, default on), RESULTS_DIR, SKIP_INSTALL=1 (measure the library already
# installed instead of running scripts/setup.sh and installing this checkout's build first).
# The cluster, its data and logs live in a temporary directory removed on exit, also on failure.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    ROWS=${ROWS:-200000}
    REPEAT=${REPEAT:-1}
    LAT_ROWS=${LAT_ROWS:-200000}
    LAT_SECONDS=${LAT_SECONDS:-10}
else
    ROWS=${ROWS:-"1000000 10000000"}
    REPEAT=${REPEAT:-3}
    LAT_ROWS=${LAT_ROWS:-1000000}
    LAT_SECONDS=${LAT_SECONDS:-60}
fi
LAT_CLIENTS=${LAT_CLIENTS:-4}
LAT_THREADS=${LAT_THREADS:-2}
LAT_RATE=${LAT_RATE:-auto}
LAT_TUNED_OPTIONS=${LAT_TUNED_OPTIONS-'{"batch_time_ms": 20}'}
SEEDS_MAX_SECONDS=${SEEDS_MAX_SECONDS:-300}
AUTOVACUUM=${AUTOVACUUM:-on}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
RESULTS=$RESULTS_DIR/backfill-$(date +%Y%m%d-%H%M%S).txt

source "$REPO/bench/lib.sh"
bench_install

# ---------------------------------------------------------------------------------------------
bench_start bench
log_file() { sed 's/^/    /' "$1" | tee -a "$RESULTS"; }
bench_cluster "ALTER SYSTEM SET log_autovacuum_min_duration = '0';"

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wal_lsn() { q -c 'SELECT pg_current_wal_lsn()'; }
wal_mb() { q -c "SELECT round(pg_wal_lsn_diff('$2', '$1') / 1048576.0)"; }

log_machine
log "settings:    $(q -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
                            WHERE name IN ('shared_buffers', 'max_wal_size', 'min_wal_size', 'checkpoint_timeout', 'fsync',
                                           'synchronous_commit', 'full_page_writes', 'wal_level', 'autovacuum', 'jit', 'work_mem',
                                           'maintenance_work_mem', 'max_worker_processes', 'synchronize_seqscans')")"
log "pg_migrate:  $(q <<'SQL'
LOAD 'pg_migrate';
SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
 WHERE name IN ('migrate.backfill_batch_time', 'migrate.backfill_sleep', 'migrate.lock_timeout');
SQL
)"
log "run:         ROWS='$ROWS' REPEAT=$REPEAT SEEDS_MAX_SECONDS=$SEEDS_MAX_SECONDS LAT_ROWS=$LAT_ROWS LAT_SECONDS=$LAT_SECONDS LAT_CLIENTS=$LAT_CLIENTS LAT_THREADS=$LAT_THREADS LAT_RATE=$LAT_RATE LAT_TUNED_OPTIONS='$LAT_TUNED_OPTIONS'"

# A fresh table t of $1 rows, b NULL, VACUUM ANALYZEd, then a CHECKPOINT: every run starts here.
fresh_table() {
    q <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS t;
CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b int);
INSERT INTO t SELECT g, (g % 100000)::int, NULL FROM generate_series(1, $1) AS g;
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
# Part 2: latency of an application workload, without and with a default-settings backfill.
cat >"$WORK/workload.sql" <<EOF
\set id random(1, $LAT_ROWS)
UPDATE t SET a = a + 1 WHERE id = :id;
SELECT a, b FROM t WHERE id = :id;
EOF

# What the pgbench sessions and the backfill's worker are doing, every 0.1 s: epoch, pgbench
# sessions running a statement, those waiting for a lock, the job worker waiting for a lock, and
# which locks the pgbench sessions wait for: relation extension (adding pages), or a row
# (transactionid, tuple).
{
    for _ in $(seq $(( LAT_SECONDS * 10 + 30 ))); do
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
SELECT pg_sleep(0.1);
SQL
    done
} >"$WORK/sampler.sql"

# run_pgbench LABEL [RATE]: pgbench for LAT_SECONDS with per-transaction logs in $WORK/LABEL/,
# pg_stat_activity samples in $WORK/LABEL/samples.
run_pgbench() {
    local dir=$WORK/$1 rc=0 sampler
    mkdir -p "$dir"
    q -F ' ' -f "$WORK/sampler.sql" 2>/dev/null | grep -v '^$' >"$dir/samples" &
    sampler=$!
    PGAPPNAME=pgbench_bench "$PG_BIN/pgbench" -n -f "$WORK/workload.sql" -c "$LAT_CLIENTS" -j "$LAT_THREADS" \
        -T "$LAT_SECONDS" -P 5 ${2:+-R "$2"} -l --log-prefix="$dir/tx" >"$dir/pgbench.out" 2>&1 || rc=$?
    echo "$rc" >"$dir/rc"
    wait "$sampler" || true
}

# tx_span LABEL: the first transaction start and the last transaction end of a run (epoch s).
tx_span() {
    cat "$WORK/$1"/tx.* | awk '{ end = $5 + $6 / 1e6; lat = ($3 ~ /^[0-9]+$/) ? $3 / 1e6 : 0; s = end - lat
                                 if (min == "" || s < min) min = s; if (end > max) max = end }
                               END { printf "%.6f %.6f\n", min, max }'
}

# lat_stats LABEL LO HI: over the transactions that ended in [LO, HI] (epoch s): p50 and p99
# latency (nearest rank), mean and max in ms, how many took over 10 ms, TPS, failed transactions;
# then the share of sampled active pgbench sessions that waited for a lock.
lat_stats() {
    local stats locks
    stats=$(cat "$WORK/$1"/tx.* | awk -v lo="$2" -v hi="$3" '
        { end = $5 + $6 / 1e6; if (end < lo || end > hi) next
          if ($3 ~ /^[0-9]+$/) print $3 / 1000.0; else print "failed" }' |
        sort -g | awk -v span="$(sub "$2" "$3")" '
        $1 == "failed" { f++; next }
        { v[++n] = $1; sum += $1; if ($1 > 10) slow++ }
        function pct(p,  i) { i = int(p * n); if (i < p * n) i++; if (i < 1) i = 1; return v[i] }
        END { if (n == 0) { printf "n/a n/a n/a n/a 0 0 %d\n", f; exit }
              printf "%.2f %.2f %.2f %.2f %d %.0f %d\n", pct(0.50), pct(0.99), sum / n, v[n], slow, n / span, f }')
    locks=$(awk -v lo="$2" -v hi="$3" '$1 >= lo && $1 <= hi { a += $2; l += $3 }
                                       END { if (a > 0) printf "%.1f%%", 100 * l / a; else print "n/a" }' "$WORK/$1/samples")
    echo "$stats $locks"
}
pgbench_failed() { sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/$1/pgbench.out"; }
pgbench_tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/$1/pgbench.out"; }

declare -A LAT
LAT_VARIANTS=()

# latency_pair NAME [RATE [OPTIONS]]: runs (a) and (b), the backfill of (b) started with OPTIONS
# (default: none, the default settings), and keeps their figures in LAT[NAME,...].
latency_pair() {
    local name=$1 rate=${2:-} options=${3:-} job a_lo a_hi b_lo b_hi bf_lo bf_hi w_lo w_hi aw_lo aw_hi
    LAT_VARIANTS+=("$name")
    LAT[$name,rate]=$rate
    LAT[$name,options]=$options
    section "latency, $name: pgbench on a fresh $LAT_ROWS-row table, $LAT_CLIENTS clients, $LAT_THREADS threads, $LAT_SECONDS s${rate:+, -R $rate}; backfill options ${options:-none (default settings)}"
    # (a) baseline
    fresh_table "$LAT_ROWS"
    run_pgbench "$name-a" "$rate"
    read -r a_lo a_hi < <(tx_span "$name-a")

    # (b) the same, with a default-settings backfill started one second in
    fresh_table "$LAT_ROWS"
    run_pgbench "$name-b" "$rate" &
    local pgbench_pid=$!
    BG_PIDS+=("$pgbench_pid")
    sleep 1
    job=$(q -v options="${options:-"{}"}" 2>/dev/null <<'SQL'
SELECT migrate.backfill_start('t', 'b = a', NULL, :'options')
SQL
)
    q -c "CALL migrate.wait($job)" >"$WORK/$name-b/wait.log" 2>&1 &
    local waiter_pid=$!
    BG_PIDS+=("$waiter_pid")
    wait "$pgbench_pid"
    wait "$waiter_pid" || log "CALL migrate.wait($job) failed: see its output below"
    read -r b_lo b_hi < <(tx_span "$name-b")
    read -r bf_lo bf_hi < <(q -F ' ' -c "SELECT extract(epoch FROM created_at), extract(epoch FROM finished_at) FROM migrate.jobs WHERE job = $job")
    # The part of run b during which the backfill ran, and the same offsets in run a.
    w_lo=$bf_lo
    w_hi=$(awk -v a="$bf_hi" -v b="$b_hi" 'BEGIN { printf "%.6f", (a < b) ? a : b }')
    aw_lo=$(awk -v a="$a_lo" -v w="$w_lo" -v s="$b_lo" 'BEGIN { printf "%.6f", a + (w - s) }')
    aw_hi=$(awk -v a="$a_lo" -v w="$w_hi" -v s="$b_lo" 'BEGIN { printf "%.6f", a + (w - s) }')
    LAT[$name,a]=$(lat_stats "$name-a" "$a_lo" "$a_hi")
    LAT[$name,aw]=$(lat_stats "$name-a" "$aw_lo" "$aw_hi")
    LAT[$name,b]=$(lat_stats "$name-b" "$b_lo" "$b_hi")
    LAT[$name,bw]=$(lat_stats "$name-b" "$w_lo" "$w_hi")
    LAT[$name,bf]="$(sub "$bf_lo" "$bf_hi") s, from $(sub "$b_lo" "$bf_lo") s to $(sub "$b_lo" "$bf_hi") s of run b ($(sub "$b_lo" "$b_hi") s), overlap $(awk -v lo="$w_lo" -v hi="$w_hi" -v s="$b_lo" -v e="$b_hi" 'BEGIN { printf "%.0f", 100 * (hi - lo) / (e - s) }')% of it"
    LAT[$name,failed]="pgbench's failed transactions (a) $(pgbench_failed "$name-a"), (b) $(pgbench_failed "$name-b"); exit codes (a) $(cat "$WORK/$name-a/rc"), (b) $(cat "$WORK/$name-b/rc")"
    LAT[$name,pgfailed]=$(pgbench_failed "$name-b")

    for run in a b; do
        log "pgbench run $run ($name):"
        log_file "$WORK/$name-$run/pgbench.out"
    done
    log "backfill job $job (options ${options:-none}) ran ${LAT[$name,bf]}"
    log "progress: $(q -c "SELECT format('state %s, rows_done %s, batches %s, avg rows/batch %s, next batch_size %s, last batch %s ms; batch_time %s ms, sleep %s ms',
                                     p.state, p.rows_done, p.batches, round(p.rows_done::numeric / greatest(p.batches, 1)), p.batch_size,
                                     round(b.last_batch_ms::numeric, 1), b.batch_time_ms, b.sleep_ms)
                                FROM migrate.progress p JOIN migrate.all_backfills b USING (job) WHERE p.job = $job")"
    log "samples of pg_stat_activity while it ran: the job worker waited for a lock in $(awk -v lo="$w_lo" -v hi="$w_hi" \
        '$1 >= lo && $1 <= hi { n++; w += ($4 > 0) } END { printf "%d of %d", w, n }' "$WORK/$name-b/samples") samples"
    log "the pgbench sessions' lock waits while it ran, by lock: $(awk -v lo="$w_lo" -v hi="$w_hi" \
        '$1 >= lo && $1 <= hi { all += $3; ext += $5; row += $6 }
         END { printf "%d session-samples waiting, %d on relation extension, %d on rows (transactionid, tuple), %d on other locks", all, ext, row, all - ext - row }' \
        "$WORK/$name-b/samples")"
    log "migrate.wait output:"
    log_file "$WORK/$name-b/wait.log"
}

latency_pair closed
if [ "$LAT_RATE" = auto ]; then
    LAT_RATE=$(awk -v t="$(pgbench_tps closed-a)" 'BEGIN { r = int(t / 4 / 100) * 100; print (r < 100) ? 100 : r }')
fi
if [ "$LAT_RATE" != 0 ]; then
    latency_pair "rate-$LAT_RATE" "$LAT_RATE"
    if [ -n "$LAT_TUNED_OPTIONS" ]; then
        latency_pair "rate-$LAT_RATE-tuned" "$LAT_RATE" "$LAT_TUNED_OPTIONS"
    fi
fi

log "server log lines about pg_migrate, locks and autovacuum of t during the benchmark:"
grep -E 'pg_migrate|deadlock|lock timeout|automatic (vacuum|analyze) of table "bench.public.t"' "$WORK/server.log" |
    sed 's/^/    /' | tee -a "$RESULTS" >/dev/null || true
echo "    (written to $RESULTS)"

# ---------------------------------------------------------------------------------------------
section "summary"
{
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
    echo "Target (3)/(1) >= 0.80:$(for N in $ROWS; do x=$(ratio "${RATE[$N,3]}" "${RATE[$N,1]}"); printf ' N=%s %s %s;' "$N" "$x" "$(awk -v x="$x" 'BEGIN { print (x >= 0.8) ? "met" : "MISSED" }')"; done)"
    for name in "${LAT_VARIANTS[@]}"; do
        echo
        rate=${LAT[$name,rate]}; options=${LAT[$name,options]}
        echo "Latency, $name: pgbench ($LAT_CLIENTS clients, $LAT_THREADS threads, $LAT_SECONDS s${rate:+, -R $rate}) on $LAT_ROWS rows; ms, from per-transaction logs."
        if [ -n "$options" ]; then
            echo "Backfill in run b: options $options (a diagnostic beside the default settings, which the targets are about)."
        else
            echo "Backfill in run b: default settings."
        fi
        echo "Window: while the backfill ran (${LAT[$name,bf]}); in run a, the same offsets."
        printf '%-28s | %-7s | %-7s | %-7s | %-7s | %-7s | %-7s | %-6s | %-10s\n' run "p50 ms" "p99 ms" "mean ms" "max ms" ">10 ms" TPS failed "lock waits"
        printf '%s\n' "-----------------------------+---------+---------+---------+---------+---------+---------+--------+-----------"
        for k in "a:(a) baseline, whole run" "aw:(a) baseline, window" "b:(b) with backfill, whole" "bw:(b) with backfill, window"; do
            # shellcheck disable=SC2086
            printf '%-28s | %-7s | %-7s | %-7s | %-7s | %-7s | %-7s | %-6s | %-10s\n' "${k#*:}" ${LAT[$name,${k%%:*}]}
        done
        echo "(lock waits: share of sampled active pgbench sessions waiting for a lock, every 0.1 s)"
        echo "${LAT[$name,failed]}"
        p99() { echo "${LAT[$name,$1]}" | awk '{ print $2 }'; }
        failed() { echo "${LAT[$name,$1]}" | awk '{ print $7 }'; }
        rw=$(ratio "$(p99 bw)" "$(p99 aw)"); ra=$(ratio "$(p99 b)" "$(p99 a)")
        echo "Target p99 ratio <= 1.25: window $rw $(awk -v x="$rw" 'BEGIN { print (x != "n/a" && x <= 1.25) ? "met" : "MISSED" }'), whole run $ra $(awk -v x="$ra" 'BEGIN { print (x != "n/a" && x <= 1.25) ? "met" : "MISSED" }')"
        echo "Target 0 failed transactions: $([ "$(failed b)" = 0 ] && [ "${LAT[$name,pgfailed]}" = 0 ] && echo met || echo MISSED)"
    done
    so_replaced
} | tee -a "$RESULTS"
echo
echo "results written to $RESULTS"
