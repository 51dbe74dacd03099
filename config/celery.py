import logging
import os
import threading
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arena")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)

# Long enough for hundreds of threads to start on a loaded machine; past it the worker runs anyway.
POOL_WARM_UP_SECONDS = 30


@signals.worker_ready.connect
def pool_threads_start(sender: Any = None, **_: Any) -> None:
    """Start every thread of a threads pool before the first task, not one per task as they come.

    The pool (a ThreadPoolExecutor) starts a thread when a task finds none idle, and the consumer
    thread waits for it to run: a burst of battles got its tasks a few milliseconds apart each
    while other threads streamed (py-spy: `Thread.start` was most of the consumer thread's work).
    """
    executor = getattr(getattr(sender, "pool", None), "executor", None)
    limit = getattr(getattr(sender, "pool", None), "limit", 0)
    if executor is None or not hasattr(executor, "_max_workers") or not limit:
        return  # another pool (prefork, solo): nothing to warm up
    # Each warm-up job holds its thread until all have started, so every submit finds no idle
    # thread and starts a new one.
    everyone = threading.Barrier(limit + 1, timeout=POOL_WARM_UP_SECONDS)
    jobs = [executor.submit(everyone.wait) for _ in range(limit)]
    try:
        everyone.wait()
    except threading.BrokenBarrierError:
        log.warning("Started %d of %d pool threads before the first task", len(executor._threads), limit)
    for job in jobs:
        job.exception()  # wait: the threads are idle again before the first task comes


@signals.worker_ready.connect
def language_model_load(**_: Any) -> None:
    """A worker labels battles' languages as votes are counted: its detector's model (0.5 s of
    loading) is read now, not while the first refresh after a vote waits for the GIL."""
    from arena.categories import language_of

    language_of("warm up")
