#!/usr/bin/env bash
# The failover test of pgrx-tests/tests/replicas.rs, again and again and with more rows than CI
# can afford (docs/ha.md): a primary with a running backfill and index build stopped with
# -m immediate, its standby promoted, the jobs resumed there, every row updated exactly once.
#   REPEAT=5 ROWS=500000 PG_MAJOR=15 bash scripts/failover-repeat.sh
# Stops at the first failure (its server logs are printed by the test).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"
REPEAT=${REPEAT:-5}
ROWS=${ROWS:-500000}
"$REPO/scripts/setup.sh"
use_dev_postgres "$PG_MAJOR"
install_extension >/dev/null
for n in $(seq 1 "$REPEAT"); do
    say "failover $n of $REPEAT, $ROWS rows, PostgreSQL $PG_MAJOR"
    PG_MIGRATE_FAILOVER_ROWS=$ROWS cargo test -p pg_migrate_integration --test replicas \
        jobs_resume_on_the_promoted_standby_after_a_failover -- --exact --test-threads 1
done
say "$REPEAT failovers with $ROWS rows: every one resumed both jobs and updated every row exactly once"
