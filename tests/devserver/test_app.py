"""Starting and stopping the server: as a program, and on a thread."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from devserver import serve_in_thread
from tests.devserver.client import CLIENT_TIMEOUT, fast_config


def test_module_runs_as_a_program():
    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run([sys.executable, "-m", "devserver", "--help"], cwd=root,
                           capture_output=True, text=True, timeout=20)
    assert shown.returncode == 0 and "--tokens-per-second" in shown.stdout


def test_serve_in_thread_stops_cleanly():
    before = threading.active_count()
    with serve_in_thread(fast_config()) as base:
        assert requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT).status_code == 200
    assert threading.active_count() == before
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base}/health", timeout=CLIENT_TIMEOUT)
