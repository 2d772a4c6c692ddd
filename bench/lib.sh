# Shared by the benchmarks that measure pg_migrate on a scratch cluster (backfill.sh,
# sync_trigger.sh): the prerequisites, a private copy of the library, the cluster with the
# benchmark settings, the results file, and a cleanup that always removes the cluster.
# Source it after scripts/lib.sh, with RESULTS_DIR, RESULTS and AUTOVACUUM set.

# Like the demo: the prerequisites (PostgreSQL 15 with pgbench, cargo-pgrx) and this checkout's
# build of the extension in the cargo profile PROFILE (scripts/lib.sh: debug unless the caller
# sets it; backfill.sh sets release), unless SKIP_INSTALL=1 asks to measure the library already
# installed.
bench_install() {
    if [ "${SKIP_INSTALL:-0}" != 1 ]; then
        "$REPO/scripts/setup.sh"
        install_extension
    fi
}

# The installed library. A reinstall (cargo pgrx install rewrites the file in place) crashes the
# backends that have it loaded, so the cluster loads a copy taken at the start: the control file's
# module_pathname is 'pg_migrate', found through dynamic_library_path, which lists the copy's
# directory first.
# SO is found once PostgreSQL is installed (bench_install may install it).
SO=
SO_STAMP=
so_replaced() {
    local now
    [ -n "$SO" ] || return 0
    now=$(stat -c '%y' "$SO" 2>/dev/null | cut -d. -f1)
    if [ "$now" != "$SO_STAMP" ]; then echo "note: the installed $SO was replaced during the run (it was from $SO_STAMP, it is now from $now); this run used the copy taken at the start"; fi
}
# snapshot_library: copies the installed library to $WORK/lib (a new file, renamed into place).
snapshot_library() {
    SO=${SO:-$("$PG_CONFIG" --pkglibdir)/pg_migrate.so}
    mkdir -p "$WORK/lib"
    for _ in 1 2 3 4 5 6; do
        SO_STAMP=$(stat -c '%y' "$SO" | cut -d. -f1)
        cp "$SO" "$WORK/lib/pg_migrate.so.new"
        if cmp -s "$SO" "$WORK/lib/pg_migrate.so.new" && [ "$(stat -c '%y' "$SO" | cut -d. -f1)" = "$SO_STAMP" ]; then
            mv -f "$WORK/lib/pg_migrate.so.new" "$WORK/lib/pg_migrate.so"
            return
        fi
        sleep 5
    done
    echo "could not copy $SO: it keeps changing" >&2
    return 1
}

# Background processes (pgbench, samplers) that the cleanup stops.
BG_PIDS=()

bench_cleanup() {
    local rc=$?
    set +e
    cd /
    for pid in "${BG_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    done
    if [ "$rc" != 0 ]; then so_replaced >&2; fi
    if [ "$rc" != 0 ] && [ -f "$WORK/server.log" ]; then
        cp "$WORK/server.log" "${RESULTS%.txt}-server.log"
        echo "the server log is kept in ${RESULTS%.txt}-server.log" >&2
    fi
    stop_scratch_cluster
    if [ "$rc" != 0 ]; then echo "benchmark failed (exit code $rc); the scratch cluster was stopped and removed" >&2; fi
    exit "$rc"
}

# bench_start NAME: the scratch directory, the cleanup on every exit, an empty results file.
bench_start() {
    scratch_dir "$1"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$RESULTS_DIR"
    : >"$RESULTS"
}

# What is worth keeping goes to stdout and to the results file.
log() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
section() { say "$*"; printf '\n== %s\n' "$*" >>"$RESULTS"; }

# psql: no psqlrc, stop at the first error, unaligned tuples only.
q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

# bench_cluster [EXTRA_SETTINGS]: starts the cluster on the library's copy with the benchmark
# settings (plus EXTRA_SETTINGS, more ALTER SYSTEM lines), and creates the database bench with
# the extension. fsync = off comes from scripts/lib.sh (start_scratch_cluster) and is kept: these
# runs are CPU and memory bound, not bound by disk flushes. min_wal_size is large so that WAL
# segments, once created, are recycled rather than created again.
bench_cluster() {
    say "starting a scratch PostgreSQL $PG_MAJOR cluster (data in $WORK)"
    start_scratch_cluster
    snapshot_library
    export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=bench PGAPPNAME=pg_migrate_bench
    unset PGSERVICE PGPASSWORD PGOPTIONS
    q -d postgres <<SQL
ALTER SYSTEM SET shared_buffers = '1GB';
ALTER SYSTEM SET max_wal_size = '20GB';
ALTER SYSTEM SET min_wal_size = '8GB';
ALTER SYSTEM SET checkpoint_timeout = '1h';
ALTER SYSTEM SET maintenance_work_mem = '512MB';
ALTER SYSTEM SET synchronous_commit = 'on';
ALTER SYSTEM SET autovacuum = '$AUTOVACUUM';
ALTER SYSTEM SET log_checkpoints = 'on';
${1:-}
ALTER SYSTEM SET dynamic_library_path = '$WORK/lib:\$libdir';
SQL
    as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w -t 60 restart >/dev/null ||
        { cat "$WORK/server.log" >&2; exit 1; }
    q -d postgres -c 'CREATE DATABASE bench'
    q -c 'CREATE EXTENSION pg_migrate'
    # The extension's SQL script must match the copy: taken again if a reinstall came in between.
    if [ -n "$(so_replaced)" ]; then
        q -c 'DROP EXTENSION pg_migrate'
        snapshot_library
        q -c 'CREATE EXTENSION pg_migrate'
    fi
}

# The "machine and settings" section's first lines: the machine, PostgreSQL, and which copy of
# the library the cluster loaded.
log_machine() {
    section "machine and settings"
    log "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
    log "cpus:        $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
    log "memory:      $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)"
    log "postgres:    $(q -c 'SELECT version()')"
    log "pgbench:     $("$PG_BIN/pgbench" --version)"
    log "pg_migrate:  $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_migrate'"), a copy of $SO from $SO_STAMP UTC (md5 $(md5sum "$WORK/lib/pg_migrate.so" | cut -c1-12)); repository HEAD then: $(git -C "$REPO" log -1 --format='%h %cd' --date=format:'%Y-%m-%d %H:%M' 2>/dev/null || echo '?')"
    log "loaded from: $(q -c "SELECT current_setting('dynamic_library_path')")"
}
