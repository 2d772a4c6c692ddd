#!/usr/bin/env bash
# Runs the Django example against a throwaway server: migrate (RunSQL calling migrate.apply, a
# non-atomic migration waiting for a background job), the expand, `migrate shop zero` (pg_migrate
# rolls back), migrate to the end with the contract, and the irreversible step back.
# Run it with: SKIP_INSTALL=1 bash scripts/examples.sh django
source "$(dirname "$0")/../lib.sh"
python_env
start_example_db django
cd "$EXAMPLES/django"
python -m django --version
manage() { python manage.py "$@"; }

# The application's data: 50,000 accounts, balances 1.25, 2.50, …, 62500.00.
seed() {
    q "INSERT INTO accounts (email, balance)
       SELECT 'user' || g || '@example.com', g * 1.25 FROM generate_series(1, 50000) AS g"
}

say "migrate shop 0002: a table, then an index built concurrently in a background job"
manage migrate shop 0002
expect "SELECT version, state FROM migrate.status()" \
"shop.0001_create_accounts|applied
shop.0002_accounts_email_idx|applied"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_idx'::regclass" t
expect "SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY id" \
"0001_create_accounts
0002_accounts_email_idx"
seed

say "migrate shop 0003: expand balance (numeric) to balance_cents (bigint)"
manage migrate shop 0003
expect "SELECT kind, \"column\", new_column FROM migrate.changes WHERE version = 'shop.0003_balance_cents_expand'" \
    "expand_column|balance|balance_cents"
# while the change is open, the old and the new application both work: the trigger syncs them
expect "INSERT INTO accounts (email, balance) VALUES ('old-app@example.com', 2.50) RETURNING balance_cents" 250
expect "INSERT INTO accounts (email, balance_cents) VALUES ('new-app@example.com', 399) RETURNING balance" 3.99

say "migrate shop zero: Django deletes its rows, pg_migrate rolls the versions back and keeps them"
manage migrate shop zero
expect "SELECT count(*) FROM django_migrations WHERE app = 'shop'" 0
expect "SELECT version, state FROM migrate.status()" \
"shop.0001_create_accounts|rolled_back
shop.0002_accounts_email_idx|rolled_back
shop.0003_balance_cents_expand|rolled_back"
# pg_migrate's history is append-only: every apply and rollback stays in migrate.events
expect "SELECT version, action FROM migrate.events ORDER BY id" \
"shop.0001_create_accounts|apply
shop.0002_accounts_email_idx|apply
shop.0002_accounts_email_idx|apply_done
shop.0003_balance_cents_expand|apply
shop.0003_balance_cents_expand|rollback
shop.0002_accounts_email_idx|rollback
shop.0002_accounts_email_idx|rollback_done
shop.0001_create_accounts|rollback"
expect "SELECT phase FROM migrate.all_changes WHERE version = 'shop.0003_balance_cents_expand'" aborted
expect "SELECT to_regclass('accounts') IS NULL, count(*) FROM pg_proc WHERE proname LIKE 'accounts_migrate_sync%'" "t|0"
expect "SELECT count(*) FROM migrate.jobs WHERE state IN ('queued', 'running')" 0

say "migrate: everything again, then wait for the backfill and contract"
manage migrate shop 0002
seed
manage migrate
expect "SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY id" \
"0001_create_accounts
0002_accounts_email_idx
0003_balance_cents_expand
0004_balance_cents_contract"
# the contract is not a pg_migrate version (it has no way back to record)
expect "SELECT version, state FROM migrate.status()" \
"shop.0001_create_accounts|applied
shop.0002_accounts_email_idx|applied
shop.0003_balance_cents_expand|applied"
expect_accounts_contracted
expect "SELECT phase FROM migrate.all_changes WHERE version = 'shop.0003_balance_cents_expand' ORDER BY change DESC LIMIT 1" contracted
expect "SELECT string_agg(action, ', ' ORDER BY id) FROM migrate.events WHERE version = 'shop.0001_create_accounts'" \
    "apply, rollback, reapply"
expect "SELECT count(*) FROM migrate.jobs WHERE state IN ('queued', 'running')" 0

say "Django's state matches the database: the model works, makemigrations has nothing to do"
manage makemigrations --check --dry-run shop
email=$(manage shell -c "from shop.models import Account; print(Account.objects.get(balance_cents=125).email)" | tail -n 1)
[ "$email" = user1@example.com ] || { echo "FAILED: the ORM read $email" >&2; exit 1; }
echo "ok: Account.objects.get(balance_cents=125).email -> $email"
manage migrate | tee "$WORK/again.out"
grep -q "No migrations to apply" "$WORK/again.out"

say "migrating back past the contract is refused"
expect_fail "shop.0004_balance_cents_contract is not reversible" manage migrate shop 0003
expect "SELECT count(*) FROM django_migrations WHERE app = 'shop'" 4
expect "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts'" 3

say "django example passed"
