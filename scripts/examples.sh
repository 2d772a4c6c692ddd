#!/usr/bin/env bash
# Runs the examples' tests: each examples/<tool>/test.sh drives the real tool (psql, Knex,
# Drizzle, node-pg-migrate, Liquibase, dbmate, Prisma, Alembic, Django, Sqitch, the drivers)
# against its own throwaway server.
#   bash scripts/examples.sh              # all of them
#   bash scripts/examples.sh knex psql    # some of them
# Expects the extension to be installed (scripts/test.sh does that first); SKIP_INSTALL=1 is
# implied when run from there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

if [ -z "${SKIP_INSTALL:-}" ]; then
    "$REPO/scripts/setup.sh"
    say "installing the extension for the examples"
    install_extension
fi

if [ $# -eq 0 ]; then
    set -- $(cd examples && ls -d */ | tr -d / | while read -r d; do [ -f "$d/test.sh" ] && echo "$d"; done)
fi

failed=()
for tool in "$@"; do
    say "example: $tool"
    start=$SECONDS
    if bash "examples/$tool/test.sh"; then
        echo "example $tool passed in $((SECONDS - start))s"
    else
        echo "example $tool FAILED"
        failed+=("$tool")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    say "examples failed: ${failed[*]}"
    exit 1
fi
say "all examples passed: $*"
