"""Publishing events to channel-layer groups from synchronous code (services, tasks)."""

from __future__ import annotations

import logging

from channels.layers import get_channel_layer

from arena.background import PROCESS_LOOP
from arena.events import Event

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5


def group_publish(group: str, event: Event) -> None:
    """Best effort: live updates may be lost (the browser resyncs from the database on reconnect)."""
    layer = get_channel_layer()
    try:
        PROCESS_LOOP.run(lambda: layer.group_send(group, event), PUBLISH_TIMEOUT_SECONDS)
    except Exception:
        log.warning("Could not publish %s to %s", event["type"], group, exc_info=True)
