#!/usr/bin/env bash
# Reproduces the squawk comparison in docs/lint.md: runs migrate.lint and squawk (default mode and
# --assume-in-transaction) on every migration in docs/lint-corpus and prints a Markdown report.
#
# Needs squawk (pip install squawk-cli) and pg_migrate installed into the PostgreSQL 15 of PG_BIN
# (Debian's by default); pass --install to build and install it first (cargo pgrx install).
# migrate.lint runs on a scratch cluster that exists only while this script runs: it is stopped
# and its files removed on exit, also when something fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

if [ "${1:-}" = "--install" ]; then
    say "building and installing the extension (cargo pgrx install)" >&2
    install_extension >&2
fi
command -v squawk >/dev/null || { echo "squawk not found: pip install squawk-cli" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found (it renders the report)" >&2; exit 1; }
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pg_migrate.control" ]; then
    echo "pg_migrate is not installed in $("$PG_CONFIG" --sharedir): run with --install" >&2
    exit 1
fi

scratch_dir lint_compare
cleanup() {
    local rc=$?
    set +e
    cd /
    stop_scratch_cluster
    if [ "$rc" != 0 ]; then echo "lint-compare failed (exit code $rc); the scratch cluster was stopped and removed" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_scratch_cluster

export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=corpus
unset PGSERVICE PGPASSWORD PGOPTIONS
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE corpus'
"${PSQL[@]}" -c 'CREATE EXTENSION pg_migrate'
# The tables the corpus migrations alter exist, as they would in production.
"${PSQL[@]}" -f docs/lint-corpus/_schema.sql

# Distinct squawk rule names of one file, in the given mode (squawk exits 1 when it finds something).
squawk_rules() {
    local out
    out=$(squawk --pg-version 15 --reporter json "$@" 2>/dev/null || true)
    printf '%s' "$out" | python3 -c 'import json, sys
text = sys.stdin.read().strip()
print(" ".join(sorted({f["rule_name"] for f in (json.loads(text) if text else [])})))'
}

RESULTS=$WORK/results.tsv
for f in docs/lint-corpus/[!_]*.sql; do
    # Rule names, warnings marked with "?"; a syntax error would stop the script (ON_ERROR_STOP).
    lint=$("${PSQL[@]}" -At -v sql="$(cat "$f")" <<'SQL'
SELECT coalesce(string_agg(DISTINCT rule || CASE severity WHEN 'warning' THEN '?' ELSE '' END, ' '), '')
  FROM migrate.lint(:'sql');
SQL
)
    printf '%s\t%s\t%s\t%s\n' "$(basename "$f" .sql)" "$lint" "$(squawk_rules "$f")" \
        "$(squawk_rules --assume-in-transaction "$f")" >>"$RESULTS"
done

python3 - "$RESULTS" "$(squawk --version)" <<'PY'
import sys

# migrate.lint rule -> squawk rules that look for the same danger (squawk's rule list:
# https://squawkhq.com/docs/rules, checked against what squawk reported on this corpus).
MAP = {
    "index-not-concurrent": ["require-concurrent-index-creation"],
    "drop-index-not-concurrent": ["require-concurrent-index-deletion"],
    "concurrently-in-transaction": ["ban-concurrent-index-creation-in-transaction"],
    "reindex-not-concurrent": ["require-concurrent-reindex"],
    "vacuum-full": [],
    "cluster": [],
    "refresh-matview-not-concurrent": [],
    "add-foreign-key-without-not-valid": ["adding-foreign-key-constraint", "constraint-missing-not-valid"],
    "add-check-without-not-valid": ["constraint-missing-not-valid"],
    "validate-in-same-migration": ["constraint-missing-not-valid"],
    "set-not-null-without-check": ["adding-not-nullable-field"],
    "add-column-not-null-without-default": ["adding-required-field"],
    "add-column-volatile-default": ["adding-field-with-default"],
    "add-column-generated-stored": ["adding-field-with-default"],
    "add-column-serial": ["adding-serial-primary-key-field"],
    "alter-column-type": ["changing-column-type"],
    "constraint-builds-index": ["disallowed-unique-constraint", "adding-serial-primary-key-field"],
    "rename-column": ["renaming-column"],
    "rename-table": ["renaming-table"],
    "drop-column": ["ban-drop-column"],
    "drop-table": ["ban-drop-table"],
    "drop-schema": ["ban-drop-schema"],
    "drop-not-null": ["ban-drop-not-null"],
    "truncate": ["ban-truncate-cascade"],
    "enum-value-renamed": ["renaming-object"],
    "enum-value-removed": ["ban-drop-type"],
    "prefer-jsonb": [],
    "mixed-ddl-and-data": [],
    "whole-table-write": [],
    "statement-after-access-exclusive": [],
    "missing-lock-timeout": ["require-lock-timeout", "require-timeout-settings"],
}
# Findings on (almost) every file: left out of the per-file table, counted below it.
UBIQUITOUS = {"missing-lock-timeout?", "require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts"}

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
squawk_version = sys.argv[2]

def names(field):
    return field.split() if field else []

def shown(field, target=None):
    # Ubiquitous findings are shown only on the files about them.
    keep = {target, target + "?", *MAP.get(target, [])} if target else set()
    kept = [n for n in names(field) if n not in UBIQUITOUS or n in keep]
    return ", ".join(f"`{n}`" for n in kept) or "—"

def catches(rule, lint, squawk):
    ours = rule in {n.rstrip("?") for n in names(lint)}
    theirs = any(s in names(squawk) for s in MAP.get(rule, []))
    return ours, theirs

print(f"Measured with {squawk_version} (`--pg-version 15`) and migrate.lint on PostgreSQL 15, "
      f"{len(rows)} corpus files. `?` marks a migrate.lint warning (all other migrate.lint "
      "findings are errors; every squawk finding is a warning).\n")
print("| corpus file | migrate.lint | squawk | squawk `--assume-in-transaction` | target danger |")
print("|---|---|---|---|---|")
tally = {}
for name, lint, sq, sqtx in rows:
    verdict, rule = "", None
    if name.endswith(".bad") or name.endswith(".safe"):
        rule, kind = name.rsplit(".", 1)
        ours, theirs = catches(rule, lint, sq)
        _, theirs_tx = catches(rule, lint, sqtx)
        if kind == "bad":
            verdict = {(True, True): "both catch it", (True, False): "only migrate.lint catches it",
                       (False, True): "only squawk catches it", (False, False): "neither catches it"}[(ours, theirs)]
        else:
            verdict = {(False, False): "both quiet", (True, False): "migrate.lint flags the safe twin",
                       (False, True): "squawk flags the safe twin", (True, True): "both flag the safe twin"}[(ours, theirs)]
        if theirs_tx != theirs:
            verdict += " (squawk in transaction mode: " + ("catches it" if theirs_tx else "quiet") + ")"
        tally[verdict] = tally.get(verdict, 0) + 1
    print(f"| `{name}` | {shown(lint, rule)} | {shown(sq, rule)} | {shown(sqtx, rule)} | {verdict} |")

print()
for rule in sorted(UBIQUITOUS):
    col = 1 if rule.endswith("?") else 2
    n = sum(1 for r in rows if rule in names(r[col]))
    lock_rules = {"missing-lock-timeout", *MAP["missing-lock-timeout"]}
    where = "shown only on the missing-lock-timeout files" if rule.rstrip("?") in lock_rules else "left out of the table"
    print(f"- `{rule.rstrip('?')}` ({'migrate.lint' if col == 1 else 'squawk'}) fired on {n} of {len(rows)} files; {where}.")
print()
print("| target danger (rule corpus only) | files |")
print("|---|---|")
for verdict, n in sorted(tally.items()):
    print(f"| {verdict} | {n} |")
PY
