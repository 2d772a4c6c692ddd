"""Expand: accounts.balance (numeric) -> balance_cents (bigint), step 1 of 2.

migrate.expand_column() adds balance_cents, a trigger that keeps it and balance in step (the
application deployed before this migration writes balance, the next one balance_cents), and a
backfill that fills balance_cents for the existing rows in a background worker. Nothing waits
for the backfill here: 0004_balance_cents_contract does.

Inside migrate.apply() without down SQL, pg_migrate records the down SQL itself:
SELECT migrate.abort(<change>), which leaves the table exactly as it was. For Django's state,
balance_cents is a new nullable field; balance stays until the contract.
"""
from django.db import migrations, models

VERSION = "shop.0003_balance_cents_expand"

UP = """\
SELECT migrate.expand_column('accounts', 'balance',
                             new_name => 'balance_cents', new_type => 'bigint',
                             up       => 'round(balance * 100)::bigint',
                             down     => 'balance_cents / 100.0');
"""


class Migration(migrations.Migration):
    dependencies = [("shop", "0002_accounts_email_idx")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=[("SELECT migrate.apply(%s, %s)", [VERSION, UP])],
                    reverse_sql=[("SELECT migrate.rollback(%s)", [VERSION])],
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="account",
                    name="balance_cents",
                    field=models.BigIntegerField(null=True),
                ),
            ],
        ),
    ]
