#!/usr/bin/env bash
# Builds pg_migrate's installable artefacts for one PostgreSQL major (PG_MAJOR, default 15) into
# dist/ and checks them:
#   dist/pg_migrate-<version>-pg<major>-<arch>.tar.gz          files under usr/; `tar -C / -xzf` installs
#   dist/postgresql-<major>-pg-migrate_<version>_<arch>.deb    `apt install ./…deb` installs
# Both hold the library, the control file, the current version's script and, from sql/versions/,
# the scripts of earlier releases and the updates from them, laid out as Debian's and PGDG's
# postgresql-<major> packages are (/usr/lib/postgresql/<major>/lib, /usr/share/postgresql/<major>).
#
# It builds against PG_BIN's pg_config (lib.sh: Debian's for 15, the project-owned installation
# for 16-18). The check copies that PostgreSQL into a private directory (the server finds its
# library and share directories relative to its binaries), removes every earlier pg_migrate file
# from the copy, puts the .deb's files where the copy's pg_config says they go (for Debian's
# layout that is exactly where dpkg puts them), then creates the extension there, updates it from
# the first release, and runs a job through the launcher that shared_preload_libraries loads.
#
#   bash scripts/package.sh                              # release build (optimised; what to ship)
#   PROFILE=debug bash scripts/package.sh                # quick unoptimised build (what the tests use)
#   PG_MAJOR=18 bash scripts/package.sh                  # for PostgreSQL 18
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

PROFILE=${PROFILE:-release}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
NAME=postgresql-$PG_MAJOR-pg-migrate
DIST=$REPO/dist
STAGE=$(mktemp -d /tmp/pg_migrate_package.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT

say "building pg_migrate $VERSION ($PROFILE) for PostgreSQL $PG_MAJOR ($PG_CONFIG)"
[[ "$("$PG_CONFIG" --version)" == "PostgreSQL $PG_MAJOR."* ]] ||
    { echo "$PG_CONFIG is not PostgreSQL $PG_MAJOR: $("$PG_CONFIG" --version)" >&2; exit 1; }
build=$STAGE/build
PROFILE=$PROFILE stage_extension "$build" >"$STAGE/build.log" 2>&1 || { cat "$STAGE/build.log" >&2; exit 1; }
root=$STAGE/root
lib=usr/lib/postgresql/$PG_MAJOR/lib
ext=usr/share/postgresql/$PG_MAJOR/extension
install -d "$root/$lib" "$root/$ext"
cp -a "$build$("$PG_CONFIG" --pkglibdir)/." "$root/$lib/"
cp -a "$build$("$PG_CONFIG" --sharedir)/extension/." "$root/$ext/"
[ "$(find "$build" -type f | wc -l)" = "$(find "$root" -type f | wc -l)" ] ||
    { echo "the build staged files outside pkglibdir and sharedir/extension:" >&2; find "$build" -type f >&2; exit 1; }
install -D -m 644 README.md "$root/usr/share/doc/$NAME/README.md"
install -D -m 644 docs/*.md -t "$root/usr/share/doc/$NAME/docs/"

mkdir -p "$DIST"
tarball=$DIST/pg_migrate-$VERSION-pg$PG_MAJOR-$ARCH.tar.gz
tar -C "$root" --owner=0 --group=0 -czf "$tarball" usr

mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: pg_migrate developers <pg_migrate@localhost>
Depends: postgresql-$PG_MAJOR, libc6
Section: database
Priority: optional
Description: safe, zero-downtime schema migrations from inside PostgreSQL $PG_MAJOR
 pg_migrate is a PostgreSQL extension: tracked, checksummed migrations with
 rollback, background jobs for CREATE INDEX CONCURRENTLY and validations,
 batched resumable backfills, and expand/contract column changes with
 generated sync triggers. CREATE EXTENSION pg_migrate in each database.
EOF
deb=$DIST/${NAME}_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "built $tarball"
echo "built $deb"
dpkg-deb --contents "$deb" | awk '{print "  " $6}' | grep -v '/$'

say "checking the package in a private copy of PostgreSQL $PG_MAJOR"
pg=$STAGE/pg
case $PG_BIN in
    */usr/lib/postgresql/$PG_MAJOR/bin)   # Debian's layout (the system's, or a copy of it)
        prefix=${PG_BIN%/usr/lib/postgresql/$PG_MAJOR/bin}
        mkdir -p "$pg/usr/lib/postgresql" "$pg/usr/share/postgresql"
        cp -a "$prefix/usr/lib/postgresql/$PG_MAJOR" "$pg/usr/lib/postgresql/"
        cp -a "$prefix/usr/share/postgresql/$PG_MAJOR" "$pg/usr/share/postgresql/"
        PG_BIN=$pg/usr/lib/postgresql/$PG_MAJOR/bin ;;
    *)                                    # one prefix with bin/, lib/, share/ (the PyPI builds)
        cp -a "$PG_BIN/.." "$pg"
        PG_BIN=$pg/bin ;;
esac
pkglibdir=$("$PG_BIN/pg_config" --pkglibdir)
extdir=$("$PG_BIN/pg_config" --sharedir)/extension
[[ $pkglibdir == "$pg/"* && $extdir == "$pg/"* ]] ||
    { echo "this PostgreSQL is not relocatable; cannot check the package" >&2; exit 1; }
rm -f "$pkglibdir"/pg_migrate* "$extdir"/pg_migrate*
dpkg-deb -x "$deb" "$STAGE/deb"
cp -a "$STAGE/deb/$lib/." "$pkglibdir/"
cp -a "$STAGE/deb/$ext/." "$extdir/"

chmod 755 "$STAGE"
scratch_dir package
trap 'stop_scratch_cluster; rm -rf "$STAGE"' EXIT
start_scratch_cluster
psql() { "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c 'CREATE DATABASE app;'
printf "shared_preload_libraries = 'pg_migrate'\nmigrate.database_name = 'app'\n" >>"$DATA/postgresql.conf"
as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w -t 60 restart >/dev/null
first=$(ls sql/versions | sed -n 's/^pg_migrate--\([0-9.]*\)\.sql$/\1/p' | sort -V | head -1)
got=$(psql -d app -At <<SQL
CREATE EXTENSION pg_migrate VERSION '$first';
ALTER EXTENSION pg_migrate UPDATE;
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;
SELECT migrate.apply('1_idx', 'CREATE INDEX CONCURRENTLY t_v_idx ON t (v);', 'DROP INDEX CONCURRENTLY t_v_idx;');
\\c app
CALL migrate.wait_version('1_idx');
SELECT extversion FROM pg_extension WHERE extname = 'pg_migrate';
SELECT state FROM migrate.status();
SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v_idx'::regclass;
SQL
)
want=$(printf 'applying\n%s\napplied\nt' "$VERSION")
if [ "$got" != "$want" ]; then
    printf 'package check FAILED\nexpected:\n%s\ngot:\n%s\n' "$want" "$got" >&2
    tail -20 "$WORK/server.log" >&2
    exit 1
fi
# the postmaster starts the launcher after recovery, so give it a few seconds rather than one look
launcher=0
for _ in $(seq 50); do
    [ "$(psql -d app -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate launcher'")" = 1 ] &&
        { launcher=1; break; }
    sleep 0.2
done
[ "$launcher" = 1 ] ||
    { echo "package check FAILED: no pg_migrate launcher running with shared_preload_libraries" >&2; exit 1; }
echo "ok: the .deb installs into PostgreSQL $PG_MAJOR: CREATE EXTENSION VERSION '$first', UPDATE to $VERSION, a job run by a worker, the launcher preloaded"
