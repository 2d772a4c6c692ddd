#!/usr/bin/env bash
# Cost of pg_migrate's generated sync trigger on writes, on a scratch PostgreSQL 15 cluster (see
# bench/README.md, "Sync trigger cost").
#
# Identical tables of ROWS rows (default 200000)
#     CREATE TABLE t_... (id bigint PRIMARY KEY, amount numeric, note text)
# are built, then:
#   t_without    nothing: the baseline;
#   t_with_up    SELECT migrate.expand_column('t_with_up', 'amount', new_name => 'amount_int',
#                    new_type => 'integer', up => 'round(amount)::int', backfill => '{"sleep_ms": 0}')
#   t_with_cast  SELECT migrate.expand_column('t_with_cast', 'amount', new_type => 'integer',
#                    backfill => '{"sleep_ms": 0}')   (the default casts, new column amount_new)
#   t_with_plpgsql  as t_with_up, made with SET migrate.compiled_sync_trigger = off: the generated
#                    PL/pgSQL trigger instead of the compiled migrate.sync_row
# (only when VARIANTS names it: t_with_floor, expanded like t_with_up, then its sync triggers
# replaced by PostgreSQL's own C trigger suppress_redundant_updates_trigger() on UPDATE, which does
# nearly nothing: the cost of having any BEFORE row trigger, a diagnostic;
# and t_with_noset: as t_with_plpgsql, then the generated trigger
# function's SET search_path clause removed with ALTER FUNCTION ... RESET search_path, a diagnostic)
# and the script waits for the backfills (CALL migrate.wait(backfill_job)), so that the BEFORE
# INSERT OR UPDATE trigger zz_migrate_sync_<change> is on the expanded tables while the changes
# stay open. The backfill rewrote every row of those tables once, so t_without gets one
# UPDATE t_without SET amount = amount as well; then all are VACUUM ANALYZEd.
#
# pgbench custom scripts (one autocommit statement per transaction), on each table:
#   update  \set id random(1, ROWS)
#           UPDATE t SET amount = amount + 1 WHERE id = :id;
#   insert  INSERT INTO t (id, amount, note) VALUES (nextval('t_ins'), round(:v / 100.0, 2), 'inserted');
#   bulk    UPDATE t SET amount = amount + 1 WHERE id BETWEEN :a AND :a + BULK - 1;
#           (each client its own 1000-row blocks, so that two clients never wait for each other)
# pgbench -n -M PROTOCOL -c CLIENTS -j THREADS -T DURATION. REPEAT rounds; in each round, for each
# script, the tables in a rotated order (without up cast, up cast without, cast without up).
# Every run starts after a CHECKPOINT, once the machine is quiet (see QUIET_MAX); after it, the
# trigger's result is checked on the expanded tables (rows where the new column differs from
# up(amount): must be 0), the rows an insert run added are deleted, and the table is VACUUM
# ANALYZEd. An untimed warm-up of every script on every table comes first. The summary reports
# the median TPS, the ratio with/without (targets: single-row >= 0.95, bulk >= 0.8), and how much CPU other processes took
# during each run.
#
# Environment: VARIANTS ("without up cast plpgsql": the compiled trigger migrate.sync_row with an
# up expression and with the default cast, and the generated PL/pgSQL trigger that
# migrate.compiled_sync_trigger = off gives; "noset" adds the PL/pgSQL diagnostic table),
# ROWS (200000), REPEAT (3), DURATION (15 s), WARMUP (3 s; 0 skips), CLIENTS (2),
# THREADS (2), PROTOCOL (simple|extended|prepared, default simple), BULK (1000), QUIET_MAX (10) and
# QUIET_TIMEOUT (180 s): before each timed run, wait up to QUIET_TIMEOUT s until the processes that
# are not this benchmark's use under QUIET_MAX% of the CPUs (a shared machine; 100 disables it),
# SCRIPTS ("update insert bulk"), AUTOVACUUM (off: the script vacuums after every run),
# WAL_PRECREATE_MB (WAL written once before the runs so that they recycle segments), QUICK=1
# (1 round of 5 s runs, 1 s warm-up: about a minute and a half), RESULTS_DIR, SKIP_INSTALL=1
# (measure the library already installed instead of running scripts/setup.sh and installing this
# checkout's build first). The cluster, its data and logs live in a temporary directory removed on
# exit, also on failure.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    REPEAT=${REPEAT:-1}
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-1}
else
    REPEAT=${REPEAT:-3}
    DURATION=${DURATION:-15}
    WARMUP=${WARMUP:-3}
fi
ROWS=${ROWS:-200000}
CLIENTS=${CLIENTS:-2}
THREADS=${THREADS:-2}
PROTOCOL=${PROTOCOL:-simple}
BULK=${BULK:-1000}
SCRIPTS=${SCRIPTS:-"update insert bulk"}
AUTOVACUUM=${AUTOVACUUM:-off}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-180}
# the goal of issue 21: single-row writes >= 0.95x, bulk updates >= 0.8x the table without a change
declare -A TARGET=([update]=0.95 [insert]=0.95 [bulk]=0.8)
PGROLL_SLOWDOWN=4.2
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
RESULTS=$RESULTS_DIR/sync_trigger-$(date +%Y%m%d-%H%M%S).txt

# The tables ("variants"): without is the baseline and must come first. noset is a diagnostic,
# not run by default: up's trigger with the SET search_path clause removed from its function.
read -r -a VARIANTS <<<"${VARIANTS:-without up cast plpgsql}"
declare -A TABLE=([without]=t_without [up]=t_with_up [cast]=t_with_cast [plpgsql]=t_with_plpgsql [noset]=t_with_noset [floor]=t_with_floor)
declare -A NEWCOL=([up]=amount_int [cast]=amount_new [plpgsql]=amount_int [noset]=amount_int [floor]=amount_int)
# floor keeps no column in step (its trigger does nothing): its check is trivially true
declare -A UPEXPR=([up]='round(amount)::int' [cast]='amount::integer' [plpgsql]='round(amount)::int' [noset]='round(amount)::int' [floor]='amount_int')
declare -A VNAME=([without]="without trigger" [up]="with trigger, up => round(amount)::int"
                  [cast]="with trigger, default cast" [plpgsql]="with the PL/pgSQL trigger (migrate.compiled_sync_trigger = off), up => round(amount)::int"
                  [noset]="with the PL/pgSQL trigger, up expr, no SET search_path (diagnostic)"
                  [floor]="the new column, and instead of the sync triggers PostgreSQL's own C trigger suppress_redundant_updates_trigger() on UPDATE, which only compares the old and new rows: the cost of any BEFORE row trigger (diagnostic)")
declare -A EXPAND
for v in up plpgsql noset floor; do
    EXPAND[$v]="SELECT migrate.expand_column('${TABLE[$v]}', 'amount', new_name => 'amount_int', new_type => 'integer', up => 'round(amount)::int', backfill => '{\"sleep_ms\": 0}')"
done
# the generated PL/pgSQL trigger, as 0.2.0 made it and as migrate.compiled_sync_trigger = off makes it
for v in plpgsql noset; do EXPAND[$v]="SET migrate.compiled_sync_trigger = off; ${EXPAND[$v]}"; done
EXPAND[cast]="SELECT migrate.expand_column('t_with_cast', 'amount', new_type => 'integer', backfill => '{\"sleep_ms\": 0}')"
WITH=()
for v in "${VARIANTS[@]}"; do
    if [ -z "${TABLE[$v]:-}" ]; then echo "unknown variant $v in VARIANTS (known: ${!TABLE[*]})" >&2; exit 2; fi
    if [ "$v" != without ]; then WITH+=("$v"); fi
done
if [ "${VARIANTS[0]}" != without ] || [ "${#WITH[@]}" = 0 ]; then echo "VARIANTS must start with without and name at least one other table" >&2; exit 2; fi
TABLES=$(for v in "${VARIANTS[@]}"; do printf '%s, ' "${TABLE[$v]}"; done | sed 's/, $//')
declare -A SNAME=([update]="update 1 row" [insert]="insert 1 row" [bulk]="bulk update $BULK rows")

source "$REPO/bench/lib.sh"
bench_install

# ---------------------------------------------------------------------------------------------
bench_start sync
detail() { printf '%s\n' "$*" >>"$RESULTS"; }
detail_file() { sed 's/^/    /' "$1" >>"$RESULTS"; }
fail() { log "ERROR: $*"; exit 1; }
# autovacuum is off by default here: each run is followed by a VACUUM ANALYZE of its table, and
# an autovacuum that lands in some runs and not in others would only add noise.
bench_cluster
if [ "$(q -c "SELECT count(*) FROM pg_proc WHERE proname = 'expand_column' AND pronamespace = 'migrate'::regnamespace")" = 0 ]; then
    fail "the installed pg_migrate ($SO) has no migrate.expand_column(): install a build with the expand/contract API"
fi

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
fmt0() { awk -v x="$1" 'BEGIN { if (x == "n/a" || x == "") print "n/a"; else printf "%.0f", x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "n/a" && a != "") printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | { grep -v '^n/a$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wal_lsn() { q -c 'SELECT pg_current_wal_lsn()'; }
wal_mb() { q -c "SELECT round(pg_wal_lsn_diff('$2', '$1') / 1048576.0, 1)"; }

log_machine
log "settings:    $(q -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
                            WHERE name IN ('shared_buffers', 'max_wal_size', 'min_wal_size', 'checkpoint_timeout', 'fsync',
                                           'synchronous_commit', 'full_page_writes', 'wal_level', 'autovacuum', 'jit', 'work_mem')")"
log "run:         VARIANTS='${VARIANTS[*]}' ROWS=$ROWS REPEAT=$REPEAT DURATION=$DURATION WARMUP=$WARMUP CLIENTS=$CLIENTS THREADS=$THREADS PROTOCOL=$PROTOCOL BULK=$BULK SCRIPTS='$SCRIPTS' QUIET_MAX=$QUIET_MAX QUIET_TIMEOUT=$QUIET_TIMEOUT"

# ---------------------------------------------------------------------------------------------
section "tables: $TABLES, $ROWS rows each; expand_column on all but t_without"
t0=$(now)
{
    echo "SET client_min_messages = warning;"
    echo "CREATE TABLE t_without (id bigint PRIMARY KEY, amount numeric, note text);"
    echo "INSERT INTO t_without SELECT g, round((g % 100000) / 100.0, 2), md5(g::text) FROM generate_series(1, $ROWS) AS g;"
    for v in "${WITH[@]}"; do
        echo "CREATE TABLE ${TABLE[$v]} (LIKE t_without INCLUDING ALL);"
        echo "INSERT INTO ${TABLE[$v]} SELECT * FROM t_without ORDER BY id;"
    done
    for v in "${VARIANTS[@]}"; do echo "CREATE SEQUENCE ${TABLE[$v]}_ins START $((ROWS + 1));"; done
    echo "VACUUM ANALYZE $TABLES;"
} | q
log "built in $(sub "$t0" "$(now)") s"

declare -A CHANGE JOB
expand() {
    local v=$1 sql=$2 t0 out
    t0=$(now)
    out=$WORK/expand-$v.log
    CHANGE[$v]=$(q -c "$sql" 2>"$out") || { log "$sql failed:"; log "$(cat "$out")"; exit 1; }
    JOB[$v]=$(q -c "SELECT backfill_job FROM migrate.all_changes WHERE change = ${CHANGE[$v]}")
    [ -n "${JOB[$v]}" ] || fail "change ${CHANGE[$v]} has no backfill_job in migrate.all_changes"
    q -c "CALL migrate.wait(${JOB[$v]})" >>"$out" 2>&1 || { log "CALL migrate.wait(${JOB[$v]}) failed:"; log "$(cat "$out")"; exit 1; }
    log "$sql"
    log "  -> change ${CHANGE[$v]}, backfill job ${JOB[$v]}: expand + backfill + wait took $(sub "$t0" "$(now)") s; job: $(q -c "SELECT format('state %s, queued->finished %s s', state, round(extract(epoch FROM finished_at - created_at), 3)) FROM migrate.jobs WHERE job = ${JOB[$v]}")"
    detail "  output (notices, migrate.wait progress):"
    detail_file "$out"
}
for v in "${WITH[@]}"; do expand "$v" "${EXPAND[$v]}"; done
if [ -n "${EXPAND[noset]:-}" ] && [[ " ${WITH[*]} " == *" noset "* ]]; then
    for fn in $(q -c "SELECT DISTINCT g.tgfoid::regprocedure FROM pg_trigger g WHERE g.tgrelid = 't_with_noset'::regclass AND NOT g.tgisinternal"); do
        q -c "ALTER FUNCTION $fn RESET search_path"
        log "diagnostic: ALTER FUNCTION $fn RESET search_path (its settings now: $(q -c "SELECT coalesce(proconfig::text, 'none') FROM pg_proc WHERE oid = '$fn'::regprocedure"))"
    done
fi

if [[ " ${WITH[*]} " == *" floor "* ]]; then
    for tg in $(q -c "SELECT tgname FROM pg_trigger WHERE tgrelid = 't_with_floor'::regclass AND NOT tgisinternal"); do
        q -c "DROP TRIGGER $tg ON t_with_floor"
    done
    q -c "CREATE TRIGGER zz_floor BEFORE UPDATE ON t_with_floor FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()"
    log "diagnostic: t_with_floor's sync triggers replaced by suppress_redundant_updates_trigger() on UPDATE (a C trigger that returns the row unchanged unless it is identical to the old one)"
fi

# The new columns and the triggers must be there, and the backfill must have filled every row.
for v in "${WITH[@]}"; do
    t=${TABLE[$v]} c=${NEWCOL[$v]}
    [ "$(q -c "SELECT count(*) FROM pg_attribute WHERE attrelid = '$t'::regclass AND attname = '$c' AND NOT attisdropped")" = 1 ] ||
        fail "$t has no column $c after expand_column: columns are $(q -c "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '$t'::regclass AND attnum > 0 AND NOT attisdropped")"
    trg=$(q -c "SELECT string_agg(pg_get_triggerdef(oid), '; ') FROM pg_trigger WHERE tgrelid = '$t'::regclass AND NOT tgisinternal")
    [ -n "$trg" ] || fail "$t has no trigger after expand_column"
    log "$t triggers: $trg"
    log "$t trigger function: $(q -c "SELECT string_agg(format('%s, language %s, volatility %s, settings %s, %s bytes of source', p.oid::regprocedure, l.lanname, p.provolatile, coalesce(p.proconfig::text, 'none'), length(p.prosrc)), '; ')
                                        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                                       WHERE p.oid IN (SELECT g.tgfoid FROM pg_trigger g WHERE g.tgrelid = '$t'::regclass AND NOT g.tgisinternal)")"
    detail "  its definition:"
    q -c "SELECT pg_get_functiondef(f) FROM (SELECT DISTINCT g.tgfoid AS f FROM pg_trigger g WHERE g.tgrelid = '$t'::regclass AND NOT g.tgisinternal) d" >"$WORK/fn-$v.sql"
    detail_file "$WORK/fn-$v.sql"
    bad=$(q -c "SELECT count(*) FROM $t WHERE $c IS DISTINCT FROM ${UPEXPR[$v]}")
    [ "$bad" = 0 ] || fail "after the backfill, $bad rows of $t have $c IS DISTINCT FROM ${UPEXPR[$v]}"
done
log "migrate.changes:"
q -F ' | ' -c "SELECT * FROM migrate.changes ORDER BY 1" >"$WORK/changes"
sed 's/^/    /' "$WORK/changes" | tee -a "$RESULTS"

# The backfill rewrote every row of the expanded tables once: the baseline gets the same.
q <<SQL
UPDATE t_without SET amount = amount;
VACUUM ANALYZE $TABLES;
CHECKPOINT;
SQL
sizes() {
    q -c "SELECT string_agg(format('%s ~%s rows, heap %s, pk %s', c.relname, c.reltuples::bigint,
                                   pg_size_pretty(pg_relation_size(c.oid)), pg_size_pretty(pg_relation_size(i.indexrelid))), '; ' ORDER BY c.relname)
            FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
           WHERE c.relname IN ('$(echo "$TABLES" | sed "s/, /', '/g")')"
}
log "sizes after UPDATE t_without SET amount = amount and VACUUM ANALYZE: $(sizes)"

# ---------------------------------------------------------------------------------------------
# The pgbench scripts, one per script and table.
NB=$(( ROWS / BULK / CLIENTS ))
[ "$NB" -ge 1 ] || fail "ROWS=$ROWS is too small for BULK=$BULK and CLIENTS=$CLIENTS"
for v in "${VARIANTS[@]}"; do
    t=${TABLE[$v]}
    cat >"$WORK/update-$v.sql" <<EOF
\set id random(1, $ROWS)
UPDATE $t SET amount = amount + 1 WHERE id = :id;
EOF
    cat >"$WORK/insert-$v.sql" <<EOF
\set v random(1, 10000000)
INSERT INTO $t (id, amount, note) VALUES (nextval('${t}_ins'), round(:v / 100.0, 2), 'inserted');
EOF
    # Client c updates the blocks b * CLIENTS + c: the clients' rows never overlap.
    cat >"$WORK/bulk-$v.sql" <<EOF
\set b random(0, $(( NB - 1 )))
\set a (:b * $CLIENTS + :client_id) * $BULK + 1
UPDATE $t SET amount = amount + 1 WHERE id BETWEEN :a AND :a + $(( BULK - 1 ));
EOF
done
detail "pgbench scripts (shown for $(printf '%s' "${TABLE[without]}"); the same on the other tables):"
for s in $SCRIPTS; do detail "  $s:"; detail_file "$WORK/$s-without.sql"; done

pgbench_tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$1"; }
pgbench_lat() { sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$1"; }
pgbench_failed() { sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$1"; }
pgbench_tx() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"; }

# The machine may be shared: how much CPU went to anything else during a run. cpu_snapshot prints
# the clock (s), the jiffies all CPUs spent busy (user, nice, system, irq, softirq), stolen by the
# hypervisor, and used by this benchmark: the postmaster, its live children and the children it
# reaped (the pgbench connections' backends), plus this shell's reaped children (pgbench).
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
proc_jiffies() { sed 's/^.*) //' "$1" 2>/dev/null | awk -v c="$2" '{ s = $12 + $13; if (c) s += $14 + $15; print s }'; }
cpu_snapshot() {
    local pm ours p
    pm=$(head -n 1 "$DATA/postmaster.pid")
    ours=$(( $(proc_jiffies "/proc/$pm/stat" 1) + $(proc_jiffies "/proc/$$/stat" 1) - $(proc_jiffies "/proc/$$/stat" 0) ))
    for p in $(pgrep -P "$pm"); do ours=$(( ours + $(proc_jiffies "/proc/$p/stat" 0 || echo 0) + 0 )); done
    awk -v now="$(now)" -v ours="$ours" '/^cpu / { printf "%s %d %d %d\n", now, $2 + $3 + $4 + $7 + $8, $9, ours }' /proc/stat
}
# cpu_other BEFORE AFTER: the share of all CPUs' time spent on other processes, and stolen.
cpu_other() {
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" -v n="$NCPU" 'BEGIN { split(a, x, " "); split(b, y, " "); t = (y[1] - x[1]) * hz * n
        o = (y[2] - x[2]) - (y[4] - x[4]); if (o < 0) o = 0
        if (t > 0) printf "%.1f %.1f\n", 100 * o / t, 100 * (y[3] - x[3]) / t; else print "n/a n/a" }'
}

# wait_quiet: before a run, waits (up to QUIET_TIMEOUT s) until other processes use less than
# QUIET_MAX% of the CPUs over a 2 s sample; prints what it waited, if anything.
wait_quiet() {
    local t0 c0 c1 other steal waited=0
    t0=$(now)
    while :; do
        c0=$(cpu_snapshot); sleep 2; c1=$(cpu_snapshot)
        read -r other steal < <(cpu_other "$c0" "$c1")
        if awk -v o="$other" -v st="$steal" -v m="$QUIET_MAX" 'BEGIN { exit !(o + st < m) }'; then break; fi
        waited=1
        if awk -v e="$(sub "$t0" "$(now)")" -v m="$QUIET_TIMEOUT" 'BEGIN { exit !(e >= m) }'; then
            echo "waited $(sub "$t0" "$(now)") s for the machine to quiet down, gave up (other processes ${other}%, stolen ${steal}%)"; return
        fi
    done
    if [ "$waited" = 1 ]; then echo "waited $(sub "$t0" "$(now)") s for other processes to use < ${QUIET_MAX}% of the CPUs"; fi
}

declare -A TPS LAT WALTX RATIO OTHER
PROBLEMS=()
mkdir -p "$WORK/runs"

# run_one SCRIPT VARIANT ROUND: a CHECKPOINT, pgbench for DURATION (WARMUP when ROUND is w), the
# trigger's result checked, the inserted rows deleted, VACUUM ANALYZE.
run_one() {
    local s=$1 v=$2 r=$3 t=${TABLE[$2]} out=$WORK/runs/$1-$2-$3.out rc=0 secs=$DURATION w0 w1 c0 c1 other steal quiet tps lat failed tx bad=
    [ "$r" = w ] && secs=$WARMUP
    q -c CHECKPOINT
    if [ "$r" != w ]; then
        quiet=$(wait_quiet)
        if [ -n "$quiet" ]; then log "         $(printf '%-24s %-13s' "${SNAME[$s]}" "$t") $quiet"; fi
    fi
    w0=$(wal_lsn)
    c0=$(cpu_snapshot)
    PGAPPNAME=pgbench_sync "$PG_BIN/pgbench" -n -M "$PROTOCOL" -f "$WORK/$s-$v.sql" -c "$CLIENTS" -j "$THREADS" \
        -T "$secs" >"$out" 2>&1 || rc=$?
    sleep 0.5   # the postmaster reaps the exiting backends
    c1=$(cpu_snapshot)
    read -r other steal < <(cpu_other "$c0" "$c1")
    w1=$(wal_lsn)
    tps=$(pgbench_tps "$out"); lat=$(pgbench_lat "$out"); failed=$(pgbench_failed "$out"); tx=$(pgbench_tx "$out")
    if [ -n "${NEWCOL[$v]:-}" ]; then
        bad=$(q -c "SELECT count(*) FROM $t WHERE ${NEWCOL[$v]} IS DISTINCT FROM ${UPEXPR[$v]}")
    fi
    if [ "$s" = insert ]; then q -c "DELETE FROM $t WHERE id > $ROWS"; fi
    q -c "VACUUM ANALYZE $t"
    if [ "$rc" != 0 ] || [ -z "$tps" ] || [ "${failed:-0}" != 0 ] || { [ -n "$bad" ] && [ "$bad" != 0 ]; }; then
        PROBLEMS+=("$s on $t, round $r: pgbench exit code $rc, failed transactions ${failed:-?}, rows with ${NEWCOL[$v]:-the new column} <> up(amount): ${bad:-n/a}; first errors: $(grep -m3 -iE 'error|abort' "$out" | tr '\n' ' ')")
        tps=n/a
    fi
    if [ "$r" = w ]; then
        log "warm-up  $(printf '%-24s %-13s' "${SNAME[$s]}" "$t") $secs s: tps ${tps:-n/a}; CPU of other processes ${other}%, stolen ${steal}%"
        return
    fi
    TPS[$s,$v,$r]=${tps:-n/a}; LAT[$s,$v,$r]=${lat:-n/a}; OTHER[$s,$v,$r]="$other $steal"
    WALTX[$s,$v,$r]=$(q -c "SELECT CASE WHEN ${tx:-0} > 0 THEN round(pg_wal_lsn_diff('$w1', '$w0') / 1024.0 / ${tx:-0}, 2) ELSE NULL END")
    WALTX[$s,$v,$r]=${WALTX[$s,$v,$r]:-n/a}
    log "round $r  $(printf '%-24s %-13s' "${SNAME[$s]}" "$t") tps ${TPS[$s,$v,$r]}, latency avg ${LAT[$s,$v,$r]} ms, $tx transactions, WAL $(wal_mb "$w0" "$w1") MB (${WALTX[$s,$v,$r]} kB/tx, full-page images included), failed ${failed:-?}, exit $rc${bad:+, rows with ${NEWCOL[$v]} <> up(amount): $bad}; CPU of other processes ${other}%, stolen ${steal}% (of $NCPU CPUs)"
    detail_file "$out"
}

# WAL segments: a bulk run writes over a GB of WAL. The first run that writes more than any run
# before it creates new 16 MB segment files, the later ones recycle them (min_wal_size = 8GB).
# Written once here, so that no timed run pays for creating them.
WAL_PRECREATE_MB=${WAL_PRECREATE_MB:-$(( DURATION * 200 > 1024 ? DURATION * 200 : 1024 ))}
t0=$(now)
q -c "SELECT count(pg_logical_emit_message(false, 'sync_trigger bench', repeat('x', 1048576))) FROM generate_series(1, $WAL_PRECREATE_MB)" >/dev/null
q -c CHECKPOINT
log "pre-created WAL segments: $WAL_PRECREATE_MB MB written in $(sub "$t0" "$(now)") s; pg_wal now holds $(q -c "SELECT count(*) || ' files, ' || pg_size_pretty(sum(size)) FROM pg_ls_waldir()")"

if [ "$WARMUP" != 0 ]; then
    section "warm-up (not counted): every script on every table, $WARMUP s each"
    for s in $SCRIPTS; do for v in "${VARIANTS[@]}"; do run_one "$s" "$v" w; done; done
fi

t_runs=$(now)
nv=${#VARIANTS[@]}
for r in $(seq 1 "$REPEAT"); do
    section "round $r of $REPEAT: pgbench -n -M $PROTOCOL -c $CLIENTS -j $THREADS -T $DURATION"
    detail "load average before the round: $(cut -d' ' -f1-3 /proc/loadavg)"
    for s in $SCRIPTS; do
        # Round r runs the tables in a rotated order: without up cast, up cast without, ...
        for k in $(seq 0 $(( nv - 1 ))); do
            run_one "$s" "${VARIANTS[$(( (r - 1 + k) % nv ))]}" "$r"
        done
    done
done
log "timed rounds took $(sub "$t_runs" "$(now)") s; sizes at the end: $(sizes)"
q -c "SELECT pg_stat_force_next_flush()" >/dev/null
log "updates since the start, from pg_stat_user_tables (the warm-up and the backfill included): $(q -c "SELECT string_agg(format('%s %s updated, %s%% HOT', relname, n_tup_upd, round(100.0 * n_tup_hot_upd / nullif(n_tup_upd, 0), 1)), '; ' ORDER BY relname)
                                                       FROM pg_stat_user_tables WHERE relname IN ('$(echo "$TABLES" | sed "s/, /', '/g")')")"

log "server log lines about pg_migrate, errors and checkpoints:"
grep -E 'pg_migrate|ERROR|FATAL|PANIC|terminated by signal|checkpoint starting: (wal|time)' "$WORK/server.log" | grep -v 'checkpoint starting: immediate' |
    sed 's/^/    /' | tee -a "$RESULTS" >/dev/null || true
echo "    (written to $RESULTS)"

# ---------------------------------------------------------------------------------------------
section "summary"
{
    echo "pgbench -n -M $PROTOCOL -c $CLIENTS -j $THREADS -T $DURATION on $ROWS-row tables, $REPEAT round(s)."
    echo "TPS: the median, each round's TPS in brackets. with/without: median TPS / median TPS of t_without, in brackets the"
    echo "same ratio within each round. Latency: pgbench's average; WAL: kB per transaction, full-page images included (each"
    echo "run starts after a CHECKPOINT); both the median of the rounds."
    fmt='%-22s | %-13s | %-30s | %-24s | %-8s | %-8s\n'
    # shellcheck disable=SC2059
    printf "$fmt" script table "TPS [rounds]" "with/without [rounds]" "lat ms" "WAL kB"
    printf '%s\n' "-----------------------+---------------+--------------------------------+--------------------------+----------+---------"
    for s in $SCRIPTS; do
        for v in "${VARIANTS[@]}"; do
            vals=(); lats=(); wals=()
            for r in $(seq 1 "$REPEAT"); do vals+=("${TPS[$s,$v,$r]}"); lats+=("${LAT[$s,$v,$r]}"); wals+=("${WALTX[$s,$v,$r]}"); done
            TPS[$s,$v]=$(median "${vals[@]}")
            cell="$(fmt0 "${TPS[$s,$v]}") [$(for x in "${vals[@]}"; do printf '%s/' "$(fmt0 "$x")"; done | sed 's:/$::')]"
            rcell=
            if [ "$v" != without ]; then
                RATIO[$s,$v]=$(ratio "${TPS[$s,$v]}" "${TPS[$s,without]}")
                rcell="${RATIO[$s,$v]} [$(for r in $(seq 1 "$REPEAT"); do printf '%s/' "$(ratio "${TPS[$s,$v,$r]}" "${TPS[$s,without,$r]}")"; done | sed 's:/$::')]"
            fi
            # shellcheck disable=SC2059
            printf "$fmt" "${SNAME[$s]}" "${TABLE[$v]}" "$cell" "$rcell" "$(median "${lats[@]}")" "$(median "${wals[@]}")"
        done
    done
    echo
    for v in "${WITH[@]}"; do echo "${TABLE[$v]}: ${VNAME[$v]}"; done
    if [[ " $SCRIPTS " == *" bulk "* ]]; then
        echo
        for v in "${WITH[@]}"; do
            echo "bulk update, ${TABLE[$v]}: $(awk -v w="${TPS[bulk,without]}" -v x="${TPS[bulk,$v]}" -v b="$BULK" 'BEGIN { if (x != "n/a" && w != "n/a" && x > 0) printf "%.0f rows/s vs %.0f rows/s without: %.2fx slowdown", x * b, w * b, w / x; else print "n/a" }') (pgroll publishes a ${PGROLL_SLOWDOWN}x slowdown on bulk updates)"
        done
    fi
    echo
    echo "Targets with/without (single-row >= ${TARGET[update]}, bulk >= ${TARGET[bulk]}):$(for s in $SCRIPTS; do for v in "${WITH[@]}"; do x=${RATIO[$s,$v]}; printf ' %s %s %s %s;' "$s" "${TABLE[$v]}" "$x" "$(awk -v x="$x" -v t="${TARGET[$s]}" 'BEGIN { print (x != "n/a" && x >= t) ? "met" : "MISSED" }')"; done; done)"
    echo
    others=(); worst=
    for s in $SCRIPTS; do for v in "${VARIANTS[@]}"; do for r in $(seq 1 "$REPEAT"); do
        read -r o st <<<"${OTHER[$s,$v,$r]}"; others+=("$o")
        if awk -v o="$o" -v st="$st" 'BEGIN { exit !(o + st >= 5) }'; then worst+=" $s/${TABLE[$v]}/round $r: ${o}% + ${st}% stolen;"; fi
    done; done; done
    echo "CPU used by other processes (not this cluster or pgbench) during the timed runs: median $(median "${others[@]}")%, max $(printf '%s\n' "${others[@]}" | sort -g | tail -n 1)% of $NCPU CPUs."
    echo "Runs with >= 5% of the CPUs taken by other processes or stolen:${worst:- none}"
    if [ "${#PROBLEMS[@]}" = 0 ]; then
        echo "Problems: none (every pgbench run exited 0 with 0 failed transactions; after every run, 0 rows of the expanded tables had new column <> up(amount))"
    else
        echo "Problems:"
        for p in "${PROBLEMS[@]}"; do echo "  $p"; done
    fi
    so_replaced
} | tee -a "$RESULTS"
echo
echo "results written to $RESULTS"
