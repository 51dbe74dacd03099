"""Arena settings: every value comes from a typed environment variable.

Zero-config defaults give a local run (SQLite, Redis on localhost, DEBUG on). Production differs
only by env: see `.env.example`. A value that can't be parsed stops the process at start-up
rather than being silently replaced by a default.
"""

import ipaddress
import logging
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError
from marshmallow.validate import OneOf, Range

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
# Validators must raise (marshmallow ignores a validator that merely returns False).
_AT_LEAST_ONE = Range(min=1)
_NON_NEGATIVE = Range(min=0)
_POSITIVE = Range(min=0, min_inclusive=False)
env.read_env(BASE_DIR / ".env", recurse=False)  # optional; real env vars win


def _secret_key(debug: bool) -> str:
    """SECRET_KEY, or the contents of SECRET_KEY_FILE (Docker/K8s secrets); required unless DEBUG."""
    key = env.str("SECRET_KEY", "")
    key_file = env.path("SECRET_KEY_FILE", None)
    if not key and key_file:
        key = key_file.read_text().strip()
    if key:
        return key
    if debug:
        return "insecure-development-key-only-used-when-DEBUG-is-on"
    raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")


def _networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of CIDRs (a bare address is one host)."""
    networks = []
    for net in env.list(name, default):
        try:
            networks.append(ipaddress.ip_network(net.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"Bad environment variable {name}: {exc}") from exc
    return networks


try:
    DEBUG = env.bool("DEBUG", True)
    SECRET_KEY = _secret_key(DEBUG)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
    CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", [])
    DB_CONN_MAX_AGE = env.int("DB_CONN_MAX_AGE", 0, validate=_NON_NEGATIVE)
    DATABASES = {
        "default": env.dj_db_url(
            "DATABASE_URL", f"sqlite:///{BASE_DIR / 'arena.sqlite3'}", conn_max_age=DB_CONN_MAX_AGE
        )
    }
    # PostgreSQL connections come from a pool in each process (psycopg_pool): without it every
    # service call from a websocket opens a new connection, and persistent per-thread connections
    # (DB_CONN_MAX_AGE) pile up under ASGI, one per thread. 0 turns the pool off.
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", 20, validate=_NON_NEGATIVE)
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and DB_POOL_MAX_SIZE:
        if DB_CONN_MAX_AGE:
            raise ImproperlyConfigured(
                "Set DB_CONN_MAX_AGE=0 or DB_POOL_MAX_SIZE=0: pooled connections are already kept"
            )
        pool = {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 30}
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = pool
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # The zero-setup local database: WAL and a busy timeout let web and worker share it.
        DATABASES["default"]["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    REDIS_URL = env.str("REDIS_URL", "redis://127.0.0.1:6379/0")
    # Separate logical databases by default so tests can flush one without touching another.
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", REDIS_URL)
    CHANNEL_LAYER_URL = env.str("CHANNEL_LAYER_URL", REDIS_URL)
    SECURE_SSL = env.bool("SECURE_SSL", not DEBUG)
    TRUSTED_PROXIES: list[str] = env.list("TRUSTED_PROXIES", [])
    LOG_LEVEL = env.log_level("LOG_LEVEL", logging.INFO)

    # Arena behaviour
    ARENA_PROMPT_MAX_CHARS = env.int("ARENA_PROMPT_MAX_CHARS", 30_000, validate=_AT_LEAST_ONE)
    ARENA_MAX_TURNS = env.int("ARENA_MAX_TURNS", 50, validate=_AT_LEAST_ONE)
    ARENA_BATTLES_PER_MINUTE = env.int("ARENA_BATTLES_PER_MINUTE", 10, validate=_AT_LEAST_ONE)
    ARENA_VOTES_PER_DAY = env.int("ARENA_VOTES_PER_DAY", 500, validate=_AT_LEAST_ONE)
    ARENA_TURNS_PER_MINUTE = env.int("ARENA_TURNS_PER_MINUTE", 20, validate=_AT_LEAST_ONE)
    # Coalescing of streamed deltas (arena/relay.py): at most one publish per stream per this
    # many ms (plus whatever piles up while a publish is in flight). 15 ms is one frame of a 60 Hz
    # display: no browser shows tokens more often, and a model streaming 50 tokens/s (one per
    # 20 ms) is never held back.
    ARENA_DELTA_FLUSH_MS = env.int("ARENA_DELTA_FLUSH_MS", 15, validate=_NON_NEGATIVE)
    ARENA_DELTA_FLUSH_CHARS = env.int("ARENA_DELTA_FLUSH_CHARS", 256, validate=_AT_LEAST_ONE)
    # A streaming reply refreshes a heartbeat in Redis; the sweeper fails one whose heartbeat
    # expired (its worker died), one queued longer than the queue timeout (no worker took it),
    # and anything older than the stale limit.
    ARENA_REPLY_HEARTBEAT_SECONDS = env.float("ARENA_REPLY_HEARTBEAT_SECONDS", 10.0, validate=_POSITIVE)
    ARENA_REPLY_QUEUE_TIMEOUT_SECONDS = env.int("ARENA_REPLY_QUEUE_TIMEOUT_SECONDS", 120, validate=_AT_LEAST_ONE)
    ARENA_REPLY_STALE_SECONDS = env.int("ARENA_REPLY_STALE_SECONDS", 900, validate=_AT_LEAST_ONE)
    ARENA_SWEEP_INTERVAL_SECONDS = env.float("ARENA_SWEEP_INTERVAL_SECONDS", 10.0, validate=_POSITIVE)
    # A model server that sends no token for this long has stalled: the reply fails (whatever is
    # left of the model's total timeout).
    ARENA_STALL_SECONDS = env.float("ARENA_STALL_SECONDS", 30.0, validate=_POSITIVE)
    # A reply to a model at its concurrency limit (ChatModel.max_concurrent) waits this long at
    # most for a slot, then fails as overloaded; the wait adds to the model's own timeouts.
    ARENA_MODEL_SLOT_WAIT_SECONDS = env.float("ARENA_MODEL_SLOT_WAIT_SECONDS", 120.0, validate=_POSITIVE)
    # Health: this many failed generations within the window mark a model unhealthy until the
    # periodic probe sees it well again.
    ARENA_MODEL_FAILURES_UNHEALTHY = env.int("ARENA_MODEL_FAILURES_UNHEALTHY", 3, validate=_AT_LEAST_ONE)
    ARENA_MODEL_FAILURE_WINDOW_SECONDS = env.int("ARENA_MODEL_FAILURE_WINDOW_SECONDS", 120, validate=_AT_LEAST_ONE)
    ARENA_PROBE_INTERVAL_SECONDS = env.float("ARENA_PROBE_INTERVAL_SECONDS", 30.0, validate=_POSITIVE)
    # OpenAI-compatible servers (hosted APIs among them, which may count or bill requests) are
    # probed periodically at most this often; /v1/models costs no generation tokens anyway.
    ARENA_OPENAI_PROBE_INTERVAL_SECONDS = env.float("ARENA_OPENAI_PROBE_INTERVAL_SECONDS", 60.0, validate=_POSITIVE)
    ARENA_IDENTITY_WORDS = env.list(
        "ARENA_IDENTITY_WORDS",
        [
            "vicuna", "lmsys", "koala", "uc berkeley", "open assistant", "laion", "chatglm",
            "chatgpt", "gpt-4", "gpt-3", "openai", "anthropic", "claude", "bard", "palm",
            "lamda", "google", "gemini", "gemma", "llama", "meta ai", "qwen", "alibaba",
            "mistral", "mixtral", "zephyr", "hugging face", "huggingface", "deepseek",
            "yi-", "01.ai", "cohere", "command-r", "phi-3", "microsoft",
        ],
    )
    ARENA_RATING_ANCHOR_MODEL = env.str("ARENA_RATING_ANCHOR_MODEL", "")
    ARENA_RATING_ANCHOR_VALUE = env.float("ARENA_RATING_ANCHOR_VALUE", 1000.0)
    ARENA_BOOTSTRAP_ROUNDS = env.int("ARENA_BOOTSTRAP_ROUNDS", 1000, validate=_NON_NEGATIVE)
    # The bootstrap reruns at most this often while votes keep arriving.
    ARENA_BOOTSTRAP_DEBOUNCE_SECONDS = env.float("ARENA_BOOTSTRAP_DEBOUNCE_SECONDS", 10.0, validate=_NON_NEGATIVE)
    # Votes on battles whose replies named a model or vendor are kept but not rated, unless this is on.
    ARENA_RATINGS_INCLUDE_FLAGGED = env.bool("ARENA_RATINGS_INCLUDE_FLAGGED", False)
    # A judge model's votes (judged runs) are rated on a leaderboard of their own, unless this is on.
    ARENA_RATINGS_INCLUDE_JUDGED = env.bool("ARENA_RATINGS_INCLUDE_JUDGED", False)
    # How each vote weighs in the fit: all alike, or by the inverse of the chance its pair was
    # drawn with (the ratings then estimate what uniform sampling would have given).
    ARENA_RATINGS_WEIGHTING = env.str(
        "ARENA_RATINGS_WEIGHTING", "none", validate=OneOf(["none", "inverse-probability"])
    )
    # Which two models fight (arena/sampling.py; bench/sampling.py compares the three): the pairs
    # whose next vote says most about the ranking, every pair alike, or the reference arena's draw.
    ARENA_SAMPLING = env.str("ARENA_SAMPLING", "adaptive", validate=OneOf(["adaptive", "uniform", "weighted"]))
    # A model with fewer counted votes is drawn five times as often (0: no boost) ...
    ARENA_NEW_MODEL_BOOST_VOTES = env.int("ARENA_NEW_MODEL_BOOST_VOTES", 100, validate=_NON_NEGATIVE)
    # ... and listed apart on the leaderboard as provisional, without a rank (0: none is).
    ARENA_PROVISIONAL_VOTES = env.int("ARENA_PROVISIONAL_VOTES", 50, validate=_NON_NEGATIVE)
    # A leaderboard category (or the style-controlled view) with fewer counted votes says so instead
    # of ranking models on a handful of votes.
    ARENA_CATEGORY_MIN_VOTES = env.int("ARENA_CATEGORY_MIN_VOTES", 300, validate=_NON_NEGATIVE)
    IP_HASH_SALT = env.str("IP_HASH_SALT", SECRET_KEY)

    # Who may vote (arena/access.py): anyone with the URL, Django accounts (made by an admin or
    # by invitation), or OpenID Connect sign-in limited to the organisation's e-mail domains.
    ARENA_ACCESS = env.str("ARENA_ACCESS", "open", validate=OneOf(["open", "accounts", "sso"]))
    # With accounts or SSO the leaderboard can still be public, or for signed-in members only.
    ARENA_LEADERBOARD_PUBLIC = env.bool("ARENA_LEADERBOARD_PUBLIC", True)
    # An account's votes per day (accounts and SSO): one more is refused, so none goes uncounted.
    ARENA_ACCOUNT_VOTES_PER_DAY = env.int("ARENA_ACCOUNT_VOTES_PER_DAY", 200, validate=_AT_LEAST_ONE)
    # With accounts or SSO, an office's staff share one address: the per-address limits are this
    # many times the per-session ones (in open mode, where a new session is free, they are equal).
    ARENA_ADDRESS_SHARERS = env.int("ARENA_ADDRESS_SHARERS", 30, validate=_AT_LEAST_ONE)
    # An account's votes stay out of the ratings until it has cast this many (0: counted at once).
    ARENA_NEW_ACCOUNT_HOLD_VOTES = env.int("ARENA_NEW_ACCOUNT_HOLD_VOTES", 0, validate=_NON_NEGATIVE)
    # Rigging detection as votes are counted (arena/detection.py): a voter who keeps picking one
    # model against the leaderboard's odds, and votes cast sooner than this after the slower
    # reply finished. Flagged votes wait for an admin's review. On by default with sign-in.
    ARENA_VOTE_DETECTION = env.bool("ARENA_VOTE_DETECTION", ARENA_ACCESS != "open")
    ARENA_VOTE_MIN_SECONDS = env.float("ARENA_VOTE_MIN_SECONDS", 2.0, validate=_NON_NEGATIVE)
    # SSO (ARENA_ACCESS=sso): the provider's endpoints and this arena's client, as registered there
    # (mozilla-django-oidc reads these names), and the e-mail domains allowed in ("*": any).
    _sso_domains: list[str] = env.list("ARENA_SSO_EMAIL_DOMAINS", [])
    ARENA_SSO_EMAIL_DOMAINS = [d.strip().lower() for d in _sso_domains if d.strip()]
    ARENA_SSO_PROVIDER_NAME = env.str("ARENA_SSO_PROVIDER_NAME", "your organisation")
    OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", "")
    OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", "")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
    OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", "")
    OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", "")
    OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", "")
    OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", "RS256", validate=OneOf(["RS256", "ES256", "HS256"]))

    # Prometheus metrics (arena/metrics.py): every web and worker process writes its values under
    # this directory, which /metrics reads; processes on several hosts or containers share it
    # (compose mounts one volume). The default suits a local run.
    ARENA_METRICS_DIR = env.path("ARENA_METRICS_DIR", Path(tempfile.gettempdir()) / "arena-metrics")
    # /metrics answers a request carrying `Authorization: Bearer <this>`; unset, one from the
    # allowed networks (CIDRs, comma-separated; loopback by default) instead.
    ARENA_METRICS_TOKEN = env.str("ARENA_METRICS_TOKEN", "")
    ARENA_METRICS_ALLOWED_NETWORKS = _networks("ARENA_METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
except EnvError as exc:  # environs names the variable and the bad value
    raise ImproperlyConfigured(f"Bad environment variable: {exc}") from exc

if ARENA_ACCESS == "sso":
    _oidc_missing = [
        name for name in ("OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET", "OIDC_OP_AUTHORIZATION_ENDPOINT",
                          "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT", "ARENA_SSO_EMAIL_DOMAINS")
        if not globals()[name]
    ] + (["OIDC_OP_JWKS_ENDPOINT"] if OIDC_RP_SIGN_ALGO != "HS256" and not OIDC_OP_JWKS_ENDPOINT else [])
    if _oidc_missing:
        raise ImproperlyConfigured(f"ARENA_ACCESS=sso needs {', '.join(_oidc_missing)} (see .env.example)")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "mozilla_django_oidc",
    "arena",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

# Sign-in (ARENA_ACCESS accounts or sso): Django's accounts, and with SSO the OpenID Connect
# backend, which takes users only from the allowed e-mail domains (arena/sso.py).
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if ARENA_ACCESS == "sso":
    AUTHENTICATION_BACKENDS.append("arena.sso.DomainOIDCBackend")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]
LOGIN_URL = "sign-in"
LOGIN_REDIRECT_URL = "arena"
LOGOUT_REDIRECT_URL = "sign-in"
OIDC_RP_SCOPES = "openid email profile"
OIDC_STORE_ID_TOKEN = False
OIDC_USE_PKCE = True  # the code is useless to whoever intercepts it without the verifier
OIDC_CREATE_USER = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/sign-in/?failed=1"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "arena.access.context",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "config.storage.StaticFilesStorage"
    },
}

CACHES = {
    "default": {
        "BACKEND": "config.cache.ProcessRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "arena",
    }
}

# Redis pub/sub, not channels_redis's list-based RedisChannelLayer. A delta is one PUBLISH to the
# battle's group, pushed to the web processes whose sockets follow that battle; the list-based layer
# costs four round trips per group_send (prune, members, prune, Lua push) and one blocking pop per
# message per web process, all receives of a process queued behind one lock, and under load it
# overflows its per-channel capacity and drops tokens (bench/README.md). Nothing is lost by
# pub/sub: both layers drop an event for a group nobody follows, and a browser that (re)joins
# reads the text so far from Redis. A socket's pending events queue in its web process (at most a
# reply's worth of text) instead of expiring in Redis.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            # redis-py 8 gives up reading after 5 s by default; keep idle connections alive longer.
            "hosts": [{"address": CHANNEL_LAYER_URL, "socket_timeout": 10}],
            # Pub/sub channels ignore the database number: it goes into the channel names, so two
            # arenas (or test runs) sharing a Redis server on different databases stay apart, as
            # they were with the list-based layer (the "leaderboard" group has the same name in all).
            "prefix": f"asgi-db{urlsplit(CHANNEL_LAYER_URL).path.strip('/') or '0'}",
        },
    }
}

# Sessions identify a client (with a salted IP hash). Kept in the database, so a session exists
# only once one of our pages has made it; the websocket refuses a socket without one.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_SSL_REDIRECT = SECURE_SSL and env.bool("SECURE_SSL_REDIRECT", True)
# Prometheus scrapes web inside the private network, over plain HTTP (its bearer token or network
# is checked by the view): not redirected.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000 if SECURE_SSL else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Celery: generation is I/O-bound (waiting on model servers), so workers run a thread pool with
# many slots; see the Makefile / compose for the pool flags.
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-generation gives the task back to the broker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", 900)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", 840)
# acks_late redelivery waits for the visibility timeout; keep it above the longest generation.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 60}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", "arena")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "reply-sweep": {"task": "inference.tasks.replies_sweep", "schedule": ARENA_SWEEP_INTERVAL_SECONDS},
    "model-probe": {"task": "inference.tasks.models_probe", "schedule": ARENA_PROBE_INTERVAL_SECONDS},
    # Votes are counted by the refresh their commit queues; this catches any whose refresh was lost.
    "votes-count": {"task": "arena.tasks.votes_count", "schedule": 60.0},
    # Judged runs: a dead worker's items handed out again, stalled runs pumped.
    "judge-sweep": {"task": "arena.tasks.judge_runs_sweep", "schedule": ARENA_SWEEP_INTERVAL_SECONDS},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # httpx2 (under the openai client) logs every request at INFO: a line per reply is noise.
    "loggers": {"django.channels.server": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}},
}

# In development whitenoise serves straight from the apps' static folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
