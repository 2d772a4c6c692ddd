#!/usr/bin/env bash
# Deploys, verifies and reverts this Sqitch project (Debian's sqitch, the pg engine) against a
# throwaway PostgreSQL 15 server, checking what pg_migrate and Sqitch recorded after each step.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"

if ! command -v sqitch >/dev/null || ! perl -MDBD::Pg -e 1 2>/dev/null; then
    say "installing sqitch and DBD::Pg (Debian packages)"
    pkgs=(sqitch libdbd-pg-perl)
    apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi
sqitch --version

start_example_db sqitch
TARGET=db:pg://postgres@127.0.0.1:$PORT/app
# Who Sqitch records as planner/committer (it would otherwise ask the system).
export SQITCH_FULLNAME='Example Deployer' SQITCH_EMAIL=deployer@example.com
STATES="SELECT string_agg(version || '=' || state, ' ' ORDER BY version) FROM migrate.status()"
DEPLOYED="SELECT coalesce(string_agg(change, ' ' ORDER BY committed_at), 'none') FROM sqitch.changes"
EMAIL_IDX="SELECT coalesce((SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass('accounts_email_idx')), 'none')"
ALL_APPLIED="0001_accounts=applied 0002_accounts_email_idx=applied 0003_accounts_plan=applied"
ALL_ROLLED_BACK="0001_accounts=rolled_back 0002_accounts_email_idx=rolled_back 0003_accounts_plan=rolled_back"

say "1. sqitch deploy (verify = true in sqitch.conf: each change is verified right after it)"
run_logged deploy1.log sqitch deploy "$TARGET"
expect "$STATES" "$ALL_APPLIED"
expect "$DEPLOYED" "0001_accounts 0002_accounts_email_idx 0003_accounts_plan"
expect "$EMAIL_IDX" "true"
expect "SELECT count(*), count(*) FILTER (WHERE plan = 'free') FROM accounts" "50000|50000"
# The deploy script waited for the index build: the verify script that Sqitch ran right after it
# found the version 'applied' (it would still be 'applying' without the CALL).
expect "SELECT kind, state FROM migrate.jobs" "sql|done"

say "2. sqitch verify"
run_logged verify1.log sqitch verify "$TARGET"
printed verify1.log 'Verify successful'

say "3. sqitch deploy again: nothing to deploy, pg_migrate not even called"
before=$(q "SELECT count(*) FROM migrate.events")
run_logged deploy2.log sqitch deploy "$TARGET"
printed deploy2.log 'Nothing to deploy (up-to-date)'
expect "SELECT count(*) FROM migrate.events" "$before"

say "4. sqitch revert -y: migrate.rollback() per change, newest first; the index is dropped in a job"
run_logged revert1.log sqitch revert -y "$TARGET"
expect "$STATES" "$ALL_ROLLED_BACK"
expect "$DEPLOYED" "none"
expect "SELECT to_regclass('accounts') IS NULL" "t"
printed revert1.log 'rolling_back'
expect "SELECT string_agg(state, ' ' ORDER BY job) FROM migrate.jobs" "done done"

say "5. a change whose deploy script keeps Sqitch's stock BEGIN/COMMIT: the CALL fails (25001)"
# A copy of the project with a fourth change written by `sqitch add` from this project's
# templates, then wrapped in BEGIN/COMMIT as Sqitch's stock pg template does.
cp -r sqitch.conf sqitch.plan deploy revert verify templates "$WORK/"
(
    cd "$WORK"
    sqitch add 0004_accounts_created_at_idx -r 0001_accounts -n 'Index on accounts.created_at' >/dev/null
    cat >deploy/0004_accounts_created_at_idx.sql <<'SQL'
BEGIN;
SELECT migrate.apply('0004_accounts_created_at_idx',
    $up$CREATE INDEX CONCURRENTLY accounts_created_at_idx ON accounts (created_at);$up$,
    $down$DROP INDEX CONCURRENTLY IF EXISTS accounts_created_at_idx;$down$);
CALL migrate.wait_version('0004_accounts_created_at_idx');
COMMIT;
SQL
    rc=0
    sqitch deploy "$TARGET" >"$LOGS/broken.log" 2>&1 || rc=$?
    sed 's/^/    /' "$LOGS/broken.log"
    [ "$rc" != 0 ] || { echo "FAILED: the deploy with BEGIN/COMMIT around CALL succeeded" >&2; exit 1; }
)
printed broken.log 'ERROR:  migrate.wait(), wait_version() and wait_change() cannot run inside a transaction block'
printed broken.log 'Deploy failed'
# Sqitch's default --mode all reverted the three changes this run had deployed, through
# migrate.rollback(); the failed change's transaction rolled back, so pg_migrate never saw it.
printed broken.log 'Reverting all changes'
expect "$STATES" "$ALL_ROLLED_BACK"
expect "$DEPLOYED" "none"
expect "SELECT to_regclass('accounts') IS NULL" "t"
expect "SELECT count(*) FROM migrate.events WHERE version = '0004_accounts_created_at_idx'" "0"

say "6. sqitch deploy after the revert: pg_migrate applies the rolled-back versions again"
run_logged deploy3.log sqitch deploy "$TARGET"
expect "$STATES" "$ALL_APPLIED"
expect "$DEPLOYED" "0001_accounts 0002_accounts_email_idx 0003_accounts_plan"
expect "$EMAIL_IDX" "true"
expect "SELECT string_agg(action, ' ' ORDER BY id) FROM migrate.events WHERE version = '0002_accounts_email_idx'" \
    "apply apply_done rollback rollback_done reapply apply_done rollback rollback_done reapply apply_done"
run_logged verify2.log sqitch verify "$TARGET"
printed verify2.log 'Verify successful'
run_logged status.log sqitch status "$TARGET"
printed status.log 'Nothing to deploy (up-to-date)'

echo "sqitch example: all checks passed"
