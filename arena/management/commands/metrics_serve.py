"""`manage.py metrics_serve`: `/metrics` alone, for processes with no web server of their own.

On Kubernetes each worker pod keeps its metric files in its own /tmp, out of the web's reach: a
sidecar container sharing that volume runs this, and Prometheus scrapes the pod. It answers
`/metrics` exactly as the web does (same token or network check, every process's files under
ARENA_METRICS_DIR merged) and 404 to any other path, so no page of the arena is served here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.handlers.wsgi import WSGIHandler
from django.core.management.base import BaseCommand

StartResponse = Callable[..., Any]


def metrics_only(app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
    """A WSGI app passing `/metrics` to the arena's and refusing everything else."""

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found: this port serves /metrics only.\n"]
        return app(environ, start_response)

    return serve


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not worth a log line


class Command(BaseCommand):
    help = "Serve /metrics alone on a port of its own (a worker pod's sidecar on Kubernetes)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="0.0.0.0")  # a pod port, reached by Prometheus
        parser.add_argument("--port", type=int, default=9100)

    def handle(self, *args, host: str, port: int, **options):
        with make_server(host, port, metrics_only(WSGIHandler()), handler_class=_QuietHandler) as server:
            self.stdout.write(f"Serving /metrics on {host}:{port}")
            server.serve_forever()
