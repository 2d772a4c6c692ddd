#!/usr/bin/env bash
# Sets everything up and runs every test:
#   1. #[pg_test]s inside PostgreSQL (each in a transaction that is rolled back),
#   2. integration tests (pgrx-tests/): real servers on free ports, real client sessions,
#   3. the examples (examples/<tool>/test.sh): the real migration tools and drivers calling
#      pg_migrate, each against its own server,
#   4. the package: a .deb built (debug profile) and checked in a private copy of PostgreSQL.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/setup.sh"

say "unit tests inside PostgreSQL $PG_MAJOR"
# The test cluster's data lives outside the checkout: the postgres user may not be able to
# enter the directory the repository was cloned into (for example under /root).
PGRX_TEST_DIR=${TMPDIR:-/tmp}/pg_migrate_pgrx_test
install -d -o postgres -m 700 "$PGRX_TEST_DIR"
cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$PGRX_TEST_DIR/data"

say "installing the extension for the integration tests"
install_extension

say "integration tests (real servers, real clients)"
cargo test -p pg_migrate_integration -- --test-threads 2

SKIP_INSTALL=1 "$REPO/scripts/examples.sh"

PROFILE=debug "$REPO/scripts/package.sh"

say "all tests passed"
