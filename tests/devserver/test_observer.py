"""The stream hook: an observer in the config sees each stream start, then every token in order."""

from __future__ import annotations

import threading
import time

import pytest

from devserver import StreamObserver, serve_in_thread
from tests.devserver.client import fast_config, stream_sync

# text_generation 0.7 calls pydantic v1-style APIs on every request.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Recorder(StreamObserver):
    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[tuple] = []

    def stream_started(self, stream, model_id, when):
        with self.lock:
            self.calls.append(("started", stream, model_id, when))

    def token_sent(self, stream, text, special, when):
        with self.lock:
            self.calls.append(("token", stream, text, special, when))


def test_the_observer_sees_every_token_of_a_stream_in_order():
    recorder = Recorder()
    before = time.monotonic()
    with serve_in_thread(fast_config(model_id="observed", observer=recorder)) as base:
        events = stream_sync(base)
    (kind, stream, model_id, started), *tokens = recorder.calls
    assert (kind, model_id) == ("started", "observed") and before <= started
    assert all(call[0] == "token" and call[1] is stream for call in tokens)
    assert [(text, special) for _, _, text, special, _ in tokens] == [(e.token.text, e.token.special) for e in events]
    times = [started] + [when for *_, when in tokens]
    assert times == sorted(times)


def test_each_stream_has_a_key_of_its_own_and_a_cut_stream_stops_early():
    recorder = Recorder()
    with serve_in_thread(fast_config(observer=recorder)) as base:
        stream_sync(base, "first")
        cut = stream_sync(base, "second [[devserver:cut:3]]")
    starts = [call[1] for call in recorder.calls if call[0] == "started"]
    assert len(starts) == 2 and starts[0] is not starts[1]
    second = [call[2] for call in recorder.calls if call[0] == "token" and call[1] is starts[1]]
    assert second == [e.token.text for e in cut] and len(second) == 3
