"""Health check of the web container: GET /healthz on the local ASGI server, exit 0 if it says ok.

Sent the way the public reaches the site: with a Host from ALLOWED_HOSTS (anything else is
refused with 400) and `X-Forwarded-Proto: https` (with SECURE_SSL on, a plain-HTTP request would
only be redirected). /healthz also runs a query, so a lost database makes the container unhealthy.

    python docker/healthcheck.py [PORT]      # default 8000
"""

import http.client
import json
import os
import sys


def host_header() -> str:
    """The first ALLOWED_HOSTS entry usable as a Host header ('localhost' if there is none)."""
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        entry = entry.strip().lstrip(".")
        if entry and entry != "*":
            return entry
    return "localhost"


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
    try:
        headers = {"Host": host_header(), "X-Forwarded-Proto": "https", "Accept": "application/json"}
        connection.request("GET", "/healthz", headers=headers)
        response = connection.getresponse()
        body = response.read(4096)
    except OSError as exc:
        print(f"unhealthy: no answer on port {port}: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"unhealthy: /healthz answered HTTP {response.status}", file=sys.stderr)
        return 1
    try:
        ok = json.loads(body).get("ok") is True
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        print(f"unhealthy: /healthz answered {body[:200]!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
