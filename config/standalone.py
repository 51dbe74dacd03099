"""Management commands that need neither the database nor any app, run without `django.setup()`.

Setting Django up imports every app's models, the admin, Channels, Celery and the model clients
(about a second); `leaderboard --battles FILE` reads a file and does numpy. Such a command runs
here exactly as Django would run it (same parser, options, errors and exit codes), with the
settings and logging loaded and nothing else. tests/config/test_standalone.py checks what it
imports.
"""

from __future__ import annotations

import importlib
import logging.config

# name -> module of its Command; only commands whose module imports no models or apps.
STANDALONE_COMMANDS = {"leaderboard": "arena.management.commands.leaderboard"}


def standalone_run(argv: list[str]) -> bool:
    """Run `argv` if it names a standalone command; False to leave it to Django."""
    if len(argv) < 2 or argv[1] not in STANDALONE_COMMANDS:
        return False
    # Django reads these two before any settings are loaded; leave such a run to Django itself.
    if any(arg.startswith(("--settings", "--pythonpath")) for arg in argv[2:]):
        return False
    from django.conf import settings

    # The project's own logging; Django's defaults (django.utils.log, another tenth of a second
    # of imports) configure request and mail handlers, which these commands never use.
    logging.config.dictConfig(settings.LOGGING)
    importlib.import_module(STANDALONE_COMMANDS[argv[1]]).Command().run_from_argv(argv)
    return True
