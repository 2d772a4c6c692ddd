#!/usr/bin/env bash
# What any concurrent work costs the issue-14 writers on this machine (bench/README.md, "The
# floor"): the p99 of rate-limited single-row updates while one other process works at the lowest
# CPU priority, by kind of work:
#   none       nothing else runs (the reference);
#   shell      a shell loop that only burns one CPU (nice 19), outside the server: with the
#              kernel's autogroup scheduling (sched_autogroup_enabled), nice counts only inside
#              a session's group, so this competes with the whole server as an equal;
#   cpu        a session (its backend reniced to 19) running a PL/pgSQL loop of arithmetic:
#              one CPU, inside the server's group, no writes, no locks anybody else wants;
#   other      a session (reniced to 19) updating ANOTHER table in 2000-row transactions back to
#              back: CPU, WAL, buffers, no row or page the writers touch;
#   backfill   migrate.backfill_start('t', 'b = a, n = n + 1') with default settings (its worker
#              runs at migrate.backfill_nice, 19).
# Each run: a fresh LAT_ROWS-row table t (as in backfill.sh), pgbench -R at LOAD% of the
# closed-loop capacity for SECONDS, the competitor started 2 s in; p50/p99/max of the
# transactions that ended between 3 s and SECONDS-1 s. ROUNDS rounds, the order of the kinds
# rotated each round; ratios are against the "none" run of the same round.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
PROFILE=${PROFILE:-release}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
RESULTS=$RESULTS_DIR/cpu_floor-$(date -u +%Y%m%d-%H%M%S).txt
AUTOVACUUM=on
source "$REPO/bench/lib.sh"
LAT_ROWS=${LAT_ROWS:-3000000}
LOAD=${LOAD:-25}
SECONDS_RUN=${SECONDS_RUN:-20}
ROUNDS=${ROUNDS:-3}
KINDS=${KINDS:-"none shell cpu other backfill"}

bench_install
bench_start cpu_floor
bench_cluster
log_machine
log "run:         LAT_ROWS=$LAT_ROWS LOAD=$LOAD SECONDS_RUN=$SECONDS_RUN ROUNDS=$ROUNDS KINDS='$KINDS'"

cat >"$WORK/workload.sql" <<SQL
\set id random(1, $LAT_ROWS)
UPDATE t SET a = a + 1 WHERE id = :id;
SQL
q <<SQL
CREATE PROCEDURE cpu_work(seconds float8) LANGUAGE plpgsql AS \$\$
DECLARE x float8 := 0; stop timestamptz := clock_timestamp() + seconds * interval '1 s';
BEGIN
    WHILE clock_timestamp() < stop LOOP
        FOR i IN 1..10000 LOOP x := x + sqrt(i); END LOOP;
    END LOOP;
END \$\$;
CREATE PROCEDURE other_work(seconds float8) LANGUAGE plpgsql AS \$\$
DECLARE lo bigint := 1; stop timestamptz := clock_timestamp() + seconds * interval '1 s';
BEGIN
    WHILE clock_timestamp() < stop LOOP
        UPDATE t2 SET b = coalesce(b, 0) + 1 WHERE id BETWEEN lo AND lo + 1999;
        COMMIT;
        lo := CASE WHEN lo > $LAT_ROWS - 2000 THEN 1 ELSE lo + 2000 END;
    END LOOP;
END \$\$;
SQL
fresh() {
    q -c "DROP TABLE IF EXISTS t, t2" \
      -c "CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b int, n int NOT NULL DEFAULT 0)" \
      -c "INSERT INTO t (id, a) SELECT g, g FROM generate_series(1, $LAT_ROWS) g" \
      -c "CREATE TABLE t2 (LIKE t INCLUDING ALL)" -c "INSERT INTO t2 SELECT * FROM t" \
      -c "VACUUM ANALYZE t" -c "VACUUM ANALYZE t2" -c "CHECKPOINT"
}

section "closed-loop capacity, 15 s"
fresh
cap=$("$PG_BIN/pgbench" -n -f "$WORK/workload.sql" -c 4 -j 2 -T 15 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
RATE=$(awk -v t="$cap" -v p="$LOAD" 'BEGIN { printf "%d", t * p / 100 }')
log "capacity $cap TPS; load $LOAD% = -R $RATE"

# run KIND: one pgbench run with that competitor; prints "p50 p99 max".
run() {
    local kind=$1 dir=$WORK/run-$1 pid cpid="" t0 job
    rm -rf "$dir"; mkdir -p "$dir"
    fresh
    t0=$(date +%s.%N)
    "$PG_BIN/pgbench" -n -f "$WORK/workload.sql" -c 4 -j 2 -T "$SECONDS_RUN" -R "$RATE" -l --log-prefix="$dir/tx" >"$dir/out" 2>&1 &
    pid=$!; BG_PIDS+=("$pid")
    sleep 2
    case $kind in
        shell) nice -n 19 timeout "$((SECONDS_RUN - 2))" sh -c 'while :; do :; done' & cpid=$! ;;
        cpu|other) PGAPPNAME=${kind}_work q -c "CALL ${kind}_work($SECONDS_RUN - 2)" & cpid=$!
               sleep 0.3
               renice -n 19 -p "$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '${kind}_work'")" >/dev/null ;;
        backfill) job=$(q -c 'SET client_min_messages = warning' -c "SELECT migrate.backfill_start('t', 'b = a, n = n + 1')") ;;
    esac
    [ -z "$cpid" ] || BG_PIDS+=("$cpid")
    wait "$pid"
    [ -z "$cpid" ] || wait "$cpid" || true
    if [ "$kind" = backfill ]; then
        q -c "SELECT migrate.cancel($job)" >/dev/null
        q -c "CALL migrate.wait($job)" >/dev/null 2>&1 || true
    fi
    cat "$dir"/tx.* | awk -v lo="$(awk -v t="$t0" 'BEGIN { printf "%.6f", t + 3 }')" \
                          -v hi="$(awk -v t="$t0" -v s="$SECONDS_RUN" 'BEGIN { printf "%.6f", t + s - 1 }')" \
        '{ e = $5 + $6 / 1e6; if (e >= lo && e <= hi && $3 ~ /^[0-9]+$/) print $3 / 1000.0 }' | sort -g |
        awk '{ v[++n] = $1 } function pct(p,  i) { i = int(p * n); if (i < p * n) i++; return v[i] }
             END { printf "%.2f %.2f %.2f\n", pct(0.5), pct(0.99), v[n] }'
}

declare -A P99
read -ra kinds <<<"$KINDS"
for round in $(seq "$ROUNDS"); do
    section "round $round"
    n=${#kinds[@]}
    for i in $(seq 0 $((n - 1))); do
        kind=${kinds[$(((i + round - 1) % n))]}
        read -r p50 p99 max < <(run "$kind")
        P99[$round,$kind]=$p99
        log "$kind: p50 $p50 / p99 $p99 / max $max ms"
    done
    for kind in "${kinds[@]}"; do
        [ "$kind" = none ] || log "round $round p99 ratio $kind/none: $(awk -v a="${P99[$round,$kind]}" -v b="${P99[$round,none]}" 'BEGIN { printf "%.2f", a / b }')"
    done
done

section "summary: p99 ratio against no competitor, median (min-max) over $ROUNDS rounds"
for kind in "${kinds[@]}"; do
    [ "$kind" = none ] && continue
    ratios=()
    for round in $(seq "$ROUNDS"); do
        ratios+=("$(awk -v a="${P99[$round,$kind]}" -v b="${P99[$round,none]}" 'BEGIN { printf "%.2f", a / b }')")
    done
    log "$kind: $(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%s (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }')"
done
log "results: $RESULTS"
