"""Settings of the pg_migrate Django example: one app (shop), PostgreSQL through psycopg 3.

The database is DATABASE_URL (postgres://user:password@host:port/dbname) when it is set, and
otherwise the libpq variables (PGDATABASE, PGHOST, PGPORT, PGUSER, PGPASSWORD).
"""
import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = "pg_migrate-example-not-a-secret"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = ["shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True


def database() -> dict:
    url = os.environ.get("DATABASE_URL")
    if not url:
        # Empty values are left to libpq, which reads PGHOST, PGPORT, PGUSER, PGPASSWORD.
        return {"ENGINE": "django.db.backends.postgresql",
                "NAME": os.environ.get("PGDATABASE", "app")}
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be a postgres:// URL, not {parts.scheme}://")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": database()}
