"""Who is asking: a session plus a salted hash of the IP address; raw IPs are never stored."""

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ClientIdentity:
    client_id: str  # salted hash of the session key: owns battles, is rate limited
    ip_hash: str  # salted hash of the client's IP: rate limited too, so new sessions don't help


def _digest(kind: str, value: str) -> str:
    return hmac.new(settings.IP_HASH_SALT.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def client_ip(peer: str | None, forwarded_for: str | None) -> str:
    """The client's address: X-Forwarded-For is honoured only when the peer is a trusted proxy."""
    ip = peer or ""
    trusted = settings.TRUSTED_PROXIES
    if forwarded_for and ip and _in_any(ip, trusted):
        # Walk from the right, skipping our own proxies; the first untrusted hop is the client.
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            ip = hop
            if not _in_any(hop, trusted):
                break
    return ip


def _in_any(ip: str, networks: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(net, strict=False) for net in networks)


def client_identity(*, session_key: str, ip: str) -> ClientIdentity:
    return ClientIdentity(client_id=_digest("session", session_key), ip_hash=_digest("ip", ip) if ip else "")
