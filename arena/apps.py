import importlib

from django.apps import AppConfig


class ArenaConfig(AppConfig):
    name = "arena"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The Celery app is made here, in every process that sets Django up (web, worker, beat,
        # management commands), so `shared_task` and `current_app` find it; not when the `config`
        # package is imported, so the commands that run without Django (config/standalone.py)
        # don't load Celery.
        importlib.import_module("config.celery")
