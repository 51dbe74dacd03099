from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from arena.selectors import leaderboard_current, models_drawable


@require_GET
@ensure_csrf_cookie
def arena_page(request: HttpRequest) -> HttpResponse:
    # The websocket identifies the client by its session, so make sure one exists.
    if not request.session.session_key:
        request.session["arena"] = True
        request.session.save()
    return render(request, "arena/arena.html", {"models_ready": len(models_drawable()) >= 2, "prompt_max_chars": settings.ARENA_PROMPT_MAX_CHARS})


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


@require_GET
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/leaderboard.html", {"leaderboard": leaderboard_current()})


@require_GET
def leaderboard_api(request: HttpRequest) -> HttpResponse:
    return JsonResponse(leaderboard_current())
