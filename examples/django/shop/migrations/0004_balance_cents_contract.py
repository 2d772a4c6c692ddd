"""Contract: finish balance -> balance_cents, step 2 of 2.

Run it once no application version writes accounts.balance any more. Not atomic: everything runs
in autocommit mode. CALL migrate.wait_change() waits for the backfill of 0003; migrate.contract()
queues the job that validates balance_cents, moves the CHECK, NOT NULL and DEFAULT to it and
drops balance and the trigger in one short transaction; CALL migrate.wait() waits for that job.
The change id is looked up in migrate.changes by the pg_migrate version that made it, and the
job id comes back from contract(): that needs Python (RunPython), not just RunSQL.

There is no reverse: the contract dropped the old column (pg_migrate refuses to abort a
contracted change), so Django reports this migration as irreversible. To undo it, write a new
migration (an expand_column back to a numeric column, then its contract).
"""
from django.db import migrations, models

EXPAND_VERSION = "shop.0003_balance_cents_expand"


def contract(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT change FROM migrate.changes WHERE version = %s", [EXPAND_VERSION])
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"no open pg_migrate change was made by {EXPAND_VERSION}: "
                               "see SELECT * FROM migrate.changes")
        change = row[0]
        cursor.execute("CALL migrate.wait_change(%s)", [change])
        cursor.execute("SELECT migrate.contract(%s)", [change])
        job = cursor.fetchone()[0]
        cursor.execute("CALL migrate.wait(%s)", [job])


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("shop", "0003_balance_cents_expand")]

    operations = [
        migrations.RunPython(contract),  # no reverse_code: irreversible
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="account", name="balance"),
                migrations.AlterField(
                    model_name="account",
                    name="balance_cents",
                    field=models.BigIntegerField(default=0),
                ),
            ],
        ),
    ]
