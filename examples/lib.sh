# Shared by the examples' test.sh scripts. Source it; it does nothing by itself.
#
# start_example_db starts a throwaway PostgreSQL 15 cluster on a free port with pg_migrate
# installed in the database `app`, exports the libpq variables and DATABASE_URL for the tool
# under test, and removes the cluster when the script exits, whether it passed or not.
# The extension must already be installed (scripts/examples.sh does that).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
EXAMPLES=$REPO/examples
set -euo pipefail

start_example_db() {
    scratch_dir "example_$1"
    trap stop_scratch_cluster EXIT
    start_scratch_cluster
    export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=app
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/app"
    LOGS=$WORK/logs
    mkdir -p "$LOGS"
    psql -qX -d postgres -v ON_ERROR_STOP=1 -c 'CREATE DATABASE app;'
    psql -qX -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION pg_migrate;'
}

# q SQL: the query's result, unaligned, without headers (one line per row, columns split by |).
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# expect SQL WANT: fail the example unless the query returns exactly WANT.
expect() {
    local got
    got=$(q "$1")
    if [ "$got" != "$2" ]; then
        printf 'FAILED: %s\n  expected: %s\n  got:      %s\n' "$1" "$2" "$got" >&2
        exit 1
    fi
    printf 'ok: %s -> %s\n' "$1" "$(printf '%s' "$got" | tr '\n' ' ')"
}

# run_logged LOG COMMAND...: the command must succeed; its output is kept in $LOGS/LOG and shown.
run_logged() {
    local log=$1 rc=0; shift
    "$@" >"$LOGS/$log" 2>&1 || rc=$?
    sed 's/^/    /' "$LOGS/$log"
    [ "$rc" = 0 ] || { printf 'FAILED: %s exited with %s\n' "$*" "$rc" >&2; exit 1; }
}

# printed LOG TEXT: $LOGS/LOG must contain TEXT.
printed() {
    grep -qF -- "$2" "$LOGS/$1" || { printf 'FAILED: %s does not contain "%s"\n' "$1" "$2" >&2; exit 1; }
    printf 'ok: printed "%s"\n' "$2"
}

# expect_fail WANT_SUBSTRING COMMAND...: the command must fail and print WANT_SUBSTRING.
expect_fail() {
    local want=$1 out; shift
    if out=$("$@" 2>&1); then
        printf 'FAILED: expected %s to fail, it succeeded:\n%s\n' "$*" "$out" >&2; exit 1
    fi
    if [[ $out != *"$want"* ]]; then
        printf 'FAILED: %s failed without "%s":\n%s\n' "$*" "$want" "$out" >&2; exit 1
    fi
    printf 'ok: fails with "%s"\n' "$want"
}

# up_to_date DIR FILE: true when DIR/.stamp records FILE's current hash (DIR was built from it).
# stamp DIR FILE records it. Installs are skipped while their lock file is unchanged.
up_to_date() { [ "$(cat "$1/.stamp" 2>/dev/null)" = "$(sha256sum "$2" | cut -c1-16)" ]; }
stamp() { sha256sum "$2" | cut -c1-16 >"$1/.stamp"; }

# expect_accounts_contracted: the accounts table of the Alembic and Django examples after their
# expand/contract (balance numeric → balance_cents bigint, 50,000 seeded rows): the new column
# in place with its default, every value converted, the CHECK moved, the sync trigger gone.
expect_accounts_contracted() {
    expect "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '-'), ', '
                   ORDER BY ordinal_position)
              FROM information_schema.columns WHERE table_name = 'accounts'" \
        "id bigint NO -, email text NO -, balance_cents bigint NO 0"
    expect "SELECT count(*), sum(balance_cents), count(*) FILTER (WHERE balance_cents <> id * 125) FROM accounts" \
        "50000|156253125000|0"
    expect "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'accounts_balance_check'" \
        "CHECK (((balance_cents)::numeric >= (0)::numeric))"
    expect "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass" 0
}

# npm_install DIR: `npm ci` in DIR unless its node_modules were installed from this package-lock.json.
npm_install() {
    up_to_date "$1/node_modules" "$1/package-lock.json" && return
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    stamp "$1/node_modules" "$1/package-lock.json"
}

# python_env: a virtualenv in examples/.venv with examples/requirements.txt installed, reused
# while the requirements file is unchanged. Puts its bin/ first on PATH.
python_env() {
    local venv=$EXAMPLES/.venv
    if ! up_to_date "$venv" "$EXAMPLES/requirements.txt"; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$EXAMPLES/requirements.txt"
        stamp "$venv" "$EXAMPLES/requirements.txt"
    fi
    export PATH=$venv/bin:$PATH
}
