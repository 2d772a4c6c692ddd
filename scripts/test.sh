#!/usr/bin/env bash
# Sets everything up and runs every test, on the project-owned PostgreSQL installations (see
# lib.sh; nothing is written into the system's PostgreSQL):
#   1. #[pg_test]s inside PostgreSQL (each in a transaction that is rolled back), per major,
#   2. integration tests (pgrx-tests/): real servers on free ports, real client sessions, per major,
#   3. the examples (examples/<tool>/test.sh): the real migration tools and drivers calling
#      pg_migrate, each against its own server (PostgreSQL 15),
#   4. the package per major: built (debug profile) and checked in a private copy of PostgreSQL.
# Which majors run which part (the measured times are in docs/testing.md):
#   UNIT_MAJORS         the #[pg_test]s                          default: 15 16 17 18
#   INTEGRATION_MAJORS  the whole integration suite              default: 15 16 17 18
#   SECURITY_MAJORS     only the integration suite's security and update tests (for majors left
#                       out of INTEGRATION_MAJORS, if CI's time ever needs it)   default: none
#   PACKAGE_MAJORS      the package and its check                default: 15 16 17 18
# and the examples run on 15 (EXAMPLES=0 skips them). A summary of the stages' wall times ends
# the output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

UNIT_MAJORS=${UNIT_MAJORS-15 16 17 18}
INTEGRATION_MAJORS=${INTEGRATION_MAJORS-15 16 17 18}
SECURITY_MAJORS=${SECURITY_MAJORS-}
PACKAGE_MAJORS=${PACKAGE_MAJORS-15 16 17 18}
EXAMPLES=${EXAMPLES-1}
# The integration tests that SECURITY_MAJORS run: every test target named security*, and upgrade.
SECURITY_TESTS=(--test upgrade $(cd pgrx-tests/tests && ls security*.rs | sed 's/\.rs$//; s/^/--test /'))

TIMES=()
FAILED=()
T0=$SECONDS
# stage NAME COMMAND...: runs COMMAND and records how long it took. A stage that fails is
# recorded and the next one runs (the script fails at the end): one run shows every failure.
# (COMMAND runs as a background job and is waited for, so that `set -e` still holds inside it.)
stage() {
    local name=$1 start=$SECONDS rc=0; shift
    say "$name"
    "$@" &
    wait $! || rc=$?
    local verdict=
    if [ "$rc" != 0 ]; then verdict="  FAILED (exit code $rc)"; FAILED+=("$name"); fi
    TIMES+=("$(printf '%6ss  %s%s' $((SECONDS - start)) "$name" "$verdict")")
    echo "($name: $((SECONDS - start)) s$verdict)"
}
summary() {
    local rc=$?
    say "wall times"
    [ ${#TIMES[@]} = 0 ] || printf '%s\n' "${TIMES[@]}"
    printf '%6ss  total%s\n' $((SECONDS - T0)) "$([ "$rc" = 0 ] || echo " (failed)")"
}
trap summary EXIT

stage "setup" "$REPO/scripts/setup.sh"
[ ${#FAILED[@]} = 0 ] || exit 1

# The unit-test clusters' data lives outside the checkout: the postgres user may not be able to
# enter the directory the repository was cloned into (for example under /root).
PGRX_TEST_DIR=$DEV_DIR/pgrx-test
install -d -o postgres -m 700 "$PGRX_TEST_DIR"
for major in $UNIT_MAJORS; do
    # cargo pgrx test installs its build into the project-owned installation of $major (its
    # PGRX_HOME points there), never into the system's.
    stage "unit tests, PostgreSQL $major" \
        cargo pgrx test "pg$major" --runas postgres --pgdata "$PGRX_TEST_DIR/data"
done

# The integration tests do not depend on the major: built once, run against each installation.
stage "building the integration tests" cargo test -p pg_migrate_integration --no-run

integration() {
    local major=$1; shift
    use_dev_postgres "$major"
    install_extension >/dev/null
    echo "pg_migrate installed into $PG_BIN/.."
    cargo test -p pg_migrate_integration --no-fail-fast "$@" -- --test-threads 2
}
for major in $INTEGRATION_MAJORS; do
    stage "integration tests, PostgreSQL $major (real servers, real clients)" integration "$major"
done
for major in $SECURITY_MAJORS; do
    stage "integration tests: security and upgrade, PostgreSQL $major" integration "$major" "${SECURITY_TESTS[@]}"
done

if [ "$EXAMPLES" = 1 ]; then
    examples() {
        use_dev_postgres 15
        install_extension >/dev/null
        SKIP_INSTALL=1 "$REPO/scripts/examples.sh"
    }
    stage "examples, PostgreSQL 15" examples
fi

for major in $PACKAGE_MAJORS; do
    stage "package, PostgreSQL $major" env PROFILE=debug PG_MAJOR="$major" PG_BIN="$(dev_pg_bin "$major")" \
        "$REPO/scripts/package.sh"
done

if [ ${#FAILED[@]} -gt 0 ]; then
    say "FAILED: ${FAILED[*]}"
    exit 1
fi
say "all tests passed"
