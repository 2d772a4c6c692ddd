"""Index accounts.email without blocking writes.

CREATE INDEX CONCURRENTLY cannot run in a transaction block: migrate.apply() returns 'applying'
and a background worker builds the index after the apply has committed. So this migration is not
atomic (atomic = False): Django runs each statement in autocommit mode, the apply commits at once,
and CALL migrate.wait_version() (refused inside a transaction block) waits for the build before
Django records the migration and goes on. The rollback drops the index concurrently, in a job too.

Not being atomic, the migration may stop between its statements (the job fails, the process is
killed). Running `migrate` again is safe: migrate.apply() of a version that is already applied
does nothing, of a failed one resumes its job; then the wait.
"""
from django.db import migrations, models

VERSION = "shop.0002_accounts_email_idx"

UP = """\
CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);
"""

DOWN = """\
DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx;
"""


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("shop", "0001_create_accounts")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=[
                        ("SELECT migrate.apply(%s, %s, %s)", [VERSION, UP, DOWN]),
                        ("CALL migrate.wait_version(%s)", [VERSION]),
                    ],
                    reverse_sql=[
                        ("SELECT migrate.rollback(%s)", [VERSION]),
                        ("CALL migrate.wait_version(%s)", [VERSION]),
                    ],
                ),
            ],
            state_operations=[
                migrations.AddIndex(
                    model_name="account",
                    index=models.Index(fields=["email"], name="accounts_email_idx"),
                ),
            ],
        ),
    ]
