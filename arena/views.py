from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from arena import sampling
from arena.selectors import leaderboard_current, models_available

# require_safe: GET and HEAD (uptime monitors check pages with HEAD; Django drops the body).


@require_safe
@ensure_csrf_cookie
def arena_page(request: HttpRequest) -> HttpResponse:
    # The websocket identifies the client by its session, so make sure one exists (not for HEAD:
    # a monitor's check never opens the socket, and would leave a session row each time).
    if request.method == "GET" and not request.session.session_key:
        request.session["arena"] = True
        request.session.save()
    return render(request, "arena/arena.html", {
        "models_ready": models_available(),
        "prompt_max_chars": settings.ARENA_PROMPT_MAX_CHARS,
        "max_turns": settings.ARENA_MAX_TURNS,
    })


@require_safe
@cache_control(max_age=2)
def models_status(request: HttpRequest) -> HttpResponse:
    """Whether a new battle can start, for the arena page to poll while it can't. A yes or no only:
    nothing here (names, counts) could tell anyone which models a battle drew."""
    return JsonResponse({"available": models_available()})


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


@require_safe
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/leaderboard.html", {
        "leaderboard": leaderboard_current(),
        "bootstrap_rounds": settings.ARENA_BOOTSTRAP_ROUNDS,
        "provisional_votes": settings.ARENA_PROVISIONAL_VOTES,
        "sampling": settings.ARENA_SAMPLING,
        "weighting": settings.ARENA_RATINGS_WEIGHTING,
        "boost_votes": settings.ARENA_NEW_MODEL_BOOST_VOTES,
        "new_model_boost": f"{sampling.NEW_MODEL_BOOST:g}",
        "exploration_percent": f"{sampling.EXPLORATION * 100:g}",
    })


@require_safe
def leaderboard_api(request: HttpRequest) -> HttpResponse:
    return JsonResponse(leaderboard_current())
