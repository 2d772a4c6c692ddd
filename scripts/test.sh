#!/usr/bin/env bash
# Sets everything up and runs every test:
#   1. #[pg_test]s inside PostgreSQL (each in a transaction that is rolled back),
#   2. integration tests (pgrx-tests/): real servers on free ports, real client sessions.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/setup.sh"

say "unit tests inside PostgreSQL $PG_MAJOR"
install -d -o postgres "$REPO/target/pgrx-test"
cargo pgrx test pg$PG_MAJOR --runas postgres --pgdata "$REPO/target/pgrx-test/data"

say "installing the extension for the integration tests"
install_extension

say "integration tests (real servers, real clients)"
cargo test -p pg_migrate_integration -- --test-threads 2

say "all tests passed"
