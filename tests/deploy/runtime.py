"""Environments for running the application's own processes the way the containers run them."""

from __future__ import annotations

import os
import re
import secrets

from django.conf import settings

from .stack import ROOT

SETTINGS_VARS = set(re.findall(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", (ROOT / "config" / "settings.py").read_text()))


def database_url() -> str:
    """The database the tests use (pytest-django's test database once it is set up)."""
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def clean_env(**values: str) -> dict[str, str]:
    """os.environ without anything the settings read, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS and k != "DJANGO_SETTINGS_MODULE"}
    env.update(values)
    return env


def production_env(**overrides: str) -> dict[str, str]:
    values = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "arena.example.com",
        "SECURE_SSL": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    return clean_env(**{**values, **overrides})
