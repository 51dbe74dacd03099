"""Publishing events to channel-layer groups from synchronous code (services, tasks)."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def group_publish(group: str, event: dict) -> None:
    """Best effort: live updates may be lost (the browser resyncs from the database on reconnect)."""
    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # noqa: BLE001 - a Redis outage must not undo a committed vote
        import logging

        logging.getLogger(__name__).warning("Could not publish %s to %s", event.get("type"), group, exc_info=True)
