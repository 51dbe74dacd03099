"""The model registry: health from probes and from failed generations."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from arena import queue
from arena.credentials import CredentialMissing, api_key_read, headers_read
from arena.live import counters_incr, live_redis, model_failures_key, probe_due_key
from arena.models import ChatModel
from inference.backends import ProbeResult
from inference.protocols import ProbeTarget, Protocol, model_parameters_problems, targets_probe

log = logging.getLogger(__name__)

NOT_PROBED_YET = "Not probed yet: the model joins battles once its server answers."
# A model just added or pointed at another server is probed at once and, while its server can't be
# reached, again every few seconds for a little while: `make run` registers the development models
# while their servers are still starting. After that, the periodic probe takes over.
NEW_MODEL_PROBE_RETRIES = 5
NEW_MODEL_PROBE_INTERVAL_SECONDS = 2.0


def model_failure_record(*, model_id: int, error: str) -> bool:
    """Count a failed generation; enough of them in the window mark the model unhealthy."""
    failures = counters_incr([model_failures_key(model_id)], settings.ARENA_MODEL_FAILURE_WINDOW_SECONDS)[0]
    if failures < settings.ARENA_MODEL_FAILURES_UNHEALTHY:
        return False
    ChatModel.objects.filter(id=model_id).update(
        healthy=False, last_error=f"{failures} failed generations recently; last: {error}"[:2000],
        health_checked_at=timezone.now(),
    )
    return True


@dataclass(frozen=True)
class HealthVerdict:
    """What a probe's result came to once stored: the model's health and why not."""

    healthy: bool
    error: str


def model_health_record(
    *, model_id: int, healthy: bool, error: str = "", info: dict[str, Any] | None = None,
    endpoint_url: str | None = None,
) -> HealthVerdict:
    """Store a probe's verdict and return it: a server that answers is not enough when the model
    failed generations recently (it stays unhealthy until the window ends) or when its parameters
    don't fit the limits the server's /info has just reported (every generation would fail).

    `endpoint_url`: the server probed. The verdict is dropped if the model has been pointed
    elsewhere meanwhile (it says nothing about the new server, whose own probe is queued).
    """
    model = ChatModel.objects.filter(id=model_id)
    if endpoint_url is not None:
        model = model.filter(endpoint_url=endpoint_url)
    if healthy and info:
        # The admin can only check limits it knows: a new model is saved before its server's /info
        # is, so a max_new_tokens beyond the server's total would otherwise slip through.
        row = model.values_list("parameters", "template", "protocol").first()
        if row is not None:
            problems = model_parameters_problems(row[2], row[0], template=row[1], server_info=info)
            if problems:
                healthy, error = False, "Its parameters don't fit this server: " + " ".join(problems)
    failures = int(live_redis().get(model_failures_key(model_id)) or 0)
    if healthy and failures >= settings.ARENA_MODEL_FAILURES_UNHEALTHY:
        healthy, error = False, f"the server answers but {failures} generations failed recently"
    fields: dict[str, Any] = {"healthy": healthy, "last_error": error[:2000], "health_checked_at": timezone.now()}
    if info:
        fields["server_info"] = info
    model.update(**fields)
    return HealthVerdict(healthy=healthy, error=error)


def model_credentials(model: ChatModel) -> tuple[str, dict[str, str]]:
    """The model's API key ("" for none) and extra headers, read from their references now;
    CredentialMissing names whichever reference gives nothing."""
    return (
        api_key_read(env=model.api_key_env, file=model.api_key_file),
        headers_read(dict(model.extra_headers or {})),
    )


def _probe_target(model: ChatModel) -> ProbeTarget | ProbeResult:
    try:
        api_key, headers = model_credentials(model)
    except CredentialMissing as exc:
        return {"healthy": False, "info": {}, "error": str(exc)}
    return ProbeTarget(
        protocol=model.protocol, url=model.endpoint_url, served_model=model.served_model_name, api_key=api_key,
        headers=headers,
    )


def _probe_all(models: list[ChatModel]) -> list[ProbeResult]:
    """Each model's probe result; a model whose credentials are missing is not asked at all."""
    prepared = [_probe_target(m) for m in models]
    targets = [p for p in prepared if isinstance(p, ProbeTarget)]
    answers = iter(asyncio.run(targets_probe(targets)) if targets else [])
    return [next(answers) if isinstance(p, ProbeTarget) else p for p in prepared]


def models_probe_due(models: list[ChatModel]) -> list[ChatModel]:
    """The models the periodic probe should ask now: every TGI server, and OpenAI-compatible ones
    no more often than ARENA_OPENAI_PROBE_INTERVAL_SECONDS (a model not drawn for being unhealthy
    is still probed at that pace, so it comes back by itself)."""
    redis = live_redis()
    interval = max(int(settings.ARENA_OPENAI_PROBE_INTERVAL_SECONDS), 1)
    return [
        m for m in models
        if m.protocol != Protocol.OPENAI or redis.set(probe_due_key(m.id), 1, nx=True, ex=interval)
    ]


def models_probe_now(models: list[ChatModel]) -> list[tuple[ChatModel, ProbeResult, HealthVerdict]]:
    """Probe the models' servers (TGI's /health and /info, or /v1/models, concurrently) and store
    each verdict; for each model, the server's answer and what was stored (the admin's Probe action
    shows both)."""
    results = _probe_all(models)
    return [
        (
            model,
            result,
            model_health_record(
                model_id=model.id, healthy=result["healthy"], error=result["error"], info=result["info"],
                endpoint_url=model.endpoint_url,
            ),
        )
        for model, result in zip(models, results, strict=True)
    ]


def model_misconfigured(*, model_id: int, error: str) -> None:
    """A generation failed in a way only an admin can fix (a refused API key, an unknown model
    name): out of the draw at once, with the reason in the admin. A probe that succeeds (after the
    fix) brings it back."""
    ChatModel.objects.filter(id=model_id).update(
        healthy=False, last_error=error[:2000], health_checked_at=timezone.now()
    )


def model_server_changed(*, model_id: int) -> None:
    """A model was added, or pointed at another server: out of the draw until that server answers.

    Its health, server info and failure count belonged to the old server (or to nobody), so they
    are cleared, and a probe of the new server is queued for when this transaction commits: a
    server that answers brings the model in within seconds, a dead or mistyped one shows its
    error in the admin. The periodic probe catches anything this misses.
    """
    ChatModel.objects.filter(id=model_id).update(
        healthy=False, health_checked_at=None, server_info={}, last_error=NOT_PROBED_YET
    )
    live_redis().delete(model_failures_key(model_id))
    transaction.on_commit(lambda: _model_probe_queue(model_id))


def _model_probe_queue(model_id: int) -> None:
    try:
        queue.models_probe_queue(model_ids=[model_id], retries=NEW_MODEL_PROBE_RETRIES)
    except Exception:
        log.warning("Could not queue the probe of model %s; the periodic probe will check it", model_id, exc_info=True)
