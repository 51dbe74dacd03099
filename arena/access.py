"""Who may use the arena (ARENA_ACCESS): anyone (`open`), or signed-in members only (`accounts`:
Django accounts made by an admin or by invitation; `sso`: OpenID Connect, arena/sso.py).

Pages check with `members_only`; the websocket checks the user when it connects and, with one
query, before every action (`member_still_signed_in`), so signing out or an admin deactivating
the account stops a socket that is already open. In open mode none of this runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.models import Session
from django.db.models import Exists
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone


def members_required() -> bool:
    return settings.ARENA_ACCESS != "open"


def leaderboard_members_only() -> bool:
    return members_required() and not settings.ARENA_LEADERBOARD_PUBLIC


def members_only(view: Callable[..., HttpResponse] | None = None, *, leaderboard: bool = False, api: bool = False):
    """A page (or, `api`, a JSON endpoint) for signed-in members where the arena requires them;
    `leaderboard`: only where ARENA_LEADERBOARD_PUBLIC is off too."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            needed = leaderboard_members_only() if leaderboard else members_required()
            if needed and not request.user.is_authenticated:
                if api:
                    return JsonResponse({"error": "Sign in first."}, status=403)
                return redirect_to_login(request.get_full_path())
            return view(request, *args, **kwargs)

        return checked

    return decorate(view) if view is not None else decorate


def member_still_signed_in(*, user_id: int, session_key: str) -> bool:
    """One query: the socket's session still exists (signing out deletes it) and its account is active."""
    active = get_user_model().objects.filter(pk=user_id, is_active=True)
    return Session.objects.filter(
        session_key=session_key, expire_date__gt=timezone.now()
    ).filter(Exists(active)).exists()


def context(request: HttpRequest) -> dict:
    """Template context: whether pages offer signing in and out."""
    return {"members_required": members_required()}
