"""Settings shared by every environment; each environment module only changes addresses and keys.

Everything that differs between a laptop and production comes from environment variables, so the
embedded run and a real deployment run the same code with different addresses.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(os.environ.get("WEBCLIENT_DATA_DIR", BASE_DIR / "data")).resolve()


def env_list(name: str, default: str = "") -> list[str]:
    """A comma separated environment variable as a list without blanks."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "console.admin_config.ConsoleAdminConfig",  # Django admin, audited (console/site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "axes",
    "webclient",
    "accounts",
    "rooms",
    "records",
    "console",
]

# Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For / X-Forwarded-Proto are believed.
# Empty: nobody's are, and the direct peer is the client (webclient/proxies.py).
TRUSTED_PROXIES = env_list("WEBCLIENT_TRUSTED_PROXIES")
# Who may read the web process's /metrics (webclient/metrics.py): these client addresses, or a
# request with "Authorization: Bearer <METRICS_TOKEN>" when a token is set.
METRICS_ALLOWED = env_list("WEBCLIENT_METRICS_ALLOWED", "127.0.0.1,::1")
METRICS_TOKEN = os.environ.get("WEBCLIENT_METRICS_TOKEN", "")
for _setting, _entries in (
    ("WEBCLIENT_TRUSTED_PROXIES", TRUSTED_PROXIES),
    ("WEBCLIENT_METRICS_ALLOWED", METRICS_ALLOWED),
):
    for _entry in _entries:
        try:
            ipaddress.ip_network(_entry, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{_setting}: {_entry!r} is not an IP address or network."
            ) from None
# Sync hosts (`manage.py sync_host`, the Celery sync worker) serve Prometheus metrics on this port
# (0: off), bound to METRICS_ADDR: loopback unless the scraper runs on another machine.
METRICS_PORT = int(os.environ.get("WEBCLIENT_METRICS_PORT", "0") or 0)
METRICS_ADDR = os.environ.get("WEBCLIENT_METRICS_ADDR", "127.0.0.1")
# /readyz: how long each check may take, and the share of active accounts that must have a live
# sync host for "ready" (0: reported only; webclient/health.py says why).
HEALTH_TIMEOUT = float(os.environ.get("WEBCLIENT_HEALTH_TIMEOUT", "2"))
READY_MIN_OWNED_SHARE = float(os.environ.get("WEBCLIENT_READY_MIN_OWNED_SHARE", "0"))

MIDDLEWARE = [
    # /healthz, /readyz, /metrics: answered before the HTTPS redirect and the host check (and
    # before forwarded headers are dropped: /metrics refuses what an unlisted proxy relayed).
    "webclient.probes.ProbeMiddleware",
    "webclient.proxies.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files leave here, compressed already
    # Below whitenoise, above everything that writes a body: pages go out gzipped (BREACH-padded).
    "webclient.compression.TextGZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a lockout on any login form (ours, the admin's) into the sign-in page saying so.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webclient.urls"
ASGI_APPLICATION = "webclient.asgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'webclient.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, sync, worker) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Each process keeps a pool (psycopg-pool): a request borrows an open connection instead of
    # opening one (TCP, TLS and authentication on every request). Size it for the threads that
    # hold a connection at once: a web process's request threads, a sync worker's hosts (each
    # with its lease thread and its database thread); PostgreSQL's max_connections bounds the sum.
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": int(os.environ.get("DATABASE_POOL_MIN_SIZE", "2")),
            "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "20")),
            "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "10")),
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out name or address before the homeserver is asked.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.MatrixPasswordBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Every password an admin or a person sets is checked here before it reaches the homeserver.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": int(os.environ.get("WEBCLIENT_PASSWORD_MIN_LENGTH", "10"))},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling (accounts/throttling.py, django-axes): failed sign-ins allowed per person and
# per client address (see TRUSTED_PROXIES) within the lockout window, before sign-in is refused
# without asking the homeserver. An admin can unlock early under Axes -> Access attempts.
SIGN_IN_FAILURES_PER_USER = int(os.environ.get("WEBCLIENT_SIGN_IN_FAILURES_PER_USER", "5"))
SIGN_IN_FAILURES_PER_ADDRESS = int(os.environ.get("WEBCLIENT_SIGN_IN_FAILURES_PER_ADDRESS", "30"))
AXES_COOLOFF_TIME = timedelta(
    minutes=float(os.environ.get("WEBCLIENT_SIGN_IN_LOCKOUT_MINUTES", "15"))
)
AXES_HANDLER = "accounts.throttling.SignInThrottle"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # the order SignInThrottle.is_locked reads
AXES_FAILURE_LIMIT = SIGN_IN_FAILURES_PER_USER  # axes' own flag; SignInThrottle applies both limits
AXES_USERNAME_CALLABLE = "accounts.throttling.throttle_username"
AXES_CLIENT_IP_CALLABLE = "webclient.proxies.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttling.lockout_response"
AXES_RESET_ON_SUCCESS = False  # SignInThrottle clears the person's count, never the address's
AXES_VERBOSE = False
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "rooms:home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ja", "日本語")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Redis carries the Celery broker and the Channels layer, in production and in the embedded run.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# channels_redis forgets a group member this long after it joined. Sync hosts re-join their groups
# on every heartbeat (SYNC_LEASE_SECONDS / 3) and open pages every third of this (at most every
# minute), so keep it well above both; a Redis restart is healed within one such interval.
CHANNEL_GROUP_EXPIRY_SECONDS = int(os.environ.get("CHANNEL_GROUP_EXPIRY_SECONDS", "86400"))
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, as long as channels_redis's
            # blocking receive; give the socket room so an idle receive is not an error.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": os.environ.get("CHANNELS_PREFIX", "webclient"),
            "group_expiry": CHANNEL_GROUP_EXPIRY_SECONDS,
        },
    }
}
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"rooms.tasks.sync_host_run": {"queue": "sync"}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep LOGGING's handler (account/room context, scrubbing) in workers instead of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE = {
    "sync-reconcile": {
        "task": "rooms.tasks.sync_reconcile",
        "schedule": float(os.environ.get("SYNC_RECONCILE_SECONDS", "15")),
    },
    # New people's joins of the configured rooms, retried until the homeserver says yes.
    "console-joins": {
        "task": "console.tasks.joins_run",
        "schedule": float(os.environ.get("CONSOLE_JOINS_SECONDS", "30")),
    },
    # The organisation's archive follows the local store after commit (records/archiver.py).
    "archive-events": {
        "task": "records.tasks.archive_events",
        "schedule": float(os.environ.get("ARCHIVE_EVERY_SECONDS", "30")),
    },
    "retention-run": {
        "task": "records.tasks.retention_run",
        "schedule": float(os.environ.get("RETENTION_EVERY_SECONDS", "3600")),
    },
    # Catches what the nudge after each sync missed (a late key, a skipped id, a lost task).
    "search-index": {
        "task": "rooms.tasks.search_index_run",
        "schedule": float(os.environ.get("SEARCH_INDEX_SECONDS", "10")),
    },
}
# How long the archiver keeps reading a timeline id it stepped over (not yet committed on
# PostgreSQL) before taking it for a rolled-back insert.
ARCHIVE_HOLE_GRACE_SECONDS = int(os.environ.get("ARCHIVE_HOLE_GRACE_SECONDS", "3600"))

# The Matrix homeserver every account lives on.
MATRIX_HOMESERVER_URL = os.environ.get("MATRIX_HOMESERVER_URL", "").rstrip("/")
# The homeserver's address as people's browsers reach it, for single sign-on redirects; the same as
# MATRIX_HOMESERVER_URL unless this server reaches the homeserver by an internal address.
MATRIX_HOMESERVER_PUBLIC_URL = os.environ.get("MATRIX_HOMESERVER_PUBLIC_URL", "").rstrip("/")
# Synapse's registration_shared_secret: lets the admin console create Matrix accounts.
MATRIX_REGISTRATION_SHARED_SECRET = os.environ.get("MATRIX_REGISTRATION_SHARED_SECRET", "")
# A Synapse admin's access token; when absent, one is made through the shared secret.
MATRIX_ADMIN_TOKEN = os.environ.get("MATRIX_ADMIN_TOKEN", "")
MATRIX_ADMIN_LOCALPART = os.environ.get("MATRIX_ADMIN_LOCALPART", "webclient-admin")
MATRIX_DEVICE_NAME = os.environ.get("MATRIX_DEVICE_NAME", "webclient")
MATRIX_HTTP_TIMEOUT = float(os.environ.get("MATRIX_HTTP_TIMEOUT", "15"))

# Master keys for secrets at rest (Fernet, urlsafe base64). The first encrypts, all decrypt.
WEBCLIENT_SECRET_KEYS = env_list("WEBCLIENT_SECRET_KEYS")

# Sync hosts: how many accounts one host task holds, and how long a lease lives without heartbeat.
# A killed host's accounts move once its leases run out: failover takes about this long (measured:
# lease + 0.3-1.8 s), so keep it under the 30 s goal. Heartbeats come every third of it.
SYNC_HOST_CAPACITY = int(os.environ.get("SYNC_HOST_CAPACITY", "500"))
SYNC_LEASE_SECONDS = float(os.environ.get("SYNC_LEASE_SECONDS", "20"))
SYNC_TIMEOUT_MS = int(os.environ.get("SYNC_TIMEOUT_MS", "30000"))
# Accounts a sync host starts at once (crypto opened, first sync stored), and new accounts it sets
# up at once after their first sync (cross-signing, key backup): the rest wait their turn, so a
# host claiming hundreds has its first accounts synced in seconds (rooms/sync/startup.py).
SYNC_FIRST_ROUNDS = int(os.environ.get("SYNC_FIRST_ROUNDS", "32"))
SYNC_SETUPS = int(os.environ.get("SYNC_SETUPS", "8"))
# Events per /messages request when filling a gap a limited sync left (gaps fill to the end).
GAP_FILL_PAGE = int(os.environ.get("GAP_FILL_PAGE", "100"))
# Each account's Olm/Megolm store (nio's SQLite file, pickles encrypted with the account's pickle
# key). Every sync host must see the same folder: on more than one machine, shared storage.
# When a key still missing is first asked for again from the person's other devices; then twice
# as long each time, per key (rooms/sync/key_requests.py), and never once its sender withheld it.
KEY_REQUEST_RETRY_SECONDS = float(os.environ.get("KEY_REQUEST_RETRY_SECONDS", "300"))
CRYPTO_STORE_DIR = Path(os.environ.get("WEBCLIENT_CRYPTO_STORE_DIR", DATA_DIR / "crypto")).resolve()

SESSION_COOKIE_HTTPONLY = True
# Database sessions that skip writing what they just wrote (the sign-in writes its session once).
SESSION_ENGINE = "accounts.session_store"
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy on every response: scripts and styles only from our own static files (no
# inline script, no eval: htmx is told so in base.html, and our behaviour lives in app.js), images
# from our own media proxy, requests and the websocket back to us only. Message HTML is sanitized as
# well; this is the second lock on the same door.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # Each line names the host, account and room it is about (bound in accounts/log_context),
        # and tokens or passwords are scrubbed from it.
        "plain": {
            "()": "accounts.log_context.ContextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # every sign-in at INFO otherwise; lockouts stay visible
    },
}
