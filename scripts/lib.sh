# Shared by the scripts in this folder. Source it; it does nothing by itself.
PG_MAJOR=15
# PG_BIN may point at another PostgreSQL 15 installation; Debian's is the default.
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
PG_CONFIG=$PG_BIN/pg_config
PGRX_VERSION=0.18.1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RUST_BACKTRACE=0

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Run a command as the postgres user when we are root (Postgres refuses to run as root).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A free TCP port on 127.0.0.1.
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "$port"; return; fi
    done
    echo "no free port found" >&2; return 1
}

# stage_extension DIR: build the extension with `cargo pgrx package` into DIR, a tree of the files
# to install under their absolute paths (usr/lib/postgresql/15/lib/…, usr/share/postgresql/15/…),
# plus the scripts of sql/versions/ (earlier releases and the updates from them), which pgrx does
# not know about. PROFILE=debug (the default here) or release.
stage_extension() {
    local out=$1 flags=()
    case ${PROFILE:-debug} in
        debug) flags=(--debug) ;;
        release) ;;
        *) flags=(--profile "$PROFILE") ;;
    esac
    (cd "$REPO" && cargo pgrx package --pg-config "$PG_CONFIG" "${flags[@]}" --out-dir "$out")
    install -m 644 "$REPO"/sql/versions/pg_migrate--*.sql "$out$("$PG_CONFIG" --sharedir)/extension/"
}

# Build the extension and install it into Debian's PostgreSQL 15. Each file is copied next to its
# destination and renamed over it, as package managers do: overwriting pg_migrate.so in place,
# which `cargo pgrx install` does, crashes running backends that have the library loaded.
install_extension() {
    local stage
    stage=$(mktemp -d /tmp/pg_migrate_stage.XXXXXX)
    stage_extension "$stage" || { rm -rf "$stage"; return 1; }
    (cd "$stage" && find . -type f | sed 's/^\.//') | while read -r f; do
        install -D -m 644 "$stage$f" "$f.pg_migrate_new" && mv -f "$f.pg_migrate_new" "$f"
        echo "installed $f"
    done
    rm -rf "$stage"
}

# A throwaway cluster for the demo and reports. `scratch_dir NAME` makes WORK (owned by postgres)
# and sets DATA; `start_scratch_cluster` starts it on a free port (sets PORT) with its socket in
# WORK; `stop_scratch_cluster` stops it and removes WORK (call it from an EXIT trap).
scratch_dir() {
    WORK=$(mktemp -d "/tmp/pg_migrate_$1.XXXXXX")
    DATA=$WORK/data
    if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; fi
}

start_scratch_cluster() {
    PORT=$(free_port)
    as_postgres "$PG_BIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --locale=C --no-sync \
        --no-instructions >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; return 1; }
    cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
fsync = off
EOF
    as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w -t 60 start >/dev/null ||
        { cat "$WORK/server.log" >&2; return 1; }
}

stop_scratch_cluster() {
    if [ -f "$DATA/postmaster.pid" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 20 stop >/dev/null 2>&1 ||
            as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -m immediate -w -t 20 stop >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
