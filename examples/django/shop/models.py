from django.db import models


class Account(models.Model):
    """The model as it is after all of shop's migrations. The migrations create the table with
    pg_migrate (RunSQL) and tell Django's migration state the same thing with state operations,
    so `makemigrations --check` finds nothing to do."""

    email = models.TextField()
    balance_cents = models.BigIntegerField(default=0)

    class Meta:
        db_table = "accounts"
        indexes = [models.Index(fields=["email"], name="accounts_email_idx")]
