"""Who is asking: a session (or, signed in, an account) plus a salted hash of the IP address;
raw IPs are never stored."""

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from django.conf import settings

from arena.verdicts import JUDGE_MODEL_PREFIX


@dataclass(frozen=True)
class ClientIdentity:
    client_id: str  # salted hash of the session key, or of the account: owns battles, is rate limited
    ip_hash: str  # salted hash of the client's IP: rate limited too, so new sessions don't help
    user_id: int | None = None  # the signed-in account (ARENA_ACCESS accounts or sso), which owns the votes


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


def client_identity(*, session_key: str, ip: str, user_id: int | None = None) -> ClientIdentity:
    """Signed in, the account is the client: its battles follow it from one device to another."""
    client_id = _digest("user", str(user_id)) if user_id is not None else _digest("session", session_key)
    return ClientIdentity(client_id=client_id, ip_hash=_digest("ip", ip) if ip else "", user_id=user_id)


def sign_in_identity(*, username: str, ip: str) -> ClientIdentity:
    """Sign-in attempts are counted by the name tried (guessing one account's password) and by
    address (trying many accounts)."""
    return ClientIdentity(client_id=_digest("sign-in", username.casefold()), ip_hash=_digest("ip", ip) if ip else "")


def judge_pseudonym(judge: str) -> str:
    """A stable stand-in for a person judging in exports: the same voter, unrecognisable outside
    this arena. A judge model ("model:<name>") is no person and keeps its name, so its battles
    stay apart from people's when the file is imported again."""
    if judge.startswith(JUDGE_MODEL_PREFIX):
        return judge
    return "judge-" + _digest("judge", judge)[:16]
