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

# Build the extension and install it into Debian's PostgreSQL 15.
install_extension() {
    (cd "$REPO" && cargo pgrx install --pg-config "$PG_CONFIG" "$@")
}
