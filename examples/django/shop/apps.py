from django.apps import AppConfig
from django.db.backends.signals import connection_created


def print_notices(sender, connection, **kwargs):
    """Show pg_migrate's NOTICEs (applied, job queued, backfill progress) while migrate runs."""
    if connection.vendor == "postgresql":
        connection.connection.add_notice_handler(
            lambda diag: print(f"\n    {diag.severity}: {diag.message_primary}", end="", flush=True))


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self):
        connection_created.connect(print_notices)
