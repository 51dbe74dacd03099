"""A public hook into the streams the server sends, for measuring them (e.g. bench/stream.py)."""

from __future__ import annotations


class StreamObserver:
    """Told about every generation stream the server sends; the default methods do nothing.

    Both methods run on the server's event loop, between writes: keep them quick. `stream` is an
    opaque key, the same object for every call about one stream and distinct from every other
    stream's while it lasts. `when` is `time.monotonic()`.
    """

    def stream_started(self, stream: object, model_id: str, when: float) -> None:
        """The stream's headers are written; its first token comes after the time to first token."""

    def token_sent(self, stream: object, text: str, special: bool, when: float) -> None:
        """One token event is about to be written to the socket, in stream order."""
