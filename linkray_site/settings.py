"""The one settings module. Only this file reads the environment (via linkray_site.env).

Nothing set means the embedded default: SQLite in the data directory, the in-memory channel
layer and no Celery, all in one `manage.py serve` process. REDIS_URL switches on
channels-redis and Celery; DATABASE_URL selects another database (PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from linkray_site.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_log_level,
    env_networks,
    env_str,
    env_ws_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# An optional .env beside manage.py; real environment variables win.
load_dotenv(BASE_DIR / ".env", override=False)
ENV = os.environ

DATA_DIR = Path(env_str(ENV, "LINKRAY_DATA_DIR", str(BASE_DIR / "data"))).expanduser().resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
(DATA_DIR / "static").mkdir(exist_ok=True)  # STATIC_ROOT: whitenoise warns when it is missing


def _kept_secret(env_name: str, file_name: str) -> str:
    # First run needs no configuration: generate the secret once and keep it with the data.
    configured = env_str(ENV, env_name)
    if configured:
        return configured
    path = DATA_DIR / file_name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


SECRET_KEY = _kept_secret("LINKRAY_SECRET_KEY", "secret_key")
# Bearer token for the JSON API (integrators, `manage.py charger_call`).
LINKRAY_API_TOKEN = _kept_secret("LINKRAY_API_TOKEN", "api_token")
DEBUG = env_bool(ENV, "LINKRAY_DEBUG", False)
# A site controller is reached by whatever address the installer gave it; "*" by default,
# narrowed with LINKRAY_ALLOWED_HOSTS where the network calls for it.
ALLOWED_HOSTS = env_list(ENV, "LINKRAY_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list(ENV, "LINKRAY_CSRF_TRUSTED_ORIGINS", [])

REDIS_URL = env_str(ENV, "REDIS_URL")
LINKRAY_EMBEDDED = not REDIS_URL

# "daphne" is deliberately not an app here: its AppConfig imports daphne.server, which installs
# Twisted's reactor on a plain asyncio loop before `serve` can choose the loop (uvloop).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "ninja",
    "accounts",
    "audit",
    "gateway",
    "meters",
    "balancing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "accounts.cookies.SecureCookiesOverTlsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "linkray_site.urls"
ASGI_APPLICATION = "linkray_site.asgi.application"

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
                "accounts.access.rights_context",
            ],
            # `|sitetime`: the one time format of every page, in TIME_ZONE.
            "builtins": ["gateway.templatetags.site_time"],
        },
    },
]

# SQLite by default, in WAL mode with full fsync: the offline queue promises that a power
# cut loses nothing, and one small site's write rate is far below what that costs.
DATABASES = {
    "default": dj_database_url.parse(
        env_str(ENV, "DATABASE_URL") or f"sqlite:///{DATA_DIR / 'linkray.sqlite3'}",
        # Keep connections: the relay writes every second through one database thread, and
        # reconnecting (with SQLite's PRAGMAs) each time was measurable in bench/relay.py.
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if LINKRAY_EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout, the same as channels-redis's 5 s
            # BZPOPMIN: the read then timed out as the server answered, every 5 s, losing what
            # was popped at that moment. The socket timeout must outlast the blocking pop.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": env_str(ENV, "LINKRAY_CHANNEL_PREFIX", "linkray"),
            },
        }
    }

# Latest readings and other hot, shared values: process memory on the embedded default,
# Redis when several processes must see the same values.
if LINKRAY_EMBEDDED:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "linkray"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str(ENV, "LINKRAY_CHANNEL_PREFIX", "linkray"),
        }
    }

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE: dict = {
    "gateway-prune-journal": {"task": "gateway.prune_journal", "schedule": 3600.0},
    # Each meter keeps its own interval: the task polls only the meters that are due.
    "meters-poll-due": {"task": "meters.poll_due", "schedule": 1.0, "options": {"expires": 2.0}},
    "meters-prune-history": {"task": "meters.prune_history", "schedule": 3600.0},
    "audit-prune": {"task": "audit.prune", "schedule": 3600.0},
    # Every second; the task itself keeps the site's control period (balancing.tasks).
    "balancing-run-cycle": {"task": "balancing.run_cycle", "schedule": 1.0, "options": {"expires": 2.0}},
}
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- People, login and the audit log ---------------------------------------------------------
# Login throttle per client address: after this many failures within the window, each further
# failure doubles the wait (from LINKRAY_LOGIN_DELAY_S up to LINKRAY_LOGIN_MAX_DELAY_S); attempts
# while waiting are answered 429.
LINKRAY_LOGIN_MAX_FAILURES = env_int(ENV, "LINKRAY_LOGIN_MAX_FAILURES", 5, minimum=1)
LINKRAY_LOGIN_WINDOW_S = env_float(ENV, "LINKRAY_LOGIN_WINDOW_S", 900.0, minimum=1)
LINKRAY_LOGIN_DELAY_S = env_float(ENV, "LINKRAY_LOGIN_DELAY_S", 5.0, minimum=0.1)
LINKRAY_LOGIN_MAX_DELAY_S = env_float(ENV, "LINKRAY_LOGIN_MAX_DELAY_S", 900.0, minimum=0.1)
# Cookies are Secure on every request that came over TLS (accounts.cookies). Behind a TLS proxy:
# LINKRAY_SECURE_COOKIES=true marks them Secure always; LINKRAY_TLS_PROXY_HEADER=true trusts the
# proxy's X-Forwarded-Proto (only when the proxy sets or strips it for every request).
LINKRAY_SECURE_COOKIES = env_bool(ENV, "LINKRAY_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = LINKRAY_SECURE_COOKIES
if env_bool(ENV, "LINKRAY_TLS_PROXY_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Audit entries older than this are pruned (hourly).
LINKRAY_AUDIT_RETENTION_DAYS = env_float(ENV, "LINKRAY_AUDIT_RETENTION_DAYS", 365, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str(ENV, "LINKRAY_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# whitenoise: hashed, gzip-compressed files cached for a year; `serve` collects them on start
# (linkray_site/static_files.py). Until collected, files are served from the apps' folders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "linkray_site.static_files.StaticStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_MAX_AGE = 3600  # unhashed names only; hashed names are immutable (one year)

# --- Gateway -------------------------------------------------------------------------
# The back office's OCPP base URL; each charger's leg goes to <this>/<chargeBoxId>.
LINKRAY_CSMS_URL = env_ws_url(ENV, "LINKRAY_CSMS_URL")
# PEM bundle to verify a wss:// CSMS against instead of the system's CAs.
LINKRAY_CSMS_CA_BUNDLE = env_str(ENV, "LINKRAY_CSMS_CA_BUNDLE")
# permessage-deflate on the CSMS leg: costs CPU and memory per connection, pays only on a
# metered or slow uplink.
LINKRAY_CSMS_COMPRESSION = env_bool(ENV, "LINKRAY_CSMS_COMPRESSION", False)
# The same for the charger leg: a charger that offers permessage-deflate gets it only when on.
LINKRAY_CHARGER_COMPRESSION = env_bool(ENV, "LINKRAY_CHARGER_COMPRESSION", False)
LINKRAY_CSMS_CONNECT_TIMEOUT_S = env_float(ENV, "LINKRAY_CSMS_CONNECT_TIMEOUT_S", 10.0, minimum=0.1)
# How long a connecting charger waits for its CSMS leg before LinkRay accepts it anyway (and
# serves it offline until the leg is up): below the usual 10 s handshake timeout of chargers.
LINKRAY_CSMS_ADMIT_WAIT_S = env_float(ENV, "LINKRAY_CSMS_ADMIT_WAIT_S", 5.0, minimum=0.1)
LINKRAY_CSMS_RECONNECT_MIN_S = env_float(ENV, "LINKRAY_CSMS_RECONNECT_MIN_S", 1.0, minimum=0.01)
LINKRAY_CSMS_RECONNECT_MAX_S = env_float(ENV, "LINKRAY_CSMS_RECONNECT_MAX_S", 60.0, minimum=0.01)
LINKRAY_CSMS_PING_INTERVAL_S = env_float(ENV, "LINKRAY_CSMS_PING_INTERVAL_S", 30.0, minimum=0)
LINKRAY_CHARGER_PING_INTERVAL_S = env_float(ENV, "LINKRAY_CHARGER_PING_INTERVAL_S", 30.0, minimum=1)
# --- Storms: a whole site reconnecting in the same second (docs/performance.md, "Storms") ---
# The listen queue: connections the kernel holds while LinkRay is busy accepting others. Linux
# caps it at net.core.somaxconn (4096 on current kernels); Twisted's default of 50 overflowed
# in a 1,000-charger burst.
LINKRAY_LISTEN_BACKLOG = env_int(ENV, "LINKRAY_LISTEN_BACKLOG", 4096, minimum=1)
# Several server processes on one port (SO_REUSEPORT; the kernel spreads connections). Also
# `manage.py serve --reuse-port`.
LINKRAY_REUSE_PORT = env_bool(ENV, "LINKRAY_REUSE_PORT", False)
# A charger whose admission (database, CSMS leg) has not finished this long after its socket
# opened gets HTTP 503 with Retry-After instead of waiting on. The websocket layer's own
# handshake deadline lies beyond it, so no charger is ever dropped without an answer.
LINKRAY_ADMISSION_TIMEOUT_S = env_float(ENV, "LINKRAY_ADMISSION_TIMEOUT_S", 60.0, minimum=1)
LINKRAY_WEBSOCKET_HANDSHAKE_TIMEOUT_S = LINKRAY_ADMISSION_TIMEOUT_S + LINKRAY_CSMS_ADMIT_WAIT_S + 30
# Retry-After of a 503: a charger told to come back gets this many seconds, plus up to the same
# again at random so the retries of a storm do not come back in step.
LINKRAY_RETRY_AFTER_S = env_int(ENV, "LINKRAY_RETRY_AFTER_S", 10, minimum=1)
# CSMS legs opened at the same time (first connections and reconnections); a leg waiting for a
# slot during a storm waits a random 0-LINKRAY_CSMS_CONNECT_JITTER_S more, so a CSMS never gets
# thousands of handshakes in the same millisecond.
LINKRAY_CSMS_CONNECT_CONCURRENCY = env_int(ENV, "LINKRAY_CSMS_CONNECT_CONCURRENCY", 50, minimum=1)
LINKRAY_CSMS_CONNECT_JITTER_S = env_float(ENV, "LINKRAY_CSMS_CONNECT_JITTER_S", 0.05, minimum=0)
# Charger sockets (open or still in their handshake) from one client address. A site's
# chargers behind one NAT address share it: the default is above the tested maximum of 5,000.
LINKRAY_MAX_CONNECTIONS_PER_ADDRESS = env_int(ENV, "LINKRAY_MAX_CONNECTIONS_PER_ADDRESS", 6000, minimum=1)
# How long an outstanding CALL holds its direction before it counts as timed out.
LINKRAY_CALL_TIMEOUT_S = env_float(ENV, "LINKRAY_CALL_TIMEOUT_S", 30.0, minimum=0.1)
LINKRAY_MAX_FRAME_BYTES = env_int(ENV, "LINKRAY_MAX_FRAME_BYTES", 256 * 1024, minimum=1024)
# Frames up to this size are read and refused by the gateway with a CALLERROR; beyond it the
# websocket layer closes the connection (1009) rather than buffer it.
# A charger sending faster than this is not read until its budget refills (0: no limit). Real
# chargers send one CALL at a time and a few frames a second at most; bursts of three seconds'
# worth (and one frame of LINKRAY_MAX_FRAME_BYTES) pass untouched.
LINKRAY_CHARGER_MAX_FRAMES_PER_S = env_float(ENV, "LINKRAY_CHARGER_MAX_FRAMES_PER_S", 10.0, minimum=0)
LINKRAY_CHARGER_MAX_BYTES_PER_S = env_int(ENV, "LINKRAY_CHARGER_MAX_BYTES_PER_S", 64 * 1024, minimum=0)
LINKRAY_WEBSOCKET_HARD_LIMIT_BYTES = max(16 * 1024 * 1024, LINKRAY_MAX_FRAME_BYTES * 4)
LINKRAY_JOURNAL_RETENTION_DAYS = env_float(ENV, "LINKRAY_JOURNAL_RETENTION_DAYS", 14, minimum=0)
LINKRAY_JOURNAL_MAX_ROWS = env_int(ENV, "LINKRAY_JOURNAL_MAX_ROWS", 2_000_000, minimum=1000)
LINKRAY_JOURNAL_FLUSH_INTERVAL_S = env_float(ENV, "LINKRAY_JOURNAL_FLUSH_INTERVAL_S", 1.0, minimum=0.05)
LINKRAY_JOURNAL_BUFFER_MAX = env_int(ENV, "LINKRAY_JOURNAL_BUFFER_MAX", 200_000, minimum=1000)
LINKRAY_STATE_FLUSH_INTERVAL_S = env_float(ENV, "LINKRAY_STATE_FLUSH_INTERVAL_S", 1.0, minimum=0.05)

# --- Offline continuity ----------------------------------------------------------------
# A charger gone this long with messages still queued gets them replayed without it.
LINKRAY_ORPHAN_REPLAY_AFTER_S = env_float(ENV, "LINKRAY_ORPHAN_REPLAY_AFTER_S", 120.0, minimum=0)
LINKRAY_ORPHAN_CHECK_INTERVAL_S = env_float(ENV, "LINKRAY_ORPHAN_CHECK_INTERVAL_S", 30.0, minimum=0.05)
LINKRAY_OFFLINE_HEARTBEAT_INTERVAL_S = env_int(ENV, "LINKRAY_OFFLINE_HEARTBEAT_INTERVAL_S", 300, minimum=10)
# Local transaction ids come from a range no CSMS hands out in practice (top of int32).
LINKRAY_LOCAL_TRANSACTION_ID_BASE = env_int(
    ENV, "LINKRAY_LOCAL_TRANSACTION_ID_BASE", 2_000_000_000, minimum=1
)

# --- Meters ----------------------------------------------------------------------------
# Installer's own register maps (*.json, same format as meters/maps/), loaded at start.
LINKRAY_METER_MAPS_DIR = Path(
    env_str(ENV, "LINKRAY_METER_MAPS_DIR", str(DATA_DIR / "meter_maps"))
).expanduser().resolve()
# Defaults for new meters; each meter stores its own values.
LINKRAY_METER_POLL_INTERVAL_S = env_float(ENV, "LINKRAY_METER_POLL_INTERVAL_S", 1.0, minimum=0.1)
LINKRAY_METER_STALE_AFTER_S = env_float(ENV, "LINKRAY_METER_STALE_AFTER_S", 5.0, minimum=0.2)
LINKRAY_METER_TIMEOUT_S = env_float(ENV, "LINKRAY_METER_TIMEOUT_S", 1.0, minimum=0.05)
# How often the poller re-reads the meter table to pick up added, edited or removed meters.
LINKRAY_METER_CONFIG_RELOAD_S = env_float(ENV, "LINKRAY_METER_CONFIG_RELOAD_S", 3.0, minimum=0.1)
LINKRAY_METER_HISTORY_BUCKET_S = env_int(ENV, "LINKRAY_METER_HISTORY_BUCKET_S", 10, minimum=1)
LINKRAY_METER_HISTORY_RETENTION_H = env_float(ENV, "LINKRAY_METER_HISTORY_RETENTION_H", 48.0, minimum=1)

# --- Balancing (site limits, per-charger settings and the control period live in the database)
# An increase is sent at most this often per charger; reductions go out at once.
LINKRAY_BALANCING_INCREASE_INTERVAL_S = env_float(ENV, "LINKRAY_BALANCING_INCREASE_INTERVAL_S", 5.0, minimum=0)
# Changes smaller than this are not sent (no flooding, no oscillation); pause/resume always are.
LINKRAY_BALANCING_DEADBAND_A = env_float(ENV, "LINKRAY_BALANCING_DEADBAND_A", 1.0, minimum=0)
# Fairness and stability of the allocation (balancing.allocation): a charger that has run this long
# yields to one waiting; a car drawing well under its limit this long after a raise lends the
# rest; a charger paused this recently stays paused (no on/off when capacity hovers at a minimum).
LINKRAY_BALANCING_ROTATION_PERIOD_S = env_float(ENV, "LINKRAY_BALANCING_ROTATION_PERIOD_S", 900.0, minimum=1)
LINKRAY_BALANCING_LEND_AFTER_S = env_float(ENV, "LINKRAY_BALANCING_LEND_AFTER_S", 60.0, minimum=0)
LINKRAY_BALANCING_RESUME_AFTER_S = env_float(ENV, "LINKRAY_BALANCING_RESUME_AFTER_S", 30.0, minimum=0)
# How long a charger may take to answer LinkRay's SetChargingProfile before it counts as not controllable.
LINKRAY_BALANCING_CALL_TIMEOUT_S = env_float(ENV, "LINKRAY_BALANCING_CALL_TIMEOUT_S", 10.0, minimum=0.1)

# --- Process tuning (bench/relay.py measures these) ------------------------------------------
LINKRAY_EVENT_LOOP = env_choice(ENV, "LINKRAY_EVENT_LOOP", "uvloop", ("uvloop", "asyncio"))

# --- Logging ---------------------------------------------------------------------------
LINKRAY_LOG_LEVEL = env_log_level(ENV, "LINKRAY_LOG_LEVEL", "info")
# "json": one JSON object per line, the key=value fields lifted into JSON fields.
LINKRAY_LOG_FORMAT = env_choice(ENV, "LINKRAY_LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "linkray_site.logformat.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LINKRAY_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LINKRAY_LOG_LEVEL},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "websockets": {"level": "WARNING"},
        "pymodbus": {"level": "WARNING"},
        # pymodbus logs everything through "pymodbus.logging", and below DEBUG it appends hex
        # dumps of the last frames (">>>>> send: 0x7 0x4 ...") to every error line: one per
        # failed poll, every second. meters.poller logs each failure once per change of reason,
        # so pymodbus's own lines show only with LINKRAY_LOG_LEVEL=debug. It is set here, not
        # in an AppConfig.ready(): asgi.py's get_asgi_application() runs django.setup() again,
        # and that second dictConfig resets every logger it does not name (the old cause).
        "pymodbus.logging": {"level": "WARNING" if LINKRAY_LOG_LEVEL == "DEBUG" else "CRITICAL"},
        "django.channels.server": {"level": "WARNING"},
    },
}

# --- Background work -------------------------------------------------------------------
# Coroutine functions `manage.py serve` runs beside the server in the embedded default.
# With REDIS_URL set, Celery beat runs the same work (CELERY_BEAT_SCHEDULE) instead.
LINKRAY_EMBEDDED_TASKS = [
    "gateway.runtime.run_journal_pruning",
    "meters.loop.run_meter_polling",
    "meters.loop.run_history_pruning",
    "audit.retention.run_audit_pruning",
    "balancing.loop.run_balancing",
]

# The first run creates an "admin" user; its password is this, or generated and written to
# <data dir>/initial_admin_password.
LINKRAY_ADMIN_PASSWORD = env_str(ENV, "LINKRAY_ADMIN_PASSWORD")

# /metrics without a token for these client addresses (Prometheus on the box or the LAN).
LINKRAY_METRICS_ALLOWED_ADDRESSES = env_networks(ENV, "LINKRAY_METRICS_ALLOWED_ADDRESSES")
