import hmac
import ipaddress

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from arena import sampling
from arena.access import members_only, members_required
from arena.categories import CATEGORY_NAME, OVERALL
from arena.clients import client_ip
from arena.judge_board import judge_leaderboard, judges_known
from arena.leaderboard_variants import categories_menu
from arena.metrics import AllHostsCollector
from arena.personal import PERSONAL_MIN_VOTES, personal_leaderboard
from arena.selectors import leaderboard_for_view, models_available

# require_safe: GET and HEAD (uptime monitors check pages with HEAD; Django drops the body).


@require_safe
@ensure_csrf_cookie
@members_only
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
@members_only(api=True)
def models_status(request: HttpRequest) -> HttpResponse:
    """Whether a new battle can start, for the arena page to poll while it can't. A yes or no only:
    nothing here (names, counts) could tell anyone which models a battle drew."""
    return JsonResponse({"available": models_available()})


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format, every process's metrics merged (arena/metrics.py). Not public:
    with ARENA_METRICS_TOKEN set, only a request carrying it as a bearer token gets them;
    without, only one from ARENA_METRICS_ALLOWED_NETWORKS. Refusals say nothing else."""
    token = settings.ARENA_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Compared in constant time, as bytes: a wrong guess tells nothing of how near it was.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            refused = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
            refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
    elif not _from_metrics_network(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(AllHostsCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _from_metrics_network(request: HttpRequest) -> bool:
    # X-Forwarded-For counts only from TRUSTED_PROXIES (arena.clients), as for the rate limits.
    ip = client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in settings.ARENA_METRICS_ALLOWED_NETWORKS)


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


class LeaderboardViewError(ValueError):
    pass


def _leaderboard_view(request: HttpRequest) -> tuple[bool, str]:
    """?style=1 (style control) and ?category=NAME, so views compose with other parameters."""
    style = request.GET.get("style", "0")
    if style not in ("0", "1"):
        raise LeaderboardViewError("style must be 0 or 1")
    category = request.GET.get("category", "") or OVERALL
    if not CATEGORY_NAME.fullmatch(category):
        raise LeaderboardViewError(
            "category must be overall, coding, long_query, multi_turn, no_short, no_refusal, dedup or a language"
        )
    return style == "1", category


def _leaderboard_for(request: HttpRequest) -> tuple[dict, dict, list[str]]:
    """The leaderboard a request asks for and its view: the people's (with ?style= and ?category=)
    or, with `?judge=model:<name>`, that judge model's (404 if it has no votes)."""
    style, category = _leaderboard_view(request)
    judge = request.GET.get("judge") or None
    judges = judges_known()
    view = {"style": style, "category": category, "judge": judge}
    if judge is None:
        return leaderboard_for_view(style=style, category=category), view, judges
    if judge not in judges:
        raise Http404("No judge model of that name has voted.")
    if style or category != OVERALL:
        raise LeaderboardViewError("a judge model's leaderboard has no style control or categories")
    return judge_leaderboard(judge), view, judges


@require_safe
@members_only(leaderboard=True)
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    try:
        leaderboard, view, judges = _leaderboard_for(request)
    except LeaderboardViewError as exc:
        return render(request, "arena/leaderboard_error.html", {"error": str(exc)}, status=400)
    judge = view["judge"]
    mine = personal_leaderboard(user_id=_user_id(request)) if _personal(request) and not judge else None
    menu = categories_menu()
    return render(request, "arena/leaderboard.html", {
        "leaderboard": leaderboard,
        "view": view,
        "judge": judge,
        "judges": judges,
        "mine": mine,
        "personal_min_votes": PERSONAL_MIN_VOTES,
        "categories": menu,
        "category_names": [c["name"] for c in menu],
        "category_min_votes": settings.ARENA_CATEGORY_MIN_VOTES,
        "bootstrap_rounds": settings.ARENA_BOOTSTRAP_ROUNDS,
        "provisional_votes": settings.ARENA_PROVISIONAL_VOTES,
        "sampling": settings.ARENA_SAMPLING,
        "weighting": settings.ARENA_RATINGS_WEIGHTING,
        "boost_votes": settings.ARENA_NEW_MODEL_BOOST_VOTES,
        "new_model_boost": f"{sampling.NEW_MODEL_BOOST:g}",
        "exploration_percent": f"{sampling.EXPLORATION * 100:g}",
    })


@require_safe
@members_only(leaderboard=True, api=True)
def leaderboard_api(request: HttpRequest) -> HttpResponse:
    try:
        return JsonResponse(_leaderboard_for(request)[0])
    except LeaderboardViewError as exc:
        return JsonResponse({"error": str(exc)}, status=400)


def _user_id(request: HttpRequest) -> int:
    assert request.user.pk is not None  # signed in (_personal)
    return int(request.user.pk)


def _personal(request: HttpRequest) -> bool:
    return members_required() and request.user.is_authenticated


@require_safe
@members_only(api=True)
def leaderboard_mine_api(request: HttpRequest) -> HttpResponse:
    """The signed-in voter's own ranking (their votes, shrunk towards the global ratings)."""
    if not _personal(request):
        return JsonResponse({"error": "Personal rankings are for signed-in members."}, status=404)
    return JsonResponse(personal_leaderboard(user_id=_user_id(request)))
