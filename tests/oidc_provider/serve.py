"""Start the test OpenID provider as a process of its own (see settings.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import ROOT, free_port, port_open, process_group_stop, process_ready, process_start

CLIENT_ID = "arena-test-client"
CLIENT_SECRET = "arena-test-client-secret"  # a test provider's, registered at start-up


@dataclass(frozen=True)
class Provider:
    base_url: str

    def arena_env(self, *, domains: str) -> dict[str, str]:
        """The settings an arena needs to sign in through this provider."""
        return {
            "ARENA_ACCESS": "sso",
            "ARENA_SSO_EMAIL_DOMAINS": domains,
            "ARENA_SSO_PROVIDER_NAME": "Example Corp",
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.base_url}/o/authorize/",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.base_url}/o/token/",
            "OIDC_OP_USER_ENDPOINT": f"{self.base_url}/o/userinfo/",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.base_url}/o/.well-known/jwks.json",
            "OIDC_RP_SIGN_ALGO": "RS256",
        }


@contextlib.contextmanager
def provider_running(workdir: Path, *, redirect_uri: str, people: list[dict]) -> Iterator[Provider]:
    """django-oauth-toolkit's OIDC provider on a free port of localhost, knowing `people` and the
    arena's client (its callback `redirect_uri`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_PROVIDER_DB": str(workdir / "provider.sqlite3"), "OIDC_PROVIDER_RSA_KEY": key,
    }
    subprocess.run(
        [sys.executable, "-m", "tests.oidc_provider.setup", redirect_uri, CLIENT_ID, CLIENT_SECRET],
        input=json.dumps(people), text=True, env=env, cwd=ROOT, check=True, capture_output=True,
    )
    port = free_port()
    log = workdir / "provider.log"
    proc = process_start(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        log, env,
    )
    try:
        process_ready(proc, lambda: port_open(port), log, "the OpenID provider")
        # localhost, not 127.0.0.1: the browser keeps the provider's cookies apart from the arena's.
        yield Provider(f"http://localhost:{port}")
    finally:
        process_group_stop(proc)
