"""Make the model registry match a list from configuration (ARENA_MODELS or --file).

Each entry names a model; a missing one is created, an existing one (same name) gets the fields
the entry sets. Fields an entry leaves out keep their current value (or the default on creation),
and models not in the list are left alone. Every entry is checked before anything is written: one
bad entry changes nothing.

    ARENA_MODELS='[{"name": "zephyr-7b-beta", "url": "http://tgi-zephyr:80", "template": "zephyr"}]' \
        python manage.py models_sync
"""

import json
import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from arena import services
from arena.credentials import env_name_problem, headers_problems
from arena.models import ChatModel
from inference.chat_templates import PRESETS
from inference.protocols import Protocol

ENV_VAR = "ARENA_MODELS"
REQUIRED = ("name", "url")  # and "template" when the protocol is tgi (the default)
# Entry key -> ChatModel field.
FIELDS = {
    "name": "name",
    "protocol": "protocol",
    "url": "endpoint_url",
    "served_model": "served_model",
    "api_key_env": "api_key_env",
    "api_key_file": "api_key_file",
    "headers": "extra_headers",
    "max_concurrent": "max_concurrent",
    "template": "template",
    "weight": "weight",
    "parameters": "parameters",
    "system_prompt": "system_prompt",
    "timeout_seconds": "timeout_seconds",
    "enabled": "enabled",
}
KEYS = {field: key for key, field in FIELDS.items()}
# A host name (one label or more: compose service names have no dot, and may have an underscore),
# an IPv4 or a bracketed IPv6.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


class EntryError(Exception):
    """One problem with one field of one entry."""


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EntryError("must be a non-empty string")
    limit = ChatModel._meta.get_field("name").max_length
    if limit is not None and len(value) > limit:
        raise EntryError(f"must be at most {limit} characters")
    return value.strip()


def _url(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise EntryError("must be a URL string such as http://tgi-zephyr:80")
    limit = ChatModel._meta.get_field("endpoint_url").max_length
    if (limit is not None and len(value) > limit) or any(c.isspace() for c in value):
        raise EntryError(f"{value!r} is not a valid URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise EntryError(f"{value!r} must start with http:// or https://")
    try:
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise EntryError(f"{value!r} has an invalid port") from None
    host = parts.hostname or ""
    if not host or not (_HOST.match(host) or ":" in host):  # ':' only in an IPv6 literal here
        raise EntryError(f"{value!r} has no valid host name")
    if parts.query or parts.fragment:
        raise EntryError(f"{value!r} must not have a query or fragment")
    return value


def _template(value: object) -> str:
    if not isinstance(value, str) or value not in PRESETS:
        raise EntryError(f"{value!r} is not a template; choose one of {', '.join(sorted(PRESETS))}")
    return value


def _protocol(value: object) -> str:
    choices = [p.value for p in Protocol]
    if value not in choices:
        raise EntryError(f"{value!r} is not a protocol; choose one of {', '.join(choices)}")
    return str(value)


def _served_model(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EntryError("must be the model name the server serves, a non-empty string")
    return value.strip()


def _api_key_env(value: object) -> str:
    if not isinstance(value, str) or env_name_problem(value):
        raise EntryError("must be the NAME of an environment variable holding the key (never the key itself)")
    return value


def _api_key_file(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise EntryError("must be the absolute path of a secret file holding the key")
    return value


def _headers(value: object) -> dict[str, str]:
    if problems := headers_problems(value):
        raise EntryError(" ".join(problems))
    assert isinstance(value, dict)
    return value


def _max_concurrent(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EntryError(f"must be a whole number >= 1 or null, got {value!r}")
    return value


def _weight(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise EntryError(f"must be a number >= 0, got {value!r}")
    return float(value)


def _parameters(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EntryError(f"must be an object of generation parameters, got {value!r}")
    stop = value.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise EntryError("'stop' must be a list of strings")
    return value


def _system_prompt(value: object) -> str:
    if not isinstance(value, str):
        raise EntryError(f"must be a string, got {value!r}")
    return value


def _timeout_seconds(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EntryError(f"must be a whole number of seconds >= 1, got {value!r}")
    return value


def _enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise EntryError(f"must be true or false, got {value!r}")
    return value


CHECKS = {
    "name": _name,
    "protocol": _protocol,
    "url": _url,
    "served_model": _served_model,
    "api_key_env": _api_key_env,
    "api_key_file": _api_key_file,
    "headers": _headers,
    "max_concurrent": _max_concurrent,
    "template": _template,
    "weight": _weight,
    "parameters": _parameters,
    "system_prompt": _system_prompt,
    "timeout_seconds": _timeout_seconds,
    "enabled": _enabled,
}


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def entries_parse(text: str, source: str) -> list[dict[str, Any]]:
    """The list of entries in `text`, each checked and converted to ChatModel field values.

    Raises CommandError naming every bad entry and field (by `source[index]`).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, list):
        raise CommandError(f"{source} must be a JSON list of model objects, got {_json_type(data)}")
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        where = f"{source}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object, got {_json_type(item)}")
            continue
        if isinstance(item.get("name"), str) and item["name"].strip():
            where += f" ({item['name'].strip()!r})"
        values = _entry_values(item, where, problems)
        name = values.get("name")
        if name is not None:
            if name in seen:
                problems.append(f"{where}: name: {name!r} is already used by {source}[{seen[name]}]")
            seen.setdefault(name, index)
        entries.append(values)
    if problems:
        raise CommandError(_problems_message(source, problems))
    return entries


def _entry_values(item: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """One entry's ChatModel field values; what is wrong with it goes to `problems`."""
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    required = [*REQUIRED, "template"] if item.get("protocol", Protocol.TGI.value) == Protocol.TGI else REQUIRED
    problems.extend(f"{where}: missing required field '{key}'" for key in required if key not in item)
    values: dict[str, Any] = {}
    for key, check in CHECKS.items():
        if key not in item:
            continue
        try:
            values[FIELDS[key]] = check(item[key])
        except EntryError as exc:
            problems.append(f"{where}: {key}: {exc}")
    return values


def _problems_message(source: str, problems: list[str]) -> str:
    return f"{source} is invalid; nothing was changed:\n" + "\n".join(f"  {p}" for p in problems)


class Command(BaseCommand):
    help = (
        f"Create or update the models listed in ${ENV_VAR} (or --file): a JSON list of "
        '{"name", "url", "template", "weight", "parameters", "system_prompt", "timeout_seconds", "enabled", '
        '"protocol", "served_model", "api_key_env", "api_key_file", "headers", "max_concurrent"}. '
        "Idempotent; models not listed are left alone; one invalid entry changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, help=f"Read the JSON list from this file instead of ${ENV_VAR}")
        parser.add_argument("--dry-run", action="store_true", help="Check and report, change nothing")

    def handle(self, *args, file: Path | None, dry_run: bool, **options):
        source, text = _source_read(file)
        entries = entries_parse(text, source)

        with transaction.atomic():
            names = [e["name"] for e in entries]
            plan = _plan(entries, source)
            counts = {"add": 0, "update": 0, "keep": 0}
            for model, action, changed in plan:
                counts[action] += 1
                if action == "add":
                    how = model.template if model.protocol == Protocol.TGI else f"openai, {model.served_model_name}"
                    self.stdout.write(f"Added {model.name} → {model.endpoint_url} ({how})")
                elif action == "update":
                    self.stdout.write(f"Updated {model.name}: {', '.join(KEYS[f] for f in changed)}")
                else:
                    self.stdout.write(f"Unchanged {model.name}")
                if dry_run or action == "keep":
                    continue
                # An update writes only what changed: health fields stay the probe's, unless the
                # server itself changed (then the model waits for a probe of the new one).
                model.save(update_fields=changed if action == "update" else None)
                if model.endpoint_url and (action == "add" or set(ChatModel.SERVER_FIELDS) & set(changed)):
                    services.model_server_changed(model_id=model.id)
            if dry_run:
                transaction.set_rollback(True)

        others = ChatModel.objects.exclude(name__in=names).count()
        summary = (
            f"{counts['add']} added, {counts['update']} updated, {counts['keep']} unchanged; "
            f"{others} other model(s) left as they are"
        )
        self.stdout.write(("Dry run, nothing written: " if dry_run else "") + summary)


def _source_read(file: Path | None) -> tuple[str, str]:
    """Where the list comes from (for messages) and its text."""
    if file is not None:
        try:
            return str(file), file.read_text()
        except OSError as exc:
            raise CommandError(f"Can't read {file}: {exc.strerror or exc}") from None
    text = os.environ.get(ENV_VAR, "")
    if not text.strip():
        raise CommandError(
            f"{ENV_VAR} is not set: give it a JSON list of models (e.g. "
            '[{"name": "zephyr-7b-beta", "url": "http://tgi-zephyr:80", "template": "zephyr"}]), '
            "or pass --file PATH"
        )
    return ENV_VAR, text


def _plan(entries: list[dict[str, Any]], source: str) -> list[tuple[ChatModel, str, list[str]]]:
    """Each entry's model (locked if it exists), action and changed fields, all validated;
    CommandError naming every invalid field otherwise. Runs inside the caller's transaction."""
    names = [e["name"] for e in entries]
    existing = {m.name: m for m in ChatModel.objects.select_for_update().filter(name__in=names)}
    plan: list[tuple[ChatModel, str, list[str]]] = []
    problems: list[str] = []
    for index, values in enumerate(entries):
        model = existing.get(values["name"])
        if model is None:
            model, action, changed = ChatModel(**values), "add", list(values)
        else:
            changed = [field for field, value in values.items() if getattr(model, field) != value]
            for field in changed:
                setattr(model, field, values[field])
            action = "update" if changed else "keep"
        try:
            model.full_clean(validate_unique=False)  # names were looked up above
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                key = KEYS.get(field, field)
                problems.append(f"{source}[{index}] ({values['name']!r}): {key}: {' '.join(messages)}")
        plan.append((model, action, changed))
    if problems:
        raise CommandError(_problems_message(source, problems))
    return plan
